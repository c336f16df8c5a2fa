"""Cyrillic, Greek, Armenian, Coptic, Lisu and Cherokee letters that a reader takes for Latin
ones: pure data for the whole-script rule of core/display_text.py ("Coco" spelt with Cyrillic es
and o, U+0421 U+043E U+0441 U+043E, reads as the Latin word; so does "CITO" in Cyrillic
capitals). And a few letters Unicode counts as Latin, or as no script, drawn as an ordinary
Latin letter (`LATIN_VARIANTS`): data for its rule on special forms of letters.

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

Added later, by the same reasoning, each letter looked at beside the Latin one it would pass
for, overlaid and in running text at 16 and 22 pixels, in Noto Sans (with Noto Sans Armenian
and Noto Sans Coptic, what Android and ChromeOS fall back to) and in DejaVu Sans:
- Armenian, for a word wholly of its look-alikes passed before ("Logo" spelt with the capital
  liwn and the small oh, co, oh: U+053C U+0585 U+0581 U+0585): the small letters oh, seh, vo
  and co (o u n g) and the capitals oh, seh, liwn and tiwn (O U L S), the same shapes in both
  fonts. Left out: ho (an h whose stem hooks over at the top in Noto, though DejaVu draws a
  plain h), za and gim (a q whose tail turns or is crossed), small liwn, ini and reh (an l, h
  or n whose stem runs below the line), yi (a j without its dot). An Armenian school's name keeps
  its own script as a Russian one does: ayb, ben, ech, reh and most others pass for nothing
  Latin.
- Coptic (its letters are Greek uncials): the capitals vida, hate, iauda, kapa, ni, o, ro, sima,
  tau, ua, khi (B H I K N O P C T Y X) and the Old Coptic L-shaped ha (an L); the small o, ro,
  sima and khi (o p c x: ro's bowl is a little squarer than p's, as Greek rho's differs, and
  reads as p at the size of a name). Left out: alfa and eie (an uncial a and e), mi (an uncial
  m), zata (a z with a tail), small ua (a v on a stem, as Cyrillic straight u), the small
  letters that are small capitals (vida, hate, kapa, mi, ni, tau, as Cyrillic ve, en, ka), small
  iauda (no dot), and the seven letters Coptic took from Demotic (U+03E2 to U+03EF: fei is a q
  open at the top, the others pass for nothing Latin). These show a Coptic word's script.
- Greek letters no Greek name uses any more, drawn as Latin capitals: yot (J, beside its small
  letter, already in), digamma (F) and san (M).
Not added: Georgian jil and xan come close to d and b in Noto Sans Georgian, but their stems hook
over at the top, as Armenian ho's does.

`LATIN_VARIANTS`, for display_text.compatibility_form: letters of phonetic notation and two unit
signs that read as the ordinary Latin letter and are not it ("Leegplank" with a script g, U+0261;
"coco" with a small capital c, U+1D04; the Kelvin sign, U+212A, whose decomposition to K is
canonical, so the rule's test for a compatibility form misses it). No name of a school, service or
publisher is written with them, so refusing them costs nobody anything; what NFKC replaces
(fullwidth and mathematical letters) is that rule's already. In: the script g (sans-serif type draws
g so), the small capitals c o s v w z (drawn as the lower-case letter), the dental click of the
Khoisan languages (an upright stroke: the l itself in Noto Sans, a little longer in DejaVu Sans),
and the Kelvin and Angstrom signs. Left out, by shape: Latin alpha (a one-storey a, U+0251), Latin
iota (no dot, U+0269), the small capitals that differ from the lower-case letter (I B H K R, U+026A
U+0299 U+029C U+1D0B U+0280: as Cyrillic ka and en above), tone six (a b with a flag in DejaVu Sans,
U+0185). Raised modifier letters (a small h, U+02B0) stay allowed as raised forms are.
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
    "\u037f": "J",  # capital yot
    "\u03dc": "F",  # digamma
    "\u03fa": "M",  # san
}
_ARMENIAN = {
    "\u0555": "O",  # oh
    "\u054d": "U",  # seh
    "\u053c": "L",  # liwn
    "\u054f": "S",  # tiwn
    "\u0585": "o",  # oh
    "\u057d": "u",  # seh
    "\u0578": "n",  # vo
    "\u0581": "g",  # co: the one-storey g of sans-serif type
}
# Coptic letters are named after the Greek ones they come from (ua is upsilon, sima sigma).
_COPTIC = {
    "\u2c82": "B",  # vida
    "\u2c8e": "H",  # hate
    "\u2c92": "I",  # iauda
    "\u2c94": "K",  # kapa
    "\u2c9a": "N",  # ni
    "\u2c9e": "O",  # o
    "\u2ca2": "P",  # ro
    "\u2ca4": "C",  # sima
    "\u2ca6": "T",  # tau
    "\u2ca8": "Y",  # ua
    "\u2cac": "X",  # khi
    "\u2cd0": "L",  # Old Coptic L-shaped ha
    "\u2c9f": "o",  # o
    "\u2ca3": "p",  # ro
    "\u2ca5": "c",  # sima
    "\u2cad": "x",  # khi
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
LATIN_LOOK_ALIKES: Mapping[str, str] = MappingProxyType(
    _CYRILLIC | _GREEK | _ARMENIAN | _COPTIC | _LISU | _CHEROKEE
)
# The scripts the table covers, as `unicodedata.name` starts their letters' names (the Coptic
# letters in the Greek block, U+03E2 to U+03EF, are named COPTIC too).
WHOLE_SCRIPT_CHECKED = frozenset({"CYRILLIC", "GREEK", "ARMENIAN", "COPTIC", "LISU", "CHEROKEE"})
# Scripts no school, service or publisher of a Dutch federation writes its name in: a word in
# them is refused even beside letters that pass for nothing Latin (which for Cyrillic, Greek,
# Armenian and Coptic show a real name in that script), since nobody's own name is lost by it.
NEVER_SHOWN = frozenset({"LISU", "CHEROKEE"})

# Letters of phonetic notation and unit signs → the ordinary Latin letter they are drawn as.
LATIN_VARIANTS: Mapping[str, str] = MappingProxyType(
    {
        "\u0261": "g",  # LATIN SMALL LETTER SCRIPT G: the g of sans-serif type
        "\u1d04": "c",  # LATIN LETTER SMALL CAPITAL C: for c o s v w z the small capital is
        "\u1d0f": "o",  # drawn as the lower-case letter
        "\ua731": "s",
        "\u1d20": "v",
        "\u1d21": "w",
        "\u1d22": "z",
        "\u01c0": "l",  # LATIN LETTER DENTAL CLICK (Khoisan languages): an upright stroke
        # Canonical equivalents of the letter itself, which NFC would replace: not NFKC's
        # compatibility forms, so they would pass as they are.
        "\u212a": "K",  # KELVIN SIGN
        "\u212b": "Å",  # ANGSTROM SIGN
    }
)
