// The console's entry point: sign-in, the header, the tabs, and wiring the screens together.

import { AllowlistView } from "./allowlist.js";
import { Api } from "./api.js";
import { BatchView } from "./batch.js";
import { byId, h, setText } from "./dom.js";
import { HistoryView } from "./history.js";
import { Live } from "./live.js";
import { Recovery } from "./recovery.js";
import { Cancelled, StepUp } from "./stepup.js";
import { errorText } from "./words.js";

const INFO_SHOWN_MS = 6_000;
const MAX_ALERTS = 3;
const LINK_WORDS = { live: "Live", connecting: "Reconnecting…", offline: "Not connected" };

const api = new Api();
const stepUp = new StepUp(api);
const live = new Live(api);
const notify = makeNotify();
const batch = new BatchView({ api, stepUp, live, notify });
const recovery = new Recovery({ api, stepUp, live, batch, notify });
const allowlist = new AllowlistView({ api, stepUp, notify, onChange: () => batch.refreshDevices() });
const history = new HistoryView({ api, notify });

function makeNotify() {
  const announcer = byId("announcer");
  const alerts = byId("alerts");
  const show = (text, tone) => {
    let alert;
    if (tone === "info") {
      // Goes by itself and lets touches through: it never stands between a finger and a button.
      alert = h("div", { class: "alert info", role: "status" }, h("span", {}, text));
      setTimeout(() => alert.remove(), INFO_SHOWN_MS);
    } else {
      // Stays until dismissed: a failure must be read.
      const dismiss = h("button", { type: "button", class: "button small", "aria-label": "Dismiss message" }, "✕");
      alert = h("div", { class: "alert", role: "alert" }, h("span", {}, text), dismiss);
      dismiss.addEventListener("click", () => alert.remove());
    }
    alerts.prepend(alert);
    while (alerts.children.length > MAX_ALERTS) alerts.lastElementChild.remove();
  };
  const notifier = {
    /** Said to screen readers only (politely). */
    announce(text) {
      // Emptied first, so the same sentence twice is still read twice.
      announcer.textContent = "";
      requestAnimationFrame(() => setText(announcer, text));
    },
    alert(text) {
      show(text, "error");
    },
    info(text) {
      show(text, "info");
    },
    /** Run an action; its failure becomes an alert (a cancelled code dialog says nothing). */
    async run(label, action) {
      try {
        await action();
      } catch (failed) {
        if (!(failed instanceof Cancelled)) notifier.alert(errorText(failed));
      }
    },
  };
  return notifier;
}

function showView(name) {
  for (const tab of document.querySelectorAll(".tab")) {
    if (tab.dataset.view === name) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  for (const view of document.querySelectorAll(".view")) view.hidden = view.id !== `view-${name}`;
  if (name === "allowlist") allowlist.load();
  if (name === "history") history.load();
}

function renderWho() {
  const who = api.who;
  byId("who").hidden = !who;
  if (who) {
    setText(byId("who-name"), who.name);
    setText(byId("who-key"), who.key_id);
  }
  const button = byId("step-up-status");
  button.hidden = !stepUp.anyGated;
  const until = stepUp.until;
  setText(
    button,
    until ? `Verified until ${until.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}` : "Verify with code",
  );
}

async function enter() {
  byId("sign-in").hidden = true;
  byId("console").hidden = false;
  renderWho();
  live.open();
  batch.render();
  try {
    await stepUp.refresh();
  } catch (failed) {
    notify.alert(errorText(failed));
  }
  byId("main").focus();
}

function leave(message) {
  live.close();
  stepUp.forget();
  byId("console").hidden = true;
  byId("sign-in").hidden = false;
  byId("who").hidden = true;
  setText(byId("sign-in-error"), message ?? "");
  byId("api-key").focus();
}

byId("sign-in-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = byId("api-key");
  setText(byId("sign-in-error"), "");
  try {
    await api.signIn(input.value.trim());
    input.value = "";
    await enter();
  } catch (failed) {
    setText(byId("sign-in-error"), errorText(failed));
  }
});

byId("sign-out").addEventListener("click", async () => {
  try {
    await api.signOut();
  } catch {
    // Signed out here either way: the key is forgotten and the stream closed.
  }
  leave();
});

byId("step-up-status").addEventListener("click", async () => {
  if (stepUp.until) return;
  await stepUp.prompt("Verify now, and the next gated actions will not ask again for a while.");
});

for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => showView(tab.dataset.view));
}

stepUp.addEventListener("change", renderWho);
live.addEventListener("link", () => {
  const state = byId("link-state");
  state.dataset.state = live.link;
  setText(state, LINK_WORDS[live.link]);
});
live.addEventListener("snapshot", () => {
  // A (re)connected stream: the appliance may have restarted, so ask again what only the
  // REST API tells (recoverable sessions, retry counts, gates).
  recovery.refresh();
  batch.refreshDevices();
  stepUp.refresh().catch(() => {});
});
live.addEventListener("problem", (event) => notify.alert(errorText(event.detail)));
live.addEventListener("signed-out", () => leave("The appliance no longer accepts this API key. Sign in again."));

async function boot() {
  if (!api.signedIn) {
    leave();
    return;
  }
  try {
    await api.renew(); // the cookie may be gone (a restart), the key is still in this tab
  } catch (failed) {
    if (failed.status === 401) {
      leave("Sign in again: the appliance no longer accepts the saved API key.");
      return;
    }
  }
  await enter();
}

boot();
