"""What the operator's attention report (core/attention.py) says in words, in one place: each
kind's title, what it means for students and what to do, and each reason's words with, where it
is mended elsewhere than the kind's other reasons, what to do for it.

The operator portal's "Needs attention" page shows them in the reader's language; `ketenbroker
registry problems` prints them in English (outside a request `lazy_gettext` gives the English
text). A kind core/attention.py adds needs its words here, or both break: a test checks every
kind has them.

What to do depends on the reason, not only the kind: a school whose identity provider's copy
comes from a metadata source that expired is mended by that source alone (registering its
metadata again does not help: registry/reading.py `metadata_in_force`), one whose entry a
source's feed holds but left out by its federation, and a school whose id is not a BRIN on a
shared identity provider only by the operator (its portal page shows the shared provider
read-only).
"""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import LazyString
from flask_babel import lazy_gettext as _l

from broker.core.attention import Section


@dataclass(frozen=True)
class KindWords:
    title: LazyString
    meaning: LazyString  # what it means for students
    advice: LazyString  # what to do, for every reason without advice of its own


@dataclass(frozen=True)
class ReasonWords:
    words: LazyString  # beside each entry
    advice: LazyString | None = None  # what to do, where it differs from its kind's


KIND_WORDS: dict[str, KindWords] = {
    "schools_logins_refused": KindWords(
        _l("Schools whose students cannot sign in"),
        _l(
            "Every login through these schools is refused: their students cannot sign in to "
            "any service through the broker."
        ),
        _l(
            "Ask the school to register its identity provider again on its Identity provider "
            "page, or register it yourself with ketenbroker school update."
        ),
    ),
    "services_logins_refused": KindWords(
        _l("Services students cannot sign in to"),
        _l(
            "Every login at these services through the broker is refused: students cannot use them."
        ),
        _l(
            "Ask the publisher to register SAML metadata whose addresses are https on the "
            "service's page, or register it yourself with ketenbroker publisher update."
        ),
    ),
    "sources_untrusted": KindWords(
        _l("Metadata sources that are not trusted"),
        _l(
            "The copy of these federation metadata sources has expired or was never fetched: "
            "students of the schools they hold cannot sign in, and the services they hold get "
            "no logins."
        ),
        _l(
            "Check ketenbroker metadata status and the log of the refresh, and run ketenbroker "
            "metadata refresh."
        ),
    ),
    "services_awaiting_approval": KindWords(
        _l("Services waiting for your approval"),
        _l(
            "Schools do not see these services and students cannot sign in to them until you "
            "approve them."
        ),
        _l("Check each service on the Services page and approve it there."),
    ),
    "sources_stale": KindWords(
        _l("Metadata sources that fail to refresh"),
        _l(
            "Logins still work on the last good copy of these sources, but stop when that copy "
            "expires."
        ),
        _l("Check ketenbroker metadata status and the log of the refresh."),
    ),
    "sources_not_configured": KindWords(
        _l("Metadata sources no longer configured"),
        _l(
            "The registry still holds a copy of these sources, which the configuration no "
            "longer names: logins through the schools and services they hold still work, on a "
            "copy nobody refreshes, until it expires."
        ),
        _l(
            "Add the source to the configuration again, or, once no school or service needs "
            "it, run ketenbroker metadata forget NAME (without --yes it lists what would lose "
            "its metadata)."
        ),
    ),
    "schools_certificate_ending": KindWords(
        _l("Schools whose identity provider's signing certificate ends within 30 days"),
        _l(
            "Logins work, but once the certificate ends the school's identity provider signs "
            "with one the broker does not hold, and every login through it is refused. ADFS "
            "publishes its next certificate 20 days before the current one ends and signs with "
            "it 5 days later."
        ),
        _l(
            "Register the school's metadata by its URL (ketenbroker school update --saml-metadata "
            "URL): the metadata refresh then follows the change. Given as a file, ask the school "
            "for the new metadata and load it with ketenbroker school update."
        ),
    ),
    "schools_metadata_not_refreshed": KindWords(
        _l("Schools whose metadata has not been refreshed from their URL for 3 days"),
        _l(
            "Logins work with the copy held, but a new signing certificate of the school's "
            "identity provider does not reach the broker: once the provider signs with it, "
            "every login through it is refused. The school's server refuses or fails the "
            "download, or the metadata refresh does not run."
        ),
        _l(
            "Run ketenbroker metadata refresh and read the school's line: it says why the copy "
            "was refused. Ask the school to mend its metadata address, or give the new address "
            "with ketenbroker school update --saml-metadata URL."
        ),
    ),
    "services_certificate_ending": KindWords(
        _l("Services whose signing or encryption certificate ends within 30 days"),
        _l(
            "Logins work, but once the certificate ends the service signs its requests with a "
            "key the broker does not hold, or can no longer read the assertions the broker "
            "encrypts for it: every login at the service is then refused or fails. Platforms "
            "roll their keys about yearly."
        ),
        _l(
            "Register the service's metadata by its URL (ketenbroker publisher update --id ID "
            "--saml-metadata URL): the metadata refresh then follows the change. Given as a "
            "file, ask the publisher for the new metadata and load it with ketenbroker "
            "publisher update."
        ),
    ),
    "services_metadata_not_refreshed": KindWords(
        _l("Services whose metadata has not been refreshed from their URL for 3 days"),
        _l(
            "Logins work with the copy held, but a new key of the service does not reach the "
            "broker: once the service signs with it, or holds only it for decrypting, every "
            "login at the service fails. The publisher's server refuses or fails the download, "
            "or the metadata refresh does not run."
        ),
        _l(
            "Run ketenbroker metadata refresh and read the service's line: it says why the copy "
            "was refused. Ask the publisher to mend its metadata address, or give the new "
            "address with ketenbroker publisher update --id ID --saml-metadata URL."
        ),
    ),
    "chains_id_not_plain": KindWords(
        _l("Chains whose id breaks the rule for chain ids"),
        _l(
            "These ids were registered before chain ids had to be lower-case letters, digits "
            "and hyphens. A chain id with a colon can equal what the broker uses for a service "
            "in no chain (service:id): the chain's services then receive the same pseudonyms as "
            "that service, so their students can be linked."
        ),
        _l(
            "The id is in every pseudonym of the chain, so it is never renamed. Register a new "
            "chain with ketenbroker chain add and move the chain's services into it with "
            "ketenbroker chain move SERVICE --to CHAIN --window DAYS --yes: their pseudonyms "
            "change, and the window lets their platforms re-key their accounts."
        ),
    ),
    "secrets_in_clear": KindWords(
        _l("Secrets stored in clear"),
        _l(
            "Logins work, but whoever can read the registry's database can read these staff "
            "TOTP secrets and school client secrets."
        ),
        _l(
            "Run ketenbroker registry seal-secrets once every worker runs this version of the "
            "broker."
        ),
    ),
    "schools_logout_unreached": KindWords(
        _l("Schools where logout messages do not arrive"),
        _l(
            "Logins work, but when a student signs out, the broker sends the school's identity "
            "provider no logout message: the student may stay signed in there."
        ),
        _l("Ask the school to register metadata whose logout address (SLO URL) is https."),
    ),
    "services_logout_unreached": KindWords(
        _l("Services where logout messages do not arrive"),
        _l(
            "Logins work, but when a student signs out, the broker sends the service no logout "
            "message: the student may stay signed in there."
        ),
        _l("Ask the publisher to register metadata whose logout address (SLO URL) is https."),
    ),
}

# Only the operator mends what a metadata source holds: registering a copy does not help.
_SOURCE_MENDS = _l(
    "This metadata comes from a metadata source whose copy has expired, so registering it again "
    "does not help: check ketenbroker metadata status and the log of the refresh, and run "
    "ketenbroker metadata refresh."
)

# A member a metadata source's feed holds but left out (core/attention.py `_left_out`): the
# registry cannot mend it, the entry in the federation can (a copy registered here would be
# checked the same way, and for a repeated entity id the federation's feed is what is wrong).
_SCHOOL_ENTRY_MENDS = _l(
    "A metadata source holds this identity provider but left its entry out, so registering its "
    "metadata here does not mend it: ask the school to have its entry in its federation "
    "corrected. ketenbroker registry problems and ketenbroker metadata refresh say what is "
    "wrong with it."
)
_SERVICE_ENTRY_MENDS = _l(
    "A metadata source holds this service but left its entry out, so registering its metadata "
    "here does not mend it: ask the publisher to have its entry in its federation corrected. "
    "ketenbroker registry problems and ketenbroker metadata refresh say what is wrong with it."
)
_REPEATED_MENDS = _l(
    "A metadata source lists this entity id more than once, which only its federation can "
    "mend: ask the federation (or the school or publisher, to ask it) to list it once."
)

REASON_WORDS: dict[str, ReasonWords] = {
    "school_metadata_missing": ReasonWords(
        _l("no metadata in force for its identity provider"),
        _l(
            "Ask the school to register its identity provider's metadata on its Identity "
            "provider page, or register it yourself with ketenbroker school update "
            "--saml-metadata; when a metadata source is to supply it, run ketenbroker metadata "
            "refresh and check ketenbroker metadata status."
        ),
    ),
    "school_source_expired": ReasonWords(
        _l("the metadata source's copy of its identity provider has expired"), _SOURCE_MENDS
    ),
    "school_entry_unusable": ReasonWords(
        _l("a metadata source left out its identity provider: its entry fails the checks"),
        _SCHOOL_ENTRY_MENDS,
    ),
    "school_entry_expired": ReasonWords(
        _l("a metadata source left out its identity provider: its entry has expired"),
        _SCHOOL_ENTRY_MENDS,
    ),
    "school_entry_id_repeated": ReasonWords(
        _l("a metadata source lists its identity provider's entity id more than once"),
        _REPEATED_MENDS,
    ),
    "school_entry_left_out": ReasonWords(
        _l("a metadata source left out its identity provider"), _SCHOOL_ENTRY_MENDS
    ),
    "school_sso_not_https": ReasonWords(_l("sign-in address (SSO URL) is not https")),
    "client_secret_unreadable": ReasonWords(
        _l("its client secret cannot be opened"),
        _l(
            "Ask the school to give its client secret again on its Identity provider page, or "
            "give it yourself with ketenbroker registry import (client_secret_file)."
        ),
    ),
    "hosted_domain_missing": ReasonWords(
        _l("no hosted domain on a shared provider"),
        _l(
            "Ask the school to enter its hosted domain on its Identity provider page, or set it "
            "yourself with ketenbroker school update --hosted-domain."
        ),
    ),
    "shared_idp_school_not_brin": ReasonWords(
        _l("its id is not a BRIN, on an identity provider that must name the school"),
        _l(
            "Only you can mend this: the school's Identity provider page shows a shared "
            "identity provider read-only. Register the school again with its BRIN as id "
            "(ketenbroker school remove, then ketenbroker school add --id with its BRIN); its "
            "students get new pseudonyms at its services."
        ),
    ),
    "subject_without_realm": ReasonWords(
        _l("identifies students by user name or student number, and has no realm"),
        _l(
            "Register the realms the school's user names or student numbers end in "
            "(@school.nl): ketenbroker registry export, add them to the school's scopes, "
            "ketenbroker registry import. Or the school chooses another attribute on its "
            "Identity provider page."
        ),
    ),
    "service_metadata_missing": ReasonWords(
        _l("no SAML metadata in force"),
        _l(
            "Ask the publisher to register the service's SAML metadata on the service's page, "
            "or register it yourself with ketenbroker publisher update; when a metadata source "
            "is to supply it, run ketenbroker metadata refresh and check ketenbroker metadata "
            "status."
        ),
    ),
    "service_source_expired": ReasonWords(
        _l("the metadata source's copy of it has expired"), _SOURCE_MENDS
    ),
    "service_entry_unusable": ReasonWords(
        _l("a metadata source left it out: its entry fails the checks"), _SERVICE_ENTRY_MENDS
    ),
    "service_entry_expired": ReasonWords(
        _l("a metadata source left it out: its entry has expired"), _SERVICE_ENTRY_MENDS
    ),
    "service_entry_id_repeated": ReasonWords(
        _l("a metadata source lists its entity id more than once"), _REPEATED_MENDS
    ),
    "service_entry_left_out": ReasonWords(
        _l("a metadata source left it out"), _SERVICE_ENTRY_MENDS
    ),
    "acs_not_https": ReasonWords(_l("address for receiving sign-ins (ACS URL) is not https")),
    "expired": ReasonWords(_l("its copy has expired")),
    "missing": ReasonWords(_l("no good copy yet")),
    "unconfigured": ReasonWords(_l("not in the configuration; its copy is still in force")),
    "unconfigured_expired": ReasonWords(_l("not in the configuration, and its copy has expired")),
    "awaiting_approval": ReasonWords(_l("waiting for approval")),
    "chain_pseudonyms_shared": ReasonWords(
        _l("its services receive the pseudonyms of the service of that id, which is in no chain")
    ),
    "chain_id_has_colon": ReasonWords(_l("its id has a colon")),
    "chain_id_not_plain": ReasonWords(
        _l("its id has characters other than lower-case letters, digits and hyphens")
    ),
    "school_certificate_ending": ReasonWords(_l("no signing certificate valid after 30 days")),
    "school_metadata_not_refreshed": ReasonWords(
        _l("the metadata refresh has not accepted a copy from its URL for 3 days")
    ),
    "service_certificate_ending": ReasonWords(
        _l("no signing or no encryption certificate valid after 30 days")
    ),
    "service_metadata_not_refreshed": ReasonWords(
        _l("the metadata refresh has not accepted a copy from its URL for 3 days")
    ),
    "school_slo_not_https": ReasonWords(_l("logout address (SLO URL) is not https")),
    "service_slo_not_https": ReasonWords(_l("logout address (SLO URL) is not https")),
}


def reason_words(code: str) -> str:
    """The reason in words; a stale source's reason is its last refusal's code, said as is."""
    found = REASON_WORDS.get(code)
    return str(found.words) if found else str(_l("refresh failing (%(code)s)", code=code))


def advice_of(section: Section) -> list[tuple[tuple[str, ...], str]]:
    """What to do for `section`: each distinct advice with the reasons (codes) it answers, in
    the order of the section's reasons (all of them, not only the entries shown)."""
    grouped: dict[str, list[str]] = {}
    default = str(KIND_WORDS[section.kind.code].advice)
    for code, _count in section.reasons or (("", 0),):
        found = REASON_WORDS.get(code)
        advice = str(found.advice) if found and found.advice else default
        grouped.setdefault(advice, []).append(code)
    return [(tuple(c for c in codes if c), advice) for advice, codes in grouped.items()]
