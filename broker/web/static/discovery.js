// Live filter for the school list. The page works without it (the search form asks the server
// to filter); this only spares a student a round trip per keystroke.
(function () {
  "use strict";

  const input = document.querySelector("[data-school-filter]");
  const list = document.getElementById("school-list");
  const count = document.getElementById("school-count");
  const empty = document.getElementById("no-schools");
  if (!input || !list || !count) {
    return;
  }
  // A list the server cut short (a large federation) holds only some of the matches: filtering
  // it here would hide the others, so every search goes to the server.
  if (list.dataset.partial !== undefined) {
    return;
  }

  // Accents and punctuation are folded away: "st bonifatius" must find "St.-Bonifatiuscollege".
  function fold(text) {
    return text
      .normalize("NFD")
      .replace(/[\u0300-\u036f]/g, "")
      .toLowerCase()
      .replace(/[^\p{L}\p{N}]+/gu, " ");
  }

  const items = Array.from(list.querySelectorAll("li"));
  const names = items.map((item) => fold(item.textContent));
  // What the server filtered by: the list only holds the schools that matched it.
  const serverQuery = input.value;
  let announceTimer = 0;

  function message(shown) {
    if (shown === 0) {
      return count.dataset.none;
    }
    if (shown === 1) {
      return count.dataset.one;
    }
    return count.dataset.many.replace("{n}", String(shown));
  }

  function visibleButtons() {
    return items.filter((item) => !item.hidden).map((item) => item.querySelector("button"));
  }

  function apply() {
    const words = fold(input.value).split(" ").filter(Boolean);
    let shown = 0;
    items.forEach((item, i) => {
      const match = words.every((word) => names[i].includes(word));
      item.hidden = !match;
      if (match) {
        shown += 1;
      }
    });
    if (empty) {
      empty.hidden = shown !== 0;
    }
    // Announced after a pause, so a screen reader says one count and not one per keystroke.
    window.clearTimeout(announceTimer);
    announceTimer = window.setTimeout(() => {
      count.textContent = message(shown);
    }, 400);
  }

  input.addEventListener("input", apply);

  input.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown") {
      const first = visibleButtons()[0];
      if (first) {
        event.preventDefault();
        first.focus();
      }
    }
  });

  list.addEventListener("keydown", (event) => {
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") {
      return;
    }
    const buttons = visibleButtons();
    const at = buttons.indexOf(document.activeElement);
    if (at === -1) {
      return;
    }
    event.preventDefault();
    const next = event.key === "ArrowDown" ? at + 1 : at - 1;
    if (next < 0) {
      input.focus();
    } else if (next < buttons.length) {
      buttons[next].focus();
    }
  });

  if (input.form) {
    input.form.addEventListener("submit", (event) => {
      // The list already shows what the server would: go to the results instead of reloading.
      // Only a search wider than the server's filter needs the server.
      if (serverQuery === "" || input.value === serverQuery) {
        event.preventDefault();
        const first = visibleButtons()[0];
        if (first) {
          first.focus();
        }
      }
    });
  }

  if (input.value !== "") {
    apply();
  }
})();
