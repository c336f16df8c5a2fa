// The logout pages. The propagation page: ask the broker how the services answered, show it,
// and move on when all have answered or the wait is over (without JavaScript a meta refresh
// moves on instead).
document.addEventListener("DOMContentLoaded", () => {
  const run = document.querySelector("[data-logout-run]");
  if (!run) return;
  const statusUrl = run.dataset.statusUrl;
  const nextUrl = run.dataset.nextUrl;
  const giveUpAt = Date.now() + (Number(run.dataset.wait) + 5) * 1000;
  const items = Array.from(run.querySelectorAll("[data-logout-service]"));
  const poll = async () => {
    try {
      const answer = await fetch(statusUrl, { credentials: "same-origin", cache: "no-store" });
      if (answer.ok) {
        const status = await answer.json();
        status.services.forEach((service, i) => {
          const item = items[i];
          const label = run.dataset["label" + service.status.charAt(0).toUpperCase() + service.status.slice(1)];
          if (!item || !label) return;
          item.dataset.status = service.status;
          item.querySelector("[data-status-text]").textContent = label;
        });
        if (status.done) {
          window.location.assign(status.next || nextUrl);
          return;
        }
      }
    } catch (err) {
      // A failed poll is tried again; the deadline below still moves the page on.
    }
    if (Date.now() > giveUpAt) {
      window.location.assign(nextUrl);
      return;
    }
    window.setTimeout(poll, 500);
  };
  window.setTimeout(poll, 300);
});

// The final page: when every service and the school confirmed, carry the answer to whoever
// started the logout without a click, so that a tab closed here cannot keep it from them (the
// page's button does the same without JavaScript). Not when the student came back to this page
// (Back): the answer went already, and sending it again would only bounce them forward; the
// page then stays, with the result and the button.
document.addEventListener("DOMContentLoaded", () => {
  const answer = document.querySelector("[data-logout-continue]");
  if (!answer) return;
  const arrival = performance.getEntriesByType("navigation")[0];
  if (arrival && arrival.type === "back_forward") return;
  const carryOn = () => {
    if (answer instanceof HTMLFormElement) {
      // Through the prototype, as autopost.js does (a field named "submit" would shadow the
      // method); requestSubmit where the browser has it, so the form's submit event fires.
      const send = HTMLFormElement.prototype.requestSubmit || HTMLFormElement.prototype.submit;
      send.call(answer);
    } else if (answer instanceof HTMLAnchorElement) {
      window.location.assign(answer.href);
    }
  };
  // Only once the page has loaded: a browser replaces a page in the history when it navigates
  // on before its load event ended (the load event's own handlers included, hence the task
  // after it). Back from the platform then skipped this page, sometimes the propagation page
  // too, and reached the page before the logout: on a loaded machine, a platform's page that
  // answered a POST, which asked to resend it (net::ERR_CACHE_MISS).
  window.addEventListener("load", () => window.setTimeout(carryOn, 0), { once: true });
});
