"""The QR code of an authenticator app's otpauth:// link, drawn on the server as inline SVG.

Inline SVG markup needs no image request, no data: URL and no script, so the portal's Content
Security Policy stays as it is; the code is a single <path> with presentation attributes (no
style attribute, which `default-src 'self'` would block). segno is imported here only.
"""

from __future__ import annotations

import segno
from markupsafe import Markup

# 4 px per module: a code of a 32-character key, an e-mail address and the issuer is 45-53
# modules wide (quiet zone included), about 200 px, which phone cameras read off a laptop screen.
MODULE_PIXELS = 4


def qr_code_svg(text: str, title: str) -> Markup:
    """`text` as a QR code (error correction M), an <svg> element titled `title` for screen
    readers. segno escapes the title; the text only shapes the path."""
    code = segno.make(text, error="m", micro=False)
    svg = code.svg_inline(
        scale=MODULE_PIXELS,
        title=title,
        svgclass="qr-code",
        lineclass=None,
        dark="#000",
        light="#fff",
    )
    return Markup(svg)  # noqa: S704 - segno built it: a path, and the title escaped
