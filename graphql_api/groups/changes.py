"""What changed, as read-only values: handed to plugins inside the change's transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from graphql_api.groups.models import Group, GroupKind, MembershipSource


@dataclass(frozen=True)
class GroupSnapshot:
    """A group's settings at one moment; plugins get this, never the live row."""

    id: int
    name: str
    kind: GroupKind
    neighbourhood_role: str | None
    show_on_contact: bool
    email_on_new_member: bool
    new_member_email_template_id: int | None
    closed: bool

    @classmethod
    def of(cls, group: Group) -> GroupSnapshot:
        return cls(
            id=group.id,
            name=group.name,
            kind=group.kind,
            neighbourhood_role=group.neighbourhood_role,
            show_on_contact=group.show_on_contact,
            email_on_new_member=group.email_on_new_member,
            new_member_email_template_id=group.new_member_email_template_id,
            closed=group.closed,
        )


@dataclass(frozen=True)
class GroupCreated:
    group: GroupSnapshot
    actor_id: int | None


@dataclass(frozen=True)
class GroupUpdated:
    before: GroupSnapshot
    after: GroupSnapshot
    actor_id: int | None


@dataclass(frozen=True)
class GroupDeleted:
    group: GroupSnapshot
    actor_id: int | None


@dataclass(frozen=True)
class MembersAdded:
    """Contacts that became members of a group (existing members are not in it): linked
    to a static group (``source`` MANUAL, API, PORTAL, ...), or entering a dynamic or
    composite group's stored members (``source`` DERIVED)."""

    group: GroupSnapshot
    contact_ids: tuple[int, ...]
    source: MembershipSource
    actor_id: int | None
    cause: str | None = None
    """For source DERIVED: the change that made the contacts enter, in words."""
    job_id: int | None = None
    """The bulk job this change is a chunk of, if any."""


@dataclass(frozen=True)
class MembersRemoved:
    group: GroupSnapshot
    contact_ids: tuple[int, ...]
    source: MembershipSource
    actor_id: int | None
    cause: str | None = None
    """For source DERIVED: the change that made the contacts leave, in words."""
    job_id: int | None = None
    """The bulk job this change is a chunk of, if any."""


@dataclass(frozen=True)
class ContactErased:
    """A contact's personal data was erased (GDPR article 17); pass it on to systems that
    hold copies."""

    contact_id: int
    actor_id: int | None


@dataclass(frozen=True)
class ContactsUpdated:
    """Contacts' own fields were changed (not made, nor erased): ``fields`` are the
    GraphQL names of the fields set (``email``, ``firstName``), whether or not a value
    differs; for systems that hold a copy (a mailing list)."""

    contact_ids: tuple[int, ...]
    fields: tuple[str, ...]
    actor_id: int | None
    cause: str | None = None
    job_id: int | None = None


@dataclass(frozen=True)
class MailOptOutChanged:
    """Contacts opted out of a group's mail (``opted_out``), or withdrew that opt-out;
    ``source`` says how (``UNSUBSCRIBE_LINK``, ``MAILING_LIST``, ``PORTAL``, ``STAFF``)."""

    contact_ids: tuple[int, ...]
    group_id: int
    source: str
    opted_out: bool


@dataclass(frozen=True)
class PortalMessage:
    """A mail the portal needs sent: an invitation or a password-reset link, carrying a
    single-use token that only the mail holds in clear."""

    kind: str
    """``portal.invitation`` or ``portal.password_reset``."""
    contact_id: int
    email: str
    name: str
    token: str
    expires_at: datetime


Change = (
    GroupCreated
    | GroupUpdated
    | GroupDeleted
    | MembersAdded
    | MembersRemoved
    | ContactErased
    | ContactsUpdated
    | MailOptOutChanged
    | PortalMessage
)
