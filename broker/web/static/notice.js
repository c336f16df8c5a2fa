// The notice may arrive as the answer to the school's POST (or to its OIDC callback, whose code
// is spent): put the notice's own address in the browser's history in its place, so a reload
// fetches the notice again instead of posting the school's answer once more. Without
// JavaScript a reload asks to resend that answer, which the broker refuses as already used.
document.addEventListener("DOMContentLoaded", () => {
  const form = document.querySelector("form[data-page-address]");
  if (form && window.history && window.history.replaceState) {
    window.history.replaceState(null, "", form.dataset.pageAddress);
  }
});
