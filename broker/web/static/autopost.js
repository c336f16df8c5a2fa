// Sends the browser on without a click. The page's own button does the same for browsers
// without JavaScript, so this file is a convenience and never the only way forward.
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("form[data-autosubmit]").forEach((form) => {
    // Called through the prototype: a posted field named "submit" would shadow form.submit.
    // requestSubmit, where the browser has it, fires the submit event: submit-once.js then
    // counts this as the form's one submit, and a press of the button meanwhile sends nothing.
    const send = HTMLFormElement.prototype.requestSubmit || HTMLFormElement.prototype.submit;
    send.call(form);
  });
});
