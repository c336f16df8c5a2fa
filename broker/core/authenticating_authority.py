"""Whom the broker's assertion names as the authority that authenticated the student.

SAML core 3.4.1.5.1 has a proxying IdP name, in its AuthnStatement's AuthnContext, the identity
provider it sent the presenter to (an AuthenticatingAuthority), after those the original
assertion listed. Here that is the student's school: its SAML entity id, or its OpenID
provider's issuer (stable for the school, and no other SAML provider's id). Naming it tells the
publisher which school the student attends, which is what the school's release policy decides
for its `school_id` (the BRIN, attributes.md): data minimisation is the leading rule, so the
authorities are named only where that policy releases the school's identity to the service,
and otherwise left out (docs/saml-profile.md, "Deviations", says why).
"""

from __future__ import annotations

from broker.core.model import ReleasePolicy, School, Service
from broker.core.release import released_declarations

# The catalogue attribute whose release is the school's consent to be named to the service.
SCHOOL_IDENTITY = "school_id"


def names_school(service: Service, policy: ReleasePolicy) -> bool:
    """Whether `policy` releases the school's identity to `service` (policy ∩ declared: the
    school's standing choice, not what one login happens to ask for or carry)."""
    return any(
        d.attribute == SCHOOL_IDENTITY for d in released_declarations(service, policy.attributes)
    )


def authenticating_authorities(
    school: School, service: Service, policy: ReleasePolicy, listed: tuple[str, ...]
) -> tuple[str, ...]:
    """The AuthenticatingAuthority values for the broker's assertion, in order: those the
    school's own assertion `listed` (each once; the school's IdP naming itself, as some do,
    is named last anyway), then the school's IdP. None at all when the school's policy keeps
    its identity back from `service`."""
    if not names_school(service, policy):
        return ()
    earlier = dict.fromkeys(a for a in listed if a != school.idp_entity_id)
    return (*earlier, school.idp_entity_id)
