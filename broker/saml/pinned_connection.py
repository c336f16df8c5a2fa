"""http.client connections of a metadata fetch: to the checked addresses, within the fetch's limits.

`metadata_fetch` looks the host name up once and checks every address (`broker/name_lookup.py`);
the connection goes to those addresses and every wait ends by the fetch's deadline, by the rule
of `broker/deadline_socket.py`, whose `Limits` the fetch's sockets carry. For https the socket
is wrapped with the host name of the URL: the certificate is verified against that name (and it
is the SNI), not against the address.
"""

from __future__ import annotations

import http.client
import ssl
import sys
from typing import cast

from broker.deadline_socket import DeadlineTLSSocket, Limits, connect
from broker.name_lookup import Destination


class PinnedConnection(http.client.HTTPConnection):
    """http.client's connection, opened to the checked addresses instead of the name. No proxy
    settings are read (http.client reads none), so nothing resolves the name on its behalf."""

    def __init__(
        self, host: str, port: int, destinations: list[Destination], limits: Limits
    ) -> None:
        super().__init__(host, port, timeout=limits.step)
        self._destinations = destinations
        self._limits = limits

    def connect(self) -> None:
        # The event http.client's own connect raises, for audit hooks that watch connections.
        sys.audit("http.client.connect", self, self.host, self.port)
        self.sock = connect(self._destinations, self._limits.step, self._limits)


class PinnedTLSConnection(PinnedConnection):
    default_port = http.client.HTTPS_PORT

    def connect(self) -> None:
        super().connect()
        # Made per connection, so the system's trust store (SSL_CERT_FILE included) is read as
        # it is now; the chain and the host name are verified by default.
        context = ssl.create_default_context()
        context.set_alpn_protocols(["http/1.1"])
        context.sslsocket_class = DeadlineTLSSocket
        # As in http.client's own: the connection holds the socket (closes it) whatever fails.
        self.sock = secured = cast(
            DeadlineTLSSocket,
            context.wrap_socket(
                self.sock, server_hostname=self.host, do_handshake_on_connect=False
            ),
        )
        secured.deadline = self._limits  # before the handshake, which keeps it too
        secured.do_handshake()
