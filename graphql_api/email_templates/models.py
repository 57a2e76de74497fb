"""E-mail templates, chosen for "Verstuur e-mail bij nieuwe contactkoppeling", and
contacts' opt-outs of a group's mail."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from graphql_api.kernel.db import IDS_NEVER_REUSED, Base, UtcDateTime, string_enum, utcnow


class EmailTemplate(Base):
    """A subject and body sent to a contact, for example when it joins a group."""

    __tablename__ = "email_templates"
    __table_args__ = IDS_NEVER_REUSED

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    name_key: Mapped[str] = mapped_column(String(800), unique=True)
    subject: Mapped[str] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class OptOutSource(enum.StrEnum):
    """How a contact opted out of a group's mail."""

    UNSUBSCRIBE_LINK = "UNSUBSCRIBE_LINK"
    """The link in a group mail (List-Unsubscribe, RFC 8058)."""
    MAILING_LIST = "MAILING_LIST"
    """Unsubscribed at a mailing-list service the group is kept in sync with."""
    PORTAL = "PORTAL"
    """The contact, on the customer portal."""
    STAFF = "STAFF"
    """A staff user, on the contact's request."""


class MailOptOut(Base):
    """A contact who wants no more mail sent to a group's members ("afgemeld"): group
    mails skip them and count them, and a mailing list linked to the group unsubscribes
    them. The contact may withdraw it on the portal."""

    __tablename__ = "mail_opt_outs"

    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    group_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    source: Mapped[OptOutSource] = mapped_column(string_enum(OptOutSource))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
