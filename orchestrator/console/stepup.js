// TOTP step-up: which operations need a code (GET /api/v1/auth/status, or learnt from a 401),
// and the short-lived token a code buys (POST /api/v1/auth/step-up), kept in memory only.

import { ApiError } from "./api.js";
import { askForCode } from "./dialogs.js";

/** Operations configuration may gate (GatedOperation values). */
export const OPERATIONS = {
  start: "session.start",
  allowlist: "allowlist.write",
  discard: "session.discard",
  clearHistory: "history.clear",
};

const TOKEN_HEADER = "X-Step-Up-Token";
const EARLY_MS = 5_000; // renew a little before expiry rather than fail mid-request

/** Thrown when the technician cancels the code dialog: nothing to report. */
export class Cancelled extends Error {}

export class StepUp extends EventTarget {
  #api;
  #gated = new Set();
  #enrolled = true;
  #token = null;
  #expiry = null;

  constructor(api) {
    super();
    this.#api = api;
  }

  /** Read which operations need a code. */
  async refresh() {
    const status = await this.#api.call("GET", "auth/status");
    this.#gated = new Set(status.totp_required_for);
    this.#enrolled = status.totp_enrolled;
    this.#changed();
  }

  get anyGated() {
    return this.#gated.size > 0;
  }

  /** Until when the current token works (a Date), or null. */
  get until() {
    return this.#valid() ? new Date(this.#token.expiresAt) : null;
  }

  isGated(operation) {
    return this.#gated.has(operation);
  }

  /** Trade a code for a token. */
  async verify(code) {
    const issued = await this.#api.call("POST", "auth/step-up", { json: { code } });
    this.#token = { value: issued.token, expiresAt: Date.now() + issued.expires_in_seconds * 1000 };
    clearTimeout(this.#expiry);
    this.#expiry = setTimeout(() => this.#changed(), issued.expires_in_seconds * 1000);
    this.#changed();
  }

  /** Ask for a code now (the header's button); resolves true once verified. */
  prompt(reason) {
    return askForCode(reason, (code) => this.verify(code));
  }

  /** Forget the token (sign-out). */
  forget() {
    this.#token = null;
    clearTimeout(this.#expiry);
    this.#changed();
  }

  /**
   * Run `action(headers)` for `operation`: with a token when the operation is gated (asking
   * for a code first if there is none), again once after a 401 that says the token or a code
   * was missing. Rejects with Cancelled when the technician cancels the dialog.
   */
  async run(operation, reason, action) {
    if (!this.#gated.has(operation)) {
      try {
        return await action({});
      } catch (error) {
        // Gates are configuration: a 401 may teach the console that this one is gated now.
        if (!isUnauthorized(error)) throw error;
        await this.refresh();
        if (!this.#gated.has(operation)) throw error;
      }
    }
    if (!this.#enrolled) {
      throw new ApiError({
        status: 401,
        code: "UNAUTHORIZED",
        message:
          "This action needs a code from an authenticator app, but none is enrolled on the " +
          "appliance. Run `orchestrator totp enroll` on it first.",
      });
    }
    for (let attempt = 0; ; attempt += 1) {
      if (!this.#valid() && !(await this.prompt(reason))) throw new Cancelled("cancelled");
      try {
        return await action({ [TOKEN_HEADER]: this.#token.value });
      } catch (error) {
        if (attempt > 0 || !isUnauthorized(error)) throw error;
        this.#token = null; // expired or forgotten by a restart: ask once more
        this.#changed();
      }
    }
  }

  #valid() {
    return this.#token !== null && this.#token.expiresAt - EARLY_MS > Date.now();
  }

  #changed() {
    this.dispatchEvent(new Event("change"));
  }
}

function isUnauthorized(error) {
  return error instanceof ApiError && error.status === 401 && error.code === "UNAUTHORIZED";
}
