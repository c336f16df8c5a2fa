"""The SAML attribute names the demo peers speak: the `oid` profile of attributes.md.

The demo school sends, and the demo publisher may request, attributes under the names a real
Dutch school IdP uses: a URN with NameFormat `uri` where one exists, otherwise the plain name with
NameFormat `unspecified`; always with the plain name as FriendlyName.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from saml2 import md, saml
from saml2.attribute_converter import AttributeConverter
from saml2.s_utils import do_ava

__all__ = [
    "NAME_FORMAT_UNSPECIFIED",
    "NAME_FORMAT_URI",
    "OID_PROFILE",
    "OidProfileConverter",
    "requested_attribute",
]

NAME_FORMAT_URI = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
NAME_FORMAT_UNSPECIFIED = "urn:oasis:names:tc:SAML:2.0:attrname-format:unspecified"

# FriendlyName → (Name, NameFormat), from the catalogue in attributes.md.
OID_PROFILE: Mapping[str, tuple[str, str]] = {
    "givenName": ("urn:oid:2.5.4.42", NAME_FORMAT_URI),
    "sn": ("urn:oid:2.5.4.4", NAME_FORMAT_URI),
    "displayName": ("urn:oid:2.16.840.1.113730.3.1.241", NAME_FORMAT_URI),
    "mail": ("urn:oid:0.9.2342.19200300.100.1.3", NAME_FORMAT_URI),
    "eduPersonAffiliation": ("urn:oid:1.3.6.1.4.1.5923.1.1.1.1", NAME_FORMAT_URI),
    "isMemberOf": ("urn:oid:1.3.6.1.4.1.5923.1.5.1.1", NAME_FORMAT_URI),
    "nlEduPersonRealId": ("nlEduPersonRealId", NAME_FORMAT_UNSPECIFIED),
    "nlEduPersonProfileId": ("nlEduPersonProfileId", NAME_FORMAT_UNSPECIFIED),
    "nlEduPersonHomeOrganizationId": ("nlEduPersonHomeOrganizationId", NAME_FORMAT_UNSPECIFIED),
    "nlEduPersonHomeOrganization": ("nlEduPersonHomeOrganization", NAME_FORMAT_UNSPECIFIED),
    "eckId": ("eckId", NAME_FORMAT_UNSPECIFIED),
}


def _lookup(name: str) -> tuple[str, str, str]:
    """(Name, NameFormat, FriendlyName) for a FriendlyName or a Name from the profile."""
    if name in OID_PROFILE:
        saml_name, name_format = OID_PROFILE[name]
        return saml_name, name_format, name
    for friendly, (saml_name, name_format) in OID_PROFILE.items():
        if saml_name == name:
            return saml_name, name_format, friendly
    raise ValueError(f"attribute {name!r} is not in the oid profile")


def _attribute(friendly_name: str, values: Sequence[str]) -> Any:
    saml_name, name_format, friendly = _lookup(friendly_name)
    return saml.Attribute(
        name=saml_name,
        name_format=name_format,
        friendly_name=friendly,
        attribute_value=do_ava(list(values), "xs:string"),
    )


# pysaml2 turns an identity dict into Attributes with the first converter whose NameFormat
# matches the release policy, so one converter has to emit both NameFormats of the profile;
# the stock converters would drop FriendlyName and NameFormat for the nlEdu names.
class OidProfileConverter(AttributeConverter):  # type: ignore[misc]
    """Emits identity attributes (keyed by FriendlyName) as the oid profile prescribes."""

    def __init__(self) -> None:
        super().__init__(NAME_FORMAT_URI)
        self.from_dict(
            {
                "identifier": NAME_FORMAT_URI,
                "to": {
                    friendly: name
                    for friendly, (name, name_format) in OID_PROFILE.items()
                    if name_format == NAME_FORMAT_URI
                },
            }
        )

    def to_(self, attrvals: Mapping[str, Sequence[str]]) -> list[Any]:
        return [_attribute(key, values) for key, values in attrvals.items() if values]


def requested_attribute(name: str, *, required: bool = False) -> Any:
    """An md:RequestedAttribute for a FriendlyName or Name of the profile."""
    saml_name, name_format, friendly = _lookup(name)
    return md.RequestedAttribute(
        name=saml_name,
        name_format=name_format,
        friendly_name=friendly,
        is_required="true" if required else "false",
    )
