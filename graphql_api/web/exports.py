"""Downloads of exports (docs/export.md): CSV or XLSX, streamed as the rows are read.

``GET /exports/group-members`` and ``GET /exports/group-report`` answer a staff user's
Bearer token, as ``/graphql`` does; ``GET /exports/link/{token}`` answers a single-use
link from the ``exportGroupMembers`` or ``exportGroupReport`` mutation, for a browser.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import anyio
import xlsxwriter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from graphql_api.auth.backend import StaffUser
from graphql_api.graphql_base.relay import decode_ids
from graphql_api.groups.export import (
    DEFAULT_FIELDS,
    LINK_PATH,
    XLSX_MAX_ROWS,
    Export,
    ExportRequest,
    LinkRefused,
    export_rows,
    prepare_export,
    record_export,
    redeem_link,
)
from graphql_api.kernel.access import Forbidden, Principal
from graphql_api.kernel.errors import ErrorCode, UserInputError

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What a spreadsheet may take for the start of a formula (OWASP, "CSV Injection")."""
BOM = "\ufeff"
"""Excel reads a CSV as UTF-8 only when it starts with this."""
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
CHUNK_BYTES = 64 * 1024


def escaped(text: str) -> str:
    """A CSV's text a spreadsheet shows as text, never runs: a leading quote before a
    formula's first character (a CSV has no other way to say "text")."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    return escaped(value) if isinstance(value, str) else value


async def csv_chunks(
    header: list[str], pages: AsyncIterator[list[list[Any]]], separator: str
) -> AsyncGenerator[bytes, None]:
    """UTF-8 with a byte order mark, every field quoted: a page of rows per chunk."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=separator, quoting=csv.QUOTE_ALL, lineterminator="\r\n")

    def taken(rows: Iterable[list[Any]]) -> bytes:
        writer.writerows(rows)
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text.encode()

    yield BOM.encode() + taken([[escaped(name) for name in header]])
    async for page in pages:
        yield taken([_csv_cell(value) for value in row] for row in page)


class SheetFull(Exception):
    """More rows than a sheet holds: the group grew during the export."""


async def xlsx_chunks(
    header: list[str], pages: AsyncIterator[list[list[Any]]], max_rows: int = XLSX_MAX_ROWS
) -> AsyncGenerator[bytes, None]:
    """A workbook written row by row (xlsxwriter's constant memory mode) to a temporary
    file, then sent: an XLSX is a zip whose directory comes last, so nothing of it can go
    before the last row is written. ``SheetFull`` past ``max_rows``, header included:
    xlsxwriter would drop those rows without a word."""
    with tempfile.TemporaryDirectory(prefix="export-") as folder:
        path = os.path.join(folder, "export.xlsx")
        book = xlsxwriter.Workbook(path, {"constant_memory": True, "tmpdir": folder})
        sheet = book.add_worksheet("Export")
        formats = _Formats(book)
        for column, name in enumerate(header):
            _xlsx_text(sheet, 0, column, name, formats.bold, formats.bold_text)
        line = 1
        async for page in pages:
            if line + len(page) > max_rows:
                raise SheetFull(f"More than {max_rows:,} rows, the header's included.")
            for row in page:
                for column, value in enumerate(row):
                    _xlsx_cell(sheet, line, column, value, formats)
                line += 1
        # Zipping the sheet takes a while for a large one: not on the event loop.
        await anyio.to_thread.run_sync(book.close)
        async with await anyio.open_file(path, "rb") as file:
            while chunk := await file.read(CHUNK_BYTES):
                yield chunk


class _Formats:
    """A workbook's cell formats; ``quote_prefix`` marks a cell as text that Excel and
    LibreOffice never take for a formula, while its value stays as it is."""

    def __init__(self, book: xlsxwriter.Workbook) -> None:
        self.moment = book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
        self.day = book.add_format({"num_format": "yyyy-mm-dd"})
        self.text = book.add_format({"quote_prefix": True})
        self.bold = book.add_format({"bold": True})
        self.bold_text = book.add_format({"bold": True, "quote_prefix": True})


def _xlsx_text(sheet: Any, row: int, column: int, text: str, plain: Any, quoted: Any) -> None:
    """A string as a string, marked as text when it starts like a formula."""
    sheet.write_string(row, column, text, quoted if text.startswith(FORMULA_STARTS) else plain)


def _xlsx_cell(sheet: Any, row: int, column: int, value: Any, formats: _Formats) -> None:
    """Strings as strings (never a formula), numbers as numbers, moments and days as
    dates; nothing for None."""
    if value is None:
        return
    if isinstance(value, datetime):
        sheet.write_datetime(row, column, value, formats.moment)
    elif isinstance(value, date):
        sheet.write_datetime(row, column, datetime(value.year, value.month, value.day), formats.day)
    elif isinstance(value, bool | int | float):
        sheet.write_number(row, column, value)
    else:
        _xlsx_text(sheet, row, column, str(value), None, formats.text)


def problem_response(status: int, error: UserInputError) -> JSONResponse:
    return JSONResponse(
        {
            "errors": [
                {"field": list(p.field), "code": p.code.value, "message": p.message}
                for p in error.problems
            ]
        },
        status_code=status,
    )


def refused_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"errors": [{"message": message}]}, status_code=status)


def _request_of(request: Request, kind: str) -> ExportRequest:
    """The export a query string asks for; ``INVALID_ID`` for a malformed group id."""
    query = request.query_params
    ids_argument = "groupId" if kind == "members" else "groupIds"
    named = [part for part in query.get(ids_argument, "").split(",") if part]
    fields = [part for part in query.get("fields", "").split(",") if part]
    return ExportRequest(
        kind=kind,
        group_ids=tuple(decode_ids(named, "Group", ["group_ids"])),
        fields=tuple(fields) if "fields" in query else DEFAULT_FIELDS,
        format=query.get("format", "csv"),
        separator=query.get("separator", ";"),
    )


async def _answer(
    request: Request,
    session: AsyncSession,
    actor: Principal,
    wanted: ExportRequest,
) -> Response:
    """The download of ``wanted`` as ``actor``: 403 without the permission, 400 for a bad
    request, 404 for an unknown group; else the file, streamed."""
    try:
        export = await prepare_export(session, actor, wanted)
    except Forbidden as error:
        return problem_response(403, error)
    except UserInputError as error:
        not_found = all(p.code is ErrorCode.NOT_FOUND for p in error.problems)
        return problem_response(404 if not_found else 400, error)
    sessions: async_sessionmaker[AsyncSession] = request.app.state.sessions
    zone = ZoneInfo(request.app.state.settings.timezone)
    body = _stream(sessions, actor, export, zone)
    return ClosingStreamingResponse(
        body,
        media_type=MEDIA_TYPES[wanted.format],
        headers={
            "Content-Disposition": f'attachment; filename="{export.filename}"',
            "Cache-Control": "no-store",
        },
    )


class ClosingStreamingResponse(StreamingResponse):
    """A streamed response that closes its body however the response ends: Starlette
    leaves a body paused at a ``yield`` when the client leaves, so its ``finally`` (the
    audit entry, the XLSX's temporary files) would wait for the garbage collector."""

    def __init__(self, content: AsyncGenerator[bytes, None], **options: Any) -> None:
        super().__init__(content, **options)
        self.body_generator = content

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self.body_generator.aclose()


async def _stream(
    sessions: async_sessionmaker[AsyncSession], actor: Principal, export: Export, zone: ZoneInfo
) -> AsyncGenerator[bytes, None]:
    """The file's bytes; the audit entry once it ends, read to the end or not."""
    counted = [0]

    async def pages() -> AsyncIterator[list[list[Any]]]:
        async for page in export_rows(sessions, export, zone):
            counted[0] += len(page)
            yield page

    if export.request.format == "xlsx":
        chunks = xlsx_chunks(export.header, pages())
    else:
        chunks = csv_chunks(export.header, pages(), export.request.separator)
    complete = False
    try:
        async for chunk in chunks:
            yield chunk
        complete = True
    finally:
        # A client that leaves cancels the response; the entry is written all the same.
        with anyio.CancelScope(shield=True):
            await chunks.aclose()
            await record_export(sessions, actor, export, counted[0], complete)


def _as_staff(kind: str) -> Callable[[Request], Awaitable[Response]]:
    """The route of ``kind`` for a staff user's token: 401 without one."""

    async def endpoint(request: Request) -> Response:
        if not isinstance(request.user, StaffUser):
            return refused_response(
                401, "Send 'Authorization: Bearer <token>' or use a download link."
            )
        async with request.app.state.sessions() as session:
            try:
                wanted = _request_of(request, kind)
            except UserInputError as error:
                return problem_response(400, error)
            return await _answer(request, session, request.user.principal, wanted)

    return endpoint


async def by_link(request: Request) -> Response:
    """A download through a link: 403 for a link that is not one, 410 for one expired
    or used; the user's permission checked as it is now."""
    async with request.app.state.sessions() as session:
        try:
            async with session.begin():
                actor, wanted = await redeem_link(session, request.path_params["token"])
        except LinkRefused as refused:
            return refused_response(410 if refused.gone else 403, str(refused))
        return await _answer(request, session, actor, wanted)


def get_only(path: str, endpoint: Callable[[Request], Awaitable[Response]]) -> Route:
    """A route of GET alone: Starlette adds HEAD to every GET route, and a HEAD would
    use up a link and be audited as an export."""
    route = Route(path, endpoint, methods=["GET"])
    route.methods = {"GET"}
    return route


def export_routes() -> list[Route]:
    """The download routes (405 for any method but GET), for the application to mount."""
    return [
        get_only("/exports/group-members", _as_staff("members")),
        get_only("/exports/group-report", _as_staff("report")),
        get_only(LINK_PATH + "{token}", by_link),
    ]
