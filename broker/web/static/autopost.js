// Sends the browser on without a click. The page's own button does the same for browsers
// without JavaScript, so this file is a convenience and never the only way forward.
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("form[data-autosubmit]").forEach((form) => {
    // Called through the prototype: a posted field named "submit" would shadow form.submit.
    HTMLFormElement.prototype.submit.call(form);
  });
});
