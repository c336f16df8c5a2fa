"""The TLS context of calls to schools' providers: made once per process, not per connection.

`pinned_http` hands urllib3 this context for every https connection, so that the socket TLS
wraps is of the transport's own class (its reads keep the call's deadline). Building a context
and loading a CA bundle into it costs about 19 ms of CPU, which every new connection to a
provider paid when urllib3 made one per connection.

The context is what urllib3 builds by default with verification on: chain and host name
verified (TLS 1.2 at least, the same options and flags), with the CA bundle requests verifies
against by default (certifi's, `DEFAULT_CA_BUNDLE_PATH`). The bundle is read once: a certifi
upgrade takes effect when the workers restart.
"""

from __future__ import annotations

import os
import ssl
import threading
from collections.abc import Iterable

from requests.utils import DEFAULT_CA_BUNDLE_PATH
from urllib3.util import ssl_ as urllib3_ssl

_LOCK = threading.Lock()
_CONTEXTS: dict[type[ssl.SSLSocket], ssl.SSLContext] = {}


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


def provider_context(socket_class: type[ssl.SSLSocket]) -> ssl.SSLContext:
    """The shared verifying context whose sockets are of `socket_class`, made on first use.
    No CA bundle where requests says it is: an OSError (nothing could be verified)."""
    context = _CONTEXTS.get(socket_class)
    if context is None:
        with _LOCK:
            context = _CONTEXTS.get(socket_class)
            if context is None:
                context = _CONTEXTS[socket_class] = _made(socket_class)
    return context


def _made(socket_class: type[ssl.SSLSocket]) -> _SharedContext:
    # urllib3's own choices (protocol versions, options, verification flags), copied onto a
    # context of our class: the settings stay urllib3's as it changes them.
    template = urllib3_ssl.create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
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
    context.verify_mode = template.verify_mode
    context.check_hostname = template.check_hostname
    if not os.path.exists(DEFAULT_CA_BUNDLE_PATH):
        raise OSError(f"no CA bundle at {DEFAULT_CA_BUNDLE_PATH}: TLS cannot be verified")
    if os.path.isdir(DEFAULT_CA_BUNDLE_PATH):
        context.load_verify_locations(capath=DEFAULT_CA_BUNDLE_PATH)
    else:
        context.load_verify_locations(cafile=DEFAULT_CA_BUNDLE_PATH)
    # The protocols urllib3 asks for (HTTP/1.1): set now, so its call per connection is a no-op.
    context.set_alpn_protocols(urllib3_ssl.ALPN_PROTOCOLS)
    context.sslsocket_class = socket_class
    return context
