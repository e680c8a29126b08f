// What the console says: states, signal strength and failures in plain words.

/** Device states (contract ProvisioningCandidate.state): label and tone. */
export const DEVICE_STATES = {
  discovered: { label: "Waiting", tone: "idle" },
  provisioning: { label: "Sending Wi-Fi", tone: "busy" },
  provisioned: { label: "Joining Wi-Fi", tone: "busy" },
  verifying: { label: "Checking online", tone: "busy" },
  verified: { label: "Verified", tone: "ok" },
  failed: { label: "Failed", tone: "bad" },
};

/** Coarse progress per state, as the API's `progress` (0-100). */
export const PROGRESS = { discovered: 0, provisioning: 25, provisioned: 50, verifying: 75, verified: 100 };

export const BUSY_STATES = new Set(["provisioning", "provisioned", "verifying"]);

/** Session states: label and tone. */
export const SESSION_STATES = {
  discovering: { label: "Running · finding devices", tone: "busy" },
  active: { label: "Running", tone: "busy" },
  paused: { label: "Paused", tone: "warn" },
  closing: { label: "Stopping", tone: "warn" },
  closed: { label: "Closed", tone: "idle" },
};

export function deviceState(state) {
  return DEVICE_STATES[state] ?? { label: state, tone: "idle" };
}

export function sessionState(state) {
  return SESSION_STATES[state] ?? { label: state, tone: "idle" };
}

// Failure reasons (the token in the candidate's message) and what a technician does next.
const REASONS = {
  auth_error: ["Wrong Wi-Fi password", "The target network refused the password. Check it, then retry."],
  network_not_found: ["Wi-Fi network not found", "No access point with this name was in range of the device."],
  dhcp_failed: ["No address on the Wi-Fi", "The device joined but got no IP address. Check the router's DHCP."],
  broker_unreachable: ["Cannot reach the server", "The device is on the Wi-Fi but the MQTT broker did not answer."],
  skipped: ["Skipped", "Skipped by the operator. Retry to provision it."],
  not_delivered: ["Could not send the Wi-Fi details", "The device did not take the credentials."],
  abandoned: ["Interrupted", "The attempt was interrupted. Retry to try again."],
  unsupported_device: ["Device not supported", "No provisioning method fits this device."],
  internal_error: ["Appliance error", "Something went wrong on the appliance. Retry, or check its log."],
};

/** A failure message as {headline, advice, message}: the reason in plain words where the
 *  console knows it, and the appliance's own words always. */
export function failure(message) {
  const text = message ?? "";
  const token = Object.keys(REASONS).find((reason) => new RegExp(`\\b${reason}\\b`).test(text));
  if (/skipped by the operator/i.test(text)) return { headline: REASONS.skipped[0], advice: REASONS.skipped[1], message: "" };
  if (token) return { headline: REASONS[token][0], advice: REASONS[token][1], message: sentence(text) };
  if (/time(d)? ?out/i.test(text)) return { headline: "Timed out", advice: "The device did not answer in time.", message: sentence(text) };
  return { headline: "Failed", advice: "", message: sentence(text) };
}

/** Signal strength in words and bars (RSSI in dBm). */
export function signal(rssi) {
  if (typeof rssi !== "number") return { bars: "", words: "unknown" };
  if (rssi >= -55) return { bars: "▂▄▆█", words: "excellent" };
  if (rssi >= -65) return { bars: "▂▄▆", words: "good" };
  if (rssi >= -75) return { bars: "▂▄", words: "fair" };
  return { bars: "▂", words: "weak" };
}

/** An ApiError (or anything thrown) as a sentence for the technician. */
export function errorText(error) {
  if (error?.code === "RATE_LIMITED" && error.retryAfter) {
    return `${sentence(error.message)} (Try again in ${error.retryAfter} s.)`;
  }
  if (error?.code === "UNAUTHORIZED" && /API key/i.test(error.message ?? "")) {
    return "The API key was not accepted. Sign in again with a valid key.";
  }
  const details = error?.details ? ` ${sentence(error.details)}` : "";
  return sentence(error?.message ?? String(error)) + details;
}

/** Capitalised, ending with a full stop. */
export function sentence(text) {
  const trimmed = String(text ?? "").trim();
  if (!trimmed) return "";
  const first = trimmed[0].toUpperCase() + trimmed.slice(1);
  return /[.!?)]$/.test(first) ? first : `${first}.`;
}

export function plural(count, one, many = `${one}s`) {
  return `${count} ${count === 1 ? one : many}`;
}
