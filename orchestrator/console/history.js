// The reports screen: recent batches (GET /sessions/history), each with its CSV and JSON report.

import { byId, h, when } from "./dom.js";
import { downloadReport } from "./batch.js";
import { errorText, sessionState } from "./words.js";

const SHOWN = 25;

export class HistoryView {
  #api;
  #notify;

  constructor({ api, notify }) {
    this.#api = api;
    this.#notify = notify;
  }

  async load() {
    let sessions;
    try {
      ({ sessions } = await this.#api.call("GET", `provisioning/sessions/history?limit=${SHOWN}`));
    } catch (failed) {
      this.#notify.alert(errorText(failed));
      return;
    }
    const rows = sessions.map((session) =>
      h(
        "tr",
        { "data-session": session.id },
        h("td", {}, when(session.created_at)),
        h("td", {}, session.target_ssid),
        h("td", {}, sessionState(session.state).label),
        h("td", {}, String(session.device_count)),
        h("td", {}, String(session.verified_count)),
        h("td", {}, String(session.failed_count)),
        h(
          "td",
          {},
          ...["csv", "json"].map((format) =>
            h(
              "button",
              {
                type: "button",
                class: "button small",
                "aria-label": `${format.toUpperCase()} report of the batch started ${when(session.created_at)}`,
                onclick: () => downloadReport(this.#api, this.#notify, session.id, format),
              },
              format.toUpperCase(),
            ),
          ),
        ),
      ),
    );
    byId("history-rows").replaceChildren(
      ...(rows.length ? rows : [h("tr", {}, h("td", { colspan: 7 }, "No batches yet."))]),
    );
  }
}
