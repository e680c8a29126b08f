// The V1 API as the console uses it: the envelope, the API key of this tab, errors.
//
// Signing in trades the key for the HttpOnly cookie the event stream authenticates with
// (POST /api/v1/auth/session). The other routes take only X-API-Key, so the key is kept in
// this tab's sessionStorage: it survives a reload (and an appliance restart, when the cookie
// does not) and is gone when the tab closes. The page's Content-Security-Policy admits no
// script but the console's own.

// The console's files live under <root>/console/, so the root works behind a path prefix too.
const ROOT = new URL("../", import.meta.url);
const API = new URL("api/v1/", ROOT);
const KEY_ITEM = "orchestrator.console.api-key";
const WHO_ITEM = "orchestrator.console.who";

/** A failed request: the contract's error code, its message, and the HTTP status (0: none). */
export class ApiError extends Error {
  constructor({ status, code, message, retryable = false, retryAfter, details }) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.retryable = retryable;
    this.retryAfter = retryAfter;
    this.details = details;
  }
}

/** The console's own pages (`""` is the console, `"console/pair"` the claim page). */
export function pageUrl(path = "") {
  return new URL(path, ROOT);
}

/** The appliance's V1 API, signed in with one API key. */
export class Api {
  /** Who is signed in ({key_id, name, expires_at}), or null. */
  get who() {
    const stored = sessionStorage.getItem(WHO_ITEM);
    return stored && this.signedIn ? JSON.parse(stored) : null;
  }

  get signedIn() {
    return Boolean(sessionStorage.getItem(KEY_ITEM));
  }

  /** The URL of an API path such as `provisioning/batch/events`. */
  url(path) {
    return new URL(path.replace(/^\//, ""), API);
  }

  /** Check `key`, set the stream's cookie and remember the key in this tab. */
  async signIn(key) {
    const who = await this.call("POST", "auth/session", { json: { api_key: key }, key });
    sessionStorage.setItem(KEY_ITEM, key);
    sessionStorage.setItem(WHO_ITEM, JSON.stringify(who));
    return who;
  }

  /** Renew the cookie with the remembered key (after a restart the appliance forgets it). */
  async renew() {
    const key = sessionStorage.getItem(KEY_ITEM);
    if (!key) throw new ApiError({ status: 401, code: "UNAUTHORIZED", message: "Not signed in." });
    return this.signIn(key);
  }

  /** End the console session and forget the key. */
  async signOut() {
    try {
      await this.call("DELETE", "auth/session");
    } finally {
      sessionStorage.removeItem(KEY_ITEM);
      sessionStorage.removeItem(WHO_ITEM);
    }
  }

  /**
   * One request; resolves to the envelope's `data`, rejects with an ApiError. `json` is sent
   * as JSON, `text` as it is (a CSV file); `headers` adds step-up credentials.
   */
  async call(method, path, { json, text, headers = {}, key } = {}) {
    const response = await this.#fetch(method, path, { json, text, headers, key });
    const envelope = await response.json().catch(() => null);
    if (!envelope || typeof envelope !== "object") {
      throw new ApiError({
        status: response.status,
        code: "INTERNAL_ERROR",
        message: `The appliance gave an answer the console cannot read (HTTP ${response.status}).`,
      });
    }
    if (!response.ok || envelope.success !== true) throw errorOf(response.status, envelope);
    return envelope.data;
  }

  /** GET a file (a report) with the key and save it; its name comes from the appliance. */
  async fetchFile(path, fallbackName) {
    const response = await this.#fetch("GET", path, { headers: { Accept: "*/*" } });
    if (!response.ok) {
      const envelope = await response.json().catch(() => null);
      throw errorOf(response.status, envelope ?? {});
    }
    const disposition = response.headers.get("Content-Disposition") ?? "";
    const named = /filename="?([^";]+)"?/.exec(disposition);
    return { blob: await response.blob(), name: named ? named[1] : fallbackName };
  }

  async #fetch(method, path, { json, text, headers, key }) {
    const sent = { "Content-Type": "application/json", Accept: "application/json", ...headers };
    const apiKey = key ?? sessionStorage.getItem(KEY_ITEM);
    if (apiKey) sent["X-API-Key"] = apiKey;
    let body;
    if (json !== undefined) body = JSON.stringify(json);
    if (text !== undefined) {
      body = text;
      sent["Content-Type"] = "text/csv";
    }
    try {
      return await fetch(this.url(path), {
        method,
        headers: sent,
        body,
        credentials: "same-origin",
        cache: "no-store",
      });
    } catch {
      throw new ApiError({
        status: 0,
        code: "NETWORK_ERROR",
        message: "The appliance did not answer. Check the tablet's connection and try again.",
        retryable: true,
      });
    }
  }
}

function errorOf(status, envelope) {
  const error = envelope.error ?? {};
  return new ApiError({
    status,
    code: error.code ?? envelope.code ?? "INTERNAL_ERROR",
    message: error.message ?? `The request failed (HTTP ${status}).`,
    retryable: Boolean(error.retryable),
    retryAfter: error.retry_after_seconds,
    details: error.details,
  });
}
