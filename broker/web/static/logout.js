// The propagation page: ask the broker how the services answered, show it, and move on when
// all have answered or the wait is over. Without JavaScript a meta refresh moves on instead.
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
