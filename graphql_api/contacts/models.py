"""Contacts: the persons and organisations that groups are made of."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Index, Integer, String, func
from sqlalchemy.orm import Mapped, mapped_column

from graphql_api.kernel.db import IDS_NEVER_REUSED, Base, UtcDateTime, string_enum, utcnow


class ContactKind(enum.StrEnum):
    PERSON = "PERSON"
    ORGANISATION = "ORGANISATION"


CONTACT_TEXT_FIELDS = (
    "first_name",
    "last_name",
    "organisation_name",
    "email",
    "phone",
    "street",
    "postal_code",
    "city",
    "external_id",
)


class Contact(Base):
    """A person or organisation in the CRM."""

    __tablename__ = "contacts"
    __table_args__ = IDS_NEVER_REUSED

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[ContactKind] = mapped_column(string_enum(ContactKind), default=ContactKind.PERSON)
    first_name: Mapped[str | None] = mapped_column(String(200))
    last_name: Mapped[str | None] = mapped_column(String(200))
    organisation_name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(50))
    street: Mapped[str | None] = mapped_column(String(200))
    postal_code: Mapped[str | None] = mapped_column(String(20))
    city: Mapped[str | None] = mapped_column(String(200))
    external_id: Mapped[str | None] = mapped_column(String(100), unique=True, index=True)
    """The contact's number in the system it was imported from (Econobis's "#"): what a
    later import of that system's file finds it by."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    @property
    def display_name(self) -> str:
        """Organisation name for organisations, "first last" for persons, never empty."""
        person = " ".join(part for part in (self.first_name, self.last_name) if part)
        if self.kind is ContactKind.ORGANISATION:
            return self.organisation_name or person or f"Contact {self.id}"
        return person or self.organisation_name or self.email or f"Contact {self.id}"


# Imports find contacts by e-mail address, whatever its case.
Index("ix_contacts_email_lower", func.lower(Contact.email))
