// The batch screen: start a batch, the session's counters and controls, the device grid.

import { saveBlob, byId, setText } from "./dom.js";
import { confirmAction } from "./dialogs.js";
import { DeviceGrid } from "./grid.js";
import { Cancelled, OPERATIONS } from "./stepup.js";
import { BUSY_STATES, errorText, failure, plural, sessionState } from "./words.js";

const TIMEOUTS = ["discovery_timeout_seconds", "provisioning_timeout_seconds", "verification_timeout_seconds"];
const OPEN_STATES = new Set(["discovering", "active", "paused"]);

export class BatchView {
  #api;
  #stepUp;
  #live;
  #notify;
  #grid;
  #frame = null;
  #wantsNewBatch = false;
  /** Sessions an earlier run left open (shown in the banner): no controls until resumed. */
  recoverable = new Set();

  /** `notify` is {announce(text), alert(text), info(text), run(label, promise)}. */
  constructor({ api, stepUp, live, notify }) {
    this.#api = api;
    this.#stepUp = stepUp;
    this.#live = live;
    this.#notify = notify;
    this.#grid = new DeviceGrid(byId("grid"), byId("grid-head"), (kind, device) =>
      this.#deviceAction(kind, device),
    );
    byId("start-form").addEventListener("submit", (event) => this.#start(event));
    byId("provision-all").addEventListener("click", () => this.#provisionAll());
    byId("pause").addEventListener("click", () => this.#sessionAction("pause", "Paused: no new device work starts."));
    byId("resume").addEventListener("click", () => this.#sessionAction("resume", "Resumed."));
    byId("stop").addEventListener("click", () => this.#stop());
    byId("report-csv").addEventListener("click", () => this.#report("csv"));
    byId("report-json").addEventListener("click", () => this.#report("json"));
    byId("new-batch").addEventListener("click", () => {
      this.#wantsNewBatch = true;
      this.render();
      byId("target-ssid").focus();
    });
    live.addEventListener("change", () => this.schedule());
    live.addEventListener("device", (event) => this.#announceDevice(event.detail));
  }

  /** Render on the next frame (many events in a burst make one render). */
  schedule() {
    if (this.#frame !== null) return;
    this.#frame = requestAnimationFrame(() => {
      this.#frame = null;
      this.render();
    });
  }

  render() {
    const session = this.#live.session;
    const open = session && OPEN_STATES.has(session.state);
    const recoverable = session && this.recoverable.has(session.id);
    byId("session").hidden = !session;
    byId("start-form").hidden = Boolean(open) || Boolean(session && !this.#wantsNewBatch);
    byId("grid-head").hidden = !session;
    byId("grid").hidden = !session;
    byId("grid-empty").hidden = !session || this.#live.devices.size > 0;
    if (!session) {
      this.#grid.render(new Map(), false);
      return;
    }
    if (open) this.#wantsNewBatch = false;
    this.#renderSession(session, Boolean(recoverable));
    this.#grid.render(this.#live.devices, Boolean(open) && !recoverable);
  }

  #renderSession(session, recoverable) {
    const state = sessionState(session.state);
    setText(byId("session-title"), `Batch for “${session.target_ssid}”`);
    setText(byId("session-id"), `Session ${session.id}`);
    const badge = byId("session-state");
    badge.dataset.tone = recoverable ? "warn" : state.tone;
    setText(badge, recoverable ? "Interrupted" : state.label);

    const devices = [...this.#live.devices.values()];
    const total = Math.max(session.device_count, devices.length);
    const waiting = devices.filter((d) => d.state === "discovered").length;
    const busy = devices.filter((d) => BUSY_STATES.has(d.state)).length;
    setText(byId("count-devices"), total);
    setText(byId("count-waiting"), waiting);
    setText(byId("count-busy"), busy);
    setText(byId("count-verified"), session.verified_count);
    setText(byId("count-failed"), session.failed_count);

    const done = session.verified_count + session.failed_count;
    const percent = total ? Math.round((100 * done) / total) : 0;
    byId("bar-verified").style.width = `${total ? (100 * session.verified_count) / total : 0}%`;
    byId("bar-failed").style.width = `${total ? (100 * session.failed_count) / total : 0}%`;
    const bar = byId("session-progress");
    bar.setAttribute("aria-valuenow", String(percent));
    setText(
      byId("session-progress-text"),
      total
        ? `${percent}% done: ${session.verified_count} of ${total} verified, ${session.failed_count} failed`
        : "Waiting for devices to join the onboarding network…",
    );

    const open = OPEN_STATES.has(session.state) && !recoverable;
    byId("session-actions").hidden = !open;
    byId("pause").hidden = session.state === "paused";
    byId("resume").hidden = session.state !== "paused";
    byId("provision-all").disabled = session.state === "paused";
    byId("new-batch").hidden = OPEN_STATES.has(session.state) || this.#wantsNewBatch;
  }

  async #start(event) {
    event.preventDefault();
    const form = event.target;
    const error = byId("start-error");
    setText(error, "");
    const config = {};
    for (const name of TIMEOUTS) {
      const value = form.elements[name].value.trim();
      if (value) config[name] = Number(value);
    }
    const body = {
      target_ssid: form.elements.target_ssid.value.trim(),
      target_password: form.elements.target_password.value,
      ...(Object.keys(config).length ? { config } : {}),
    };
    const submit = form.querySelector('button[type="submit"]');
    submit.disabled = true;
    try {
      const started = await this.#stepUp.run(OPERATIONS.start, "Starting a batch sends devices to a Wi-Fi network: confirm with the code from your authenticator app.", (headers) =>
        this.#api.call("POST", "provisioning/batch/start", { json: body, headers }),
      );
      form.elements.target_password.value = ""; // write-only: not kept on screen
      this.#wantsNewBatch = false;
      this.#live.adopt(started.session);
      this.#notify.announce(`Batch for ${started.session.target_ssid} started.`);
    } catch (failed) {
      if (!(failed instanceof Cancelled)) setText(error, errorText(failed));
    } finally {
      submit.disabled = false;
    }
  }

  async #provisionAll() {
    const session = this.#live.session;
    const onlyAllowlisted = !byId("include-unlisted").checked;
    await this.#notify.run("Provision all", async () => {
      const outcome = await this.#api.call("POST", `provisioning/batch/${session.id}/provision-all`, {
        json: { only_allowlisted: onlyAllowlisted },
      });
      const skipped = outcome.skipped_count ? `, ${outcome.skipped_count} left alone` : "";
      this.#notify.info(`Provisioning ${plural(outcome.initiated_count, "device")}${skipped}.`);
    });
  }

  async #sessionAction(action, said) {
    const session = this.#live.session;
    await this.#notify.run(action, async () => {
      const view = await this.#api.call("POST", `provisioning/batch/${session.id}/${action}`);
      this.#live.adopt(view.session);
      this.#notify.announce(said);
    });
  }

  async #stop() {
    const session = this.#live.session;
    const sure = await confirmAction(
      "Stop this batch?",
      "Devices still in progress are left as they are. The report stays available.",
      "Stop batch",
    );
    if (!sure) return;
    await this.#notify.run("Stop", async () => {
      const stopped = await this.#api.call("POST", `provisioning/batch/${session.id}/stop`);
      this.#live.adopt(stopped.session);
      this.#notify.announce("Batch stopped.");
    });
  }

  async #report(format) {
    const session = this.#live.session;
    await downloadReport(this.#api, this.#notify, session.id, format);
  }

  async #deviceAction(kind, device) {
    const session = this.#live.session;
    if (!device || !session) return;
    const base = `provisioning/batch/${session.id}/devices/${encodeURIComponent(device.mac)}`;
    await this.#notify.run(kind, async () => {
      if (kind === "allow") {
        await this.#stepUp.run(OPERATIONS.allowlist, "Adding a device to the allowlist needs the code from your authenticator app.", (headers) =>
          this.#api.call("POST", "provisioning/allowlist", { json: { mac: device.mac }, headers }),
        );
        this.#notify.info(`${device.mac} is on the allowlist.`);
        await this.refreshDevices();
        return;
      }
      const answer = await this.#api.call("POST", `${base}/${kind}`);
      this.#notify.announce(answer.message ?? `${kind}: ${device.mac}`);
    });
  }

  /** Merge the REST view of the devices (retry counts, allowlist status) into the picture. */
  async refreshDevices() {
    const session = this.#live.session;
    if (!session) return;
    try {
      const listed = await this.#api.call("GET", `provisioning/batch/${session.id}/devices`);
      this.#live.merge(listed.devices);
    } catch {
      // The stream still shows the devices; these extras come back with the next refresh.
    }
  }

  #announceDevice(device) {
    if (device.state === "failed") {
      const why = failure(device.error);
      this.#notify.announce(`${device.mac} failed: ${why.headline}.`);
    }
    const session = this.#live.session;
    if (device.state === "verified" && session && session.device_count > 0) {
      const left = [...this.#live.devices.values()].filter((d) => d.state !== "verified" && d.state !== "failed").length;
      if (left === 0) this.#notify.announce("Every device is done.");
    }
  }
}

/** Download a session's report (CSV or JSON) with the API key. */
export async function downloadReport(api, notify, sessionId, format) {
  await notify.run("Report", async () => {
    const file = await api.fetchFile(
      `provisioning/sessions/${sessionId}/report?format=${format}`,
      `report-${sessionId}.${format}`,
    );
    let blob = file.blob;
    if (format === "json") {
      // The JSON report comes in the API's envelope: the file holds the report itself.
      const envelope = JSON.parse(await blob.text());
      const report = envelope?.success === true && "data" in envelope ? envelope.data : envelope;
      blob = new Blob([`${JSON.stringify(report, null, 2)}\n`], { type: "application/json" });
    }
    saveBlob(blob, file.name);
    notify.announce(`Report ${file.name} downloaded.`);
  });
}
