// Modal dialogs (native <dialog>: focus stays inside, Escape cancels): the step-up code,
// "are you sure?", and editing an allowlist entry.

import { byId, setText } from "./dom.js";
import { errorText } from "./words.js";

/**
 * Ask for a TOTP code and hand it to `submit` (which throws to refuse it: the error is shown
 * and the dialog stays open). Resolves true once `submit` accepted a code, false on cancel.
 */
export function askForCode(reason, submit) {
  const dialog = byId("step-up-dialog");
  const form = byId("step-up-form");
  const input = byId("step-up-code");
  const error = byId("step-up-error");
  const confirm = form.querySelector('button[type="submit"]');
  setText(byId("step-up-reason"), reason);
  setText(error, "");
  input.value = "";
  return new Promise((resolve) => {
    const finish = (accepted) => {
      form.removeEventListener("submit", onSubmit);
      byId("step-up-cancel").removeEventListener("click", onCancel);
      dialog.removeEventListener("cancel", onCancel);
      if (dialog.open) dialog.close();
      resolve(accepted);
    };
    const onSubmit = async (event) => {
      event.preventDefault();
      const code = input.value.replace(/\s+/g, "");
      if (!/^\d{6}$/.test(code)) {
        setText(error, "Enter the 6 digits your authenticator app shows.");
        input.focus();
        return;
      }
      confirm.disabled = true;
      try {
        await submit(code);
        finish(true);
      } catch (refused) {
        setText(error, errorText(refused));
        input.select();
      } finally {
        confirm.disabled = false;
      }
    };
    const onCancel = (event) => {
      event.preventDefault();
      finish(false);
    };
    form.addEventListener("submit", onSubmit);
    byId("step-up-cancel").addEventListener("click", onCancel);
    dialog.addEventListener("cancel", onCancel);
    dialog.showModal();
    input.focus();
  });
}

/** "Are you sure?": resolves true when the technician confirms. */
export function confirmAction(title, text, yesLabel) {
  const dialog = byId("confirm-dialog");
  setText(byId("confirm-title"), title);
  setText(byId("confirm-text"), text);
  setText(byId("confirm-yes"), yesLabel);
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
    dialog.showModal();
    byId("confirm-no").focus();
  });
}

/**
 * Edit an allowlist entry's description and container; `save({description, container_id})`
 * throws to refuse (shown in the dialog). Resolves true once saved.
 */
export function editEntry(entry, save) {
  const dialog = byId("edit-dialog");
  const form = byId("edit-form");
  const error = byId("edit-error");
  setText(byId("edit-mac"), entry.mac);
  byId("edit-description").value = entry.description ?? "";
  byId("edit-container").value = entry.container_id ?? "";
  setText(error, "");
  return new Promise((resolve) => {
    const onSubmit = async (event) => {
      if (event.submitter?.value !== "save") return; // Cancel closes the dialog as it is.
      event.preventDefault();
      try {
        await save({
          description: byId("edit-description").value.trim(),
          container_id: byId("edit-container").value.trim(),
        });
        dialog.close("saved");
      } catch (refused) {
        setText(error, errorText(refused));
      }
    };
    form.addEventListener("submit", onSubmit);
    dialog.addEventListener(
      "close",
      () => {
        form.removeEventListener("submit", onSubmit);
        resolve(dialog.returnValue === "saved");
      },
      { once: true },
    );
    dialog.returnValue = "";
    dialog.showModal();
    byId("edit-description").focus();
  });
}
