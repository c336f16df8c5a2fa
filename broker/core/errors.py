"""The error tree: one root, a few subtrees, each error renders itself for the edge.

`code` is a stable machine-readable reason (for logs, metrics and SAML/OAuth error mapping);
`public_message` is safe to show a student (the web layer translates it); `status` is the HTTP
status the core suggests, which the edge may refine. No error carries personal data.

A `detail` an administrator reads (a metadata check's, a school's OpenID provider check's) is an
English sentence marked `N_` with %(name)s placeholders, and the placeholders' values come as
keyword arguments: the CLI and the log read `detail` filled in, in English; the portals translate
`message` and fill it with `params` (broker/web/labels.py, `localised_problem`). A value that is
itself an English phrase marked `N_` (which document: "discovery document") is a `Phrase`, which
the portals translate too.
"""

from __future__ import annotations

from typing import Literal

from broker.core.display_text import shown_excerpt


def N_(message: str) -> str:
    """Mark `message` for the translation catalogue without translating it (pybabel knows `N_`
    by default; there is no Flask here)."""
    return message


class Phrase(str):
    """A placeholder's value that is an English phrase marked `N_`, translated with the
    message it fills (a URL, a status or an entity id is a plain str and shown as it is)."""

    __slots__ = ()


class BrokerError(Exception):
    code = "broker_error"
    status = 500
    public_message = "Something went wrong on this website."

    def __init__(self, detail: str = "", *, code: str | None = None, **params: object) -> None:
        # `detail` is for the log line: never put attribute values, subjects or assertions in it.
        # A plain str parameter is often a peer's own text (an entity id, a URL, an issuer):
        # repeated cut short and printable only, wherever the message goes.
        params = {k: shown_excerpt(v) if type(v) is str else v for k, v in params.items()}
        filled = detail % params if params else detail
        super().__init__(filled or self.public_message)
        self.detail = filled
        self.message = detail
        self.params = params
        if code is not None:
            self.code = code


class BadRequest(BrokerError):
    """A peer (browser, publisher, school) sent something we refuse."""

    code = "bad_request"
    status = 400
    public_message = "The request could not be accepted."


class UnknownService(BadRequest):
    code = "unknown_service"
    public_message = "This learning platform is not known here."


class UnknownSchool(BadRequest):
    code = "unknown_school"
    public_message = "This school is not known here."


class InvalidMessage(BadRequest):
    """A protocol message failed a check (signature, audience, time window, replay, ...)."""

    code = "invalid_message"
    public_message = "The sign-in message could not be verified."


class RelayStateNotText(InvalidMessage):
    """A RelayState that is not UTF-8 text. The service must get back exactly the octets it
    sent (SAML bindings 3.4.3, 3.5.3), and the broker keeps and posts text: refused, before
    anything is stored or sent, rather than answered with a value that differs. A login's
    request (a service's) and a logout's (a service's or a school's) alike: one message."""

    code = "relay_state_invalid"
    public_message = "Something went wrong with this request. Tell your school's ICT contact."


# What a school's "no" said, among the few reasons a student's page words (the SAML back names
# them from the status codes, the OIDC back from the `error` parameter, web/labels.py words them);
# "" for any other.
SchoolSaid = Literal[
    "", "authn_failed", "request_denied", "no_authn_context", "unavailable", "name_id_policy"
]


class UnsignedSchoolRefusal(InvalidMessage):
    """The school's IdP answered with an error status it did not sign (ADFS and Entra ID sign
    only the assertion by default, so their "no" comes unsigned: a cancel, a denying access
    policy, a locked account). Anyone could have posted it, so it ends nothing: the login record
    stays, the service is told nothing, and the school's real answer can still complete the
    login. The student's page says their school did not sign them in, with `said` (unverified,
    so worded as what the school answered) and a way to try again at the school for the same
    login. Shown like the other failures at the school (502)."""

    code = "unsigned_status"
    status = 502
    public_message = "Your school's sign-in service did not sign you in."

    def __init__(self, detail: str = "", *, said: SchoolSaid = "") -> None:
        super().__init__(detail)
        self.said: SchoolSaid = said


class StaleSchoolAnswer(InvalidMessage):
    """A school's answer to a request of this login that is no longer open: a reload of the
    school's signed "no" (its request was taken off the login, flow.reopen), the school's
    late answer to it, or an OIDC answer to an earlier request (`stale_state`). It ends
    nothing: the login stays as it is, and the student's page offers the way on at the school
    again (web/school_retry.py)."""

    code = "stale_answer"
    public_message = "Your school answered a sign-in attempt that is already over."


class SchoolAnswerOutOfTime(InvalidMessage):
    """A school's signed answer to this very login whose times do not fit the broker's clock,
    beyond the clock skew: issued before a login could have asked for it or ahead of now (an
    `IssueInstant`), not valid yet (a `NotBefore`) or no longer (a `NotOnOrAfter`). Only a clock
    that is off, or an answer held back, explains that; the student is told so, and the
    operator's log line names the school, which time and by how many seconds it is off (never
    anything about the student). Nothing is written, and the login record stays.

    `what`: which time ("the Response's IssueInstant"); `offset`: that time less the broker's
    now, in seconds (negative: behind); `accepted`: the window it had to be in, in words."""

    code = "answer_out_of_time"
    status = 502
    public_message = (
        "Signing in at your school took too long. Please try again; if it keeps happening, "
        "tell your school."
    )

    def __init__(self, what: str, offset: float, accepted: str) -> None:
        self.offset = round(offset)
        # For the log line, which names the school apart (back.py): times and words only.
        self.explanation = (
            f"{offset_words(what, offset, accepted)}; check the clock of the school's IdP"
        )
        super().__init__(self.explanation)


class AnswerTimeRefused(InvalidMessage):
    """A time in a school's answer refused for a reason that is not the school's clock: not
    written in UTC with 'Z' (SAML core 1.3.3), or out of bounds where the school's signature
    does not cover it (an unsigned Response's IssueInstant). The general page (`time_window`,
    or the caller's code); `explanation` is the operator's log line (back.py), words and times
    only."""

    code = "time_window"

    def __init__(self, explanation: str, *, code: str | None = None) -> None:
        super().__init__(explanation, code=code)
        self.explanation = explanation


def offset_words(what: str, offset: float, accepted: str) -> str:
    """`what` is n s ahead of / behind the broker's clock, for a log line."""
    seconds = round(offset)
    side = "ahead of" if seconds > 0 else "behind"
    return f"{what} is {abs(seconds)} s {side} the broker's clock (accepted: {accepted})"


class UnsupportedRequest(BadRequest):
    """A trusted request asks for something the broker cannot do at all (a named subject, no
    proxying): the service hears so in its protocol."""

    code = "request_unsupported"
    public_message = (
        "This learning platform asked for a way of signing in that is not offered here."
    )


class ServiceAcsNotHttps(BadRequest):
    """The service's metadata in force names, as the ACS URL this login would be answered at,
    one that is not https (plain http only to loopback): a copy registered before metadata
    intake checked ACS URLs, or written past it. Refused at the AuthnRequest, before the
    student is sent to a school, and nothing is sent to that URL, not even an error Response
    (the assertion would go over plain http, or to `javascript:`). The student's page says the
    platform is not set up safely; `publisher list` names the service until metadata that
    passes is registered."""

    code = "acs_not_https"
    public_message = (
        "This learning platform's address for receiving sign-ins is not secure (no https), so "
        "you cannot be signed in to it here. Please tell your school."
    )


class UpstreamFailure(BrokerError):
    """The school's identity provider failed or refused the login."""

    code = "upstream_failure"
    status = 502
    public_message = "Your school's sign-in service did not complete the login."


class SchoolRefused(UpstreamFailure):
    """The school's identity provider said no, and it counts: a SAML error status it signed, an
    OIDC `error` on its redirect (Entra ID's "user not assigned" is `access_denied`). The
    service hears so in its protocol through the student's page (AuthnFailed, access_denied),
    as for any failure at the school; the student's page says what the school answered
    (`said`) and offers to try again at the school, or to choose another, for the same login
    (web/school_retry.py)."""

    code = "upstream_status"
    public_message = "Your school's sign-in service did not sign you in."

    def __init__(self, detail: str = "", *, said: SchoolSaid = "") -> None:
        super().__init__(detail)
        self.said: SchoolSaid = said


class SchoolUnreachable(UpstreamFailure):
    """The school's identity provider could not be reached (refused or dropped connection, a
    name that did not resolve, a certificate not accepted, an answer that is not one): a
    failure that may pass by itself, so trying again is worth offering the student
    (web/discovery.py). A school that is not set up right fails otherwise, and for good
    (`school_metadata_missing`, `not_oidc`): trying again does not help there."""

    code = "school_unreachable"


class NoSchoolAvailable(UpstreamFailure):
    """What the platform hears when no school can serve its login and the student went back to
    it: the school chosen (or the one the platform named, `Scoping/IDPList`) is not set up to
    sign students in here (its metadata or provider missing, its setup incomplete) or cannot
    be reached. Never shown itself: the student's page is the school's failure's, with "Back
    to <platform>" (web/back_to_platform.py), which tells the platform this. SAML: Responder /
    NoAvailableIDP (core 3.2.2.2); OIDC: access_denied."""

    code = "no_available_school"
    public_message = (
        "Signing in with your school is not fully set up here yet. Please tell your school."
    )


class WentBack(BrokerError):
    """What the platform hears when the student left the school choice for the platform
    without choosing (the discovery page's "Back to <platform>"). Never shown itself. SAML:
    Responder / AuthnFailed; OIDC: access_denied (service_answers.saml_status says why)."""

    code = "went_back"
    status = 400
    public_message = "You went back to the learning platform without signing in."


class SchoolTimeout(SchoolUnreachable):
    """The school's identity provider did not answer a back-channel call (token, keys,
    userinfo, discovery) within the configured timeout: the login ends instead of waiting."""

    code = "school_timeout"
    status = 504
    public_message = (
        "Your school's sign-in service did not answer in time. Please try again in a few minutes."
    )


class PlatformUnreachable(UpstreamFailure):
    """A publisher's platform could not be reached on a back channel (its back-channel logout
    URI or SOAP logout endpoint, its JWKS): the platform's fault, named so, never the school's
    (`school_unreachable` sends the operator to the wrong party). Server to server only: no
    student's page shows it."""

    code = "platform_unreachable"
    public_message = BrokerError.public_message


class PlatformTimeout(PlatformUnreachable):
    """A publisher's platform did not answer a back-channel call within its time."""

    code = "platform_timeout"
    status = 504


class PolicyRefusal(BrokerError):
    """The release rule cannot satisfy what the service requires."""

    code = "policy_refusal"
    status = 403
    public_message = "Your school has not released what this platform requires."


class RequiredAttributeMissing(PolicyRefusal):
    code = "required_attribute_missing"

    def __init__(self, service_id: str, missing: tuple[str, ...]) -> None:
        super().__init__(f"service {service_id} requires {', '.join(missing)}")
        self.service_id = service_id
        self.missing = missing


class InteractionRequired(PolicyRefusal):
    """A passive request (SAML IsPassive, OIDC prompt=none) reached a page the student must see
    first: the information notice. The service hears so and can ask again, actively."""

    code = "interaction_required"
    status = 400
    public_message = "This platform must first show you what it receives. Please start again."


class UnexpectedStudent(PolicyRefusal):
    """The service named the student it expects (OIDC `id_token_hint`, a requested `sub`
    value) and another student signed in: no answer may name someone the service did not ask
    for (OIDC Core 3.1.2.1, 5.5.1). The service hears `login_required`."""

    code = "unexpected_student"
    public_message = (
        "You signed in as a different student than this platform expected. "
        "Please start again at the platform."
    )


class MissingSubject(UpstreamFailure):
    """The school's IdP did not deliver the configured subject: never fall back to another value."""

    code = "missing_subject"
    public_message = "Your school's sign-in service did not send what is needed to sign you in."


# The NameID Format the broker takes as a student's identifier (SAML core 8.3.7).
PERSISTENT_NAME_ID = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
# What the school's ICT can do about a NameID that is not persistent, for the log line.
NAME_ID_FIX = (
    f"configure the IdP to send a persistent NameID ({PERSISTENT_NAME_ID}), or register the "
    "school with an identifying attribute (username or student_number) as its subject"
)


class NameIdNotPersistent(MissingSubject):
    """The school's subject is its NameID, and the IdP sent one whose Format is not persistent.
    No Format at all counts as `unspecified` (SAML core 2.2.2): such an identifier is not
    promised to stay the same for the student or never to be given to another, and the chain
    pseudonym is derived from it, so it is refused like any other, with what the school's ICT
    must change. `received_format`: the Format as sent (cut short, printable), None for none."""

    code = "name_id_not_persistent"
    public_message = (
        "Your school's sign-in service sent an identifier for you that may change, and "
        "signing in needs one that stays the same. Only your school can change this."
    )

    def __init__(self, school_id: str, received_format: str | None) -> None:
        shown = shown_excerpt(received_format) if received_format else None
        # What went wrong and what to do, without the school: the log line names it apart.
        self.explanation = (
            f"the IdP sent a NameID with Format {shown or 'none, which means unspecified'}, "
            f"not persistent: {NAME_ID_FIX}"
        )
        super().__init__(f"school {school_id}: {self.explanation}")
        self.received_format = shown


class NameIdIsAddress(MissingSubject):
    """The school's subject is its NameID, and the IdP sent a persistent one that is an e-mail
    address (core/subjects.py `name_id_is_address`): Google Workspace's SAML app sends the
    primary address for PERSISTENT too. A renamed student would get new pseudonyms, and an
    address given to a new student the old one's, so it is refused, with what to change."""

    code = "name_id_is_address"
    public_message = (
        "Your school's sign-in service sends your e-mail address as your identifier, and that "
        "can change or pass to someone else. Signing in needs one that stays yours. Only your "
        "school can change this."
    )
    explanation = (
        "the IdP sent a persistent NameID that is an e-mail address (the school's realm, or "
        "Google Workspace): use OpenID Connect, or send an immutable identifier as the NameID "
        "(Google: Name ID set to a custom attribute holding one)"
    )


class ForeignAccount(UpstreamFailure):
    """The school's provider signed in an account that is not the school's: at a provider
    shared by many organisations (Google), one without the school's hosted domain (`hd`), a
    personal account or another organisation's (core/hosted_domain.py)."""

    code = "hosted_domain_mismatch"
    status = 403
    public_message = (
        "You signed in with an account that is not your school's. "
        "Please start again and sign in with your school account."
    )


class SchoolSetupIncomplete(UpstreamFailure):
    """The school's registration lacks what makes its logins safe (a shared issuer without a
    hosted domain): every login is refused until the operator completes it."""

    code = "hosted_domain_missing"
    status = 503
    public_message = (
        "Signing in with your school is not fully set up here yet. Please tell your school."
    )


class SchoolSecretUnreadable(SchoolSetupIncomplete):
    """The broker cannot open its stored client secret for the school's OpenID provider (a key
    its configuration lacks, a changed value: core/sealed_secrets.py): every login through the
    school is refused, before the student is sent there, until the operator gives the secret
    again. The student sees the page of a school whose sign-in is not set up."""

    code = "client_secret_unreadable"


class SchoolSsoNotHttps(SchoolSetupIncomplete):
    """The school's metadata in force sends students to an SSO URL that is not https (plain
    http only to loopback): a copy registered before metadata intake checked SSO URLs, kept
    until it is read again. Every login through the school is refused before the student is
    sent there, until the operator registers metadata that passes (`school list` names it).
    The student sees the page of a school whose sign-in is not set up."""

    code = "school_sso_not_https"


class NotTheChosenSchool(UpstreamFailure):
    """An identity provider several schools share signed in a student, and its answer does not
    say the student is of the school they chose (core/shared_idp.py). Refused, not merely the
    attribute dropped: the student chose another school than their own (or the IdP does not
    say which school is theirs), and may choose again."""

    code = "other_school"
    status = 403
    public_message = (
        "Your school account does not belong to the school you chose. "
        "Choose the school your account belongs to and sign in again."
    )


class SchoolNotAsserted(NotTheChosenSchool):
    """The shared identity provider named no school at all (no nlEduPersonHomeOrganizationId):
    nothing tells the broker the student is the chosen school's."""

    code = "school_not_asserted"
    public_message = (
        "Your school's sign-in did not say which school your account belongs to, so it cannot "
        "be used for the school you chose. Choose your school again; if it keeps happening, "
        "tell your school."
    )


class OtherSchoolAccount(NotTheChosenSchool):
    """The shared identity provider named another school than the chosen one."""

    code = "other_school"


class AssuranceNotMet(UpstreamFailure):
    """The service required an assurance level (acr / AuthnContext) the school did not meet."""

    code = "assurance_not_met"
    status = 403
    public_message = "Your school's sign-in was not strong enough for this platform."


class StaleAuthentication(UpstreamFailure):
    """The service asked for a login no older than `max_age` and the school's was older."""

    code = "authentication_too_old"
    status = 403
    public_message = "This platform asks you to sign in at your school again. Please start again."


class FreshLoginIgnored(StaleAuthentication):
    """The service forced a fresh login (SAML ForceAuthn, OIDC prompt=login), the school was
    asked for one, and answered with a login from before the student was sent there: it
    answered from its own earlier session. The service hears so (SAML AuthnFailed, OIDC
    login_required); the student's page says to sign in again."""

    code = "fresh_login_ignored"


class StateExpired(BrokerError):
    code = "state_expired"
    status = 400
    public_message = "This sign-in took too long or was already used. Please start again."


class MyDataExpired(StateExpired):
    """The my-data page's quarter of an hour is over, or its address is not this browser's: the
    student opens the page again (and signs in through their school if need be). No learning
    platform is part of it, so "go back to the platform" would send them the wrong way."""

    code = "my_data_expired"
    public_message = "This page with your data has expired. Open it again to see your data."


class CookiesBlocked(StateExpired):
    """A step that needs this browser's state came without any of the broker's cookies: the
    browser blocks them (or they were deleted, a private window closed). "Took too long" would
    send the student round the same loop for ever; this says what to change. The web layer
    raises it instead of a StateExpired for such a request (web/errors.py)."""

    code = "cookies_blocked"
    public_message = (
        "Your browser did not send back the cookie this sign-in needs: it blocks cookies for "
        "this website, or they were deleted."
    )


class StoreUnavailable(BrokerError):
    code = "store_unavailable"
    status = 503
    public_message = "Signing in is not possible right now. Please try again in a moment."


class RegistryUnavailable(StoreUnavailable):
    """The registry's database (PostgreSQL), not the store (Redis), cannot be reached or cannot
    take this request now. The student's page is the same "try again" 503; its own code tells
    the operator which of the two to look at, in the log's refused lines and in the setbacks
    metric's reason."""

    code = "registry_unavailable"


class LogoutStoreUnavailable(StoreUnavailable):
    """A logout the store could not carry out: the session may stand on in the store, so the
    student must not leave believing they are logged out (the browser forgets its token)."""

    code = "logout_store_unavailable"
    public_message = (
        "Logging out did not work just now. This browser no longer "
        "uses your session here, but you may still be logged in at learning platforms and at "
        "your school. Close your browser completely (every window) to be sure you are logged out."
    )


class ConfigurationError(BrokerError):
    code = "configuration_error"
    status = 500
    public_message = "This website is not set up correctly."
