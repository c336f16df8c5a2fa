"""Signing in (e-mail, password and TOTP code in one form), signing out, accepting an invitation
(with a TOTP seed of the accepting browser's own: invitation_seed.py).

One form for all three, and one refusal for any wrong part: the page never says whether the
address, the password or the code was wrong. The log names the administrator by id (or
`unknown`), never by e-mail address.
"""

from __future__ import annotations

import logging

from flask import redirect, render_template, request, session, url_for
from flask_babel import gettext
from werkzeug.wrappers import Response

from broker.accounts import totp
from broker.accounts.passwords import hash_password, verify_password
from broker.accounts.tokens import plausible_token, token_hash
from broker.core.admins import Admin, AdminRole, Invitation
from broker.core.sealed_secrets import SecretBinding, SecretInClear, SecretUnreadable
from broker.registry.errors import InvitationUnusable
from broker.web.portal.account_forms import AcceptInvitationForm, SignInForm, digits
from broker.web.portal.guard import (
    close_session,
    note_success,
    open_session,
    sign_in_throttled,
)
from broker.web.portal.invitation_seed import browser_seed, confirmed_seed
from broker.web.portal.qr_code import qr_code_svg
from broker.web.portal.rights import (
    SESSION_ADMIN,
    SESSION_ID,
    SESSION_SIGNED_IN_AT,
    portal_blueprint,
    signed_in_admin,
)
from broker.web.wiring import broker

log = logging.getLogger("broker.portal")
sign_in_pages = portal_blueprint("portal_sign_in", "/portal")


def start_session(admin: Admin) -> None:
    # A fresh session: nothing from before the sign-in (a planted value, an old CSRF token)
    # survives into the signed-in one. Its id is checked against the store on every request.
    # One this browser had (a colleague at a shared computer who did not sign out) ends on the
    # server too, as at sign-out: a copy of its cookie must not outlive it.
    store = broker().store
    close_session(store, str(session.get(SESSION_ID, "")))
    session.clear()
    session.permanent = True
    session_id, since = open_session(store, admin.id)
    session[SESSION_ADMIN] = admin.id
    session[SESSION_ID] = session_id
    session[SESSION_SIGNED_IN_AT] = since


def home_of(admin: Admin) -> str:
    if admin.role is AdminRole.OPERATOR:
        return url_for("portal_operator.services")
    if admin.role is AdminRole.SCHOOL:
        return url_for("portal_school.services", school_id=admin.tenant_id)
    return url_for("portal_publisher.services", publisher_id=admin.tenant_id)


@sign_in_pages.route("/", methods=["GET"])
def home() -> Response:
    admin = signed_in_admin()
    return redirect(home_of(admin) if admin else url_for(".sign_in"), code=303)


@sign_in_pages.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> Response | str | tuple[str, int]:
    form = SignInForm()
    if not form.validate_on_submit():
        status = 400 if form.is_submitted() else 200
        return render_template("portal/sign_in.html", form=form, refused=False), status
    b = broker()
    email, address = form.email.data or "", request.remote_addr or "-"
    # Counted before the password is hashed: concurrent guesses cannot all pass a check made
    # before any of them was counted.
    if sign_in_throttled(b.store, b.settings.secret_key, email, address):
        log.warning("portal sign-in refused admin=unknown reason=throttled")
        form.password.data = ""
        form.code.data = ""
        page = render_template("portal/sign_in.html", form=form, refused=False, throttled=True)
        return page, 429
    accounts = b.registry.accounts
    found = accounts.credentials(email)
    password_ok = verify_password(found.password_hash if found else None, form.password.data or "")
    if found and password_ok and found.totp_secret is None:
        # The password held, and the code cannot be checked: the broker's key does not open the
        # stored TOTP secret, or it is in clear in a registry that holds sealed secrets only
        # (the registry logged why). Said after the password only, so the page tells nobody
        # else anything about the account.
        binding = SecretBinding.admin_totp(found.admin.email, found.admin.id)
        refused = (
            SecretInClear(binding)
            if found.totp_in_clear
            else SecretUnreadable(binding, "see the log")
        )
        reason = "in_clear" if found.totp_in_clear else "unreadable"
        log.error("portal sign-in refused admin=%s reason=totp_secret_%s", found.admin.id, reason)
        raise refused
    code = digits(form.code.data or "")
    step = totp.verify(found.totp_secret, code) if found and found.totp_secret else None
    if found and password_ok and step is not None and accounts.use_totp_step(found.admin.id, step):
        note_success(b.store, b.settings.secret_key, email)
        start_session(found.admin)
        log.info("portal sign-in admin=%s role=%s", found.admin.id, found.admin.role.value)
        return redirect(home_of(found.admin), code=303)
    reason = "password" if not password_ok else "code"
    log.warning(
        "portal sign-in refused admin=%s reason=%s", found.admin.id if found else "unknown", reason
    )
    form.password.data = ""
    form.code.data = ""
    return render_template("portal/sign_in.html", form=form, refused=True), 401


@sign_in_pages.route("/sign-out", methods=["POST"])
def sign_out() -> Response:
    admin = signed_in_admin()
    close_session(broker().store, str(session.get(SESSION_ID, "")))
    session.clear()
    if admin is not None:
        log.info("portal sign-out admin=%s", admin.id)
    return redirect(url_for(".sign_in", signed_out=1), code=303)


@sign_in_pages.route("/invitation/<token>", methods=["GET", "POST"])
def accept_invitation(token: str) -> Response | str | tuple[str, int]:
    if not plausible_token(token):
        raise InvitationUnusable("invitation token of the wrong shape")
    b = broker()
    hashed = token_hash(token)
    try:
        invitation = b.registry.accounts.invitation(hashed)
    except SecretUnreadable as unreadable:
        # Names the invitation by its hash's first characters, as the operator's pages do.
        log.error("portal invitation refused reason=totp_secret_unreadable %s", unreadable.detail)
        raise
    form = AcceptInvitationForm()
    # This browser's own seed (invitation_seed.py): the link opened elsewhere shows another.
    seed = browser_seed(hashed)
    if form.is_submitted():  # CSRF was checked before the view (rights.check_csrf)
        # Every field's problem in one round: a code of the right shape is checked (once) even
        # when the password is refused, so a wrong one is said now, not after the password is
        # mended. Nothing is used up by the check: the account takes the step only when made.
        fields_valid = form.validate()
        code = digits(form.code.data or "")
        confirmed = None if form.code.errors else confirmed_seed(invitation, seed, code)
        if fields_valid and confirmed is not None:
            secret, step = confirmed
            admin = b.registry.accounts.accept_invitation(
                hashed, hash_password(form.password.data or ""), secret, step
            )
            log.info("portal invitation accepted admin=%s role=%s", admin.id, admin.role.value)
            start_session(admin)
            return redirect(home_of(admin), code=303)
        if confirmed is None and not form.code.errors:
            # The code of a key added from another browser's page (the link opened on a phone)
            # never confirms here: say which key it must come from.
            form.code.errors = [
                gettext(
                    "This code is not right. Enter the code your app shows now for the key on "
                    "this page: every browser that opens the invitation link gets a key of its "
                    "own, and in this browser only the key on this page works."
                )
            ]
    uri = totp.provisioning_uri(seed, invitation.email, _issuer())
    page = render_template(
        "portal/invitation.html",
        form=form,
        invitation=invitation,
        invited_to=_invited_to(invitation),
        otpauth_uri=uri,
        qr_code=qr_code_svg(uri, gettext("QR code for your authenticator app")),
        secret=seed,
    )
    return page, 400 if form.is_submitted() else 200


def _invited_to(invitation: Invitation) -> str:
    """What the invitee will administer, by its name (the id in brackets, as the operator and
    the school's ICT know it): "Demo Lyceum (99XX00)"; the broker's name for an operator."""
    tenant = invitation.tenant_id
    if tenant is None:
        return _issuer()
    registry = broker().registry
    if invitation.role is AdminRole.SCHOOL:
        school = registry.school(tenant)
        name = school.name if school else None
    else:
        publisher = registry.accounts.publisher(tenant)
        name = publisher.name if publisher else None
    return f"{name} ({tenant})" if name and name != tenant else tenant


def _issuer() -> str:
    return broker().settings.organization.name or "Ketenbroker"
