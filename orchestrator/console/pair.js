// The claim page a device's pairing QR code opens (/console/pair?code=...): sign in if this
// tab has not, confirm with a code if the appliance asks, and put the device on the allowlist.

import { claimCode } from "./allowlist.js";
import { Api, pageUrl } from "./api.js";
import { byId, setText } from "./dom.js";
import { Cancelled, StepUp } from "./stepup.js";
import { errorText } from "./words.js";

const api = new Api();
const stepUp = new StepUp(api);

const params = new URLSearchParams(window.location.search);
byId("claim-code").value = (params.get("code") ?? "").trim().toUpperCase();
// The code is a short-lived secret: keep it out of the history and the address bar.
if (params.has("code")) window.history.replaceState(null, "", window.location.pathname);
byId("to-console").href = pageUrl("").href;
byId("claim-sign-in").hidden = api.signedIn;
byId("claim-key").required = !api.signedIn;
(byId("claim-code").value ? byId("claim-description") : byId("claim-code")).focus();

byId("claim-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const error = byId("claim-error");
  const submit = form.querySelector('button[type="submit"]');
  setText(error, "");
  submit.disabled = true;
  try {
    if (!api.signedIn) {
      await api.signIn(form.elements.api_key.value.trim());
      form.elements.api_key.value = "";
      byId("claim-sign-in").hidden = true;
    }
    await stepUp.refresh();
    const claimed = await claimCode(stepUp, api, form.elements.code.value, {
      description: form.elements.description.value,
      container_id: form.elements.container_id.value,
    });
    form.hidden = true;
    byId("claimed").hidden = false;
    setText(byId("claimed-text"), `Device ${claimed.entry.mac} is on the allowlist. It can be provisioned now.`);
  } catch (failed) {
    if (!(failed instanceof Cancelled)) setText(error, errorText(failed));
  } finally {
    submit.disabled = false;
  }
});
