"""Which addresses of an approved OpenID Connect client its publisher may change alone.

The federation operator approves a client partly on where students' codes and tokens go. A
SAML service's ACS URLs change only through the operator (`publisher update`); for a client the
same holds per origin (scheme, host and port): its publisher may change paths on the origins
its addresses have now and remove addresses, but an address on an origin none of them has goes
through the operator (`publisher update --oidc-redirect-uri …`). A client still in review may
change freely: the operator approves the list as it then is.

One rule for all three kinds of address (redirect URIs, post-logout redirect URIs, the
back-channel logout URI), and every current one counts as known. A post-logout redirect URI
carries no code or token, but it is where the broker itself sends students after a logout: on
a host nobody checked it could be a look-alike sign-in page. And were it free, one change could
put it on a new host and the next a redirect URI beside it.

Pure functions on the URL text; the URIs are checked with `redirect_uri_refusal` first.
"""

from __future__ import annotations

import json
from hashlib import sha256

from broker.core.model import OidcClient
from broker.core.origins import origin_of_address


def client_origins(client: OidcClient) -> frozenset[str]:
    """The origins of every address the client has now."""
    addresses = (
        *client.redirect_uris,
        *client.post_logout_redirect_uris,
        *((client.backchannel_logout_uri,) if client.backchannel_logout_uri else ()),
    )
    return frozenset(origin_of_address(uri) for uri in addresses)


def addresses_fingerprint(client: OidcClient) -> str:
    """A short digest of the client's addresses: the operator's approval carries the one of
    the addresses its page showed, so a list changed since is not approved unseen."""
    addresses = [
        list(client.redirect_uris),
        list(client.post_logout_redirect_uris),
        client.backchannel_logout_uri,
    ]
    return sha256(json.dumps(addresses).encode()).hexdigest()[:32]
