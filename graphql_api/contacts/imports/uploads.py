"""Files sent for import, kept in the database in parts until an import reads them.

The web layer receives a body into a temporary file (within the size limit) and hands it
here; reading an upload back copies its parts into a temporary file again, so neither
side holds more than a part in memory, and any worker of any host can read it.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import BinaryIO

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.contacts.imports.models import PART_BYTES, ImportRow, Upload, UploadPart
from graphql_api.contacts.imports.reading import FileKind
from graphql_api.jobs.models import Job
from graphql_api.kernel.access import Principal, requires
from graphql_api.kernel.db import utcnow
from graphql_api.kernel.errors import ErrorCode, UserInputError

PERMISSION = "contacts.import"
KEEP = timedelta(days=7)
"""How long an upload is kept: an import reads it within minutes; a week leaves time to
run it again with another mapping."""
MAX_FILENAME = 255


@requires(PERMISSION)
async def store_upload(
    session: AsyncSession, actor: Principal, filename: str, file: BinaryIO
) -> Upload:
    """Keep ``file`` (read from its start) as an upload of ``actor``. Personal data kept
    for an import goes ``KEEP`` after it: older uploads, and the cells of rows of imports
    that finished before then (their outcomes stay, for the report and the undo)."""
    expired = utcnow() - KEEP
    await session.execute(delete(Upload).where(Upload.created_at < expired))
    finished_before = select(Job.id).where(Job.finished_at < expired)
    await session.execute(
        update(ImportRow)
        .where(ImportRow.job_id.in_(finished_before), ImportRow.holds_cells)
        .values(cells=[], values={}, holds_cells=False)
    )
    name = "".join(c for c in filename if c.isprintable()).strip()[:MAX_FILENAME] or "upload"
    upload = Upload(owner_id=actor.user_id, filename=name, size=0, created_at=utcnow())
    session.add(upload)
    await session.flush()
    file.seek(0)
    number = 0
    while part := file.read(PART_BYTES):
        number += 1
        upload.size += len(part)
        values = {"upload_id": upload.id, "number": number, "data": part}
        await session.execute(insert(UploadPart.__table__), values)
    return upload


async def upload_of(session: AsyncSession, actor: Principal, upload_id: int) -> Upload:
    """The upload, when ``actor`` sent it (the command line may read any): to anyone else
    it does not exist."""
    upload = await session.get(Upload, upload_id)
    mine = upload is not None and (actor.user_id is None or upload.owner_id == actor.user_id)
    if upload is None or not mine:
        raise UserInputError.single(["upload_id"], ErrorCode.NOT_FOUND, "No upload with this id.")
    return upload


def kind_by_name(filename: str) -> FileKind | None:
    """An upload named ``.xlsx`` is read as an XLSX, so one that is not says so; any other
    is told by its content (a zip is an XLSX, anything else a CSV)."""
    return FileKind.XLSX if filename.lower().endswith(".xlsx") else None


@asynccontextmanager
async def upload_file(session: AsyncSession, upload: Upload) -> AsyncIterator[BinaryIO]:
    """The upload's bytes as a temporary file, a part read at a time."""
    with tempfile.TemporaryFile(prefix="import-") as file:
        number = 0
        while True:
            number += 1
            part = await session.scalar(
                select(UploadPart.data).where(
                    UploadPart.upload_id == upload.id, UploadPart.number == number
                )
            )
            if part is None:
                break
            file.write(part)
        file.seek(0)
        yield file
