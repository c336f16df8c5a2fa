"""Which version of a school's identity provider settings a page showed.

Two administrators of one school may have its Identity provider page open at once. The later
save must not silently undo the earlier one: a stale page could put back the subject attribute,
which changes every student's pseudonym, or the provider. The page carries `provider_version`
of what it showed; a save is refused when the school's settings no longer give that version
(web/portal/school_idp.py, and again under the school row's lock in the registry).

The version is a digest of what the page shows and a save replaces: the provider, its client id,
algorithms and hosted domain, and the subject. Never the client secret, which the page never
shows (leaving the field empty keeps the current one, a colleague's new one too).
"""

from __future__ import annotations

import hashlib
import json

from broker.core.model import School

VERSION_LENGTH = 32  # hex characters: 128 bits, no two settings a page can show collide


def provider_version(school: School) -> str:
    """The version of `school`'s identity provider settings, as a page carries it."""
    upstream = school.oidc
    shown = [
        school.idp_entity_id,
        school.subject_attribute,
        school.use_eck_id,
        None
        if upstream is None
        else [
            upstream.issuer,
            upstream.client_id,
            list(upstream.algorithms),
            upstream.hosted_domain,
        ],
    ]
    digest = hashlib.sha256(json.dumps(shown, ensure_ascii=True).encode("ascii")).hexdigest()
    return digest[:VERSION_LENGTH]
