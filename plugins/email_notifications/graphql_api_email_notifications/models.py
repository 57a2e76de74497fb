"""The plugin's own tables: group mails ("E-mail naar groep") and their recipients."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from graphql_api.plugin import NAMING_CONVENTION, Contact, Group, UtcDateTime, utcnow


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class RecipientStatus(enum.StrEnum):
    QUEUED = "QUEUED"
    SENT = "SENT"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"


class GroupMail(Base):
    """One mail to the members of a group: what was sent (the template's subject and body
    as they were when it was asked for), and the secret its unsubscribe links are signed
    with."""

    __tablename__ = "email_notifications_group_mails"
    __table_args__ = {"sqlite_autoincrement": True}  # ids never reused: links name them

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey(Group.id, ondelete="SET NULL"), index=True
    )
    """None once the group is deleted: the mail's record outlives it."""
    group_name: Mapped[str] = mapped_column(String(200))
    template_id: Mapped[int | None] = mapped_column(Integer)
    """The template it was made from, if any (no reference: the template may go)."""
    subject: Mapped[str] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(64))
    """Random, per mail: the key of its unsubscribe tokens' HMAC."""
    job_id: Mapped[int | None] = mapped_column(Integer)
    """The job sending it now or last (a retry starts another)."""
    created_by_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class GroupMailRecipient(Base):
    """A member the mail is for, and how far their mail got."""

    __tablename__ = "email_notifications_group_mail_recipients"
    __table_args__ = (
        Index(
            "ix_email_notifications_group_mail_recipients_status",
            "group_mail_id",
            "status",
            "contact_id",
        ),
    )

    group_mail_id: Mapped[int] = mapped_column(
        ForeignKey(GroupMail.id, ondelete="CASCADE"), primary_key=True
    )
    contact_id: Mapped[int] = mapped_column(
        ForeignKey(Contact.id, ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[str] = mapped_column(String(10), default=RecipientStatus.QUEUED)
    reason: Mapped[str | None] = mapped_column(String(500))
    """Why it FAILED (the mail server's words) or was SKIPPED."""
    email: Mapped[str | None] = mapped_column(String(320))
    """The address it was sent to (or tried)."""
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
