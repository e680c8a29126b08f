// The allowlist screen: list, add, edit, remove, CSV import and export, pair by code.

import { byId, h, saveBlob, setText, when } from "./dom.js";
import { confirmAction, editEntry } from "./dialogs.js";
import { Cancelled, OPERATIONS } from "./stepup.js";
import { errorText, plural } from "./words.js";

const CSV_COLUMNS = ["mac", "description", "container_id"];
const WRITE_REASON = "Changing the allowlist decides which devices get your Wi-Fi: confirm with the code from your authenticator app.";

export class AllowlistView {
  #api;
  #stepUp;
  #notify;
  #onChange;
  #entries = [];

  /** `onChange()` runs after every change (the device grid shows allowlist status). */
  constructor({ api, stepUp, notify, onChange }) {
    this.#api = api;
    this.#stepUp = stepUp;
    this.#notify = notify;
    this.#onChange = onChange;
    byId("add-form").addEventListener("submit", (event) => this.#add(event));
    byId("pair-form").addEventListener("submit", (event) => this.#pair(event));
    byId("import-file").addEventListener("change", (event) => this.#import(event));
    byId("export-csv").addEventListener("click", () => this.#export());
  }

  async load() {
    try {
      const { entries } = await this.#api.call("GET", "provisioning/allowlist");
      this.#entries = entries;
      this.#render();
    } catch (failed) {
      this.#notify.alert(errorText(failed));
    }
  }

  #render() {
    const used = this.#entries.filter((e) => e.used).length;
    setText(
      byId("allowlist-summary"),
      `${plural(this.#entries.length, "device")} on the allowlist, ${used} used, ${this.#entries.length - used} available.`,
    );
    byId("allowlist-rows").replaceChildren(
      ...this.#entries.map((entry) =>
        h(
          "tr",
          { "data-mac": entry.mac },
          h("td", { class: "code nowrap" }, entry.mac),
          h(
            "td",
            {},
            entry.description ?? "",
            entry.container_id ? h("span", { class: "container" }, `Container ${entry.container_id}`) : null,
          ),
          h(
            "td",
            {},
            entry.used ? "Used" : "Available",
            entry.used ? h("span", { class: "wide-only" }, ` ${when(entry.used_at, "short")}`) : null,
          ),
          h(
            "td",
            { class: "nowrap" },
            h("button", { type: "button", class: "button small", "aria-label": `Edit ${entry.mac}`, onclick: () => this.#edit(entry) }, "Edit"),
            h("button", { type: "button", class: "button small", "aria-label": `Remove ${entry.mac}`, onclick: () => this.#remove(entry) }, "Remove"),
          ),
        ),
      ),
    );
  }

  /** A gated allowlist write; the list is reloaded afterwards. */
  async #write(method, path, options) {
    const answer = await this.#stepUp.run(OPERATIONS.allowlist, WRITE_REASON, (headers) =>
      this.#api.call(method, path, { ...options, headers }),
    );
    await this.load();
    this.#onChange();
    return answer;
  }

  async #add(event) {
    event.preventDefault();
    const form = event.target;
    const error = byId("add-error");
    setText(error, "");
    const body = optional({
      mac: form.elements.mac.value.trim(),
      description: form.elements.description.value.trim(),
      container_id: form.elements.container_id.value.trim(),
    });
    try {
      const added = await this.#write("POST", "provisioning/allowlist", { json: body });
      form.reset();
      this.#notify.info(`${added.entry.mac}: ${added.message}.`);
    } catch (failed) {
      if (!(failed instanceof Cancelled)) setText(error, errorText(failed));
    }
  }

  async #pair(event) {
    event.preventDefault();
    const form = event.target;
    const error = byId("pair-error");
    setText(error, "");
    try {
      const paired = await claimCode(this.#stepUp, this.#api, form.elements.code.value, {
        description: form.elements.description.value,
      });
      await this.load();
      this.#onChange();
      form.reset();
      this.#notify.info(`${paired.entry.mac} is paired: it is on the allowlist.`);
    } catch (failed) {
      if (!(failed instanceof Cancelled)) setText(error, errorText(failed));
    }
  }

  async #edit(entry) {
    await editEntry(entry, async (changes) => {
      await this.#write("PATCH", `provisioning/allowlist/${encodeURIComponent(entry.mac)}`, { json: changes });
      this.#notify.info(`${entry.mac} updated.`);
    });
  }

  async #remove(entry) {
    const sure = await confirmAction(
      "Remove this device?",
      `${entry.mac} will no longer be provisioned unless it is added again.`,
      "Remove",
    );
    if (!sure) return;
    await this.#notify.run("Remove", async () => {
      await this.#write("DELETE", `provisioning/allowlist/${encodeURIComponent(entry.mac)}`);
      this.#notify.info(`${entry.mac} removed from the allowlist.`);
    });
  }

  async #import(event) {
    const input = event.target;
    const file = input.files?.[0];
    if (!file) return;
    await this.#notify.run("Import", async () => {
      const text = await file.text();
      const imported = await this.#write("POST", "provisioning/allowlist/import", { text });
      this.#notify.info(`${file.name}: ${imported.message}.`);
    });
    input.value = ""; // the same file can be imported again after a fix
  }

  async #export() {
    await this.#notify.run("Export", async () => {
      const { entries } = await this.#api.call("GET", "provisioning/allowlist");
      const lines = [CSV_COLUMNS, ...entries.map((e) => CSV_COLUMNS.map((c) => e[c] ?? ""))];
      const csv = lines.map((cells) => cells.map(csvCell).join(",")).join("\r\n") + "\r\n";
      saveBlob(new Blob([csv], { type: "text/csv" }), "allowlist.csv");
      this.#notify.announce(`Exported ${plural(entries.length, "entry", "entries")}.`);
    });
  }
}

/** POST /pairing/claim with step-up; resolves to {entry, message}. */
export function claimCode(stepUp, api, code, { description = "", container_id = "" } = {}) {
  const body = optional({
    code: code.trim().toUpperCase(),
    description: description.trim(),
    container_id: container_id.trim(),
  });
  return stepUp.run(OPERATIONS.allowlist, WRITE_REASON, (headers) =>
    api.call("POST", "provisioning/pairing/claim", { json: body, headers }),
  );
}

/** `fields` without the empty ones (optional fields are left out, never sent empty). */
function optional(fields) {
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== ""));
}

function csvCell(value) {
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}
