"""The Flask app factory."""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, render_template
from werkzeug.datastructures import ImmutableDict
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import Map, PathConverter, UnicodeConverter

from broker.config import Settings, load_settings
from broker.core.errors import BrokerError
from broker.registry.migration import check_newer_schema
from broker.web.back_to_platform import back_to_platform
from broker.web.browser import install_browser_cookie
from broker.web.content_policy import content_security_policy
from broker.web.cookie_session import BrokerSessionInterface
from broker.web.discovery import discovery
from broker.web.errors import install_error_pages
from broker.web.i18n import LANGUAGE_PARAM, SUPPORTED_LANGUAGES, init_i18n, page_translations
from broker.web.labels import install_site_name, shown_time
from broker.web.logout_routes import logout, logout_form_token
from broker.web.logs import install_log_handler, install_logging
from broker.web.my_data import my_data
from broker.web.notice import notice
from broker.web.oidc_logout_routes import oidc_logout
from broker.web.oidc_op_routes import oidc_op
from broker.web.oidc_rp_routes import oidc_rp
from broker.web.operations import operations
from broker.web.portal import install_portals
from broker.web.rate_limits import install_rate_limits
from broker.web.saml_logout_routes import saml_logout
from broker.web.saml_routes import saml
from broker.web.saml_soap_logout_routes import saml_soap_logout
from broker.web.school_backchannel_routes import school_backchannel
from broker.web.static_urls import immutable_static, install_static_urls
from broker.web.wiring import Broker, build_broker

log = logging.getLogger("broker.web")
# The pages of a login (base.html is what they extend).
LOGIN_TEMPLATES = ("base.html", "discovery.html", "autopost.html", "notice.html", "error.html")
# The policy of every page that sets none of its own (the discovery page names the schools' sign-in
# origins in its form-action): the same string on every response, so made once.
DEFAULT_CSP = content_security_policy()


# A control character (U+0000-U+001F, U+007F) is in no id, entity id or file name the broker knows:
# a path argument with one matches no route (404), the answer for any unknown address, before a
# view looks it up (the registry's NUL guard, database.py, would only make it a 400).
_NO_CONTROL = r"\x00-\x1f\x7f"


class _Segment(UnicodeConverter):
    """`<name>` and `<string:name>`: one path segment, without control characters."""

    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:
        super().__init__(map, *args, **kwargs)
        self.regex = self.regex.replace("[^/]", f"[^/{_NO_CONTROL}]")


class _Path(PathConverter):
    """`<path:name>`: the rest of the path, without control characters."""

    regex = f"[^/{_NO_CONTROL}][^{_NO_CONTROL}]*?"


class _BrokerMap(Map):
    default_converters = ImmutableDict(
        {**Map.default_converters, "default": _Segment, "string": _Segment, "path": _Path}
    )


class _BrokerFlask(Flask):
    """Flask asks, for every hook and view of every request, whether it is a coroutine function
    (inspect, ~10 hooks a request). The answer never changes for a function: remember it.

    Weakly: Flask also passes callables made per request (`after_this_request` functions, the
    bound `dispatch_request` of a class-based view), which must not pile up here."""

    url_map_class = _BrokerMap

    def __init__(self, import_name: str) -> None:
        super().__init__(import_name)
        self._sync_functions: weakref.WeakSet[Callable[..., Any]] = weakref.WeakSet()

    def send_static_file(self, filename: str) -> Response:
        # The static view: a file asked for under its current version is kept a year.
        return immutable_static(self, filename, super().send_static_file(filename))

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        if func in self._sync_functions:  # False for what cannot be weakly referenced
            return func
        made = super().ensure_sync(func)
        if made is func:  # a plain function; a coroutine function is wrapped anew each time
            with contextlib.suppress(TypeError):
                self._sync_functions.add(func)
        return made


def create_app(settings: Settings | None = None, *, services: Broker | None = None) -> Flask:
    """The broker as a WSGI app. Without arguments it reads $KETENBROKER_CONFIG (gunicorn)."""
    settings = settings or load_settings()
    if services is None:
        # A worker on a registry a newer version migrated says so in the broker's own log
        # format, or refuses to boot (before it opens anything) when this version cannot run
        # on it.
        install_log_handler(settings.log_format)
        check_newer_schema(settings.registry_url)
    app = _BrokerFlask(__name__)
    app.session_interface = BrokerSessionInterface()
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=512 * 1024,  # the SAML firewall caps messages at 256 KiB of XML
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    app.extensions["ketenbroker"] = services or build_broker(settings)
    init_i18n(app)
    install_static_urls(app)
    install_error_pages(app)
    install_browser_cookie(app)
    app.register_blueprint(saml)
    app.register_blueprint(discovery)
    app.register_blueprint(oidc_rp)
    app.register_blueprint(oidc_op)
    app.register_blueprint(notice)
    app.register_blueprint(back_to_platform)
    app.register_blueprint(my_data)
    app.register_blueprint(logout)
    app.register_blueprint(saml_logout)
    app.register_blueprint(saml_soap_logout)
    app.register_blueprint(oidc_logout)
    app.register_blueprint(school_backchannel)
    app.jinja_env.globals["logout_form_token"] = logout_form_token
    # Times on pages people read, in the broker's time zone (labels.shown_time).
    zone = app.extensions["ketenbroker"].settings.zone
    app.jinja_env.filters["shown_time"] = lambda moment: shown_time(moment, zone)
    # How the students' pages name the site: the operator's display name, never the product's.
    install_site_name(app, app.extensions["ketenbroker"].settings.organization)
    app.register_blueprint(operations)  # /readyz, /metrics
    install_portals(app)
    install_rate_limits(app, settings)

    @app.route("/")
    def home() -> str:
        return render_template("home.html")

    @app.route("/favicon.ico")
    def favicon() -> Response:
        # The pages say they have no icon (base.html); a browser that asks anyway (another
        # page, an old one) gets "nothing here", and the logs no 404 per login.
        return Response(status=204)

    @app.route("/healthz")
    def healthz() -> Response:
        return Response("ok\n", mimetype="text/plain")

    # Every response's, unless the page set its own (the discovery page's CSP). Fixed per app:
    # the base URL does not change while it runs.
    fixed_headers = [
        ("Content-Security-Policy", DEFAULT_CSP),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
        ("X-Frame-Options", "DENY"),
    ]
    if app.extensions["ketenbroker"].settings.base_url.startswith("https://"):
        fixed_headers.append(("Strict-Transport-Security", "max-age=31536000"))

    @app.after_request
    def security_headers(response: Response) -> Response:
        # One pass over the response's headers instead of one per setdefault.
        headers = response.headers
        present = {name.lower() for name in headers.keys()}  # noqa: SIM118 (a Headers object)
        for name, value in fixed_headers:
            if name.lower() not in present:
                headers.add(name, value)
        return response

    install_logging(app, settings.log_format)
    if settings.proxy_hops:
        # The client's address for rate limits and the portal's throttle, taken from the
        # X-Forwarded-For entries the operator's own proxies appended, and only from those: an
        # entry a client wrote itself sits further left and is never read. Nothing else is
        # taken from the proxy: URLs come from base_url, not from the request.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_hops, x_proto=0, x_host=0)  # type: ignore[method-assign]
    return app


def warm_up(app: Flask) -> None:
    """Compile the login pages, read the catalogues, and build the registry view and pysaml2's
    IdP and SP (metadata parsed, signing key loaded) before the first login needs them: 0.1 to
    0.2 s of CPU a worker would otherwise spend inside its first logins. gunicorn calls this in
    every worker after loading the app (broker/cli/gunicorn_conf.py). A registry that cannot be
    read yet, or metadata pysaml2 refuses, does not stop the worker (OIDC logins need neither):
    the first SAML login builds them again and fails with its own clear error if still broken."""
    # One-time work of a worker's first pages: Jinja compiles each template on first use, and
    # Flask-Babel reads each language's catalogue on first use (kept per app: i18n._catalogue).
    for name in LOGIN_TEMPLATES:
        app.jinja_env.get_template(name)
    for language in SUPPORTED_LANGUAGES:
        with app.test_request_context(f"/?{LANGUAGE_PARAM}={language}"):
            page_translations()
    services: Broker = app.extensions["ketenbroker"]
    try:
        services.saml_entities.server  # noqa: B018  # builds server and client together
    except Exception as error:  # logged; the login path reports it properly
        code = error.code if isinstance(error, BrokerError) else type(error).__name__
        log.warning("warm-up skipped reason=%s", code)
