// The live picture of the batch, built only from the event stream (contract section 4).
//
// Every connection is a brand-new EventSource: the appliance starts it with a snapshot
// (the session, one device.discovered per device, one device.state_changed per device that
// moved on, the network), so the picture is rebuilt from scratch each time and can never
// drift. Any error closes the source; it is reopened after a back-off, renewing the cookie
// first (an appliance restart forgets it).

import { BUSY_STATES } from "./words.js";

const BACKOFF_MS = [500, 1_000, 2_000, 5_000, 10_000];

export class Live extends EventTarget {
  #api;
  #source = null;
  #retry = null;
  #failures = 0;
  #inSnapshot = false;

  /** The session on screen (contract BatchProvisioningSession), or null. */
  session = null;
  /** Its devices by MAC, in discovery order. */
  devices = new Map();
  network = null;
  /** "offline" | "connecting" | "live" */
  link = "offline";

  constructor(api) {
    super();
    this.#api = api;
  }

  /** Open a fresh stream; what the earlier one showed stays on screen until it starts. */
  open() {
    this.close();
    this.#inSnapshot = true;
    this.#setLink("connecting");
    const source = new EventSource(this.#api.url("provisioning/batch/events"));
    source.onmessage = (message) => this.#receive(message);
    source.onerror = () => this.#lost(source);
    this.#source = source;
  }

  /** Stop listening (sign-out). */
  close() {
    clearTimeout(this.#retry);
    this.#retry = null;
    if (this.#source) this.#source.close();
    this.#source = null;
    this.#setLink("offline");
  }

  /** Take the session a request answered with (it may be newer than the stream's). */
  adopt(session) {
    if (session.id !== this.session?.id) this.devices = new Map();
    this.session = session;
    this.#emit("change");
  }

  /** Merge facts only the REST API has (retry counts, allowlist changes) into the devices. */
  merge(devices) {
    for (const device of devices) {
      const known = this.devices.get(device.mac);
      if (!known) continue;
      known.retry_count = device.retry_count;
      known.in_allowlist = device.in_allowlist;
      known.container_id = device.container_id;
      if (device.state === known.state && device.error_message) known.error = device.error_message;
    }
    this.#emit("change");
  }

  #receive(message) {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch {
      return; // not ours: the stream only carries JSON
    }
    this.#failures = 0;
    this.#apply(event);
    this.#emit("change");
  }

  #apply(event) {
    const payload = event.payload;
    switch (event.type) {
      case "connection.established":
        if (this.#inSnapshot) {
          this.session = null;
          this.devices = new Map();
        }
        this.#setLink("live");
        break;
      case "session.status":
        if (payload.session.id !== this.session?.id) this.devices = new Map();
        this.session = payload.session;
        break;
      case "device.discovered":
        if (!this.#ours(event)) break;
        this.devices.set(payload.mac, {
          ...(this.devices.get(payload.mac) ?? { state: "discovered", progress: 0, retry_count: 0 }),
          mac: payload.mac,
          ip: payload.ip,
          rssi: payload.rssi,
          firmware_version: payload.firmware_version,
          in_allowlist: payload.in_allowlist,
        });
        break;
      case "device.state_changed":
        if (this.#ours(event)) this.#moved(payload);
        break;
      case "network.status_changed":
        this.network = payload;
        if (this.#inSnapshot) {
          // The snapshot always ends with the network: the picture is whole again.
          this.#inSnapshot = false;
          this.#emit("snapshot");
        }
        break;
      case "error":
        this.#emit("problem", payload);
        break;
      default:
        break; // heartbeats, and types a newer appliance may add
    }
  }

  #moved(payload) {
    const device = this.devices.get(payload.mac) ?? { mac: payload.mac, retry_count: 0 };
    const retried = payload.previous_state === "failed" && BUSY_STATES.has(payload.new_state);
    device.state = payload.new_state;
    device.progress = payload.progress ?? (payload.new_state === "verified" ? 100 : device.progress);
    device.error = payload.new_state === "failed" ? payload.error : undefined;
    if (retried && !this.#inSnapshot) device.retry_count = (device.retry_count ?? 0) + 1;
    this.devices.set(payload.mac, device);
    if (!this.#inSnapshot) this.#emit("device", { ...device, previous_state: payload.previous_state });
  }

  #ours(event) {
    // Device events of another session than the one on screen are not shown.
    return !event.session_id || !this.session || event.session_id === this.session.id;
  }

  #lost(source) {
    if (source !== this.#source) return;
    source.close();
    this.#source = null;
    this.#setLink("connecting");
    const delay = BACKOFF_MS[Math.min(this.#failures, BACKOFF_MS.length - 1)];
    this.#failures += 1;
    this.#retry = setTimeout(async () => {
      try {
        await this.#api.renew();
      } catch (error) {
        if (error.status === 401) {
          this.#emit("signed-out");
          return;
        }
      }
      this.open();
    }, delay);
  }

  #setLink(link) {
    if (this.link === link) return;
    this.link = link;
    this.#emit("link");
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
