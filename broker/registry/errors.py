"""Errors of the registry, in the core error tree.

Those of the write side are `BadRequest`s: an administrator (CLI or portal) asked for something
the registry refuses, and the edge shows the reason. Details name ids and entity ids only, never
personal data (the registry holds none). `RegistryNotMigrated` is the installation's mistake.
"""

from __future__ import annotations

from broker.core.admins import Invitation
from broker.core.errors import BadRequest, ConfigurationError, PolicyRefusal, RegistryUnavailable


class RegistryNotMigrated(ConfigurationError):
    """The database answered, but lacks a table or column this version reads: its schema is
    missing or behind (`ketenbroker migrate` has not run). Not "try again": it stays so until
    an operator migrates."""

    code = "registry_not_migrated"

    def __init__(self) -> None:
        super().__init__("registry schema missing or behind: run ketenbroker migrate")


class RegistryReadOnly(RegistryUnavailable):
    """The database answered but takes no writes (a demoted primary, a pooler pointed at a
    standby, `default_transaction_read_only`): every login's receipt would fail, so /readyz
    says not ready (`registry_read_only`). The logins themselves meet the write's own error
    (SQLSTATE 25006), which database.py makes unavailable as well."""

    code = "registry_read_only"

    def __init__(self) -> None:
        super().__init__("registry database is read-only")


class TextWithNul(BadRequest):
    """Text with a NUL character (U+0000) for the registry: nothing stored can hold one, and
    PostgreSQL refuses to store or compare it. No typed text has one; a crafted request does."""

    code = "text_with_nul"
    public_message = "The request contains a NUL character, which the broker does not accept."

    def __init__(self) -> None:
        super().__init__("a statement parameter holds a NUL character")


class DeclarationsChanged(BadRequest):
    """A school's choice made on a page that showed an older version of the service's
    declarations: saving it would record agreement to declarations the school never saw."""

    code = "declarations_changed"
    public_message = (
        "The publisher changed what this platform asks for while you had this page open. "
        "Read it again and save your choice again."
    )

    def __init__(self, service_id: str, seen: int, current: int) -> None:
        super().__init__(
            f"service {service_id}'s declarations are at version {current}, the choice was made "
            f"on version {seen}; nothing was saved"
        )


class PolicyChanged(BadRequest):
    """A school's choice made on a page that showed an older version of its release policy: a
    colleague saved a choice since, which saving this one would silently undo."""

    code = "policy_changed"
    public_message = (
        "A colleague saved a choice for this platform while you had this page open. Check the "
        "current choice below and save yours again."
    )

    def __init__(self, school_id: str, service_id: str, seen: int, current: int) -> None:
        super().__init__(
            f"school {school_id}'s policy for service {service_id} is at version {current}, the "
            f"choice was made on version {seen}; nothing was saved"
        )


class UndeclaredAttribute(BadRequest):
    """A school tried to release an attribute the service never declared it needs."""

    code = "undeclared_attribute"
    public_message = "A school can only release attributes the platform declared it needs."

    def __init__(self, service_id: str, attributes: tuple[str, ...]) -> None:
        super().__init__(
            f"service {service_id} did not declare {', '.join(attributes)}; "
            "it can only receive attributes it declared with a purpose"
        )
        self.service_id = service_id
        self.attributes = attributes


class DuplicateEntry(BadRequest):
    """An id or entity id that must be unique is already taken."""

    code = "duplicate_entry"
    public_message = "An entry with this identifier already exists."

    def __init__(self, kind: str, field: str, value: str) -> None:
        super().__init__(f"a {kind} with {field} {value!r} already exists")
        self.kind = kind
        self.field = field
        self.value = value


class UnknownChain(BadRequest):
    code = "unknown_chain"
    public_message = "This chain is not known to the broker."

    def __init__(self, chain_id: str) -> None:
        super().__init__(f"no chain with id {chain_id!r}")
        self.chain_id = chain_id


class MetadataChanged(BadRequest):
    """An entry's registered metadata is no longer the copy an update was prepared against."""

    code = "metadata_changed"
    public_message = "The metadata changed meanwhile."

    def __init__(self, entry_id: str) -> None:
        super().__init__(f"{entry_id}: the metadata changed meanwhile; run the command again")
        self.entry_id = entry_id


class ProviderChanged(BadRequest):
    """A school's OpenID provider is no longer the one a change was checked against."""

    code = "provider_changed"
    public_message = "The school's identity provider changed meanwhile."

    def __init__(self, school_id: str) -> None:
        super().__init__(
            f"school {school_id}: its identity provider changed meanwhile; nothing was "
            "changed, run the command again"
        )
        self.school_id = school_id


class ClientChanged(BadRequest):
    """An OpenID Connect client is no longer as the page that changes or approves it read it:
    its publisher saved other addresses, its secret was renewed or the operator approved it
    since. Checked under the service row's lock, so nothing is written on a stale reading."""

    code = "client_changed"
    public_message = "The client changed meanwhile."

    def __init__(self, service_id: str) -> None:
        super().__init__(
            f"service {service_id}: its OpenID Connect client changed meanwhile; nothing was "
            "changed"
        )
        self.service_id = service_id


class PublisherInUse(BadRequest):
    """A publisher organisation that services still name cannot be removed."""

    code = "publisher_in_use"
    public_message = "This publisher still has services."

    def __init__(self, publisher_id: str, services: tuple[str, ...]) -> None:
        super().__init__(
            f"publisher {publisher_id} still has services {', '.join(services)}: remove each "
            "first with `ketenbroker publisher remove SERVICE --yes`; nothing was changed"
        )
        self.publisher_id = publisher_id
        self.services = services


class ChainInUse(BadRequest):
    """A chain that services are still in cannot be removed: they would lose their chain."""

    code = "chain_in_use"
    public_message = "This chain still has services."

    def __init__(self, chain_id: str, services: tuple[str, ...]) -> None:
        super().__init__(
            f"chain {chain_id} still has services {', '.join(services)}: move each to another "
            "chain or out of every chain (`ketenbroker chain move SERVICE --to CHAIN` or "
            "`--no-chain`, the operator portal's Services page, or a registry import; its "
            "pseudonyms change), or remove it with `ketenbroker publisher remove SERVICE "
            "--yes`; nothing was changed"
        )
        self.chain_id = chain_id
        self.services = services


class ChainInWindow(BadRequest):
    """A chain in a pseudonym key migration window is not removed: the window would stay
    open, counted by monitoring, with no chain left to finish it for."""

    code = "chain_in_window"
    public_message = "This chain is in a pseudonym key migration window."

    def __init__(self, chain_id: str, ends: str) -> None:
        super().__init__(
            f"chain {chain_id} is in a pseudonym key migration window until {ends}: finish "
            f"it first with `ketenbroker pseudonym-key finish --chain {chain_id}`; nothing "
            "was changed"
        )
        self.chain_id = chain_id


class UnknownPublisher(BadRequest):
    code = "unknown_publisher"
    public_message = "This publisher is not known to the broker."

    def __init__(self, publisher_id: str, why: str = "") -> None:
        super().__init__(f"no publisher with id {publisher_id!r}{f': {why}' if why else ''}")
        self.publisher_id = publisher_id


class UnknownAdmin(BadRequest):
    """No administrator account with this id (never one, or removed meanwhile: a second click)."""

    code = "unknown_admin"
    status = 404
    public_message = "This administrator account does not exist (any more)."

    def __init__(self, admin_id: int) -> None:
        super().__init__(f"no administrator with id {admin_id}")
        self.admin_id = admin_id


class LastOperator(BadRequest):
    """The broker's last operator account is kept: without one, nobody could onboard a school,
    approve a service or invite an administrator in the portal any more."""

    code = "last_operator"
    public_message = "The last operator account cannot be removed."

    def __init__(self, admin_id: int) -> None:
        super().__init__(
            f"administrator {admin_id} is the last operator: create another first "
            "(`ketenbroker admin create`, or an invitation in the portal); nothing was changed"
        )
        self.admin_id = admin_id


class InvitationUnusable(BadRequest):
    """Unknown, used or expired: one answer for all three, so a probe learns nothing."""

    code = "invitation_unusable"
    public_message = "This invitation link is not valid (any more). Ask for a new invitation."


class InvitationOpen(BadRequest):
    """An invitation for the address is open already. A second one would be another valid
    link to the one account an address can have (a reload of the page that made the first
    sends its form again), so it is made only to replace the open one, which the operator
    names (`add_invitation`'s `replaces`); that one's link then stops working."""

    code = "invitation_open"
    public_message = "An invitation for this e-mail address is open already."

    def __init__(self, open_invitation: Invitation) -> None:
        # The address stays out of the detail (it gets logged); the hash's start names it.
        super().__init__(f"invitation {open_invitation.token_hash[:8]} for the address is open")
        self.invitation = open_invitation


class ServiceSwitchedOff(PolicyRefusal):
    """The student's school switched this service off in its portal: a login of its students
    there is refused like any release the policy cannot make, and the service hears so
    (SAML RequestDenied, OIDC access_denied; web/service_answers.refuse_to_service)."""

    code = "service_switched_off"
    status = 403
    public_message = "Your school has switched this learning platform off."

    def __init__(self, school_id: str, service_id: str) -> None:
        super().__init__(f"school {school_id} switched service {service_id} off")


class SharedIdpMetadataDiffers(BadRequest):
    """A school joins an IdP other schools are registered with, with other metadata than
    theirs: one IdP has one metadata (registry/shared_idps.py), and which copy is right is the
    operator's to say, not the registry's to guess."""

    code = "shared_idp_metadata_differs"
    public_message = "Schools on one identity provider must have the same metadata."

    def __init__(self, entity_id: str, school_ids: tuple[str, ...]) -> None:
        listed = ", ".join(school_ids)
        super().__init__(
            f"IdP {entity_id!r} is already registered for school(s) {listed} with other "
            f"metadata; register this school with the same metadata, or first update it for "
            f"all of them (`ketenbroker school update --id {school_ids[0]} --saml-metadata "
            "FILE` updates every school on that IdP)"
        )
        self.entity_id = entity_id
        self.school_ids = school_ids


class SchoolIdNotBrin(BadRequest):
    """A school would be on an IdP whose logins must name their school, and its id is not a
    BRIN: the IdP's value is compared with the id exactly, so none of its logins could pass."""

    code = "shared_idp_school_not_brin"
    public_message = "A school on a school board's identity provider needs its BRIN as id."

    def __init__(self, entity_id: str, problem: str) -> None:
        super().__init__(f"IdP {entity_id!r} must name the school of each login: {problem}")
        self.entity_id = entity_id


class SharedIdpNamesSchool(BadRequest):
    """The operator asked an IdP that several schools share to stop requiring the school named:
    each of its logins would then sign in at whichever of them the student chose."""

    code = "shared_idp_names_school"
    public_message = (
        "Sign-ins through an identity provider that several schools share must name the school."
    )

    def __init__(self, entity_id: str, school_ids: tuple[str, ...]) -> None:
        super().__init__(
            f"IdP {entity_id!r} is registered for schools {', '.join(school_ids)}: its logins "
            "must name their school while more than one school is on it; nothing was changed"
        )
        self.entity_id = entity_id


class UnknownIdp(BadRequest):
    """An IdP entity id the registry knows nothing of: no school is on it, its logins are not
    marked to name their school, and no metadata source holds it. A mark set for it would most
    likely be a typing error's, holding no IdP to anything."""

    code = "unknown_idp"
    public_message = "This identity provider is not known to the broker."

    def __init__(self, entity_id: str) -> None:
        super().__init__(
            f"no school is registered on IdP {entity_id!r}, its logins are not marked to name "
            "the school, and no metadata source holds it: check the entity id (`ketenbroker "
            "school list` shows each school's IdP, `registry export` the marked IdPs no school "
            "is on); nothing was changed"
        )
        self.entity_id = entity_id


class ServiceIdUsedBefore(BadRequest):
    """A new service under an id a removed service had: it would receive that service's
    pseudonyms and continue its history (id_reuse.py). The public message says no more, never
    whose it was; the detail, for the operator's command, says what would allow it: `flags`,
    of the command `named_by` names (the registry does not know which one wrote)."""

    code = "service_id_used_before"
    public_message = "This service id was used before; choose another."

    def __init__(
        self, service_id: str, why: str, *, flags: tuple[str, ...], command: str = ""
    ) -> None:
        given = " ".join(flags)
        allowing = f"`ketenbroker {command} {given}`" if command else given
        super().__init__(
            f"service id {service_id!r} was used before, and a service registered under it "
            f"receives the same pseudonyms and continues its history: {why} ({allowing}, "
            "docs/cli.md); nothing was added"
        )
        self.service_id, self.why, self.flags = service_id, why, flags

    def named_by(self, command: str) -> ServiceIdUsedBefore:
        """The same refusal, its flags named as options of the operator's `command`."""
        return ServiceIdUsedBefore(self.service_id, self.why, flags=self.flags, command=command)
