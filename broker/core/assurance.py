"""Assurance levels across the protocol translation: OIDC `acr` values ↔ SAML AuthnContext.

A level has a name of the broker's own and, per protocol, the values that mean it. The first
value of each list is what the broker sends and emits; the others are accepted from schools
(SAML's PasswordProtectedTransport and REFEDS SFA both mean "a password").

"password" is a minimum: one factor the school checked, as strong as a password or stronger.
So Entra ID's `Password`, a Windows sign-in (ADFS's integrated `windows`, Kerberos) and a
certificate or smartcard (X509, SmartcardPKI: one factor, something the student holds) all
count as "password", none as MFA. MFA is what the school reports as more than one factor:
REFEDS MFA, or Microsoft's `multipleauthn`, which ADFS names as its class and Entra ID lists
among the methods of its `authnmethodsreferences` attribute beside the class of the first
factor (`reported`). A publisher asks in
its protocol, the school is asked in its own, and the school's answer is judged by level, so a
SAML publisher can require MFA from a school on OpenID Connect and the other way round.

The levels are ordered by strength, weakest first, as the configuration lists them: SAML's
`RequestedAuthnContext Comparison` (core 3.3.2.2.1) is judged on that order (`acceptable`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

PASSWORD_PROTECTED = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"  # noqa: S105
REFEDS_SFA = "https://refeds.org/profile/sfa"
REFEDS_MFA = "https://refeds.org/profile/mfa"
_CLASSES = "urn:oasis:names:tc:SAML:2.0:ac:classes:"
# What schools' products name for one factor at least as strong as a password: Entra ID's
# password sign-in, ADFS's Windows integrated sign-in on a school PC, Kerberos, and a key the
# student holds (a client certificate, a smartcard with its PKI).
PASSWORD = _CLASSES + "Password"
WINDOWS = "urn:federation:authentication:windows"
SINGLE_FACTOR = (
    PASSWORD,
    WINDOWS,
    _CLASSES + "Kerberos",
    _CLASSES + "X509",
    _CLASSES + "SmartcardPKI",
    _CLASSES + "TLSClient",
)
# Microsoft's "more than one factor": ADFS's class after MFA, and one of the methods Entra ID
# lists in the attribute below (its class stays that of the first factor).
MICROSOFT_MFA = "http://schemas.microsoft.com/claims/multipleauthn"
AUTHN_METHODS_REFERENCES = "http://schemas.microsoft.com/claims/authnmethodsreferences"
# What an assertion names when nobody said how the student logged in (the authentication
# context class for "unknown", SAML authn-context 2.0).
UNSPECIFIED = "urn:oasis:names:tc:SAML:2.0:ac:classes:unspecified"
# SAML core 3.3.2.2.1: how the answer's context must compare with those requested.
EXACT = "exact"
MINIMUM = "minimum"
MAXIMUM = "maximum"
BETTER = "better"


# References whose relative strength is known whatever a deployment calls its levels: a
# password (1) is weaker than REFEDS MFA (2). Listing the levels strongest first would turn every
# `minimum` and `better` the wrong way round, so such a configuration is refused at start.
_KNOWN_STRENGTH = {
    PASSWORD_PROTECTED: 1,
    REFEDS_SFA: 1,
    **dict.fromkeys(SINGLE_FACTOR, 1),
    REFEDS_MFA: 2,
    MICROSOFT_MFA: 2,
}


@dataclass(frozen=True)
class AssuranceLevel:
    name: str
    saml: tuple[str, ...]
    oidc: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SchoolContexts:
    """What a SAML school is asked for (`Assurance.school_request`): the class `references` of
    a RequestedAuthnContext and their `comparison`; no references: none is sent."""

    references: tuple[str, ...] = ()
    comparison: str = EXACT


# A request without a RequestedAuthnContext: any login the school ranks will do.
ASK_NOTHING = SchoolContexts()


@dataclass(frozen=True)
class Assurance:
    levels: tuple[AssuranceLevel, ...]

    def level(self, name: str) -> AssuranceLevel | None:
        for level in self.levels:
            if level.name == name:
                return level
        return None

    def level_of(self, value: str | None) -> str | None:
        """The level a school's answer (class reference or acr, either protocol) stands for."""
        if not value:
            return None
        for level in self.levels:
            if value in level.saml or value in level.oidc:
                return level.name
        return None

    def reported(self, class_reference: str | None, methods: Iterable[str]) -> str | None:
        """What a school's answer counts as: its class reference, or one of the `methods` it
        lists beside it (Entra ID's `authnmethodsreferences`) where that stands for a stronger
        level. Never weaker than the class: an unknown method changes nothing."""
        names = [level.name for level in self.levels]
        best, best_rank = class_reference, -1
        if (level := self.level_of(class_reference)) is not None:
            best_rank = names.index(level)
        for method in methods:
            if (level := self.level_of(method)) is not None and names.index(level) > best_rank:
                best, best_rank = method, names.index(level)
        return best

    def school_request(self, named: Iterable[str], *, required: bool = True) -> SchoolContexts:
        """What a SAML school is asked for when the levels `named` answer the service (its
        acceptable ones, weakest first): class references and a Comparison, or nothing. A wish
        that is not `required` (OIDC `acr_values` without `essential`) accepts any answer, so it
        asks for its weakest level at least, never for it alone. The
        broker judges the school's answer by level itself (login/flow.py), so the request only
        steers the school, and asks no narrower than needed: a request for "a password, exact"
        makes Entra ID refuse a student who signed in with Windows or MFA (AADSTS75011).
        - every level from the weakest up: nothing (any login the school ranks will do);
        - every level from a stronger one up: that level's references, `minimum`;
        - any other set: the levels' own first references, `exact`."""
        if not required:
            named = self.acceptable(named, MINIMUM)
        names = [level.name for level in self.levels]
        ranks = sorted({names.index(name) for name in named if name in names})
        if not ranks:
            return ASK_NOTHING
        if ranks == list(range(ranks[0], len(names))):
            if ranks[0] == 0:
                return ASK_NOTHING
            return SchoolContexts(self.levels[ranks[0]].saml[:1], MINIMUM)
        references = (self.levels[rank].saml[:1] for rank in ranks)
        return SchoolContexts(tuple(ref for refs in references for ref in refs), EXACT)

    def from_saml(self, references: Iterable[str]) -> tuple[str, ...]:
        return self._names(references, lambda level: level.saml)

    def from_oidc(self, values: Iterable[str]) -> tuple[str, ...]:
        return self._names(values, lambda level: level.oidc)

    def acceptable(self, named: Iterable[str], comparison: str = EXACT) -> tuple[str, ...]:
        """The levels (weakest first) whose login answers a request naming the levels `named`
        with `comparison` (SAML core 3.3.2.2.1, "as deemed by the responder": the broker deems
        by the configured order). exact: one of those named; minimum: at least as strong as one
        of them (the weakest); better: stronger than one of them; maximum: no stronger than one
        of them (the strongest). An unknown comparison accepts nothing."""
        names = [level.name for level in self.levels]
        ranks = [names.index(name) for name in named if name in names]
        if not ranks:
            return ()
        fits: dict[str, Callable[[int], bool]] = {
            EXACT: lambda rank: rank in ranks,
            MINIMUM: lambda rank: rank >= min(ranks),
            BETTER: lambda rank: rank > min(ranks),
            MAXIMUM: lambda rank: rank <= max(ranks),
        }
        fit = fits.get(comparison)
        return tuple(name for rank, name in enumerate(names) if fit is not None and fit(rank))

    def saml_reference(self, name: str) -> str | None:
        level = self.level(name)
        return level.saml[0] if level is not None and level.saml else None

    def oidc_value(self, name: str) -> str | None:
        level = self.level(name)
        return level.oidc[0] if level is not None and level.oidc else None

    def oidc_values(self) -> tuple[str, ...]:
        return tuple(level.oidc[0] for level in self.levels if level.oidc)

    def _names(
        self, values: Iterable[str], of: Callable[[AssuranceLevel], tuple[str, ...]]
    ) -> tuple[str, ...]:
        wanted = list(values)
        return tuple(
            level.name for level in self.levels if any(value in of(level) for value in wanted)
        )


DEFAULT_ASSURANCE = Assurance(
    (
        AssuranceLevel("password", (PASSWORD_PROTECTED, REFEDS_SFA, *SINGLE_FACTOR), (REFEDS_SFA,)),
        AssuranceLevel("mfa", (REFEDS_MFA, MICROSOFT_MFA), (REFEDS_MFA,)),
    )
)


def order_problem(levels: Iterable[AssuranceLevel]) -> str | None:
    """Why `levels` are not listed weakest first, judged by the references whose strength is
    known (`_KNOWN_STRENGTH`), or None. Levels without such a reference are the deployment's
    own to order."""
    strongest: tuple[int, str] | None = None  # the strongest known level so far, and its name
    for level in levels:
        known = [_KNOWN_STRENGTH[v] for v in (*level.saml, *level.oidc) if v in _KNOWN_STRENGTH]
        if not known:
            continue
        if strongest is not None and min(known) < strongest[0]:
            return (
                f"levels must be listed weakest first: {level.name!r} (a password level) is "
                f"listed after the stronger {strongest[1]!r} (MFA)"
            )
        if strongest is None or max(known) > strongest[0]:
            strongest = (max(known), level.name)
    return None
