"""The coach plugin's own table: which energy coach is linked to which Hoomdossier account."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from graphql_api.plugin import NAMING_CONVENTION, Contact, UtcDateTime, utcnow


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class HoomdossierLink(Base):
    """A coach's account in Hoomdossier; a contact has at most one, and only while a coach."""

    __tablename__ = "coach_hoomdossier_links"

    # Refers to the core's column itself: the core's table is in another MetaData.
    contact_id: Mapped[int] = mapped_column(
        ForeignKey(Contact.id, ondelete="CASCADE"), primary_key=True
    )
    account_id: Mapped[str] = mapped_column(String(100), unique=True)
    linked_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
