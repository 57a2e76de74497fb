"""The steps of an import as the API and the command line take them: look at a file,
save a mapping, start the import (or its dry run), read what became of each row, undo it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.contacts.imports.csv_text import SEPARATORS
from graphql_api.contacts.imports.errors import FileReadError
from graphql_api.contacts.imports.mapping import ColumnMapping, ImportField, suggested
from graphql_api.contacts.imports.models import ImportMapping, ImportRow, RowStatus, Upload
from graphql_api.contacts.imports.reading import Detection, detect
from graphql_api.contacts.imports.running import (
    FILL_EMPTY,
    IMPORT,
    MATCH_EMAIL,
    MATCH_EXTERNAL_ID,
    SKIP,
    UNDO,
    UPDATE,
    check_can_start,
)
from graphql_api.contacts.imports.uploads import PERMISSION, kind_by_name, upload_file, upload_of
from graphql_api.groups.lifecycle import create_group
from graphql_api.groups.membership_writes import static_group
from graphql_api.jobs.models import FINISHED, Job, JobState
from graphql_api.jobs.service import may_see, start_job
from graphql_api.kernel.access import Forbidden, Principal, requires
from graphql_api.kernel.db import utcnow
from graphql_api.kernel.errors import ErrorCode, Problems, UserInputError
from graphql_api.kernel.validation import clean_text
from graphql_api.users.audit import record

MATCHES = (MATCH_EMAIL, MATCH_EXTERNAL_ID)
POLICIES = (SKIP, UPDATE, FILL_EMPTY)
MAX_MAPPING_NAME = 200


@dataclass(frozen=True)
class Preview:
    """The detect step: how the file reads, and a mapping guessed from its header."""

    detection: Detection
    suggested: list[tuple[str, ImportField]]


@requires(PERMISSION)
async def preview(
    session: AsyncSession,
    actor: Principal,
    upload_id: int,
    *,
    separator: str | None = None,
    sheet: str | None = None,
) -> Preview:
    """The columns and first rows of an upload, and a suggested mapping."""
    upload = await upload_of(session, actor, upload_id)
    detection = await _detected(session, upload, separator, sheet)
    return Preview(detection, suggested(detection.columns))


async def _detected(
    session: AsyncSession, upload: Upload, separator: str | None, sheet: str | None
) -> Detection:
    """How the upload reads; what is wrong with it is the upload's problem."""
    if separator is not None and separator not in SEPARATORS:
        raise UserInputError.single(
            ["separator"], ErrorCode.INVALID, "The separator is one of , ; | or a tab."
        )
    async with upload_file(session, upload) as file:
        try:
            return detect(
                file,
                max_bytes=upload.size,
                kind=kind_by_name(upload.filename),
                separator=separator,
                sheet=sheet,
            )
        except FileReadError as error:
            raise error.moved("upload_id") from error


@dataclass(frozen=True)
class ImportRequest:
    """What ``start_import`` is asked: the file and how to read it, the columns (or a
    saved mapping's name), how to match and what to do with a match, and the groups."""

    upload_id: int
    columns: Sequence[tuple[str, str]] | None = None
    mapping_name: str | None = None
    save_mapping_as: str | None = None
    match: str = MATCH_EMAIL
    duplicates: str = SKIP
    group_id: int | None = None
    new_group_name: str | None = None
    dry_run: bool = False
    separator: str | None = None
    sheet: str | None = None


@requires(PERMISSION)
async def start_import(
    session: AsyncSession, actor: Principal, request: ImportRequest, *, timezone: str
) -> tuple[Job, Any]:
    """Check everything that can be checked before reading the rows (the upload, the
    mapping against its header, the group), then queue the import's job; the group made
    for it, if one is asked for, comes with it (none for a dry run)."""
    if request.match not in MATCHES:
        raise UserInputError.single(
            ["match_by"], ErrorCode.INVALID, "Match by email or external_id."
        )
    if request.duplicates not in POLICIES:
        raise UserInputError.single(
            ["duplicates"], ErrorCode.INVALID, "Choose skip, update or fill_empty."
        )
    if request.group_id is not None and request.new_group_name is not None:
        raise UserInputError.single(
            ["new_group_name"], ErrorCode.INVALID, "Give a group or a new group's name, not both."
        )
    upload = await upload_of(session, actor, request.upload_id)
    detection = await _detected(session, upload, request.separator, request.sheet)
    pairs = await _pairs(session, request)
    mapping = ColumnMapping.checked(pairs, detection.columns)
    if request.match == MATCH_EXTERNAL_ID and ImportField.EXTERNAL_ID not in mapping.fields:
        raise UserInputError.single(
            ["match_by"], ErrorCode.REQUIRED, "Map a column to external_id to match by it."
        )
    grouped = request.group_id is not None or request.new_group_name is not None
    check_can_start(
        actor,
        groups=grouped or ImportField.GROUPS in mapping.fields,
        new_group=request.new_group_name is not None and not request.dry_run,
    )
    group = None
    if request.group_id is not None:
        group = await static_group(session, request.group_id)
    elif request.new_group_name is not None and not request.dry_run:
        try:
            group = await create_group(session, actor, {"name": request.new_group_name})
        except Forbidden:
            raise
        except UserInputError as error:
            raise error.moved("new_group_name") from error
    if request.save_mapping_as is not None:
        try:
            await save_mapping(session, actor, request.save_mapping_as, mapping.as_pairs())
        except UserInputError as error:
            raise error.moved("save_mapping_as") from error
    params = {
        "uploadId": upload.id,
        "filename": upload.filename,
        "columns": mapping.as_pairs(),
        "match": request.match,
        "duplicates": request.duplicates,
        "groupId": group.id if group is not None else None,
        "dryRun": request.dry_run,
        "separator": request.separator or detection.separator,
        "sheet": request.sheet or detection.sheet,
        "timezone": timezone,
    }
    what = "check" if request.dry_run else "import"
    into = f" into group {group.id} ({group.name!r})" if group is not None else ""
    cause = f"{what} the contacts of {upload.filename!r}{into}"
    job = await start_job(session, kind=IMPORT, owner=actor, params=params, cause=cause, items=None)
    record(
        session,
        actor,
        "import.check" if request.dry_run else "import.start",
        upload.filename,
        jobId=job.id,
        uploadId=upload.id,
        size=upload.size,
        groupId=params["groupId"],
    )
    return job, group


async def _pairs(session: AsyncSession, request: ImportRequest) -> list[tuple[str, str]]:
    if (request.columns is None) == (request.mapping_name is None):
        raise UserInputError.single(
            ["columns"], ErrorCode.REQUIRED, "Give the columns, or the name of a saved mapping."
        )
    if request.columns is not None:
        return [tuple(pair) for pair in request.columns]  # type: ignore[misc]
    saved = await _mapping_named(session, request.mapping_name or "")
    if saved is None:
        raise UserInputError.single(
            ["mapping_name"], ErrorCode.NOT_FOUND, "No mapping has this name."
        )
    return [(column, field) for column, field in saved.columns]


async def _mapping_named(session: AsyncSession, name: str) -> ImportMapping | None:
    return await session.scalar(
        select(ImportMapping).where(ImportMapping.name_key == name.strip().casefold())
    )


@requires(PERMISSION)
async def save_mapping(
    session: AsyncSession, actor: Principal, name: str, columns: Sequence[Sequence[str]]
) -> ImportMapping:
    """Keep ``columns`` under ``name`` (replacing a mapping of that name): the fields are
    checked now, the columns when a file is imported with it."""
    problems = Problems()
    cleaned = clean_text(problems, ["name"], name, max_length=MAX_MAPPING_NAME, name=True)
    problems.raise_if_any()
    if cleaned is None:
        raise UserInputError.single(["name"], ErrorCode.REQUIRED, "A mapping needs a name.")
    header = [column for column, _ in columns]
    pairs = ColumnMapping.checked([(c, f) for c, f in columns], header).as_pairs()
    mapping = await _mapping_named(session, cleaned)
    if mapping is None:
        mapping = ImportMapping(name=cleaned, name_key=cleaned.casefold())
        session.add(mapping)
    mapping.columns = pairs
    mapping.updated_by_id = actor.user_id
    mapping.updated_at = utcnow()
    await session.flush()
    return mapping


@requires(PERMISSION)
async def delete_mapping(session: AsyncSession, actor: Principal, name: str) -> None:
    deleted = await session.execute(
        delete(ImportMapping).where(ImportMapping.name_key == name.strip().casefold())
    )
    if not deleted.rowcount:  # type: ignore[attr-defined]
        raise UserInputError.single(["name"], ErrorCode.NOT_FOUND, "No mapping has this name.")


def mappings_query() -> Select[tuple[ImportMapping]]:
    return select(ImportMapping).order_by(ImportMapping.name_key)


async def import_job(session: AsyncSession, actor: Principal, job_id: int) -> Job:
    """An import's job the actor may see (``NOT_FOUND`` otherwise, and for other jobs)."""
    job = await session.get(Job, job_id)
    if job is None or job.kind != IMPORT or not may_see(actor, job):
        raise UserInputError.single(["job_id"], ErrorCode.NOT_FOUND, "No import with this id.")
    return job


async def row_counts(session: AsyncSession, job_id: int) -> dict[RowStatus, int]:
    """How many rows of the import are in each state (every state, 0 when none)."""
    counted = await session.execute(
        select(ImportRow.status, func.count())
        .where(ImportRow.job_id == job_id)
        .group_by(ImportRow.status)
    )
    counts = dict.fromkeys(RowStatus, 0)
    counts.update({RowStatus(status): number for status, number in counted})
    return counts


def rows_query(job_id: int, status: RowStatus | None, after_row: int | None) -> Select[Any]:
    query = select(ImportRow).where(ImportRow.job_id == job_id)
    if status is not None:
        query = query.where(ImportRow.status == status)
    if after_row is not None:
        query = query.where(ImportRow.row > after_row)
    return query.order_by(ImportRow.row)


@requires(PERMISSION)
async def undo_import(session: AsyncSession, actor: Principal, job_id: int) -> Job:
    """Queue the undo of a finished import: once, and not of a dry run."""
    job = await import_job(session, actor, job_id)
    if job.params.get("dryRun"):
        raise UserInputError.single(
            ["job_id"], ErrorCode.INVALID, "A dry run changed nothing: there is nothing to undo."
        )
    if job.state not in FINISHED:
        raise UserInputError.single(
            ["job_id"], ErrorCode.CONFLICT, "The import is still running: cancel it, then undo."
        )
    earlier = job.params.get("undoJobId")
    if earlier is not None:
        undo = await session.get(Job, earlier)
        if undo is not None and undo.state not in (JobState.FAILED, JobState.CANCELLED):
            raise UserInputError.single(
                ["job_id"], ErrorCode.DUPLICATE, f"The import is undone already (job {undo.id})."
            )
    check_can_start(actor, groups=True, new_group=False)
    cause = f"undo import job {job.id} ({job.params.get('filename')!r})"
    undo = await start_job(
        session, kind=UNDO, owner=actor, params={"importJobId": job.id}, cause=cause, items=None
    )
    job.params = {**job.params, "undoJobId": undo.id}
    record(session, actor, "import.undo", str(job.params.get("filename")), jobId=job.id)
    return undo
