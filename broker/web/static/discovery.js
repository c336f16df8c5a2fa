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
  // A list the server cut short, or any list of a large federation, holds only some of the
  // schools: filtering it here would hide the others, so every search goes to the server.
  if (list.dataset.partial !== undefined) {
    return;
  }

  // The server's rule (broker/core/school_search.py), with its list of abbreviations from the
  // page: accents, case and punctuation (hyphens too) fold away, a school is found by its name,
  // its town or its code, or by an alias in its name's stead, an abbreviation counts as the
  // full word, and only when nothing matches, one typo per word of `typoMin` letters or more,
  // in the name (or alias) or the town. NFKD, as on the server: "ij" finds the ligature "ĳ";
  // and "ij" is written "y" on both sides, so "stedelyk" finds "Stedelijk".
  function fold(text) {
    return text
      .normalize("NFKD")
      .replace(/[\u0300-\u036f]/g, "")
      .toLowerCase()
      .replace(/[^\p{L}\p{N}]+/gu, " ")
      .trim()
      .replaceAll("ij", "y");
  }

  let abbreviations = {};
  try {
    abbreviations = JSON.parse(list.dataset.abbreviations || "{}");
  } catch (error) {
    abbreviations = {};
  }
  const typoMin = Number(list.dataset.typoMin || "0") || Infinity;
  const close = document.getElementById("close-matches");

  function expand(folded) {
    return folded
      .split(" ")
      .map((word) => (Object.hasOwn(abbreviations, word) ? abbreviations[word] : word))
      .join(" ");
  }

  // The name (or town) folded and written out (school_search.name_forms); none for no town.
  function nameForms(name) {
    if (!name) {
      return [];
    }
    const folded = fold(name);
    return Array.from(new Set([folded, expand(folded)]));
  }

  // Those forms, and each joined up (school_search.name_key).
  function nameKey(forms) {
    const joined = Array.from(new Set(forms.map((form) => form.replaceAll(" ", ""))));
    return forms.concat(joined).join(" ");
  }

  function escaped(text) {
    return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }

  // One letter wrong, missing, extra, or two swapped (school_search.one_typo_pattern).
  function oneTypo(word) {
    const forms = new Set();
    for (let i = 0; i < word.length; i += 1) {
      forms.add(escaped(word.slice(0, i)) + "." + escaped(word.slice(i + 1)));
      forms.add(escaped(word.slice(0, i) + word.slice(i + 1)));
      if (i > 0) {
        forms.add(escaped(word.slice(0, i)) + "." + escaped(word.slice(i)));
      }
      if (i < word.length - 1) {
        forms.add(escaped(word.slice(0, i) + word[i + 1] + word[i] + word.slice(i + 2)));
      }
    }
    return new RegExp(Array.from(forms).join("|"), "u");
  }

  const items = Array.from(list.querySelectorAll("li"));
  // The name and the town as the page shows them (each in a span of its own).
  function shown(item, part) {
    const element = item.querySelector(part);
    return element ? element.textContent : "";
  }
  // The school's aliases: a JSON list in data-aliases, on a school that has some.
  function aliasesOf(item) {
    if (!item.dataset.aliases) {
      return [];
    }
    try {
      const parsed = JSON.parse(item.dataset.aliases);
      return Array.isArray(parsed) ? parsed.filter((alias) => typeof alias === "string") : [];
    } catch (error) {
      return [];
    }
  }
  // What each school is found by (school_search.SchoolDirectory's entries): its name, then each
  // alias in the name's stead, each with the school's town and code (BRIN: a school's ICT
  // officer may tell students its code; school_search.search_key). A typo is forgiven in the
  // words of the name (or alias) and the town only (never in a code, nor in the joined forms).
  const entries = items.map((item) => {
    const town = nameForms(shown(item, ".school__town"));
    const code = fold(item.dataset.code || "");
    const names = [shown(item, ".school__name")].concat(aliasesOf(item));
    return names.map((name, at) => {
      const forms = nameForms(name);
      return {
        alias: at === 0 ? "" : name,
        key: ` ${nameKey(forms)} ${nameKey(town)} ${code} `,
        words: forms.concat(town).join(" ").split(" "),
      };
    });
  });
  const aliasHint = list.dataset.aliasHint || "{alias}";
  let announceTimer = 0;

  function formsOf(word) {
    const full = Object.hasOwn(abbreviations, word) ? abbreviations[word] : word;
    return Array.from(new Set([word, full]));
  }

  // Per school, its first entry that passes `test` (0: its name), or -1.
  function firstEntries(test) {
    return entries.map((own) => own.findIndex(test));
  }

  function matches(wanted) {
    return firstEntries((entry) =>
      wanted.every((forms) => forms.some((form) => entry.key.includes(form))),
    );
  }

  function nearMatches(wanted) {
    const near = wanted.map((forms) => (forms[0].length >= typoMin ? forms.map(oneTypo) : []));
    return firstEntries((entry) =>
      wanted.every(
        (forms, w) =>
          forms.some((form) => entry.key.includes(form)) ||
          near[w].some((pattern) => entry.words.some((word) => pattern.test(word))),
      ),
    );
  }

  // Under a school found by an alias and not by its name, which alias (as the server writes
  // it); none under any other.
  function showAlias(item, alias) {
    const button = item.querySelector("button");
    let hint = button.querySelector(".school__alias");
    if (!alias) {
      if (hint) {
        const space = hint.previousSibling;
        if (space && space.nodeType === Node.TEXT_NODE && space.textContent.trim() === "") {
          space.remove();
        }
        hint.remove();
      }
      return;
    }
    if (!hint) {
      hint = document.createElement("span");
      hint.className = "school__alias";
      // A space before it, as the server writes it: a screen reader says the two apart.
      button.append(" ", hint);
    }
    // A function, so a "$" in an alias is no replacement pattern.
    hint.textContent = aliasHint.replace("{alias}", () => alias);
  }

  function message(shown, approximate) {
    if (shown === 0) {
      return count.dataset.none;
    }
    // Near matches are not "found": the hint above the list says nothing matched exactly.
    const one = approximate ? count.dataset.nearOne : count.dataset.one;
    const many = approximate ? count.dataset.nearMany : count.dataset.many;
    if (shown === 1) {
      return one;
    }
    return many.replace("{n}", String(shown));
  }

  function visibleButtons() {
    return items.filter((item) => !item.hidden).map((item) => item.querySelector("button"));
  }

  function apply() {
    const wanted = fold(input.value)
      .split(" ")
      .filter(Boolean)
      .map(formsOf);
    let found = matches(wanted);
    let approximate = false;
    if (wanted.length && found.every((at) => at === -1)) {
      found = nearMatches(wanted);
      approximate = found.some((at) => at !== -1);
    }
    let shown = 0;
    items.forEach((item, i) => {
      const at = found[i];
      item.hidden = at === -1;
      if (at !== -1) {
        shown += 1;
      }
      if (entries[i].length > 1) {
        showAlias(item, at > 0 ? entries[i][at].alias : "");
      }
    });
    if (empty) {
      empty.hidden = shown !== 0;
    }
    if (close) {
      close.hidden = !approximate;
    }
    // Announced after a pause, so a screen reader says one count and not one per keystroke.
    window.clearTimeout(announceTimer);
    announceTimer = window.setTimeout(() => {
      count.textContent = message(shown, approximate);
      keep();
    }, 400);
  }

  // The typed search, kept in this page's own entry of the browser's history (its state, not
  // its address): Back after a choice that failed (the school's page did not load, the wrong
  // school) fetches the page again (no-store; the first one lives at the sign-in address and
  // is a new login), and the search is filled in and applied again. Another page, another
  // login's page in another tab, never sees it.
  const KEPT = "schoolSearch";

  function keep() {
    const state = history.state && typeof history.state === "object" ? history.state : {};
    if (state[KEPT] !== input.value) {
      history.replaceState(Object.assign({}, state, { [KEPT]: input.value }), "");
    }
  }

  input.addEventListener("input", apply);
  const choice = list.closest("form");
  if (choice) {
    // Also when a school is chosen sooner than the pause after typing.
    choice.addEventListener("submit", keep);
  }

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
      // Enter with schools in the list goes to the first of them (a second Enter chooses it):
      // the list already shows what the server would. With none, the server searches: the
      // list may hold only the schools of an earlier search.
      const first = visibleButtons()[0];
      if (first) {
        event.preventDefault();
        first.focus();
      }
    });
  }

  const kept = history.state && typeof history.state === "object" ? history.state[KEPT] : null;
  if (input.value === "" && typeof kept === "string") {
    input.value = kept;
  }
  if (input.value !== "") {
    apply();
  }
})();

// The remembered school's link: a request to the school made with this page (the broker's
// discovery.first_discovery_page). A school may refuse a request issued long ago, or one it
// has seen already, so the link is followed once and while fresh; after that (or after Back
// to a page the browser kept) a tap posts the form around it, and the broker makes a fresh
// request, as the button without a link does. Without JavaScript the link is always followed.
(function () {
  "use strict";

  const link = document.querySelector("a[data-prepared-for]");
  const form = link ? link.closest("form") : null;
  if (!link || !form) {
    return;
  }
  const loaded = Date.now();
  const freshFor = Number(link.dataset.preparedFor) * 1000;
  let followed = false;
  link.addEventListener("click", function (event) {
    if (followed || !(Date.now() - loaded < freshFor)) {
      event.preventDefault();
      form.submit();
      return;
    }
    followed = true;
  });
})();
