"""What changed, as read-only values: handed to plugins inside the change's transaction."""

from __future__ import annotations

from dataclasses import dataclass

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
    """Contacts newly linked to a static group (existing members are not in it)."""

    group: GroupSnapshot
    contact_ids: tuple[int, ...]
    source: MembershipSource
    actor_id: int | None


@dataclass(frozen=True)
class MembersRemoved:
    group: GroupSnapshot
    contact_ids: tuple[int, ...]
    source: MembershipSource
    actor_id: int | None


Change = GroupCreated | GroupUpdated | GroupDeleted | MembersAdded | MembersRemoved
