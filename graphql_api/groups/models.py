"""Groups, their explicit memberships and the append-only membership history."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from graphql_api.kernel.db import IDS_NEVER_REUSED, Base, UtcDateTime, string_enum, utcnow


class GroupKind(enum.StrEnum):
    STATIC = "STATIC"
    DYNAMIC = "DYNAMIC"
    COMPOSITE = "COMPOSITE"


class CompositionMode(enum.StrEnum):
    ANY = "ANY"
    ALL = "ALL"


class LinkRole(enum.StrEnum):
    """How a group depends on another: included, excluded, or named by its filter."""

    INCLUDE = "INCLUDE"
    EXCLUDE = "EXCLUDE"
    FILTER = "FILTER"


class MembershipSource(enum.StrEnum):
    MANUAL = "MANUAL"
    BULK = "BULK"
    PORTAL = "PORTAL"
    API = "API"
    IMPORT = "IMPORT"
    CONVERSION = "CONVERSION"
    DERIVED = "DERIVED"
    """An entry into or exit from a dynamic or composite group, caused by another change."""


class MembershipAction(enum.StrEnum):
    ADDED = "ADDED"
    REMOVED = "REMOVED"


class Group(Base):
    """A group of contacts with the twelve settings of the "Nieuwe groep" form."""

    __tablename__ = "groups"
    __table_args__ = (
        CheckConstraint(
            "end_date IS NULL OR start_date IS NULL OR end_date >= start_date",
            name="end_not_before_start",
        ),
        IDS_NEVER_REUSED,
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    name_key: Mapped[str] = mapped_column(String(800), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[GroupKind] = mapped_column(string_enum(GroupKind), default=GroupKind.STATIC)
    responsible_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    start_date: Mapped[date | None] = mapped_column(Date)
    end_date: Mapped[date | None] = mapped_column(Date)
    show_on_portal: Mapped[bool] = mapped_column(Boolean, default=False)
    show_on_contact: Mapped[bool] = mapped_column(Boolean, default=False)
    editable_on_portal: Mapped[bool] = mapped_column(Boolean, default=False)
    email_on_new_member: Mapped[bool] = mapped_column(Boolean, default=False)
    new_member_email_template_id: Mapped[int | None] = mapped_column(
        ForeignKey("email_templates.id", ondelete="RESTRICT"), index=True
    )
    neighbourhood_role: Mapped[str | None] = mapped_column(String(100))
    composition_mode: Mapped[CompositionMode] = mapped_column(
        string_enum(CompositionMode), default=CompositionMode.ANY
    )
    filter: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """A DYNAMIC group's stored filter tree (see ``groups.filters``)."""
    closed: Mapped[bool] = mapped_column(Boolean, default=False)
    member_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Kept exact by every write that changes the members, so counting costs nothing."""
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class GroupLink(Base):
    """An edge of the group graph: ``group_id`` depends on ``member_group_id``.

    Composites include and exclude groups; a dynamic group's ``memberOf`` conditions name
    groups too. Keeping all three here gives one graph for cycles, deletes and ``usedBy``.
    """

    __tablename__ = "group_links"

    group_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    member_group_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="RESTRICT"), primary_key=True, index=True
    )
    role: Mapped[LinkRole] = mapped_column(string_enum(LinkRole), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    """Order in which the caller listed the group, so ``composedOf`` reads back as written."""


class Membership(Base):
    """A contact explicitly linked to a static group ("contactkoppeling")."""

    __tablename__ = "memberships"
    __table_args__ = (Index("ix_memberships_contact_id_group_id", "contact_id", "group_id"),)

    group_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    member_since: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    added_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    source: Mapped[MembershipSource] = mapped_column(string_enum(MembershipSource))


class MembershipEvent(Base):
    """One add or remove of a static membership; rows are only ever inserted."""

    __tablename__ = "membership_events"
    __table_args__ = (Index("ix_membership_events_group_id_id", "group_id", "id"), IDS_NEVER_REUSED)

    # No foreign keys: a bulk change writes these rows by the hundred thousand, and a
    # checked reference costs PostgreSQL a trigger per row (migration 0009). The domain
    # writes them from rows it holds locked; ``delete_group`` clears ``group_id``.
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_id: Mapped[int | None] = mapped_column(Integer)
    """None once the group is deleted: the history outlives it."""
    contact_id: Mapped[int] = mapped_column(Integer, index=True)
    action: Mapped[MembershipAction] = mapped_column(string_enum(MembershipAction))
    source: Mapped[MembershipSource] = mapped_column(string_enum(MembershipSource))
    actor_id: Mapped[int | None] = mapped_column(Integer)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    cause: Mapped[str | None] = mapped_column(String(300))
    """For a DERIVED entry or exit: the change that caused it, in words."""


class DerivedMembership(Base):
    """A contact in a dynamic or composite group, kept exact by the transaction of every
    change that can alter it (``groups.derived``); reads use it instead of computing."""

    __tablename__ = "derived_memberships"
    __table_args__ = (
        Index("ix_derived_memberships_contact_id_group_id", "contact_id", "group_id"),
    )

    # No foreign keys, as for the history; ``delete_group`` deletes a group's rows.
    group_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contact_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    since: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
