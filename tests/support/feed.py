"""A metadata feed on a loopback port: serves whatever bytes a test sets, or misbehaves on
request (cut short mid-body, answer 500). `stop()` makes the source unreachable."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.live import free_ports


class Feed:
    def __init__(self) -> None:
        self.body = b""
        # "ok", "truncate" (Content-Length promises the whole body, half is sent) or "error"
        self.mode = "ok"
        self.requests = 0
        feed = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                feed.requests += 1
                if feed.mode == "error":
                    self.send_error(500)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/samlmetadata+xml")
                self.send_header("Content-Length", str(len(feed.body)))
                self.end_headers()
                sent = feed.body if feed.mode == "ok" else feed.body[: len(feed.body) // 2]
                self.wfile.write(sent)
                self.wfile.flush()
                if feed.mode == "truncate":
                    self.close_connection = True

            def log_message(self, *args: object) -> None:
                return None

        self.port = free_ports(1)
        self.url = f"http://127.0.0.1:{self.port}/federation.xml"
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self._running = True

    def stop(self) -> None:
        if self._running:
            self._server.shutdown()
            self._server.server_close()
            self._running = False
