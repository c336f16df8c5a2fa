"""A real mod_auth_openidc 2.4 (Debian's `libapache2-mod-auth-openidc`) in Apache on a free
loopback port, configured from what docs/publishers.md tells a publisher's engineer.

The configuration is the doc's block, its placeholders filled in (the broker's address, the
client id and secret, the platform's address, a passphrase), plus what a test needs and a real
platform does not: its own folder, and a CGI script behind `/secure/` that prints what
the application receives (mod_auth_openidc's `OIDC_CLAIM_*` variables). `/loggedout.html` is the
page a logout ends on. Apache serves it over https with a certificate of a throwaway CA (the
broker's back-channel logout call verifies it: the test hands the CA to the broker).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from tests.support import apache
from tests.support.doc_snippets import doc_snippet

MODULE = "mod_auth_openidc.so"
DEBIAN_PACKAGES = "apache2 libapache2-mod-auth-openidc"
REDIRECT_PATH = "/secure/redirect_uri"
LOGGED_OUT_PATH = "/loggedout.html"

_APACHE_REST = """\
LoadModule cgid_module {modules}/mod_cgid.so
# `Require valid-user` (enabled in Debian's Apache by default).
LoadModule authz_user_module {modules}/mod_authz_user.so
LoadModule auth_openidc_module {modules}/{module}
ScriptSock {home}/cgid.sock
ScriptAlias /secure/ {home}/cgi/
Alias {logged_out} {home}/loggedout.html
AddType text/html .html
<Directory {home}>
  Require all granted
</Directory>
"""

# What the application behind mod_auth_openidc sees: the request's environment, one a line.
_ENV_CGI = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nenv | sort\n"
_LOGGED_OUT = "<!doctype html><title>Uitgelogd</title><p>Je bent uitgelogd bij het platform.</p>\n"


def missing() -> list[str]:
    """The programs this needs that are not installed here."""
    return apache.missing(MODULE, "mod_cgid.so")


def doc_block() -> str:
    """docs/publishers.md's mod_auth_openidc configuration, as written there."""
    return doc_snippet("apache", "OIDCProviderMetadataURL")


@dataclass(frozen=True)
class ModAuthOpenidc:
    site: apache.Site

    @property
    def base_url(self) -> str:  # https://localhost:PORT
        return self.site.base_url

    @property
    def redirect_uri(self) -> str:
        return self.base_url + REDIRECT_PATH

    @property
    def logged_out(self) -> str:
        return self.base_url + LOGGED_OUT_PATH

    @property
    def backchannel_logout_uri(self) -> str:
        return self.redirect_uri + "?logout=backchannel"

    def logs(self) -> str:
        return self.site.logs()


def _openidc_conf(site: apache.Site, broker: str, client_id: str, secret: str) -> str:
    """The doc's block with the placeholders filled in."""
    filled = {
        "<base>": broker,
        "<client_id>": client_id,
        "<client_secret>": secret,
        "https://<your platform>": site.base_url,
        "<a long random value of your own>": secrets.token_urlsafe(32),
    }
    block = doc_block()
    for placeholder, value in filled.items():
        assert placeholder in block, f"the doc's mod_auth_openidc block has no {placeholder}"
        block = block.replace(placeholder, value)
    return block


@contextmanager
def site(port: int) -> Iterator[ModAuthOpenidc]:
    """The folder of a mod_auth_openidc platform on `port`, before it runs: its addresses are
    known (to register the client) before the secret is (to configure it)."""
    with apache.site_folder("kb-openidc-", port) as folder:
        yield ModAuthOpenidc(folder)


@contextmanager
def running_mod_auth_openidc(
    rp: ModAuthOpenidc,
    port: int,
    broker: str,
    client_id: str,
    secret: str,
    adjust: Callable[[str], str] = str,
) -> Iterator[ModAuthOpenidc]:
    """Apache with mod_auth_openidc for `rp` on `port`, a client of the broker at `broker`,
    configured by the doc's block (changed by `adjust`, for a variant the doc describes);
    stopped afterwards. Up when it answers its logged-out page."""
    home = rp.site.home
    # Apache's children (as www-data when started by root) run the CGI script and read the
    # logged-out page; the configuration with the secret stays the starting user's.
    (home / "cgi").mkdir(mode=0o755)
    rest = _APACHE_REST.format(
        home=home, modules=apache.MODULES, module=MODULE, logged_out=LOGGED_OUT_PATH
    )
    rest += adjust(_openidc_conf(rp.site, broker, client_id, secret))
    files = {
        "cgi/env.cgi": _ENV_CGI,
        "loggedout.html": _LOGGED_OUT,
        "httpd.conf": apache.conf(rp.site, port, rest),
    }
    for name, text in files.items():
        (home / name).write_text(text, encoding="utf-8")
    (home / "cgi" / "env.cgi").chmod(0o755)
    (home / "loggedout.html").chmod(0o644)
    (home / "httpd.conf").chmod(0o600)
    with ExitStack() as stack:
        console = stack.enter_context((home / "logs" / "apache.console").open("wb"))
        processes = apache.start(stack, rp.site, console)
        apache.wait_until_up(rp.site, processes, LOGGED_OUT_PATH, lambda s: "uitgelogd" in s)
        yield rp
