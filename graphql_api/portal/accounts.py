"""Portal accounts: invitation, activation, login with throttling, sessions, password
reset and disabling. Whose data a request concerns comes only from its session."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.contacts.models import Contact
from graphql_api.groups.changes import PortalMessage
from graphql_api.groups.rules import rules_of
from graphql_api.kernel.access import Principal, requires
from graphql_api.kernel.db import utcnow
from graphql_api.kernel.errors import ErrorCode, Problems, UserInputError
from graphql_api.portal.models import (
    AccountStatus,
    LoginThrottle,
    PortalAccount,
    PortalEvent,
    PortalToken,
    TokenKind,
)
from graphql_api.portal.passwords import check_policy, hash_password, verify_password

SESSION_PREFIX = "gpp_"
"""Portal session tokens; staff API tokens start with ``gapi_`` and never work here."""
LINK_PREFIX = "gpl_"
"""Single-use tokens of invitation and reset links."""
MAX_TOKEN_LENGTH = 200
INVITATION_LIFETIME = timedelta(days=7)
RESET_LIFETIME = timedelta(hours=1)
SLIDE_AT_MOST_EVERY = timedelta(minutes=1)
FREE_ATTEMPTS = 5
LOCK_AFTER = 20
LOCK_FOR = timedelta(minutes=15)
FORGET_FAILURES_AFTER = timedelta(minutes=15)
EMAIL_THROTTLE_PREFIX = "email:"
"""Failures per e-mail address tried share the throttle table with those per client
address, keyed by the address's SHA-256 (no client address starts with this)."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def wait_needed(failures: int, last_failed_at: datetime | None, now: datetime) -> timedelta:
    """How long a login must wait after ``failures`` failed ones, the last at
    ``last_failed_at``: nothing for the first five, then 1, 2, 4, ... seconds, and after
    twenty a lock of fifteen minutes."""
    if last_failed_at is None or failures < FREE_ATTEMPTS:
        return timedelta(0)
    backoff = LOCK_FOR if failures >= LOCK_AFTER else timedelta(seconds=2 ** (failures - 5))
    return max(timedelta(0), last_failed_at + min(backoff, LOCK_FOR) - now)


@dataclass(frozen=True)
class PortalSession:
    """Who a portal request is: the account and its contact."""

    account_id: int
    contact_id: int
    token_id: int


@dataclass(frozen=True)
class LoginOutcome:
    """A session token, or why there is none (the same answer whether or not the e-mail
    is known) and how many seconds to wait before trying again."""

    token: str | None = None
    code: ErrorCode | None = None
    message: str = ""
    retry_after_seconds: int = 0


async def _new_token(
    session: AsyncSession, account: PortalAccount, kind: TokenKind, lifetime: timedelta
) -> tuple[str, datetime]:
    prefix = SESSION_PREFIX if kind is TokenKind.SESSION else LINK_PREFIX
    token = prefix + secrets.token_urlsafe(32)
    expires_at = utcnow() + lifetime
    session.add(
        PortalToken(
            account_id=account.id, kind=kind, token_hash=hash_token(token), expires_at=expires_at
        )
    )
    await session.flush()
    return token, expires_at


def _event(session: AsyncSession, account: PortalAccount, kind: str) -> None:
    session.add(PortalEvent(account_id=account.id, kind=kind))


@requires("contacts.manage")
async def invite_portal_user(
    session: AsyncSession, actor: Principal, contact_id: int
) -> tuple[PortalAccount, str]:
    """Invite a contact to the portal: a single-use link valid for seven days, mailed
    through the outbox and returned to the caller, who may deliver it instead."""
    contact = await session.get(Contact, contact_id, with_for_update=True)
    if contact is None:
        raise UserInputError.single(["contact_id"], ErrorCode.NOT_FOUND, "No contact with this id.")
    if not contact.email:
        raise UserInputError.single(
            ["contact_id"], ErrorCode.REQUIRED, "The contact has no e-mail address to log in with."
        )
    email = contact.email.lower()
    account = await session.scalar(
        select(PortalAccount).where(PortalAccount.contact_id == contact_id).with_for_update()
    )
    if account is not None and account.status is AccountStatus.ACTIVE:
        raise UserInputError.single(
            ["contact_id"], ErrorCode.ALREADY_ACTIVE, "The contact already uses the portal."
        )
    taken = await session.scalar(
        select(PortalAccount.id).where(
            PortalAccount.email == email, PortalAccount.contact_id != contact_id
        )
    )
    if taken is not None:
        raise UserInputError.single(
            ["contact_id"],
            ErrorCode.EMAIL_TAKEN,
            f"Another contact's portal account uses {email}.",
        )
    if account is None:
        account = PortalAccount(contact_id=contact_id, email=email, status=AccountStatus.INVITED)
        session.add(account)
    account.email, account.status, account.invited_at = email, AccountStatus.INVITED, utcnow()
    await session.flush()
    await _spend(session, account, TokenKind.INVITATION)
    token, expires_at = await _new_token(
        session, account, TokenKind.INVITATION, INVITATION_LIFETIME
    )
    _event(session, account, "invited")
    message = PortalMessage(
        "portal.invitation", contact_id, email, contact.display_name, token, expires_at
    )
    await rules_of(session).changed(session, message)
    return account, token


async def _spend(session: AsyncSession, account: PortalAccount, kind: TokenKind) -> None:
    """Make every unused token of ``kind`` of the account unusable."""
    await session.execute(
        update(PortalToken)
        .where(
            PortalToken.account_id == account.id,
            PortalToken.kind == kind,
            PortalToken.used_at.is_(None),
        )
        .values(used_at=utcnow())
    )


async def _single_use(
    session: AsyncSession, token: str, kind: TokenKind
) -> tuple[PortalToken, PortalAccount]:
    """The unused, unexpired link token of ``kind`` and its account, locked; else
    INVALID_TOKEN, saying nothing about why."""
    found = None
    if token.startswith(LINK_PREFIX) and len(token) <= MAX_TOKEN_LENGTH:
        found = (
            await session.execute(
                select(PortalToken, PortalAccount)
                .join(PortalAccount, PortalToken.account_id == PortalAccount.id)
                .where(PortalToken.token_hash == hash_token(token), PortalToken.kind == kind)
                .with_for_update()
            )
        ).first()
    if (
        found is None
        or found[0].used_at is not None
        or found[0].expires_at <= utcnow()
        or found[1].status is AccountStatus.DISABLED
    ):
        raise UserInputError.single(
            ["token"], ErrorCode.INVALID_TOKEN, "This link is not valid (any more)."
        )
    return found[0], found[1]


async def accept_invitation(session: AsyncSession, token: str, password: str) -> PortalAccount:
    """Activate the invited account with a password; the link works once."""
    link, account = await _single_use(session, token, TokenKind.INVITATION)
    await _set_password(account, password)
    link.used_at = utcnow()
    account.status, account.activated_at = AccountStatus.ACTIVE, utcnow()
    _event(session, account, "activated")
    await session.flush()
    return account


async def _set_password(account: PortalAccount, password: str) -> None:
    problems = Problems()
    check_policy(problems, "password", password, account.email)
    problems.raise_if_any()
    account.password_hash = await hash_password(password)
    account.failed_logins = 0


async def login(
    session: AsyncSession, email: str, password: str, address: str, session_lifetime: timedelta
) -> LoginOutcome:
    """A session for the right e-mail and password of an active account. Failures are
    counted per client address and per e-mail address tried, whether or not an account
    has it, and make the next attempts wait; neither the answer nor its timing (an
    unknown address is checked against a dummy hash) tells whether the e-mail is known."""
    now = utcnow()
    email = email.strip().lower()[:320]
    account = await session.scalar(select(PortalAccount).where(PortalAccount.email == email))
    throttles = [
        await _throttle(session, address[:100], now),
        await _throttle(session, EMAIL_THROTTLE_PREFIX + hash_token(email), now),
    ]
    wait = max(wait_needed(t.failures, t.last_failed_at, now) for t in throttles)
    if wait > timedelta(0):
        seconds = int(wait.total_seconds()) + 1
        return LoginOutcome(
            code=ErrorCode.TOO_MANY_ATTEMPTS,
            message=f"Too many attempts; try again in {seconds} seconds.",
            retry_after_seconds=seconds,
        )
    matches = await verify_password(account.password_hash if account else None, password)
    if not matches or account is None or account.status is not AccountStatus.ACTIVE:
        for throttle in throttles:
            throttle.failures += 1
            throttle.last_failed_at = now
            session.add(throttle)
        if account is not None:
            account.failed_logins += 1
            account.last_failed_at = now
            _event(session, account, "login failed")
        await session.flush()
        return LoginOutcome(
            code=ErrorCode.INVALID_CREDENTIALS, message="The e-mail or the password is wrong."
        )
    throttles[1].failures = 0
    account.failed_logins, account.last_login_at = 0, now
    _event(session, account, "logged in")
    token, _ = await _new_token(session, account, TokenKind.SESSION, session_lifetime)
    return LoginOutcome(token=token)


async def _throttle(session: AsyncSession, key: str, now: datetime) -> LoginThrottle:
    """The failures counted under ``key``, forgotten after a quiet quarter of an hour."""
    throttle = await session.get(LoginThrottle, key) or LoginThrottle(
        address=key, failures=0, last_failed_at=now
    )
    if now - throttle.last_failed_at > FORGET_FAILURES_AFTER:
        throttle.failures = 0
    return throttle


async def check_session(
    session: AsyncSession, token: str, lifetime: timedelta
) -> PortalSession | None:
    """The session of ``token`` when it is live, its expiry pushed ``lifetime`` ahead
    (sliding, written at most once a minute); None otherwise."""
    if not token.startswith(SESSION_PREFIX) or len(token) > MAX_TOKEN_LENGTH:
        return None
    found = (
        await session.execute(
            select(PortalToken, PortalAccount)
            .join(PortalAccount, PortalToken.account_id == PortalAccount.id)
            .where(
                PortalToken.token_hash == hash_token(token),
                PortalToken.kind == TokenKind.SESSION,
            )
        )
    ).first()
    now = utcnow()
    if found is None:
        return None
    row, account = found
    if row.used_at is not None or row.expires_at <= now or account.status != AccountStatus.ACTIVE:
        return None
    if row.expires_at < now + lifetime - SLIDE_AT_MOST_EVERY:
        row.expires_at = now + lifetime
        await session.flush()
    return PortalSession(account_id=account.id, contact_id=account.contact_id, token_id=row.id)


async def logout(session: AsyncSession, portal_session: PortalSession) -> None:
    await session.execute(
        update(PortalToken)
        .where(PortalToken.id == portal_session.token_id)
        .values(used_at=utcnow())
    )
    account = await session.get(PortalAccount, portal_session.account_id)
    assert account is not None
    _event(session, account, "logged out")


async def request_password_reset(session: AsyncSession, email: str) -> None:
    """Mail a reset link to an active account with this e-mail; the caller learns
    nothing either way."""
    account = await session.scalar(
        select(PortalAccount).where(PortalAccount.email == email.strip().lower()[:320])
    )
    if account is None or account.status is not AccountStatus.ACTIVE:
        return
    contact = await session.get(Contact, account.contact_id)
    assert contact is not None
    await _spend(session, account, TokenKind.PASSWORD_RESET)
    token, expires_at = await _new_token(session, account, TokenKind.PASSWORD_RESET, RESET_LIFETIME)
    _event(session, account, "password reset requested")
    message = PortalMessage(
        "portal.password_reset", contact.id, account.email, contact.display_name, token, expires_at
    )
    await rules_of(session).changed(session, message)


async def reset_password(session: AsyncSession, token: str, password: str) -> None:
    """Set a new password through a reset link; every session of the account ends."""
    link, account = await _single_use(session, token, TokenKind.PASSWORD_RESET)
    await _set_password(account, password)
    link.used_at = utcnow()
    await _spend(session, account, TokenKind.SESSION)
    _event(session, account, "password reset")
    await session.flush()


@requires("contacts.manage")
async def disable_portal_user(
    session: AsyncSession, actor: Principal, contact_id: int
) -> PortalAccount:
    """Shut a contact out of the portal: sessions and links end at once."""
    account = await session.scalar(
        select(PortalAccount).where(PortalAccount.contact_id == contact_id).with_for_update()
    )
    if account is None:
        raise UserInputError.single(
            ["contact_id"], ErrorCode.NOT_FOUND, "This contact has no portal account."
        )
    account.status = AccountStatus.DISABLED
    await session.execute(delete(PortalToken).where(PortalToken.account_id == account.id))
    _event(session, account, "disabled")
    await session.flush()
    return account


async def accounts_of_contacts(
    session: AsyncSession, contact_ids: list[int]
) -> list[PortalAccount | None]:
    """Each contact's portal account or None, in the order asked (a DataLoader batch)."""
    found = {
        account.contact_id: account
        for account in await session.scalars(
            select(PortalAccount).where(PortalAccount.contact_id.in_(contact_ids))
        )
    }
    return [found.get(contact_id) for contact_id in contact_ids]
