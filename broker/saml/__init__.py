"""The SAML adapters: front (IdP towards publishers) and back (SP towards schools), on pysaml2."""

from __future__ import annotations

import warnings

# pysaml2 7.5.5 touches cryptography's deprecated CFB mode when imported; the broker never uses
# CFB (encryption is AES-GCM only), so the warning is noise for operators.
warnings.filterwarnings("ignore", message="CFB has been moved")
