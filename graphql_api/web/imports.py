"""Files in for imports (docs/import.md): ``POST /uploads`` takes a file's bytes as the
request body and answers its id; ``GET /imports/{job}/errors.csv`` answers an import's
rejected rows with the reason appended. Both need a staff user's Bearer token, as
``/graphql`` does; a token in a header (never a cookie) is what keeps them safe from
cross-site requests.

The body of an upload is read as it arrives into a temporary file (``BodyLimit`` leaves
this path to it), counted against ``GRAPHQL_API_MAX_UPLOAD_BYTES``, and only then stored:
a slow client holds no database transaction open.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from graphql_api.auth.backend import StaffUser
from graphql_api.contacts.imports.models import PART_BYTES, ImportRow, RowStatus
from graphql_api.contacts.imports.service import import_job
from graphql_api.contacts.imports.uploads import PERMISSION, store_upload
from graphql_api.graphql_base.relay import to_global_id
from graphql_api.kernel.access import Forbidden, Principal
from graphql_api.kernel.errors import ErrorCode, UserInputError
from graphql_api.kernel.writing import writing_transaction
from graphql_api.web.exports import (
    ClosingStreamingResponse,
    csv_chunks,
    get_only,
    problem_response,
    refused_response,
)

UPLOAD_PATH = "/uploads"
ERRORS_PAGE = 1000
REASON_COLUMN = "Reden (reason)"
NEEDS_TOKEN = "Send 'Authorization: Bearer <token>'."


def _importer(request: Request) -> Principal | Response:
    """The staff user a request acts for, when they may import; else the refusal: 401
    without a token, 403 without ``contacts.import``."""
    if not isinstance(request.user, StaffUser):
        return refused_response(401, NEEDS_TOKEN)
    actor: Principal = request.user.principal
    if not actor.can(PERMISSION):
        return problem_response(403, Forbidden(PERMISSION))
    return actor


async def upload(request: Request) -> Response:
    """Store the body as an upload: 201 with its id, name and size; 413 past the limit."""
    actor = _importer(request)
    if isinstance(actor, Response):
        return actor
    limit: int = request.app.state.settings.max_upload_bytes
    name = request.query_params.get("name") or "upload"
    with tempfile.SpooledTemporaryFile(max_size=PART_BYTES, prefix="upload-") as file:
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    return refused_response(
                        413, f"The file is larger than the {limit:,} bytes an upload may be."
                    )
                file.write(chunk)
        except ClientDisconnect:
            return Response(status_code=400)
        if size == 0:
            return refused_response(400, "The request body is empty: send the file's bytes.")
        async with writing_transaction(request.app.state.sessions) as session:
            stored = await store_upload(session, actor, name, file)  # type: ignore[arg-type]
            answer = {
                "id": to_global_id("Upload", stored.id),
                "filename": stored.filename,
                "size": stored.size,
            }
    return JSONResponse(answer, status_code=201)


async def error_file(request: Request) -> Response:
    """The rejected rows of an import as a CSV: the file's own columns, then the reason."""
    actor = _importer(request)
    if isinstance(actor, Response):
        return actor
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    async with sessions() as session:
        try:
            if not request.path_params["job"].isdigit():
                raise UserInputError.single(["job"], ErrorCode.NOT_FOUND, "No import with this id.")
            job = await import_job(session, actor, int(request.path_params["job"]))
        except UserInputError as error:
            return problem_response(404, error)
        header = [*job.params.get("header", []), REASON_COLUMN]
        separator = job.params.get("separator") or ";"
    body = csv_chunks(
        header, rejected_pages(sessions, job.id), separator if separator in ";," else ";"
    )
    return ClosingStreamingResponse(
        body,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="import-{job.id}-errors.csv"',
            "Cache-Control": "no-store",
        },
    )


async def rejected_pages(
    sessions: async_sessionmaker[AsyncSession], job_id: int
) -> AsyncIterator[list[list[Any]]]:
    """Keyset pages of the rejected rows, each read in a short transaction of its own."""
    after = 0
    while True:
        async with sessions() as session:
            page = list(
                await session.execute(
                    select(ImportRow.row, ImportRow.cells, ImportRow.errors)
                    .where(
                        ImportRow.job_id == job_id,
                        ImportRow.status == RowStatus.REJECTED,
                        ImportRow.row > after,
                    )
                    .order_by(ImportRow.row)
                    .limit(ERRORS_PAGE)
                )
            )
        if not page:
            return
        yield [[*cells, _reason(number, errors)] for number, cells, errors in page]
        after = page[-1].row


def _reason(number: int, errors: list[dict[str, Any]]) -> str:
    found = [e for e in errors if not e.get("warning")]
    parts = [(f"{e['column']}: " if e.get("column") else "") + str(e["message"]) for e in found]
    return f"Row {number}: " + "; ".join(parts)


def import_routes() -> list[Route]:
    """The upload (POST only) and the error file (GET only), for the application to mount."""
    return [
        Route(UPLOAD_PATH, upload, methods=["POST"]),
        get_only("/imports/{job}/errors.csv", error_file),
    ]
