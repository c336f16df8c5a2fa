"""What a service would receive for a made-up student: the demo school's first student.

Only demo data ever appears here (broker/demo), never a real student's: the portal has no real
student data to show, and must not get any.
"""

from __future__ import annotations

from broker.demo.school_idp import DEMO_USERS, DemoUser

DEMO_SCHOOL_NAME = "Demo Lyceum"
DEMO_SCHOOL_ID = "99XX00"


def _values(user: DemoUser) -> dict[str, tuple[str, ...]]:
    values = {
        "given_name": (user.given_name,),
        "family_name": (user.family_name,),
        "display_name": (user.display_name,),
        "email": (user.email,),
        "username": (user.uid,),
        "affiliation": (user.affiliation,),
        "groups": user.groups,
        "school_id": (DEMO_SCHOOL_ID,),
        "school_name": (DEMO_SCHOOL_NAME,),
    }
    if user.student_number:
        values["student_number"] = (user.student_number,)
    if user.eck_id:
        values["eck_id"] = (user.eck_id,)
    return values


def preview_release(attributes: frozenset[str]) -> list[tuple[str, tuple[str, ...]]]:
    """(attribute, example values) for each attribute released, in a stable order."""
    example = _values(DEMO_USERS[0])
    return [(name, example.get(name, ("…",))) for name in sorted(attributes)]
