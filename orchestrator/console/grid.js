// The device grid: one card per device, kept in place between updates (so a focused button
// stays focused while the batch moves on), in discovery order.

import { h, setText } from "./dom.js";
import { BUSY_STATES, PROGRESS, deviceState, failure, plural, signal } from "./words.js";

const FILTERS = {
  all: () => true,
  attention: (device) => device.state === "failed",
  busy: (device) => BUSY_STATES.has(device.state),
  verified: (device) => device.state === "verified",
};

export class DeviceGrid {
  #list;
  #cards = new Map();
  #filter = "all";
  #act;

  /**
   * `list` is the grid's <ul>; `act(kind, device)` runs a card's button (kind: provision,
   * allow, retry, skip).
   */
  constructor(list, filters, act) {
    this.#list = list;
    this.#act = act;
    for (const chip of filters.querySelectorAll("[data-filter]")) {
      chip.addEventListener("click", () => {
        this.#filter = chip.dataset.filter;
        for (const other of filters.querySelectorAll("[data-filter]")) {
          other.setAttribute("aria-pressed", String(other === chip));
        }
        this.#applyFilter();
      });
    }
  }

  /** Show `devices` (a Map by MAC); `enabled` says whether device actions are possible now. */
  render(devices, enabled) {
    for (const [mac, card] of this.#cards) {
      if (!devices.has(mac)) {
        card.root.remove();
        this.#cards.delete(mac);
      }
    }
    let previous = null;
    for (const device of devices.values()) {
      let card = this.#cards.get(device.mac);
      if (!card) {
        card = this.#card(device.mac);
        this.#cards.set(device.mac, card);
      }
      // Discovery order: insert only when out of place, so nothing is moved needlessly.
      const expected = previous ? previous.nextSibling : this.#list.firstChild;
      if (expected !== card.root) this.#list.insertBefore(card.root, expected);
      this.#update(card, device, enabled);
      previous = card.root;
    }
    this.#applyFilter();
  }

  #card(mac) {
    const button = (kind, label, tone) => {
      const element = h(
        "button",
        { type: "button", class: `button small ${tone}`, "aria-label": `${label} ${mac}`, "data-action": kind },
        label,
      );
      element.addEventListener("click", () => this.#act(kind, this.#current(mac)));
      return element;
    };
    const parts = {
      badge: h("p", { class: "badge state" }),
      signal: h("dd"),
      firmware: h("dd"),
      allowlist: h("dd"),
      retriesTerm: h("dt", {}, "Attempts"),
      retries: h("dd"),
      meterFill: h("div"),
      reason: h("p", { class: "reason" }),
      provision: button("provision", "Provision", "primary"),
      allow: button("allow", "Add to allowlist", ""),
      retry: button("retry", "Retry", "primary"),
      skip: button("skip", "Skip", ""),
    };
    parts.meter = h(
      "div",
      { class: "meter", role: "progressbar", "aria-label": `Progress of ${mac}`, "aria-valuemin": 0, "aria-valuemax": 100 },
      parts.meterFill,
    );
    const root = h(
      "li",
      { class: "device", "data-mac": mac, "aria-label": `Device ${mac}` },
      h("div", { class: "device-head" }, h("p", { class: "mac code" }, mac), parts.badge),
      h(
        "dl",
        { class: "facts" },
        h("dt", {}, "Signal"), parts.signal,
        h("dt", {}, "Firmware"), parts.firmware,
        h("dt", {}, "Allowlist"), parts.allowlist,
        parts.retriesTerm, parts.retries,
      ),
      parts.meter,
      parts.reason,
      h("div", { class: "device-actions" }, parts.provision, parts.allow, parts.retry, parts.skip),
    );
    return { root, parts, device: null, reason: null };
  }

  #current(mac) {
    return this.#cards.get(mac)?.device;
  }

  #update(card, device, enabled) {
    const { parts, root } = card;
    card.device = device;
    const state = deviceState(device.state);
    root.dataset.tone = state.tone;
    root.dataset.state = device.state;
    parts.badge.dataset.tone = state.tone;
    setText(parts.badge, state.label);

    const strength = signal(device.rssi);
    setText(parts.signal, device.rssi === undefined ? "—" : `${strength.bars} ${device.rssi} dBm, ${strength.words}`);
    setText(parts.firmware, device.firmware_version ?? "—");
    setText(parts.allowlist, device.in_allowlist ? "✓ On the allowlist" : "✗ Not on the allowlist");

    const retries = device.retry_count ?? 0;
    parts.retriesTerm.hidden = retries === 0;
    parts.retries.hidden = retries === 0;
    setText(parts.retries, `Retried ${plural(retries, "time")}`);

    const progress = device.state === "failed" ? device.progress ?? 0 : PROGRESS[device.state] ?? device.progress ?? 0;
    parts.meter.setAttribute("aria-valuenow", String(progress));
    parts.meterFill.style.width = `${progress}%`;

    const failed = device.state === "failed";
    parts.reason.hidden = !failed;
    if (failed && card.reason !== device.error) {
      // Rebuilt only when the words change: an open "what the device said" stays open.
      card.reason = device.error;
      const why = failure(device.error);
      const open = parts.reason.querySelector("details")?.open ?? false;
      parts.reason.replaceChildren(
        h("strong", {}, why.headline),
        why.advice ? h("span", { class: "advice" }, why.advice) : null,
        // The appliance's own words, folded away: the headline is what a technician acts on.
        why.message ? h("details", { open }, h("summary", {}, "What the device said"), why.message) : null,
      );
    }

    const busy = BUSY_STATES.has(device.state);
    parts.provision.hidden = !(device.state === "discovered" && device.in_allowlist);
    parts.allow.hidden = device.in_allowlist || device.state === "verified";
    parts.retry.hidden = !failed;
    parts.skip.hidden = !(device.state === "discovered" || busy);
    // Allowlist changes need no running session; device work does.
    for (const kind of ["provision", "retry", "skip"]) parts[kind].disabled = !enabled;
  }

  #applyFilter() {
    const keep = FILTERS[this.#filter];
    for (const card of this.#cards.values()) card.root.hidden = !keep(card.device);
  }
}
