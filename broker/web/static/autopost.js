// Sends the browser on without a click. The page's own button does the same for browsers
// without JavaScript, so this file is a convenience and never the only way forward.
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("form[data-autosubmit]").forEach((form) => {
    // This page answered a POST. A browser drops it from the history when it navigates on
    // before its load event ended, but keeps it when the page loaded first (a quick phone, a
    // cached stylesheet): Back from the destination would then ask to resend the POST. The
    // page's own address, where it has one, takes its place, fetched again by GET.
    if (form.dataset.pageAddress && window.history && window.history.replaceState) {
      try {
        window.history.replaceState(null, "", form.dataset.pageAddress);
      } catch (error) {
        // Only the history is lost: the answer still goes on.
      }
    }
    // Called through the prototype: a posted field named "submit" would shadow form.submit.
    // requestSubmit, where the browser has it, fires the submit event: submit-once.js then
    // counts this as the form's one submit, and a press of the button meanwhile sends nothing.
    const send = HTMLFormElement.prototype.requestSubmit || HTMLFormElement.prototype.submit;
    send.call(form);
  });
});
