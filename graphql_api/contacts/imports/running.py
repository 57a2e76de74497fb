"""Imports as jobs: a file's rows staged once, then handled a chunk per transaction.

An import's job starts by reading its upload to the end (``_stage``): every row is mapped,
held to the rules of each field, and stored in ``import_rows``, and the job's items are
the row numbers. Nothing is written to contacts until the whole file has been read, so a
file that cannot be read (a row shorter than its header, a mixed encoding) fails the job
with nothing done. Each chunk (``_run_chunk``) then finds the contacts its rows mean,
holds each row to the rules of a whole contact, and writes set-based: one INSERT for the
new contacts, one UPDATE per shape of change, one ``add_members`` per group. A dry run
does all of it but the writing, so its counts and errors are the import's.

Undoing an import is a job of its own over the rows that made a contact or a membership.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, bindparam, delete, func, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.contacts.imports.mapping import (
    CONTACT_FIELDS,
    ColumnMapping,
    ImportField,
    group_names,
    mapped_row,
    row_problem,
)
from graphql_api.contacts.imports.models import ImportRow, RowStatus, Upload
from graphql_api.contacts.imports.reading import open_table
from graphql_api.contacts.imports.uploads import PERMISSION, kind_by_name, upload_file
from graphql_api.contacts.models import Contact, ContactKind
from graphql_api.contacts.service import check_complete, cleaned_values, record_updated
from graphql_api.groups.derived import after_contacts_changed
from graphql_api.groups.membership_writes import add_members, remove_members
from graphql_api.groups.models import Group, GroupKind, Membership, MembershipSource
from graphql_api.jobs.kinds import JobKind
from graphql_api.jobs.models import Job, JobItem
from graphql_api.kernel.access import Principal
from graphql_api.kernel.db import utcnow
from graphql_api.kernel.errors import ErrorCode, UserInputError
from graphql_api.kernel.sql import any_of
from graphql_api.kernel.validation import name_key
from graphql_api.users.models import AuditEntry

IMPORT = "contacts.import"
UNDO = "contacts.import.undo"
ROWS_PER_CHUNK = 5_000
"""Rows an import handles per transaction at most: a row weighs more than a contact id
(its values, its outcome), and on SQLite a chunk holds the one write lock while it runs.
On dataset M, 100,000 rows take 36 s in chunks of 10,000 on PostgreSQL (bench/RESULTS-
import.md); half as many rows per chunk hold the worker's memory and the lock half as
long."""
STAGE_BATCH = 1000
"""Rows staged per INSERT: what staging holds in memory at once."""
MATCH_EMAIL = "email"
MATCH_EXTERNAL_ID = "external_id"
SKIP, UPDATE, FILL_EMPTY = "skip", "update", "fill_empty"


def _match_key(values: dict[str, Any], match: str) -> str | None:
    key = values.get(match)
    if not key:
        return None
    return key.lower() if match == MATCH_EMAIL else key


async def _stage(session: AsyncSession, job: Job) -> None:
    """Read the upload to its end into ``import_rows``, and make the row numbers the
    job's items; a file that cannot be read refuses the job here."""
    params = job.params
    upload = await session.get(Upload, params["uploadId"])
    if upload is None:
        raise UserInputError.single(
            ["upload_id"], ErrorCode.NOT_FOUND, "The upload is gone: uploads are kept for 7 days."
        )
    async with upload_file(session, upload) as file:
        with open_table(
            file,
            max_bytes=upload.size,
            kind=kind_by_name(upload.filename),
            separator=params.get("separator"),
            sheet=params.get("sheet"),
        ) as table:
            mapping = ColumnMapping.checked(
                [tuple(pair) for pair in params["columns"]], table.columns
            )
            batch: list[dict[str, Any]] = []
            for row in table.rows:
                batch.append(_staged(job.id, row.number, row.values, mapping, params["match"]))
                if len(batch) == STAGE_BATCH:
                    await session.execute(insert(ImportRow.__table__), batch)
                    batch = []
            if batch:
                await session.execute(insert(ImportRow.__table__), batch)
            job.params = {**params, "header": list(table.columns)}
    rows = select(literal(job.id), ImportRow.row).where(ImportRow.job_id == job.id)
    staged = await session.execute(insert(JobItem.__table__).from_select(["job_id", "item"], rows))
    # Personal data in bulk: who read how many rows of which file, with the job's start.
    session.add(
        AuditEntry(
            actor_id=job.owner_id,
            action="import.read",
            subject=str(params.get("filename", ""))[:300],
            details={"jobId": job.id, "rows": staged.rowcount, "dryRun": bool(params["dryRun"])},
        )
    )


def _staged(
    job_id: int, number: int, cells: dict[str, str], mapping: ColumnMapping, match: str
) -> dict[str, Any]:
    """One row as stored: its cells, its values held to each field's rules, its problems."""
    mapped = mapped_row(mapping, cells)
    problems = list(mapped.problems)
    contact_values = {k: v for k, v in mapped.values.items() if k in CONTACT_FIELDS}
    values: dict[str, Any] = {k: v for k, v in mapped.values.items() if k not in CONTACT_FIELDS}
    try:
        cleaned = cleaned_values(contact_values)
    except UserInputError as error:
        for p in error.problems:
            column = mapping.columns_of(ImportField(p.field[0]))[0] if p.field else None
            problems.append(row_problem(column, p.code, p.message))
        cleaned = {}
    values.update(
        {
            k: (v.value if isinstance(v, ContactKind) else v)
            for k, v in cleaned.items()
            if v is not None
        }
    )
    return {
        "job_id": job_id,
        "row": number,
        "cells": list(cells.values()),
        "values": values,
        "holds_cells": True,
        "match_key": None if problems else _match_key(values, match),
        "status": RowStatus.REJECTED.value if problems else RowStatus.PENDING.value,
        "contact_id": None,
        "linked": False,
        "linked_groups": [],
        "errors": problems,
        "undo": None,
    }


@dataclass
class _Row:
    """A staged row while its chunk runs."""

    row: int
    values: dict[str, Any]
    match_key: str | None
    status: RowStatus
    errors: list[dict[str, Any]]
    contact_id: int | None = None
    create: dict[str, Any] | None = None
    changes: dict[str, Any] = field(default_factory=dict)
    groups: list[int] = field(default_factory=list)
    linked_groups: list[int] = field(default_factory=list)

    def reject(self, column: str | None, code: ErrorCode | str, message: str) -> None:
        self.status = RowStatus.REJECTED
        self.errors.append(row_problem(column, code, message))
        self.create = None
        self.changes = {}


CONTACT_COLUMNS = ("kind", *(f.value for f in CONTACT_FIELDS if f is not ImportField.KIND))


async def _run_chunk(session: AsyncSession, job: Job, actor: Principal, numbers: list[int]) -> int:
    """Handle the staged rows ``numbers``: match, check, write (not in a dry run), and
    record each row's outcome; how many contacts were (or would be) made or changed."""
    params = job.params
    dry_run = bool(params.get("dryRun"))
    mapping = ColumnMapping.checked([tuple(pair) for pair in params["columns"]], params["header"])
    found = await session.execute(
        select(
            ImportRow.row, ImportRow.values, ImportRow.match_key, ImportRow.status, ImportRow.errors
        )
        .where(ImportRow.job_id == job.id, ImportRow.row.between(numbers[0], numbers[-1]))
        .order_by(ImportRow.row)
    )
    rows = [_Row(r.row, r.values, r.match_key, RowStatus(r.status), list(r.errors)) for r in found]
    pending = [r for r in rows if r.status is RowStatus.PENDING]
    column = {field: (mapping.columns_of(field) or [None])[0] for field in ImportField}
    await _resolve_groups(session, params, pending, column[ImportField.GROUPS])
    existing = await _existing(
        session, job, params["match"], {r.match_key for r in pending if r.match_key}, dry_run
    )
    planned: dict[str, _Row] = {}
    key_column = column[ImportField(params["match"])]
    for row in pending:
        _plan(row, existing, planned, params["duplicates"], column, key_column)
    await _check_external_ids(
        session,
        [r for r in pending if r.status is not RowStatus.REJECTED],
        column[ImportField.EXTERNAL_ID],
    )
    changed = sum(1 for r in pending if r.status in (RowStatus.CREATED, RowStatus.UPDATED))
    if not dry_run:
        await _write(session, job, actor, pending, ZoneInfo(params["timezone"]))
    await _record_outcomes(session, job, rows)
    return changed


async def _resolve_groups(
    session: AsyncSession, params: dict[str, Any], rows: list[_Row], column: str | None
) -> None:
    """Each row's groups: the import's own, and those its cell names (static ones that
    exist, by name whatever the case); a row naming another is rejected."""
    target = params.get("groupId")
    named = {
        name_key(name)
        for r in rows
        for name in group_names(r.values.get(ImportField.GROUPS.value, ""))
    }
    groups: dict[str, tuple[int, GroupKind, str]] = {}
    if named:
        found = await session.execute(
            select(Group.name_key, Group.id, Group.kind, Group.name).where(
                Group.name_key.in_(sorted(named))
            )
        )
        groups = {key: (gid, kind, name) for key, gid, kind, name in found}
    for row in rows:
        wanted = [target] if target is not None else []
        for name in group_names(row.values.get(ImportField.GROUPS.value, "")):
            group = groups.get(name_key(name))
            if group is None:
                row.reject(column, ErrorCode.NOT_FOUND, f'There is no group named "{name}".')
                break
            if group[1] is not GroupKind.STATIC:
                row.reject(
                    column,
                    ErrorCode.NOT_STATIC,
                    f'"{group[2]}" is a {group[1].lower()} group: its members follow '
                    "from its definition.",
                )
                break
            wanted.append(group[0])
        row.groups = list(dict.fromkeys(wanted))


@dataclass(frozen=True)
class _Existing:
    """A contact a key finds: its id (None for one a dry run would make) and fields."""

    id: int | None
    fields: dict[str, Any]
    row: int | None = None


async def _existing(
    session: AsyncSession, job: Job, match: str, keys: set[str], dry_run: bool
) -> dict[str, list[_Existing]]:
    """The contacts each key finds, with the row of this file that made it, if one did (an
    earlier chunk's). A dry run makes none, so such a key finds that row instead."""
    if not keys:
        return {}
    key_column = func.lower(Contact.email) if match == MATCH_EMAIL else Contact.external_id
    columns = [getattr(Contact, name) for name in CONTACT_COLUMNS]
    found: dict[str, list[_Existing]] = defaultdict(list)
    result = await session.execute(
        select(key_column, Contact.id, *columns).where(any_of(key_column, sorted(keys)))
    )
    for key, contact_id, *values in result:
        found[key].append(_Existing(contact_id, dict(zip(CONTACT_COLUMNS, values, strict=True))))
    earlier = await session.execute(
        select(ImportRow.match_key, ImportRow.row, ImportRow.values).where(
            ImportRow.job_id == job.id,
            any_of(ImportRow.match_key, sorted(keys)),
            ImportRow.status == RowStatus.CREATED,
        )
    )
    for key, number, values in earlier:
        if not dry_run:
            # The contact that row made is among those found: say which row made it.
            found[key] = [replace(match, row=number) for match in found[key]]
        elif key not in found:
            # A dry run made nothing: the row that would have made it stands in for it.
            found[key].append(_Existing(None, _contact_fields(values), number))
    return found


def _contact_fields(values: dict[str, Any]) -> dict[str, Any]:
    fields = {name: values.get(name) for name in CONTACT_COLUMNS}
    fields["kind"] = ContactKind(values.get("kind") or ContactKind.PERSON)
    return fields


def _plan(
    row: _Row,
    existing: dict[str, list[_Existing]],
    planned: dict[str, _Row],
    duplicates: str,
    column: dict[ImportField, str | None],
    key_column: str | None,
) -> None:
    """Decide a pending row: make a contact, change the one its key finds (or an earlier
    row of the chunk makes), or leave it as it is."""
    if row.status is RowStatus.REJECTED:
        return
    matches = existing.get(row.match_key, []) if row.match_key else []
    if len(matches) > 1:
        ids = ", ".join(str(m.id) for m in matches[:5])
        row.reject(
            key_column,
            ErrorCode.DUPLICATE,
            f"{len(matches)} contacts have this key ({ids}): the row cannot say which it means.",
        )
        return
    earlier = planned.get(row.match_key) if row.match_key else None
    if earlier is not None and earlier.create is not None:
        row.errors.append(
            row_problem(
                key_column,
                ErrorCode.DUPLICATE,
                f"Row {earlier.row} has the same key: both are about one contact.",
                warning=True,
            )
        )
        target = _Existing(None, earlier.create, earlier.row)
    elif matches:
        target = matches[0]
        if target.row is not None:
            row.errors.append(
                row_problem(
                    key_column,
                    ErrorCode.DUPLICATE,
                    f"Row {target.row} has the same key: both are about one contact.",
                    warning=True,
                )
            )
    else:
        fields = _contact_fields(row.values)
        if _complete(row, fields, column):
            row.status = RowStatus.CREATED
            row.create = fields
            if row.match_key:
                planned[row.match_key] = row
        return
    row.contact_id = target.id
    if duplicates == SKIP:
        row.status = RowStatus.SKIPPED
        return
    wanted = {
        name: value for name, value in _contact_fields(row.values).items() if row.values.get(name)
    }
    if duplicates == FILL_EMPTY:
        wanted = {name: value for name, value in wanted.items() if not target.fields.get(name)}
    changes = {
        name: value for name, value in wanted.items() if not _same(name, target.fields, value)
    }
    merged = {**target.fields, **changes}
    if not _complete(row, merged, column):
        return
    row.status = RowStatus.UPDATED if changes else RowStatus.UNCHANGED
    if earlier is not None and earlier.create is not None:
        # The contact is made once, with what both rows say.
        earlier.create = merged
    else:
        row.changes = changes


def _same(name: str, fields: dict[str, Any], value: Any) -> bool:
    """Whether a field holds ``value`` already; an e-mail address in another case is the
    same address (it is what found the contact)."""
    held = fields.get(name)
    if name == "email" and held is not None:
        return str(held).lower() == str(value).lower()
    return bool(held == value)


def _complete(row: _Row, fields: dict[str, Any], column: dict[ImportField, str | None]) -> bool:
    """Whether ``fields`` make a whole contact; rejects the row when not."""
    try:
        check_complete(fields)
    except UserInputError as error:
        problem = error.problems[0]
        row.reject(column[ImportField(problem.field[0])], problem.code, problem.message)
        return False
    return True


async def _check_external_ids(session: AsyncSession, rows: list[_Row], column: str | None) -> None:
    """Refuse a row that would give a contact an external id another contact has."""
    wanted: dict[str, _Row] = {}
    for row in rows:
        value = (row.create or row.changes).get("external_id")
        if not value:
            continue
        if value in wanted:
            row.reject(
                column,
                ErrorCode.DUPLICATE,
                f"Row {wanted[value].row} gives a contact this external id.",
            )
            continue
        wanted[value] = row
    if not wanted:
        return
    taken = await session.execute(
        select(Contact.external_id, Contact.id).where(any_of(Contact.external_id, sorted(wanted)))
    )
    for value, holder in taken:
        row = wanted[value]
        if row.contact_id != holder:
            row.reject(
                column, ErrorCode.DUPLICATE, f"Contact {holder} has this external id already."
            )


async def _write(
    session: AsyncSession, job: Job, actor: Principal, rows: list[_Row], zone: ZoneInfo
) -> None:
    """Make and change the contacts, then add them to their groups: set-based."""
    now = utcnow()
    creating = [r for r in rows if r.status is RowStatus.CREATED and r.create is not None]
    if creating:
        values = [{**r.create, "created_at": now, "updated_at": now} for r in creating]
        made = await _inserted_ids(session, values)
        for row, contact_id in zip(creating, made, strict=True):
            row.contact_id = contact_id
    # Rows naming a contact another row of this chunk makes now.
    made_by_key = {r.match_key: r.contact_id for r in creating if r.match_key}
    for row in rows:
        if row.contact_id is None and row.status is not RowStatus.REJECTED and row.match_key:
            row.contact_id = made_by_key.get(row.match_key)
    updating = [r for r in rows if r.status is RowStatus.UPDATED and r.changes and r.contact_id]
    if updating:
        await session.execute(
            update(Contact),
            [{"id": r.contact_id, **r.changes, "updated_at": now} for r in updating],
        )
    touched = [r.contact_id for r in creating + updating if r.contact_id is not None]
    if touched:
        await after_contacts_changed(
            session, touched, f"job {job.id}: contacts imported", actor.user_id
        )
    if updating:
        await record_updated(
            session,
            [r.contact_id for r in updating if r.contact_id is not None],
            {column for r in updating for column in r.changes},
            actor.user_id,
            f"job {job.id}: contacts imported",
            job.id,
        )
    await _link(session, job, actor, rows, zone)


async def _inserted_ids(session: AsyncSession, values: list[dict[str, Any]]) -> list[int]:
    """Insert contacts in batches of many rows per statement; their ids in the order of
    ``values`` (each with every column: the table's INSERT, not the ORM's, which sends a
    statement per run of rows with the same columns set). PostgreSQL's batches say which
    id is which row's; SQLite's cannot (SQLAlchemy would insert a row per statement to
    know), but under its one writer an AUTOINCREMENT table hands out ascending ids in the
    order a statement inserts its rows, so the ids in ascending order are the rows'."""
    ordered = session.bind.dialect.name == "postgresql"
    table = Contact.__table__
    statement = insert(table).returning(table.c.id, sort_by_parameter_order=ordered)
    made = list(await session.scalars(statement, values))
    return made if ordered else sorted(made)


async def _link(
    session: AsyncSession, job: Job, actor: Principal, rows: list[_Row], zone: ZoneInfo
) -> None:
    """Add the rows' contacts to their groups; a row's "member since" date replaces the
    moment of the import for the memberships it made."""
    by_group: dict[int, list[_Row]] = defaultdict(list)
    for row in rows:
        if row.status is not RowStatus.REJECTED and row.contact_id is not None:
            for group_id in row.groups:
                by_group[group_id].append(row)
    since: list[dict[str, Any]] = []
    for group_id, members in by_group.items():
        new = set(
            await add_members(
                session,
                actor,
                group_id,
                [r.contact_id for r in members if r.contact_id],
                MembershipSource.IMPORT,
                job_id=job.id,
            )
        )
        for row in members:
            if row.contact_id in new:
                row.linked_groups.append(group_id)
                day = row.values.get(ImportField.MEMBER_SINCE.value)
                if day:
                    moment = datetime.combine(date.fromisoformat(day), time(), zone)
                    since.append({"g": group_id, "c": row.contact_id, "since": moment})
    if since:
        table = Membership.__table__
        await session.execute(
            update(table)
            .where(table.c.group_id == bindparam("g"), table.c.contact_id == bindparam("c"))
            .values(member_since=bindparam("since")),
            since,
        )


async def _record_outcomes(session: AsyncSession, job: Job, rows: list[_Row]) -> None:
    table = ImportRow.__table__
    await session.execute(
        update(table)
        .where(table.c.job_id == job.id, table.c.row == bindparam("r"))
        .values(
            status=bindparam("s"),
            contact_id=bindparam("cid"),
            errors=bindparam("e", type_=table.c.errors.type),
            linked=bindparam("l"),
            linked_groups=bindparam("lg", type_=table.c.linked_groups.type),
        ),
        [
            {
                "r": r.row,
                "s": r.status.value,
                "cid": r.contact_id,
                "e": r.errors,
                "l": bool(r.linked_groups),
                "lg": r.linked_groups,
            }
            for r in rows
        ],
    )


def _undoable(source: int) -> tuple[ColumnElement[bool], ...]:
    """The rows of import job ``source`` that made a contact or a membership."""
    return (
        ImportRow.job_id == source,
        ImportRow.contact_id.is_not(None),
        or_(ImportRow.status == RowStatus.CREATED, ImportRow.linked),
    )


async def _stage_undo(session: AsyncSession, job: Job) -> None:
    """The undo's items: the row numbers of what the import made."""
    rows = select(literal(job.id), ImportRow.row).where(*_undoable(job.params["importJobId"]))
    await session.execute(insert(JobItem.__table__).from_select(["job_id", "item"], rows))


async def _undo_chunk(session: AsyncSession, job: Job, actor: Principal, numbers: list[int]) -> int:
    """Take the chunk's contacts out of the groups the import put them in, then delete
    the contacts it made that nobody changed or linked since; say what stays and why."""
    source = job.params["importJobId"]
    found = await session.execute(
        select(
            ImportRow.row, ImportRow.contact_id, ImportRow.status, ImportRow.linked_groups
        ).where(*_undoable(source), ImportRow.row.between(numbers[0], numbers[-1]))
    )
    rows = list(found)
    notes: dict[int, str] = {}
    by_group: dict[int, list[int]] = defaultdict(list)
    for row in rows:
        for group_id in row.linked_groups:
            by_group[group_id].append(row.contact_id)
    static = set(
        await session.scalars(
            select(Group.id).where(Group.id.in_(sorted(by_group)), Group.kind == GroupKind.STATIC)
        )
    )
    removed = 0
    for group_id, contact_ids in by_group.items():
        if group_id in static:
            removed += len(
                await remove_members(
                    session, actor, group_id, contact_ids, MembershipSource.IMPORT, job_id=job.id
                )
            )
    made = {row.contact_id: row.row for row in rows if RowStatus(row.status) is RowStatus.CREATED}
    for row in rows:
        if row.contact_id not in made:
            notes[row.row] = (
                "kept: the contact existed before the import; only its memberships "
                "from the import were removed"
            )
    deleted = await _delete_unchanged(session, job, actor, made, notes)
    table = ImportRow.__table__
    await session.execute(
        update(table)
        .where(table.c.job_id == source, table.c.row == bindparam("r"))
        .values(undo=bindparam("u")),
        [{"r": number, "u": note} for number, note in notes.items()],
    )
    return removed + deleted


async def _delete_unchanged(
    session: AsyncSession, job: Job, actor: Principal, made: dict[int, int], notes: dict[int, str]
) -> int:
    if not made:
        return 0
    ids = sorted(made)
    changed = set(
        await session.scalars(
            select(Contact.id).where(
                any_of(Contact.id, ids), Contact.updated_at > Contact.created_at
            )
        )
    )
    linked = set(
        await session.scalars(
            select(Membership.contact_id).where(any_of(Membership.contact_id, ids))
        )
    )
    gone = set(await session.scalars(select(Contact.id).where(any_of(Contact.id, ids))))
    for contact_id, number in made.items():
        if contact_id not in gone:
            notes[number] = "removed already"
        elif contact_id in changed:
            notes[number] = "kept: the contact was changed after the import"
        elif contact_id in linked:
            notes[number] = "kept: the contact was added to a group after the import"
    deletable = [c for c in ids if c in gone and c not in changed and c not in linked]
    if not deletable:
        return 0
    try:
        async with session.begin_nested():
            await session.execute(delete(Contact).where(any_of(Contact.id, deletable)))
    except IntegrityError:
        for contact_id in deletable:
            notes[made[contact_id]] = "kept: other data refers to the contact"
        return 0
    for contact_id in deletable:
        notes[made[contact_id]] = "removed"
    await after_contacts_changed(
        session, deletable, f"job {job.id}: an import was undone", actor.user_id
    )
    return len(deletable)


def check_can_start(actor: Principal, *, groups: bool, new_group: bool) -> None:
    """What an import needs besides ``contacts.import``: it makes and changes contacts,
    and adds them to groups."""
    actor.require("contacts.manage")
    if groups:
        actor.require("members.manage")
    if new_group:
        actor.require("groups.manage")


JOB_KINDS = {
    IMPORT: JobKind(
        permission=PERMISSION, prepare=_stage, run_chunk=_run_chunk, max_chunk=ROWS_PER_CHUNK
    ),
    UNDO: JobKind(permission=PERMISSION, prepare=_stage_undo, run_chunk=_undo_chunk),
}
"""The import jobs, for the composition root to register."""
