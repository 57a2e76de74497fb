"""The Laposta plugin's own tables: which group is linked to which list, the sync state of
each member, and the list as a resync read it."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Column, ForeignKey, Index, Integer, MetaData, String, Table, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from graphql_api.plugin import NAMING_CONVENTION, Contact, Group, UtcDateTime, utcnow


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class SyncState(enum.StrEnum):
    """Where a member of a linked group stands with the list."""

    PENDING = "PENDING"
    """Linked, not pushed yet (a resync or a delivery will)."""
    SYNCED = "SYNCED"
    """On the list, active, as last pushed."""
    ERROR = "ERROR"
    """Laposta refused the member (its address); ``last_error`` says why."""
    UNSUBSCRIBED = "UNSUBSCRIBED"
    """Unsubscribed, on Laposta or here (the group's opt-out): never pushed as active."""


class MailingListLink(Base):
    """A group kept in sync with one Laposta list; a list serves one group."""

    __tablename__ = "laposta_links"

    group_id: Mapped[int] = mapped_column(
        ForeignKey(Group.id, ondelete="CASCADE"), primary_key=True
    )
    list_id: Mapped[str] = mapped_column(String(50), unique=True)
    linked_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    linked_by_id: Mapped[int | None] = mapped_column(Integer)
    """The user who linked it (no reference: the link outlives a deleted user)."""
    last_pulled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    """When the list's unsubscribes were last read back (pull or resync)."""


class MemberSync(Base):
    """One member of a linked group and its state on the list."""

    __tablename__ = "laposta_members"
    __table_args__ = (
        Index("ix_laposta_members_group_id_state", "group_id", "state"),
        Index("ix_laposta_members_member_id", "member_id"),
    )

    group_id: Mapped[int] = mapped_column(
        ForeignKey(Group.id, ondelete="CASCADE"), primary_key=True
    )
    contact_id: Mapped[int] = mapped_column(
        ForeignKey(Contact.id, ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[str] = mapped_column(String(20))
    member_id: Mapped[str | None] = mapped_column(String(50))
    """Laposta's id of the member, once known."""
    email: Mapped[str | None] = mapped_column(String(320))
    """The address last pushed: a changed one is sent as an update of this member."""
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


resync_rows = Table(
    "laposta_resync_rows",
    Base.metadata,
    Column("job_id", Integer, primary_key=True),
    Column("item", Integer, primary_key=True),
    Column("contact_id", Integer),
    Column("member_id", String(50)),
    Column("email", String(320)),
    Column("list_state", String(20)),
)
"""A resync's list of pairs, made once by its prepare: each item is a member of the group,
a member of the list, or both (matched by member id or address). No references: the rows
go with the job's end, and a job's id is never reused."""
