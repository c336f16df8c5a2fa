"""When a signing certificate expires, read from its file for monitoring (not the login path).

A key file is never rewritten by a rotation (each generation has its own folder), but the
configured key 1 may be replaced by an operator; so each look costs one `stat`, and the file is
parsed again only when its identity or version changed.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from cryptography import x509

_Stamp = tuple[int, int, int]


class CertificateExpiry:
    """`not_after(path)`: the certificate's end of validity (seconds since the epoch)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[Path, tuple[_Stamp, float]] = {}

    def not_after(self, path: Path) -> float:
        """Raises OSError when the file cannot be read, ValueError when it holds no PEM
        certificate."""
        info = os.stat(path)
        stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
        with self._lock:
            known = self._seen.get(path)
        if known is not None and known[0] == stamp:
            return known[1]
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
        moment = certificate.not_valid_after_utc.timestamp()
        with self._lock:
            # Only the files of keys in use are asked for: keep those, forget retired ones.
            self._seen = {p: v for p, v in self._seen.items() if p.exists()} | {
                path: (stamp, moment)
            }
        return moment
