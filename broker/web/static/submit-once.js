// A form marked `data-submit-once` is sent once. A second click while the first answer is on its
// way sends the form again, and the browser then shows the answer to the LAST request: after
// the notice's "Continue" that is "already signed in" instead of the platform (the first request
// took the login), after an auto-POST a second delivery the platform may refuse. After "log out
// everywhere" the broker sends a second request on to the first logout run (for browsers
// without this script), at the cost of a request more. So later submits are ignored.
//
// The button is never disabled: a disabled button is left out of the posted data, and the
// school's button carries the school. The form takes submits again when its navigation did not
// leave the page (Stop, Esc: `navigateerror`; a browser without the Navigation API after
// RELEASE_MS instead) and when the page comes back from the back-forward cache.
(function () {
  "use strict";

  const RELEASE_MS = 10000;
  const sent = new Set();

  function release() {
    sent.forEach((form) => form.removeAttribute("aria-busy"));
    sent.clear();
  }

  // On the document, so that a form's own handler has run first: a submit it cancelled
  // (discovery.js keeps Enter on the page) sent nothing.
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-submit-once")) {
      return;
    }
    if (sent.has(form)) {
      event.preventDefault();
      return;
    }
    if (event.defaultPrevented) {
      return;
    }
    sent.add(form);
    form.setAttribute("aria-busy", "true");
    if (!window.navigation) {
      window.setTimeout(release, RELEASE_MS);
    }
  });

  if (window.navigation) {
    window.navigation.addEventListener("navigateerror", release);
  }
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) {
      release();
    }
  });
})();
