"""authlib's grant classes bound to the broker's store: codes, tokens and their families.

Everything a code or token carries about the student (the pseudonym and released claims) is
sealed under the code or token itself (broker/login/sealed.py), so the store holds nothing
readable without the very value the publisher was given. Codes and refresh tokens are taken
atomically (one use, across workers); a second use revokes every token of that login's family
(RFC 6749 10.5, RFC 9700 4.14). A code is filed under its client too: another client that
presents it neither uses it up nor revokes anything.
"""

from __future__ import annotations

import json
import re
import secrets
import string
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from hashlib import sha256
from typing import Any

from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, ClientMixin, TokenMixin, scope_to_list
from authlib.oauth2.rfc6749.errors import InvalidGrantError, InvalidRequestError
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, RefreshTokenGrant
from authlib.oauth2.rfc7636 import CodeChallenge

from broker.core.chain_move import previous_still_released
from broker.core.endpoints import redirect_uri_refusal
from broker.core.errors import PolicyRefusal, RequiredAttributeMissing, StateExpired
from broker.core.model import Service
from broker.core.ports import (
    HISTORY_TTL_SECONDS,
    KeyValueStore,
    RegistryReader,
    StoreOp,
    StoreReply,
)
from broker.core.release import release_for
from broker.login.sealed import SealedStore
from broker.oidc import requested_claims as oidc_claims
from broker.oidc.oauth_errors import repeated_parameters
from broker.oidc.registration import secret_matches

CODE = "oidc-code"
ACCESS = "oidc-access"
REFRESH = "oidc-refresh"
# When the store last found a new Redis history (a rollback may have brought back a code taken
# before it, without its use): codes issued before it are refused (`new_history_since`).
HISTORY_SINCE_KEY = "oidc:history-since"
KNOWN_SCOPES = frozenset(oidc_claims.scopes_supported())
TOKEN_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]


_TOKEN_ALPHABET = (string.ascii_letters + string.digits).encode()
# Byte b becomes the character b % 62; bytes from the largest multiple of 62 a byte reaches
# (248) upwards are dropped, so every character is equally likely (no modulo bias).
_TOKEN_LIMIT = 256 - 256 % len(_TOKEN_ALPHABET)
_TOKEN_TABLE = bytes(_TOKEN_ALPHABET[b % len(_TOKEN_ALPHABET)] for b in range(256))
_TOKEN_DROPPED = bytes(range(_TOKEN_LIMIT, 256))


def new_history_since(now: float) -> StoreOp:
    """The write for a store that may have been rolled back (`RedisStore(on_new_history=...)`):
    every code issued before `now` is refused from then on (docs/security.md)."""
    return StoreOp.put(HISTORY_SINCE_KEY, repr(now).encode("ascii"), HISTORY_TTL_SECONDS)


def random_token(length: int) -> str:
    """`length` characters of [A-Za-z0-9] from the OS's CSPRNG, each uniform (5.95 bits): what
    authlib's generate_token makes, from one random read instead of one per character (that
    took ~60 us per code or token)."""
    made = b""
    while len(made) < length:
        made += secrets.token_bytes(length + 8).translate(_TOKEN_TABLE, _TOKEN_DROPPED)
    return made[:length].decode()


# An access token names its family: `<family>.<43 random characters>` (the family id is 22
# URL-safe characters from provider.respond). Userinfo then reads the token's record and the
# family's revocation mark in one round trip instead of two. The family id is no secret: it
# only ever names a revocation mark, and is no credential for anything (the random part is;
# the whole token is the key the record is sealed and filed under).
_FAMILY_SEPARATOR = "."
_FAMILY_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def access_token_for(grantee: Grantee) -> str:
    """A new access token for `grantee`'s family: 43 random characters (256 bits) after it."""
    if not _FAMILY_ID.fullmatch(grantee.family):
        # Such a token would never be found again (TokenVault.access): fail at issue instead.
        raise ValueError("a token family id is 1-64 URL-safe characters")
    return f"{grantee.family}{_FAMILY_SEPARATOR}{random_token(43)}"


def _digest(value: str) -> str:
    return sha256(value.encode()).hexdigest()


class RegisteredClient(ClientMixin):  # type: ignore[misc]
    """A service's client registration as authlib sees it."""

    def __init__(self, service: Service) -> None:
        assert service.oidc is not None
        self.service = service
        self.registration = service.oidc

    @property
    def id_token_signed_response_alg(self) -> str:
        return self.registration.id_token_alg

    def get_client_id(self) -> str:
        return self.service.entity_id

    def get_default_redirect_uri(self) -> str | None:
        return None  # OIDC: the request must name its redirect_uri, matched exactly

    def get_allowed_scope(self, scope: str | None) -> str:
        # Scope values the broker does not know are ignored, not refused (OIDC Core 3.1.2.1).
        # No scope at all (authlib hands in None) keeps none: the request is then refused as
        # one without `openid` (authorization_checks.py: invalid_scope at the redirect URI).
        return " ".join(v for v in (scope or "").split() if v in KNOWN_SCOPES)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # Exactly one the client registered, and one intake would take now: a URI written into
        # the registry past intake (a direct database write, a plain-http one) is no target.
        # authlib then refuses the request with a page, never a redirect (provider.authorize).
        return (
            redirect_uri in self.registration.redirect_uris
            and redirect_uri_refusal(redirect_uri) is None
        )

    def check_client_secret(self, client_secret: str) -> bool:
        return secret_matches(client_secret, self.registration)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint != "token" or method == self.registration.auth_method.value

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        if grant_type == "refresh_token":
            return self.registration.refresh_tokens
        return grant_type == "authorization_code"


@dataclass
class Grantee:
    """The student as one login left them: pseudonym, released claims, how they logged in."""

    sub: str
    claims: dict[str, Any]
    auth_time: int
    acr: str | None
    sid: str
    family: str
    # When the login's tokens end, whatever rotation happens: refresh tokens do not extend it.
    family_expires: int = 0
    # The student's school: its removal ends the login's codes and tokens ("": issued before
    # tokens named it, not checked).
    school: str = ""
    # The pseudonym key version `sub` was derived with: `previous_sub` goes out only while the
    # window it came from is open (0: issued before grants named it; the open window decides).
    key_version: int = 0
    # Where `previous_sub` came from: "" a rotation's window (or none), else the chain a chain
    # move's window left (core/chain_move.py), whose window must still be open.
    previous_chain: str = ""

    def to_payload(self) -> dict[str, Any]:
        return {
            "sub": self.sub,
            "claims": self.claims,
            "auth_time": self.auth_time,
            "acr": self.acr,
            "sid": self.sid,
            "family": self.family,
            "family_expires": self.family_expires,
            "school": self.school,
            "key_version": self.key_version,
            "previous_chain": self.previous_chain,
        }

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> Grantee:
        return cls(
            data["sub"],
            data["claims"],
            data["auth_time"],
            data["acr"],
            data["sid"],
            data["family"],
            int(data.get("family_expires", 0)),
            str(data.get("school", "")),
            int(data.get("key_version", 0)),
            str(data.get("previous_chain", "")),
        )


@dataclass
class IssuedCode(AuthorizationCodeMixin):  # type: ignore[misc]
    client_id: str
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    grantee: Grantee

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.grantee.auth_time

    def get_acr(self) -> str | None:
        return self.grantee.acr

    def get_amr(self) -> None:
        return None


@dataclass
class IssuedRefreshToken(TokenMixin):  # type: ignore[misc]
    value: str = field(repr=False)
    client_id: str
    scope: str
    grantee: Grantee = field(repr=False)

    def check_client(self, client: RegisteredClient) -> bool:
        return client.get_client_id() == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return 0

    def is_expired(self) -> bool:
        return False  # the store's TTL expires it

    def is_revoked(self) -> bool:
        return False  # a revoked one is never found (see TokenVault.take_refresh)


class TokenVault:
    """Codes and tokens in the store, sealed under themselves; families for reuse detection.

    When a code or refresh token is issued, a marker `hash(value) → family` is written beside
    it. Whoever presents the value after it was taken (a replay, or the loser of a race) finds
    the marker and revokes the family: written at issue time, so no window between the take and
    the marker lets a second use pass unnoticed.
    """

    def __init__(self, store: KeyValueStore, *, code_ttl: int, access_ttl: int, refresh_ttl: int):
        self.store = store
        self.sealed = SealedStore(store)
        self.code_ttl = code_ttl
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        # How long family marks and revocation marks are kept. A mark that goes before what it
        # guards lets a reuse pass or a revoked token work again: a code may be replayed until
        # the tokens redeemed with it (up to code_ttl after its issue) have all expired, and a
        # revocation must outlast the family's longest-lived token. The refresh lifetime alone
        # is not enough when it is configured below the access token's (60 s against up to an
        # hour: an operator without refresh clients may well set it so).
        self.mark_ttl = code_ttl + max(access_ttl, refresh_ttl)

    # -- codes ---------------------------------------------------------------------------------
    def put_code(self, code: str, issued: IssuedCode) -> None:
        self.store.batch(self.code_writes(code, issued))

    def code_writes(self, code: str, issued: IssuedCode) -> list[StoreOp]:
        """The writes that issue `code`, for the caller's batch: the family mark first, then the
        code (a batch keeps their order)."""
        payload = {
            "client_id": issued.client_id,
            "redirect_uri": issued.redirect_uri,
            "scope": issued.scope,
            "nonce": issued.nonce,
            "code_challenge": issued.code_challenge,
            "code_challenge_method": issued.code_challenge_method,
            "grantee": issued.grantee.to_payload(),
            "issued": time.time(),
        }
        filed = _code_id(issued.client_id, code)
        return [
            self._family_mark(CODE, filed, issued.grantee.family),
            self.sealed.put_op(code.encode(), CODE, filed, payload, self.code_ttl),
        ]

    def take_code(self, code: str, client_id: str) -> IssuedCode | None:
        """One use: the first redemption by `client_id` gets the code, a second one revokes
        what the first got. Presented by another client, the code is not found: nothing is
        taken or revoked, and its own client can still redeem it (RFC 6749 4.1.3, 10.5)."""
        if not code or len(code) > 256:
            return None
        filed = _code_id(client_id, code)
        # The take and the store's history mark in one round trip.
        record, since = self.store.batch(
            [SealedStore.take_op(CODE, filed), StoreOp.get(HISTORY_SINCE_KEY)]
        )
        try:
            data = SealedStore.opened(code.encode(), CODE, filed, record)
        except StateExpired:
            return None
        if data is None:
            self._revoke_family_of(CODE, code, filed)
            return None
        if _before_history(data, since):
            return None  # perhaps redeemed before a rollback brought it back (`_before_history`)
        return IssuedCode(
            data["client_id"],
            data["redirect_uri"],
            data["scope"],
            data["nonce"],
            data["code_challenge"],
            data["code_challenge_method"],
            Grantee.from_payload(data["grantee"]),
        )

    # -- tokens --------------------------------------------------------------------------------
    def put_tokens(self, token: dict[str, Any], client_id: str, grantee: Grantee) -> None:
        """Store the tokens; InvalidGrantError when their family was revoked meanwhile: a code
        issued before its SSO session was logged out and redeemed after (or a refresh racing
        the logout) gets no tokens and, above all, no ID token of a session that ended. The
        tokens written then are dead already (their family's mark), so nothing is undone."""
        payload = {
            "client_id": client_id,
            "scope": token.get("scope", ""),
            "issued": time.time(),
            **grantee.to_payload(),
        }
        access = token["access_token"]
        writes = [self.sealed.put_op(access.encode(), ACCESS, access, payload, self.access_ttl)]
        refresh = token.get("refresh_token")
        remaining = grantee.family_expires - int(time.time())
        if refresh and remaining > 0:
            writes.append(self._family_mark(REFRESH, refresh, grantee.family))
            writes.append(
                self.sealed.put_op(refresh.encode(), REFRESH, refresh, payload, remaining)
            )
        # One round trip for all of them, in this order, and the family's revocation mark last.
        replies = self.store.batch([*writes, StoreOp.get(_revoked_key(grantee.family))])
        # Only a session's end refuses here. A reuse's mark (the same code raced by a thief)
        # must not: the one redemption that took the code still gets its answer (a code is
        # redeemed exactly once), and its tokens are dead already by that mark.
        if replies[-1] == SESSION_ENDED:
            raise InvalidGrantError("The login this grant belongs to has ended.")

    def access(self, token: str) -> tuple[str, str, Grantee] | None:
        """(client id, scope, grantee) of a live access token of a family not revoked.

        A token that names its family (`access_token_for`) costs one round trip: its record and
        the family's revocation mark in one batch. One that does not (issued before tokens
        named their family) is read first and its family's mark after, as before."""
        if not token or len(token) > 256:
            return None
        family, named, _ = token.partition(_FAMILY_SEPARATOR)
        if not named:
            data = self._get(token, ACCESS)
            if data is None or self._refused(data):
                return None
            return data["client_id"], data["scope"], Grantee.from_payload(data)
        if not _FAMILY_ID.fullmatch(family):
            return None  # not a token of ours: no store call for it
        record, revoked, since = self.store.batch(
            [
                SealedStore.get_op(ACCESS, token),
                StoreOp.get(_revoked_key(family)),
                StoreOp.get(HISTORY_SINCE_KEY),
            ]
        )
        try:
            data = SealedStore.opened(token.encode(), ACCESS, token, record)
        except StateExpired:
            return None
        # The record is sealed under the whole token, family part included, so a token whose
        # family part was changed finds no record; the comparison is a second lock all the same.
        if data is None or revoked is not None or data["family"] != family:
            return None
        if _before_history(data, since):
            return None
        return data["client_id"], data["scope"], Grantee.from_payload(data)

    def peek_refresh(self, token: str) -> IssuedRefreshToken | None:
        """A live refresh token, not yet used up: the grant checks client and scope first, so a
        malformed request does not burn the token (and its honest retry is no reuse)."""
        data = self._get(token, REFRESH)
        if data is None:
            self._revoke_family_of(REFRESH, token)
            return None
        if self._refused(data):
            return None
        grantee = Grantee.from_payload(data)
        return IssuedRefreshToken(token, data["client_id"], data["scope"], grantee)

    def take_refresh(self, token: str) -> bool:
        """Use the refresh token up; False when another request used it first (a reuse)."""
        if self._take(token, REFRESH) is not None:
            return True
        self._revoke_family_of(REFRESH, token)
        return False

    def _get(self, value: str, kind: str) -> dict[str, Any] | None:
        if not value or len(value) > 256:
            return None
        try:
            return self.sealed.get(value.encode(), kind, value)
        except StateExpired:
            return None

    def _take(self, value: str, kind: str) -> dict[str, Any] | None:
        if not value or len(value) > 256:
            return None
        try:
            return self.sealed.take(value.encode(), kind, value)
        except StateExpired:
            return None

    def _family_mark(self, kind: str, value: str, family: str) -> StoreOp:
        return StoreOp.put(
            f"oidc:family-of:{kind}:{_digest(value)}", family.encode(), self.mark_ttl
        )

    def session_end_op(self, family: str) -> StoreOp:
        """The write that revokes every code and token of `family` (what `access` and
        `peek_refresh` refuse) because the SSO session its login belongs to ended, for that
        batch (logout_channel.py); it also refuses a code redeemed after it (`put_tokens`)."""
        return StoreOp.put(_revoked_key(family), SESSION_ENDED, self.mark_ttl)

    def _revoke_family_of(self, kind: str, value: str, filed: str | None = None) -> None:
        """`filed`: what the value's mark is kept under, when not the value itself (a code's:
        `_code_id`)."""
        if not value or len(value) > 256:
            return
        family = self.store.get(f"oidc:family-of:{kind}:{_digest(filed or value)}")
        if family is not None:
            # Added only where no mark is: a session's end already marked must stay the
            # session's end, or the first redemption of a code replayed after the logout would
            # read "reused" and sign an ID token for the ended session (put_tokens).
            self.store.add_if_absent(_revoked_key(family.decode()), REUSED, self.mark_ttl)

    def _refused(self, data: dict[str, Any]) -> bool:
        """Whether a token's record, found, is refused: its family revoked, or the token
        issued before the store's last new history (`_before_history`); one round trip."""
        revoked, since = self.store.batch(
            [StoreOp.get(_revoked_key(data["family"])), StoreOp.get(HISTORY_SINCE_KEY)]
        )
        return revoked is not None or _before_history(data, since)


def _before_history(data: dict[str, Any], since: StoreReply) -> bool:
    """Whether a code's or token's record was issued before the store last found a new Redis
    history (`new_history_since`): a rollback may have brought it back after its one use, or
    lost the mark that revoked its family, so it is refused, as a wipe would have lost it.

    COMPAT(oidc-issued): a record without an issue time was made by a worker of the version
    before. It is taken: the upgrade itself is a "new history" (no `kb:history` yet), and
    counting such records as from before would log every platform's students out at the
    upgrade and refuse the tokens the old workers still issue during a rolling one. Their
    rollback exposure ends with their lifetime (the refresh tokens'); remove this branch in the
    first release after that."""
    if not isinstance(since, bytes) or "issued" not in data:
        return False
    return float(data["issued"]) < float(since)


# The revocation mark's value: why the family was revoked. Any value revokes its tokens.
REUSED = b"1"  # what every mark said before logout revoked families
SESSION_ENDED = b"ended"


def _revoked_key(family: str) -> str:
    return f"oidc:revoked:{family}"


def _code_id(client_id: str, code: str) -> str:
    """What a code is filed under, and its family mark kept under: its client's id with it. A
    code another client presents finds nothing there, so it burns nothing and revokes nothing,
    in the one `take` the redemption costs (a compare after the take would come too late).
    JSON, so no client id and code run together into another pair's."""
    return json.dumps([client_id, code])


# RFC 7636 4.2: BASE64URL-ENCODE(SHA256(ASCII(code_verifier))), 32 bytes without padding.
_S256_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")


class S256Only(CodeChallenge):  # type: ignore[misc]
    """PKCE with S256 only: `plain` (or a challenge without a method, which means plain) is
    refused; a public client must send a challenge, and a confidential client without one must
    send a nonce, so every code is bound to the request that asked for it (RFC 9700 2.1.1)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        challenge = data.get("code_challenge")
        if challenge and data.get("code_challenge_method") != "S256":
            raise InvalidRequestError(
                "PKCE code_challenge_method must be S256; plain is not accepted.",
                redirect_uri=redirect_uri,
            )
        if challenge and not _S256_CHALLENGE.fullmatch(challenge):
            # authlib accepts 43 to 128 characters (a plain challenge's length); an S256 one is
            # BASE64URL(SHA-256), always 43, so another length can never be redeemed: say so
            # now rather than with a code the client cannot use.
            raise InvalidRequestError(
                "An S256 code_challenge is the 43-character base64url SHA-256 of the verifier.",
                redirect_uri=redirect_uri,
            )
        client = grant.request.client
        if not challenge and client is not None and client.registration.is_public:
            raise InvalidRequestError(
                "A public client must use PKCE with S256.", redirect_uri=redirect_uri
            )
        if not challenge and not data.get("nonce"):
            raise InvalidRequestError(
                "Use PKCE with S256, or at least send a nonce.", redirect_uri=redirect_uri
            )
        super().validate_code_challenge(grant, redirect_uri)

    def get_authorization_code_challenge(self, authorization_code: IssuedCode) -> str | None:
        return authorization_code.code_challenge

    def get_authorization_code_challenge_method(self, authorization_code: IssuedCode) -> str | None:
        return authorization_code.code_challenge_method


def released_now(registry: RegistryReader, client_id: str, grantee: Grantee) -> Grantee | None:
    """`grantee` as its school's release allows it today; None when its codes and tokens must
    stop working.

    Codes and tokens outlive registrations and policies in the store, so every use applies the
    release rule (core/release.py) again to what the login delivered: they stop once the
    client's service or the student's school is removed (`ketenbroker publisher|school
    remove`), once the school switches the service off, and once the school no longer releases
    an attribute the service requires (a new login would be refused for it too); a narrowed
    policy drops the claims it no longer allows. Never wider: the grant holds only what the
    login delivered, and a widened policy reaches the platform with the student's next login.
    `previous_sub` goes with it only while the window it came from is open (a chain's pseudonym
    key rotation or the service's chain move: core/chain_move.py, the login's rule): a refresh
    family outlives it.
    Registry reads only (the worker's cached view): no store round trip.
    """
    service = registry.service_by_entity_id(client_id)
    if service is None or not grantee.school or registry.school(grantee.school) is None:
        # No school named ("": from before grants named it): no policy to check it against.
        return None
    try:
        policy = registry.policy(grantee.school, service.id)
    except PolicyRefusal:
        return None  # the school switched the service off (the registry's ServiceSwitchedOff)
    delivered = oidc_claims.claims_as_attributes(grantee.claims)
    try:
        # Asked for: what was delivered, so a required attribute counts as missing only when
        # the login carried it and the policy now withholds it.
        allowed = release_for(service, policy, frozenset(delivered), delivered)
    except RequiredAttributeMissing:
        return None
    claims: dict[str, Any] = dict(oidc_claims.release_claims(allowed))
    previous = grantee.claims.get(oidc_claims.PREVIOUS_SUB)
    if previous is not None and previous_still_released(
        registry.pseudonym_key_version(service.pseudonym_chain),
        registry.chain_move(service.id),
        service,
        grantee.key_version,
        grantee.previous_chain,
        datetime.now(UTC),
    ):
        # Not an attribute: the pseudonym under the chain's previous key, as sub is one.
        claims[oidc_claims.PREVIOUS_SUB] = previous
    return grantee if claims == grantee.claims else replace(grantee, claims=claims)


class CodeGrant(AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS
    vault: TokenVault  # set by the provider on its subclass
    registry: RegistryReader  # likewise

    def generate_authorization_code(self) -> str:
        return random_token(self.AUTHORIZATION_CODE_LENGTH)  # authlib's 48 characters

    @staticmethod
    def validate_authorization_redirect_uri(request: Any, client: RegisteredClient) -> str:
        """authlib's check of the redirect URI, and at once after it, before anything else
        reads a parameter, the refusal of one given twice (RFC 6749 3.1) at that URI: before
        authlib's `prompt=none` answer (`prompt=none&prompt=login` was login_required, from
        the first value) or a PKCE check reads the first of two values. The five it reads
        before the URI is trusted authlib refuses itself, with a page."""
        redirect_uri: str = AuthorizationCodeGrant.validate_authorization_redirect_uri(
            request, client
        )
        repeated = repeated_parameters(request.payload.datalist)
        if repeated is not None:
            raise InvalidRequestError(repeated, redirect_uri=redirect_uri)
        return redirect_uri

    def issue_code(self, grantee: Grantee) -> dict[str, str]:
        """authlib's `create_authorization_response` without its redirect: the response's
        parameters (RFC 6749 4.1.2), which the provider delivers in the response mode the
        client asked for (response_modes.py); authlib would put them in the query."""
        self.request.user = grantee
        code = self.generate_authorization_code()
        self.save_authorization_code(code, self.request)
        params = {"code": code}
        if self.request.payload.state:
            params["state"] = self.request.payload.state
        return params

    def save_authorization_code(self, code: str, request: Any) -> None:
        """Not written here: the code's writes go to `request.store_writes`, which the caller
        sends in the batch that also opens the student's SSO session (one round trip for both;
        provider.respond, login_finish.finish). The redirect carrying the code leaves only after
        that batch."""
        data = request.payload.data
        request.store_writes += self.vault.code_writes(
            code,
            IssuedCode(
                client_id=request.client.get_client_id(),
                redirect_uri=request.payload.redirect_uri,
                scope=request.client.get_allowed_scope(request.payload.scope),
                nonce=data.get("nonce"),
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
                grantee=request.user,
            ),
        )

    def query_authorization_code(self, code: str, client: RegisteredClient) -> IssuedCode | None:
        issued = self.vault.take_code(code, client.get_client_id())
        # Filed under its client (`_code_id`): the comparison is a second lock all the same.
        if issued is None or issued.client_id != client.get_client_id():
            return None
        grantee = released_now(self.registry, issued.client_id, issued.grantee)
        return None if grantee is None else replace(issued, grantee=grantee)

    def delete_authorization_code(self, authorization_code: IssuedCode) -> None:
        pass  # taken already, atomically, in query_authorization_code

    def authenticate_user(self, authorization_code: IssuedCode) -> Grantee:
        return authorization_code.grantee


class RefreshGrant(RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation: every refresh token is used once
    vault: TokenVault
    registry: RegistryReader

    def authenticate_refresh_token(self, refresh_token: str) -> IssuedRefreshToken | None:
        found = self.vault.peek_refresh(refresh_token)
        if found is None:
            return None
        # The new tokens carry the narrowed claims: a narrowing stays for the family's life.
        grantee = released_now(self.registry, found.client_id, found.grantee)
        return None if grantee is None else replace(found, grantee=grantee)

    def create_token_response(self) -> Any:
        # The request passed every check: only now is the token used up, atomically, before new
        # tokens are made. Of two racing requests one wins; the other revokes the family.
        if not self.vault.take_refresh(self.request.refresh_token.value):
            raise InvalidGrantError("The refresh token was used already.")
        return super().create_token_response()

    def authenticate_user(self, refresh_token: IssuedRefreshToken) -> Grantee:
        """The grantee of the new tokens. A refresh that asks for less than its token's scope
        (RFC 6749 6) narrows the grant to the claims of the scopes it keeps: userinfo answers
        with those only, and so do the refreshes after it (they cannot widen it again). A claim
        asked for by name (the `claims` parameter) goes too unless a scope kept covers it; a
        refresh with the same scope, or none, keeps every claim."""
        grantee = refresh_token.grantee
        asked = set(scope_to_list(self.request.payload.scope) or ())
        if asked and asked < set(scope_to_list(refresh_token.scope) or ()):
            claims = oidc_claims.claims_within(grantee.claims, asked)
            grantee = replace(grantee, claims=claims)
        return grantee

    def revoke_old_credential(self, refresh_token: IssuedRefreshToken) -> None:
        pass  # taken already, atomically, in authenticate_refresh_token
