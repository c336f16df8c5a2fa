"""The TLS contexts of calls to schools' providers: made once per process, not per call.

`pinned_http` hands urllib3 one of these for every https connection, so that the socket TLS
wraps is of the transport's own class (its reads keep the call's deadline). A context is made
once for each `verify` value and shared by every session and connection after that: building
one and loading a CA bundle into it costs milliseconds, which a login's back-channel calls
should not pay each time.

With `verify=True` (what `SchoolSession` uses) the context is what urllib3 builds for requests
by default, chain and host name verified (TLS 1.2 at least, the same options and flags), with
the CA bundle requests verifies against by default (certifi's, `DEFAULT_CA_BUNDLE_PATH`). The
bundle is read once: a certifi upgrade takes effect when the workers restart. `verify` set to a
CA file or folder trusts that alone, as in requests; `verify=False` verifies nothing.
"""

from __future__ import annotations

import os
import ssl
import threading
from collections.abc import Iterable

from requests.utils import DEFAULT_CA_BUNDLE_PATH
from urllib3.util import ssl_ as urllib3_ssl

_LOCK = threading.Lock()
_CONTEXTS: dict[tuple[bool | str, type[ssl.SSLSocket]], ssl.SSLContext] = {}


class _SharedContext(ssl.SSLContext):
    """A context several threads connect with. urllib3 sets the ALPN protocols again for each
    connection; on a shared context that would replace the list OpenSSL copies, without a lock,
    into a connection being opened in another thread. The same list again is left alone."""

    _alpn: tuple[str, ...] | None = None

    def set_alpn_protocols(self, alpn_protocols: Iterable[str]) -> None:
        wanted = tuple(alpn_protocols)
        if wanted != self._alpn:
            super().set_alpn_protocols(wanted)
            self._alpn = wanted


def provider_context(verify: bool | str, socket_class: type[ssl.SSLSocket]) -> ssl.SSLContext:
    """The shared context for `verify` (True, False or a CA file or folder), whose sockets are
    of `socket_class`. Made on first use; a CA path that does not exist is an OSError."""
    key = (verify, socket_class)
    context = _CONTEXTS.get(key)
    if context is None:
        with _LOCK:
            context = _CONTEXTS.get(key)
            if context is None:
                context = _CONTEXTS[key] = _made(verify, socket_class)
    return context


def _made(verify: bool | str, socket_class: type[ssl.SSLSocket]) -> _SharedContext:
    required = verify is not False
    # urllib3's own choices (protocol versions, options, verification flags), copied onto a
    # context of our class: the settings stay urllib3's as it changes them.
    template = urllib3_ssl.create_urllib3_context(
        cert_reqs=ssl.CERT_REQUIRED if required else ssl.CERT_NONE
    )
    context = _SharedContext(ssl.PROTOCOL_TLS_CLIENT)
    context.options = template.options
    context.verify_flags = template.verify_flags
    context.minimum_version = template.minimum_version
    context.maximum_version = template.maximum_version
    if template.post_handshake_auth is not None:
        context.post_handshake_auth = template.post_handshake_auth
    if template.keylog_filename:
        context.keylog_filename = template.keylog_filename
    context.hostname_checks_common_name = template.hostname_checks_common_name
    if required:
        context.verify_mode = template.verify_mode
        context.check_hostname = template.check_hostname
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if required:
        where = DEFAULT_CA_BUNDLE_PATH if verify is True else str(verify)
        if not os.path.exists(where):
            raise OSError(f"no CA bundle at {where}: TLS cannot be verified")
        if os.path.isdir(where):
            context.load_verify_locations(capath=where)
        else:
            context.load_verify_locations(cafile=where)
    # The protocols urllib3 asks for (HTTP/1.1): set now, so its call per connection is a no-op.
    context.set_alpn_protocols(urllib3_ssl.ALPN_PROTOCOLS)
    context.sslsocket_class = socket_class
    return context
