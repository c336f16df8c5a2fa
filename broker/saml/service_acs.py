"""A service's ACS URLs: where the front's answers go, and only while its metadata lists them.

The AuthnRequest's ACS URL is checked against the service's metadata when the request arrives
(authn_request.py) and stored with the login; the answer comes minutes later. A publisher who
removed that URL from its metadata meanwhile (a host given up, a URL that turned out wrong)
must not be sent the assertion there, nor an error Response (SAML profiles 4.1.4.1, 4.1.4.5:
the ACS must be the service's own): the front checks it again against the metadata in force
(front.py). Both read the ACS list through the Server's indexed metadata store
(metadata_index.py): a dict lookup and a short list, no parse.
"""

from __future__ import annotations

import logging
from typing import Any

from saml2 import BINDING_HTTP_POST
from saml2.mdstore import UnknownSystemEntity
from saml2.s_utils import UnsupportedBinding
from saml2.server import Server

from broker.core.endpoints import is_acceptable_endpoint
from broker.core.errors import InvalidMessage, ServiceAcsNotHttps, UnknownService
from broker.saml.metadata_check import ACS_NOT_HTTPS, endpoint_refusal

log = logging.getLogger(__name__)

ACS_NOT_IN_METADATA = "acs_not_in_metadata"


def post_acs_endpoints(server: Server, entity_id: str) -> list[dict[str, Any]]:
    """The service's HTTP-POST AssertionConsumerService endpoints in the metadata the Server
    holds now ([] when it lists none); UnknownService when its metadata is gone."""
    try:
        endpoints = server.metadata.assertion_consumer_service(entity_id, BINDING_HTTP_POST)
    except UnknownSystemEntity:
        raise UnknownService("service no longer in the metadata") from None
    except UnsupportedBinding:
        # pysaml2's word for an entity that has ACS endpoints, none of them HTTP-POST.
        return []
    return list(endpoints or [])


def check_acs_scheme(issuer: str, acs_url: str) -> None:
    """An ACS URL from the service's metadata that is not https (plain http only to loopback):
    a copy registered before metadata intake checked ACS URLs (metadata_check.py), or written
    past it. Neither the assertion nor an error Response goes there over plain http (or to
    `javascript:`), and the student is not sent to a school for a login that could end nowhere
    else: a page, nothing sent. A check on the string in hand, no parse."""
    if not is_acceptable_endpoint(acs_url):
        message, params = endpoint_refusal(ACS_NOT_HTTPS, acs_url, issuer)
        refused = ServiceAcsNotHttps(message, **params)
        log.warning("refused service=%s code=%s: %s", issuer, refused.code, refused.detail)
        raise refused


def check_acs_in_force(server: Server, issuer: str, acs_url: str) -> str:
    """`acs_url` (checked when the request came, its scheme too: the string has not changed)
    again against the service's metadata in force, as the answer is about to go there;
    returned when it is still listed. Refused as at the request (`acs_not_in_metadata`): the
    login ends with the student's page, and nothing is sent. A login stored before this check
    has the same field."""
    locations = {endpoint["location"] for endpoint in post_acs_endpoints(server, issuer)}
    if acs_url not in locations:
        log.warning(
            "refused service=%s code=%s: the ACS URL left the metadata during the login",
            issuer,
            ACS_NOT_IN_METADATA,
        )
        raise InvalidMessage("ACS URL left the metadata during the login", code=ACS_NOT_IN_METADATA)
    return acs_url
