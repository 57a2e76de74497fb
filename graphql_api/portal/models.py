"""Portal accounts of contacts, their single-use and session tokens, and what happened."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from graphql_api.kernel.db import Base, UtcDateTime, string_enum, utcnow


class AccountStatus(enum.StrEnum):
    INVITED = "INVITED"
    ACTIVE = "ACTIVE"
    DISABLED = "DISABLED"


class TokenKind(enum.StrEnum):
    INVITATION = "INVITATION"
    PASSWORD_RESET = "PASSWORD_RESET"
    SESSION = "SESSION"


class PortalAccount(Base):
    """A contact's way into the portal; the contact's e-mail at invitation is the login."""

    __tablename__ = "portal_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), unique=True
    )
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[AccountStatus] = mapped_column(string_enum(AccountStatus))
    invited_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    activated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    last_failed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class PortalToken(Base):
    """An invitation, a password reset or a session; only its SHA-256 is kept."""

    __tablename__ = "portal_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("portal_accounts.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[TokenKind] = mapped_column(string_enum(TokenKind))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class PortalEvent(Base):
    """What happened to a portal account (invited, activated, logged in, ...), for the
    contact's own data export."""

    __tablename__ = "portal_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("portal_accounts.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(50))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class LoginThrottle(Base):
    """Failed logins from one client address, whatever e-mail they tried."""

    __tablename__ = "portal_login_throttle"

    address: Mapped[str] = mapped_column(String(100), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
