"""A provider's answer in its content coding (gzip, deflate) decoded within the response cap.

A few KiB of gzip inflate to megabytes (deflate reaches about 1,000 to 1), so a cap on the
bytes received bounds nothing of what decoding them makes. urllib3's own decoding is bounded
only in its newest versions (2.6 and later; what it does is up to the version installed). So
rp_http reads the body as sent and decodes it here, never more than it is allowed to keep: each
step asks zlib for at most what the caller still has room for, plus one byte to tell that the
cap is passed, and zlib keeps the rest of its input (`unconsumed_tail`) undecoded. What a
hostile body makes is then never more than the cap and one byte, however far it would inflate.

gzip and deflate are decoded (what urllib3 decodes without optional packages), identity passes
as sent. Another coding, or several, is refused: the body could not be read anyway, and several
in a row would need a cap for each stage. A body that is not what its coding says is refused as
urllib3 refused it (`DecodeError`: the provider is unreachable, rp_http.py).
"""

from __future__ import annotations

from zlib import MAX_WBITS, decompressobj, error

from urllib3.exceptions import DecodeError

_GZIP = frozenset({"gzip", "x-gzip"})
_PASSED = frozenset({"", "identity"})


class ContentDecoder:
    """Decodes one body piece by piece (`decode`), each piece bounded by the caller."""

    def __init__(self, content_encoding: str) -> None:
        self.coding = content_encoding.strip().lower()
        if self.coding not in _GZIP | _PASSED | {"deflate"}:
            raise DecodeError(f"content coding not accepted: {self.coding[:40]!r}")
        self._inflater = (
            decompressobj(16 + MAX_WBITS) if self.coding in _GZIP else None
        )  # deflate: made once its first two bytes say which format it is in
        self._head = b""
        self._trailing = False  # past a gzip member that garbage followed: the rest is ignored
        self._later_member = False  # past the first gzip member: an error there is trailing

    def decode(self, data: bytes, limit: int) -> bytes:
        """What `data` decodes to, at most `limit` bytes: fewer when all of it is decoded, exactly
        `limit` when that much came out (more may be left; the caller that asked for one byte
        over its room refuses then)."""
        if self.coding in _PASSED:
            return data[:limit]
        if self._trailing:
            return b""
        if self._inflater is None:
            self._head += data
            if len(self._head) < 2:
                return b""
            self._inflater = decompressobj(_deflate_wbits(self._head))
            data, self._head = self._head, b""
        decoded = bytearray()
        data = self._inflater.unconsumed_tail + data
        while len(decoded) < limit:
            try:
                decoded += self._inflater.decompress(data, limit - len(decoded))
            except error as err:
                if self._later_member:
                    # Garbage after a whole gzip member: ignored, as urllib3 and gzip(1) do.
                    self._trailing = True
                    break
                raise DecodeError(f"body is not valid {self.coding}: {err}") from None
            data = self._inflater.unconsumed_tail
            if self._inflater.eof and self._inflater.unused_data and self.coding in _GZIP:
                # A gzip body may be several members one after the other (RFC 1952).
                data = self._inflater.unused_data
                self._inflater = decompressobj(16 + MAX_WBITS)
                self._later_member = True
            elif not data:
                break
        return bytes(decoded)


def _deflate_wbits(head: bytes) -> int:
    """`deflate` is the zlib format (RFC 9110 §8.4.1.2), but some servers send a bare deflate
    stream, which urllib3 accepts too: a zlib header (method 8, a checksum of 31) says which."""
    is_zlib = head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0
    return MAX_WBITS if is_zlib else -MAX_WBITS
