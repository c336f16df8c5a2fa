"""What a login carries, in neutral form: the publisher's request (`LoginRequest`), the record
kept while the student is at their school (`LoginRecord`), the finished login (`Completion`), and
the JSON round trips of the record and of the school's identity for sealed state (sealed.py).

The steps that make and use them are in flow.py; fronts and the notice need only these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from broker.core.model import Release, School, Service, UpstreamIdentity

# The broker's own page where a student sees their receipts: a login with no service behind it.
MY_DATA = "ketenbroker:my-data"


@dataclass(frozen=True)
class IdpEntry:
    """One entry of a SAML service's `Scoping/IDPList`, as it sent it (None: left out)."""

    provider_id: str
    name: str | None = None
    loc: str | None = None


@dataclass(frozen=True)
class LoginRequest:
    """What a publisher asked for, in neutral form. `front` is the front adapter's own data
    (request id, ACS URL, RelayState …) that it needs to answer; the flow only carries it."""

    service_id: str
    requested: frozenset[str] | None = None
    school_hint: str | None = None
    force_authn: bool = False
    front: dict[str, str] = field(default_factory=dict)
    # Assurance levels (names from the `[assurance]` configuration) the service accepts; empty
    # means any. With `acr_required` a login at another level is refused, not answered.
    acr: tuple[str, ...] = ()
    acr_required: bool = False
    # OIDC `max_age`: an SSO session older than this many seconds does not answer the request.
    max_age: int | None = None
    # The pseudonyms the service accepts as the student (OIDC `id_token_hint`, a requested
    # `sub` value): only their login may answer. Empty: any student (the usual case).
    subjects: tuple[str, ...] = ()
    # The student chooses the school on the discovery page, even with an SSO session or a
    # school hint (OIDC prompt=select_account).
    choose_school: bool = False
    # The service asks for the information notice in this login even where it would be
    # skipped (this session or the student's last receipt showed the same release): OIDC
    # prompt=consent. The student's "Continue" is that interaction (docs/receipts.md).
    show_notice: bool = False
    # How many proxies the service still allows behind the broker (a SAML ProxyCount less one,
    # core 3.4.1.5.1), passed on to a SAML school; None: no limit.
    proxy_count: int | None = None
    # The schools the service lets this login be at, when it named an IdP several schools are
    # on (SAML `Scoping/IDPList` naming a school board's IdP): the SSO session answers only at
    # one of them, and discovery offers only them. Empty: any school (or `school_hint`'s).
    school_choices: tuple[str, ...] = ()
    # The service's `Scoping/IDPList` and its GetComplete, passed on unchanged to a SAML school
    # (core 3.4.1.5.1: "MUST also contain an <IDPList> ... MUST NOT remove any"). Empty: none.
    idp_list: tuple[IdpEntry, ...] = ()
    idp_list_get_complete: str | None = None


@dataclass(frozen=True)
class LoginRecord:
    login_id: str
    request: LoginRequest
    created: float
    school_id: str | None = None
    upstream_request_id: str | None = None
    # The back adapter's own state for the school's answer (OIDC nonce, PKCE verifier …).
    upstream: dict[str, str] = field(default_factory=dict)
    # When the student was sent to the school (epoch seconds): the upstream wait metric. None
    # for a request prepared with the discovery page (the broker never sees the student leave).
    upstream_at: float | None = None
    # The IdP (entity id or issuer) whose answer in this login said no, or named another school
    # than the chosen one, or none (flow.reopen): the next request to it asks for a fresh
    # sign-in (OIDC prompt=select_account, SAML ForceAuthn). Never which school it named.
    wrong_account_at: str | None = None
    # The language the student chose ("nl" or "en"; None: only the browser's), kept when they
    # left for the school: its answer, a cross-site POST, comes without the broker's language
    # cookie (SameSite=Lax), and the pages it gets (the notice, an error) speak this one.
    language: str | None = None

    @property
    def sent_to_school_at(self) -> float | None:
        """The earliest the school can have been asked for this login: when the student was
        sent there, or, for a request prepared with the discovery page (no time of leaving),
        when this record was made (the request did not exist before). None when no request
        went to a school (an SSO session answers)."""
        if self.upstream_request_id is None:
            return None
        return self.upstream_at if self.upstream_at is not None else self.created

    def to_payload(self) -> dict[str, Any]:
        """The record as JSON-ready data: what `dataclasses.asdict` gives, written out because
        asdict's generic deep copy cost ~60 us of every save (tests/unit/test_sealed_and_flow.py
        holds the two equal, so a new field cannot be forgotten here)."""
        request = self.request
        requested = request.requested
        return {
            "login_id": self.login_id,
            "request": {
                "service_id": request.service_id,
                "requested": None if requested is None else sorted(requested),
                "school_hint": request.school_hint,
                "force_authn": request.force_authn,
                "front": dict(request.front),
                "acr": request.acr,
                "acr_required": request.acr_required,
                "max_age": request.max_age,
                "subjects": request.subjects,
                "choose_school": request.choose_school,
                "show_notice": request.show_notice,
                "proxy_count": request.proxy_count,
                "school_choices": request.school_choices,
                "idp_list": tuple(
                    {"provider_id": e.provider_id, "name": e.name, "loc": e.loc}
                    for e in request.idp_list
                ),
                "idp_list_get_complete": request.idp_list_get_complete,
            },
            "created": self.created,
            "school_id": self.school_id,
            "upstream_request_id": self.upstream_request_id,
            "upstream": dict(self.upstream),
            "upstream_at": self.upstream_at,
            "wrong_account_at": self.wrong_account_at,
            "language": self.language,
        }

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> LoginRecord:
        req = data["request"]
        requested = req.get("requested")
        front = dict(req.get("front") or {})
        proxy_count = req.get("proxy_count")
        legacy = front.pop("proxy_count", None)
        if proxy_count is None and legacy is not None and legacy.isdigit():
            # A record saved before the field existed kept it in `front`, already less one.
            # Records live at most the login TTL: this can go one release later. (A record
            # this release saves, read by a worker of the last one during a rolling deploy,
            # loses the limit: its school is told of no ProxyCount for that one login.)
            proxy_count = int(legacy)
        request = LoginRequest(
            service_id=req["service_id"],
            requested=None if requested is None else frozenset(requested),
            school_hint=req.get("school_hint"),
            force_authn=bool(req.get("force_authn")),
            front=front,
            acr=tuple(req.get("acr") or ()),
            acr_required=bool(req.get("acr_required")),
            max_age=req.get("max_age"),
            subjects=tuple(req.get("subjects") or ()),
            choose_school=bool(req.get("choose_school")),
            show_notice=bool(req.get("show_notice")),
            proxy_count=proxy_count,
            school_choices=tuple(req.get("school_choices") or ()),
            # By name: a later release may add a field an entry of its records carries.
            idp_list=tuple(
                IdpEntry(entry["provider_id"], entry.get("name"), entry.get("loc"))
                for entry in req.get("idp_list") or ()
            ),
            idp_list_get_complete=req.get("idp_list_get_complete"),
        )
        return cls(
            login_id=data["login_id"],
            request=request,
            created=float(data["created"]),
            school_id=data.get("school_id"),
            upstream_request_id=data.get("upstream_request_id"),
            upstream=dict(data.get("upstream") or {}),
            upstream_at=data.get("upstream_at"),
            wrong_account_at=data.get("wrong_account_at"),
            language=data.get("language"),
        )


@dataclass(frozen=True)
class Completion:
    """A finished login: what the front turns into its response."""

    request: LoginRequest
    service: Service
    school: School
    release: Release
    authn_instant: float
    authn_context: str | None
    # The level (assurance.py) the school's answer stands for; fronts emit it in their protocol.
    assurance_level: str | None = None
    # The authorities a SAML front names as having authenticated the student (empty: the
    # school's identity is not released to the service: core/authenticating_authority.py).
    authorities: tuple[str, ...] = ()
    # When the service's session on this login must end (epoch seconds; SAML
    # SessionNotOnOrAfter): the school's session end, if it gave one, and never after the
    # broker's own session. None: the school said nothing.
    session_ends: float | None = None


def is_my_data(request: LoginRequest) -> bool:
    return request.service_id == MY_DATA


def identity_payload(identity: UpstreamIdentity) -> dict[str, Any]:
    """The school's answer as JSON for sealed state (SSO session, a pending notice)."""
    return {
        "school_id": identity.school_id,
        "subject": identity.subject,
        "attributes": {k: list(v) for k, v in identity.attributes.items()},
        "authn_context": identity.authn_context,
        "upstream_session": dict(identity.upstream_session),
        "session_ends": identity.session_ends,
        "authorities": list(identity.authorities),
    }


def identity_from_payload(data: dict[str, Any]) -> UpstreamIdentity:
    return UpstreamIdentity(
        school_id=data["school_id"],
        subject=data["subject"],
        attributes={k: tuple(v) for k, v in data["attributes"].items()},
        authn_context=data.get("authn_context"),
        upstream_session={str(k): str(v) for k, v in (data.get("upstream_session") or {}).items()},
        session_ends=data.get("session_ends"),
        authorities=tuple(data.get("authorities") or ()),
    )
