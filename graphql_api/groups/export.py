"""Exports of contacts in bulk: a group's members, and the contacts x groups report.

Rows are read in keyset pages of the stored memberships (``memberships`` for static
groups, ``derived_memberships`` for the others), each page in a short transaction of its
own, so an export of any size holds one page in memory and no transaction open while the
client reads. A browser downloads through a single-use link (``issue_link``), stored as
its token's hash with an expiry, as the portal's invitation links are: every process of
the application can redeem it, and nothing secret needs configuring.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    JSON,
    ColumnElement,
    ForeignKey,
    Integer,
    String,
    bindparam,
    delete,
    func,
    literal,
    null,
    select,
    union,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from graphql_api.contacts.models import Contact
from graphql_api.groups.models import (
    DerivedMembership,
    Group,
    GroupKind,
    Membership,
    MembershipSource,
)
from graphql_api.kernel.access import Principal, requires
from graphql_api.kernel.db import Base, UtcDateTime, utcnow
from graphql_api.kernel.errors import ErrorCode, Problems, UserInputError
from graphql_api.users.audit import record
from graphql_api.users.models import User
from graphql_api.users.tokens import active_user_principal

PERMISSION = "contacts.export"
ALSO_NEEDED = ("contacts.view", "groups.view")
"""An export reads what these guard, so it needs them too: a role or token with only
``contacts.export`` would otherwise download in bulk what it may not read one by one."""
PAGE_SIZE = 1000
"""Rows per statement: what an export holds in memory at once, whatever its size."""
MAX_REPORT_GROUPS = 50
"""Columns of groups in one report: more is not a spreadsheet anyone reads."""
XLSX_MAX_ROWS = 1_048_576
"""Rows of a sheet in Excel and LibreOffice, the header's included."""
LINK_LIFETIME = timedelta(minutes=5)
LINK_PREFIX = "gex_"
LINK_PATH = "/exports/link/"
"""Where a link's token is opened, after this path: the token is kept out of logs."""
KEEP_EXPIRED = timedelta(days=1)
FORMATS = ("csv", "xlsx")
SEPARATORS = (";", ",")

CONTACT_COLUMNS: dict[str, Any] = {
    "id": Contact.id,
    "kind": Contact.kind,
    "firstName": Contact.first_name,
    "lastName": Contact.last_name,
    "organisationName": Contact.organisation_name,
    "email": Contact.email,
    "phone": Contact.phone,
    "street": Contact.street,
    "postalCode": Contact.postal_code,
    "city": Contact.city,
    "externalId": Contact.external_id,
    "createdAt": Contact.created_at,
}
"""The contact fields an export can have, by their GraphQL names. Plugin fields are not
among them: the plugin API lets a field test a condition in SQL, not read a value."""
MEMBERSHIP_FIELDS = ("memberSince", "source", "addedBy")
"""Of a group's members only: since when, how they came in, and who added them."""
DEFAULT_FIELDS = ("id", "firstName", "lastName", "organisationName", "email")


class ExportLink(Base):
    """A single-use download link: the hash of its token, whose export it is, and until
    when it works."""

    __tablename__ = "export_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


@dataclass(frozen=True)
class ExportRequest:
    """What to export: ``members`` of one group or the ``report`` of several, with which
    contact fields, in which format."""

    kind: str
    group_ids: tuple[int, ...]
    fields: tuple[str, ...] = DEFAULT_FIELDS
    format: str = "csv"
    separator: str = ";"

    def as_params(self) -> dict[str, Any]:
        """The request as JSON, as a download link stores it."""
        return {
            "kind": self.kind,
            "groupIds": list(self.group_ids),
            "fields": list(self.fields),
            "format": self.format,
            "separator": self.separator,
        }

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> ExportRequest:
        """The request a download link stored with ``as_params``."""
        return cls(
            kind=params["kind"],
            group_ids=tuple(params["groupIds"]),
            fields=tuple(params["fields"]),
            format=params["format"],
            separator=params["separator"],
        )


@dataclass(frozen=True)
class Export:
    """A checked request and the groups it reads, ready to stream."""

    request: ExportRequest
    groups: tuple[Group, ...]

    @property
    def header(self) -> list[str]:
        """The first row: the fields' names, then in a report the groups' names."""
        if self.request.kind == "members":
            return list(self.request.fields)
        return [*self.request.fields, *(group.name for group in self.groups)]

    @property
    def filename(self) -> str:
        """The download's name, with today's date so successive exports do not clash."""
        day = utcnow().date().isoformat()
        if self.request.kind == "members":
            return f"group-{self.groups[0].id}-members-{day}.{self.request.format}"
        return f"groups-report-{day}.{self.request.format}"


def check_request(request: ExportRequest) -> None:
    """Refuse an export that cannot be made, naming every fault at once."""
    problems = Problems()
    allowed = set(CONTACT_COLUMNS)
    if request.kind == "members":
        allowed |= set(MEMBERSHIP_FIELDS)
    if not request.fields:
        problems.add(["fields"], ErrorCode.INVALID, "Name at least one field.")
    for i, name in enumerate(request.fields):
        if name not in allowed:
            problems.add(
                ["fields", str(i)],
                ErrorCode.INVALID,
                f"Unknown field {name!r}; known: {', '.join(sorted(allowed))}.",
            )
    if len(set(request.fields)) != len(request.fields):
        problems.add(["fields"], ErrorCode.INVALID, "Each field may be named once.")
    if request.format not in FORMATS:
        problems.add(["format"], ErrorCode.INVALID, "The format is csv or xlsx.")
    if request.separator not in SEPARATORS:
        problems.add(["separator"], ErrorCode.INVALID, "The separator is ';' or ','.")
    if not request.group_ids:
        problems.add(["group_ids"], ErrorCode.INVALID, "Name at least one group.")
    if request.kind == "members" and len(request.group_ids) > 1:
        problems.add(["group_ids"], ErrorCode.INVALID, "The members of one group at a time.")
    if len(request.group_ids) > MAX_REPORT_GROUPS:
        problems.add(
            ["group_ids"],
            ErrorCode.TOO_MANY,
            f"A report has at most {MAX_REPORT_GROUPS} groups.",
        )
    problems.raise_if_any()


@requires(PERMISSION)
async def prepare_export(session: AsyncSession, actor: Principal, request: ExportRequest) -> Export:
    """The export of ``request``, its groups read; ``NOT_FOUND`` for a group that is not,
    ``FORBIDDEN`` without the permissions to read contacts and groups as well."""
    for permission in ALSO_NEEDED:
        actor.require(permission)
    check_request(request)
    ids = list(dict.fromkeys(request.group_ids))
    found = {g.id: g for g in await session.scalars(select(Group).where(Group.id.in_(ids)))}
    problems = Problems()
    for i, group_id in enumerate(request.group_ids):
        if group_id not in found:
            problems.add(["group_ids", str(i)], ErrorCode.NOT_FOUND, "No group with this id.")
    problems.raise_if_any()
    groups = tuple(found[i] for i in ids)
    # Counted before anything is sent: a sheet cut off at its last row would pass unseen.
    if request.format == "xlsx" and await _rows_at_least(session, groups, XLSX_MAX_ROWS):
        raise UserInputError.single(
            ["format"],
            ErrorCode.TOO_MANY,
            f"An XLSX sheet holds at most {XLSX_MAX_ROWS - 1:,} rows; these groups may have "
            "more members: export them as CSV.",
        )
    return Export(request, groups)


async def _rows_at_least(session: AsyncSession, groups: Sequence[Group], limit: int) -> bool:
    """Whether the export of ``groups`` may have ``limit`` rows or more, its header
    included. The kept member counts answer at once; only when they add up to the limit
    are the groups' contacts counted, once each as a report has them, since groups that
    overlap add up to more than their report's rows."""
    if sum(group.member_count for group in groups) < limit:
        return False
    if len(groups) == 1:
        return True
    contacts = union(
        *(
            select(rows.contact_id).where(rows.group_id == group.id)
            for group in groups
            for rows, _ in (_stored(group),)
        )
    ).subquery()
    return await session.scalar(select(func.count()).select_from(contacts)) >= limit


def _stored(group: Group) -> tuple[Any, ColumnElement[Any]]:
    """A group's stored rows and their column of since when."""
    if group.kind is GroupKind.STATIC:
        return Membership, Membership.member_since
    return DerivedMembership, DerivedMembership.since


def _local(value: Any, zone: ZoneInfo) -> Any:
    """Datetimes in the application's time zone, without it, as spreadsheets want them."""
    if isinstance(value, datetime):
        return value.astimezone(zone).replace(tzinfo=None)
    return value


async def export_rows(
    sessions: async_sessionmaker[AsyncSession],
    export: Export,
    zone: ZoneInfo,
    page_size: int = PAGE_SIZE,
) -> AsyncIterator[list[list[Any]]]:
    """The rows of ``export`` (without the header), a page at a time, in contact id order;
    each page read in a transaction of its own."""
    if export.request.kind == "report":
        async for rows in _report_pages(sessions, export, page_size, zone):
            yield rows
        return
    async for page in _member_pages(sessions, export, page_size):
        yield [[_local(value, zone) for value in row] for row in page]


async def _member_pages(
    sessions: async_sessionmaker[AsyncSession], export: Export, page_size: int
) -> AsyncIterator[Sequence[Any]]:
    group = export.groups[0]
    rows, since = _stored(group)
    static = group.kind is GroupKind.STATIC
    extra = {
        "memberSince": since,
        # Who joins a derived group is decided by its rules, not by someone adding them.
        "source": Membership.source if static else literal(MembershipSource.DERIVED.value),
        "addedBy": User.name if static else null(),
    }
    columns = [CONTACT_COLUMNS.get(name, extra.get(name)) for name in export.request.fields]
    query = select(rows.contact_id, *columns).join(Contact, Contact.id == rows.contact_id)
    if static and "addedBy" in export.request.fields:
        query = query.outerjoin(User, User.id == Membership.added_by_id)
    query = query.where(rows.group_id == group.id).order_by(rows.contact_id).limit(page_size)
    after = 0
    while True:
        async with sessions() as session:
            page = (await session.execute(query.where(rows.contact_id > after))).all()
        if not page:
            return
        yield [row[1:] for row in page]
        if len(page) < page_size:
            return
        after = page[-1][0]


async def _report_pages(
    sessions: async_sessionmaker[AsyncSession], export: Export, page_size: int, zone: ZoneInfo
) -> AsyncIterator[list[list[Any]]]:
    """The report's rows, two statements a page: the page's contacts (members of any
    group, by id), then their memberships of the chosen groups, found by the page's range
    of ids (a contact who joined in between, in the range but not on the page, is left
    out)."""
    after, first, last = bindparam("after"), bindparam("first"), bindparam("last")
    # Each group's next page through its index, merged in order and cut at a page's
    # length: the database reads about a page, not a page per group, and sorts nothing.
    heads = [
        select(rows.contact_id)
        .where(rows.group_id == group.id, rows.contact_id > after)
        .order_by(rows.contact_id)
        .limit(page_size)
        .subquery()
        for group in export.groups
        for rows, _ in (_stored(group),)
    ]
    members = union_all(*(select(head.c.contact_id) for head in heads)).subquery()
    # A contact in several groups is there once per group: once per page here.
    ids = select(members.c.contact_id).order_by(members.c.contact_id).limit(page_size).subquery()
    columns = [CONTACT_COLUMNS[name] for name in export.request.fields]
    contacts_page = (
        select(Contact.id, *columns).join(ids, ids.c.contact_id == Contact.id).order_by(Contact.id)
    )
    joined_page = union_all(
        *(
            select(literal(group.id), rows.contact_id, since).where(
                rows.group_id == group.id, rows.contact_id.between(first, last)
            )
            for group in export.groups
            for rows, since in (_stored(group),)
        )
    )
    position = {group.id: i for i, group in enumerate(export.groups)}
    start = 0
    while True:
        async with sessions() as session:
            held = (await session.execute(contacts_page, {"after": start})).all()
            if not held:
                return
            contacts = {row[0]: row for row in held}
            start = held[-1][0]
            joined = await session.execute(joined_page, {"first": held[0][0], "last": start})
        cells: dict[int, list[Any]] = {
            contact_id: [None] * len(position) for contact_id in contacts
        }
        for group_id, contact_id, since in joined:
            # Under READ COMMITTED a membership committed after the page was read may be
            # of a contact in its range who is not on it.
            if contact_id in cells:
                cells[contact_id][position[group_id]] = joined_on(since, zone)
        yield [
            [*(_local(value, zone) for value in row[1:]), *cells[contact_id]]
            for contact_id, row in contacts.items()
        ]
        # Fewer memberships than a page: every group is read to its end.
        if len(held) < page_size:
            return


def joined_on(value: Any, zone: ZoneInfo) -> date | None:
    """A report's cell: the day the contact joined, in the application's time zone."""
    return value.astimezone(zone).date() if isinstance(value, datetime) else value


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@requires(PERMISSION)
async def issue_link(
    session: AsyncSession, actor: Principal, request: ExportRequest
) -> tuple[str, datetime]:
    """A single-use token for downloading ``request`` as ``actor``, and when it expires;
    the export is checked now, so a link never fails for a reason known today."""
    await prepare_export(session, actor, request)
    if actor.user_id is None:
        raise UserInputError.single(
            (), ErrorCode.FORBIDDEN, "A download link is for a staff user, not the system."
        )
    token = LINK_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    expires_at = now + LINK_LIFETIME
    await _purge(session, now)
    session.add(
        ExportLink(
            token_hash=_hash(token),
            user_id=actor.user_id,
            params=request.as_params(),
            expires_at=expires_at,
        )
    )
    return token, expires_at


async def _purge(session: AsyncSession, now: datetime) -> None:
    """Forget links a day past their expiry; they answer "not valid" rather than
    "expired" after that: no one asks."""
    await session.execute(delete(ExportLink).where(ExportLink.expires_at < now - KEEP_EXPIRED))


class LinkRefused(Exception):
    """A link that opens nothing: unknown (``gone`` False) or expired or used (True)."""

    def __init__(self, message: str, gone: bool) -> None:
        super().__init__(message)
        self.gone = gone


async def redeem_link(session: AsyncSession, token: str) -> tuple[Principal, ExportRequest]:
    """Use up a link: who downloads what, as the user is now (deactivated or without the
    permission since, refused). Call in a transaction: the use commits with it."""
    now = utcnow()
    await _purge(session, now)
    link = await session.scalar(select(ExportLink).where(ExportLink.token_hash == _hash(token)))
    if link is None:
        raise LinkRefused("This download link is not valid.", gone=False)
    if link.used_at is not None or link.expires_at <= now:
        raise LinkRefused(
            "This download link has expired or was used already; ask for a new one.", gone=True
        )
    # Only one request uses it, however many arrive at once.
    used = await session.execute(
        update(ExportLink)
        .where(ExportLink.id == link.id, ExportLink.used_at.is_(None))
        .values(used_at=now)
    )
    if used.rowcount != 1:  # type: ignore[attr-defined]
        raise LinkRefused("This download link was used already; ask for a new one.", gone=True)
    principal = await active_user_principal(session, link.user_id)
    if principal is None:
        raise LinkRefused("The user of this link is deactivated.", gone=False)
    return principal, ExportRequest.from_params(link.params)


async def record_export(
    sessions: async_sessionmaker[AsyncSession],
    actor: Principal,
    export: Export,
    rows: int,
    complete: bool,
) -> None:
    """The audit entry of an export, written when its stream ends: only then is its number
    of rows known, and whether the client read it to the end."""
    async with sessions() as session, session.begin():
        record(
            session,
            actor,
            f"export.{export.request.kind}",
            ", ".join(group.name for group in export.groups),
            groupIds=list(export.request.group_ids),
            fields=list(export.request.fields),
            format=export.request.format,
            rows=rows,
            complete=complete,
        )
