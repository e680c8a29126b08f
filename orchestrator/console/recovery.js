// The banner for sessions an earlier run left open (GET /sessions/recoverable): after a
// restart or power cut, the technician resumes the batch or discards it.

import { byId, h, when } from "./dom.js";
import { confirmAction } from "./dialogs.js";
import { OPERATIONS } from "./stepup.js";
import { plural } from "./words.js";

export class Recovery {
  #api;
  #stepUp;
  #live;
  #batch;
  #notify;
  #shown = "";

  constructor({ api, stepUp, live, batch, notify }) {
    this.#api = api;
    this.#stepUp = stepUp;
    this.#live = live;
    this.#batch = batch;
    this.#notify = notify;
  }

  /** Ask the appliance which sessions can be resumed, and show them. */
  async refresh() {
    let sessions;
    try {
      ({ sessions } = await this.#api.call("GET", "provisioning/sessions/recoverable"));
    } catch {
      return; // the banner comes with the next refresh; nothing is lost meanwhile
    }
    this.#batch.recoverable = new Set(sessions.map((s) => s.id));
    this.#render(sessions);
    this.#batch.schedule();
  }

  #render(sessions) {
    const region = byId("recoverable");
    const shown = sessions.map((s) => `${s.id}:${s.updated_at}`).join(",");
    if (shown === this.#shown) return;
    this.#shown = shown;
    region.hidden = sessions.length === 0;
    region.replaceChildren(...sessions.map((session) => this.#banner(session)));
    if (sessions.length) this.#notify.announce("A batch was interrupted by a restart: resume it or discard it.");
  }

  #banner(session) {
    const title = `recoverable-${session.id}`;
    return h(
      "div",
      { class: "banner", role: "group", "aria-labelledby": title, "data-session": session.id },
      h("h2", { id: title }, "A batch was interrupted"),
      h(
        "p",
        {},
        `The appliance restarted while the batch for “${session.target_ssid}” (started ${when(session.created_at)}) was open: `,
        `${plural(session.device_count, "device")}, ${session.verified_count} verified, ${session.failed_count} failed.`,
      ),
      h(
        "div",
        { class: "actions" },
        h("button", { type: "button", class: "button primary", onclick: () => this.#resume(session) }, "Resume batch"),
        h("button", { type: "button", class: "button", onclick: () => this.#discard(session) }, "Discard batch"),
      ),
    );
  }

  async #resume(session) {
    await this.#notify.run("Resume", async () => {
      const view = await this.#api.call("POST", `provisioning/sessions/${session.id}/resume`);
      this.#live.adopt(view.session);
      if (view.devices) this.#live.merge(view.devices);
      this.#notify.info(`Batch for “${session.target_ssid}” resumed. Provision all to carry on.`);
      await this.refresh();
      this.#batch.render(); // now, not on the next frame: the focus goes to its button
      byId("provision-all").focus();
    });
  }

  async #discard(session) {
    const sure = await confirmAction(
      "Discard this batch?",
      `The batch for “${session.target_ssid}” is closed without resuming it. Its report stays available.`,
      "Discard batch",
    );
    if (!sure) return;
    await this.#notify.run("Discard", async () => {
      await this.#stepUp.run(OPERATIONS.discard, "Discarding a batch needs the code from your authenticator app.", (headers) =>
        this.#api.call("DELETE", `provisioning/sessions/${session.id}`, { headers }),
      );
      this.#notify.info(`Batch for “${session.target_ssid}” discarded.`);
      await this.refresh();
    });
  }
}
