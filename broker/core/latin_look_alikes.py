"""Cyrillic, Greek, Lisu and Cherokee letters that a reader takes for Latin ones: pure data for
the whole-script rule of core/display_text.py ("Coco" spelt with Cyrillic es and o, U+0421
U+043E U+0441 U+043E, reads as the Latin word; so does "CITO" in Cyrillic capitals).

How the table was chosen (by reasoning about the letters' shapes, not taken from Unicode's
confusables file): Latin, Cyrillic and Greek capitals share many shapes because Latin and
Cyrillic both took them from Greek, and a few lower-case letters kept the same form too
(Cyrillic a e o p c y x). A letter is in the table when ordinary sans-serif type, as a discovery
page uses, draws it with the same shape as a Latin letter: a student would see no difference
without looking for one. The Cyrillic letters of Ukrainian, Belarusian, Serbian and Macedonian
and a few added for other languages (Komi de, qa, we: shaped after d q w) are in. Letters that
only come close are left out, because a false refusal costs a real Russian, Ukrainian or Greek
school its own name: Cyrillic ka, te, en, ve, pe and ghe (small capitals, or n and r shapes,
not k t h b n r), Cyrillic straight u and Greek gamma (a v on a stem, not a y), Greek alpha (a
one-storey a, unlike the page's two-storey a), iota (no dot), upsilon (no stem) and kappa (a
small capital). Each letter maps to the Latin letter it passes for, as a reviewer checks it and
as a test reads it; the accented ones Dutch uses (ë, ï) are here too: "Citroën", "naïef".
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

# Escapes, not the letters themselves: in source code the two columns would look the same, which
# is the point of the table and no help to a reviewer. Upper case first, then lower case.
_CYRILLIC = {
    "\u0410": "A",
    "\u0412": "B",
    "\u0415": "E",
    "\u0401": "Ë",
    "\u041a": "K",
    "\u041c": "M",
    "\u041d": "H",
    "\u041e": "O",
    "\u0420": "P",
    "\u0421": "C",
    "\u0422": "T",
    "\u0423": "Y",
    "\u0425": "X",
    "\u0405": "S",  # DZE (Macedonian)
    "\u0406": "I",  # BYELORUSSIAN-UKRAINIAN I
    "\u0407": "Ï",  # YI (Ukrainian)
    "\u0408": "J",  # JE (Serbian, Macedonian)
    "\u04c0": "I",  # PALOCHKA
    "\u04ae": "Y",  # STRAIGHT U: its capital is a Y
    "\u0474": "V",  # IZHITSA
    "\u051a": "Q",  # QA
    "\u051c": "W",  # WE
    "\u0430": "a",
    "\u0435": "e",
    "\u0451": "ë",
    "\u043e": "o",
    "\u0440": "p",
    "\u0441": "c",
    "\u0443": "y",
    "\u0445": "x",
    "\u0455": "s",  # dze
    "\u0456": "i",  # byelorussian-ukrainian i
    "\u0457": "ï",  # yi
    "\u0458": "j",  # je
    "\u04bb": "h",  # shha
    "\u04cf": "l",  # palochka
    "\u0475": "v",  # izhitsa
    "\u0501": "d",  # komi de
    "\u051b": "q",  # qa
    "\u051d": "w",  # we
}
_GREEK = {
    "\u0391": "A",
    "\u0392": "B",
    "\u0395": "E",
    "\u0396": "Z",
    "\u0397": "H",
    "\u0399": "I",
    "\u03aa": "Ï",
    "\u039a": "K",
    "\u039c": "M",
    "\u039d": "N",
    "\u039f": "O",
    "\u03a1": "P",
    "\u03a4": "T",
    "\u03a5": "Y",
    "\u03ab": "Ÿ",
    "\u03a7": "X",
    "\u03bf": "o",
    "\u03bd": "v",
    "\u03c1": "p",
    "\u03f3": "j",  # yot
}

# Lisu's Fraser alphabet was made from Latin capitals, upright and turned: the upright ones.
_LISU = {
    "\ua4ee": "A",
    "\ua4d0": "B",
    "\ua4da": "C",
    "\ua4d3": "D",
    "\ua4f0": "E",
    "\ua4dd": "F",
    "\ua4d6": "G",
    "\ua4e7": "H",
    "\ua4f2": "I",
    "\ua4d9": "J",
    "\ua4d7": "K",
    "\ua4e1": "L",
    "\ua4df": "M",
    "\ua4e0": "N",
    "\ua4f3": "O",
    "\ua4d1": "P",
    "\ua4e3": "R",
    "\ua4e2": "S",
    "\ua4d4": "T",
    "\ua4f4": "U",
    "\ua4e6": "V",
    "\ua4ea": "W",
    "\ua4eb": "X",
    "\ua4ec": "Y",
    "\ua4dc": "Z",
}

# Cherokee syllabary letters drawn as Latin capitals (their sounds are unrelated).
_CHEROKEE = {
    "\u13aa": "A",
    "\u13f4": "B",
    "\u13df": "C",
    "\u13a0": "D",
    "\u13ac": "E",
    "\u13c0": "G",
    "\u13bb": "H",
    "\u13c6": "I",
    "\u13ab": "J",
    "\u13e6": "K",
    "\u13de": "L",
    "\u13b7": "M",
    "\u13be": "O",
    "\u13e2": "P",
    "\u13a1": "R",
    "\u13da": "S",
    "\u13a2": "T",
    "\u13d9": "V",
    "\u13b3": "W",
    "\u13c3": "Z",
}

# Look-alike letter → the Latin letter it passes for.
LATIN_LOOK_ALIKES: Mapping[str, str] = MappingProxyType(_CYRILLIC | _GREEK | _LISU | _CHEROKEE)
# The scripts the table covers, as `unicodedata.name` starts their letters' names.
WHOLE_SCRIPT_CHECKED = frozenset({"CYRILLIC", "GREEK", "LISU", "CHEROKEE"})
# Scripts no school, service or publisher of a Dutch federation writes its name in: a word in
# them is refused even beside letters that pass for nothing Latin (which for Cyrillic and Greek
# show a real name in that script), since nobody's own name is lost by it.
NEVER_SHOWN = frozenset({"LISU", "CHEROKEE"})
