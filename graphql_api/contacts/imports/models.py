"""What imports keep in the database: uploaded files, saved column mappings, and the rows
of each import with what became of them.

An upload is kept in parts of ``PART_BYTES`` rather than on a disk, so any worker on any
host can read it, and a part at a time is all that is ever in memory. The rows of an
import (``import_rows``) are staged from the file once, when its job starts: every later
step (the chunks, the summary, the error file, the undo) reads them, never the file again.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from graphql_api.kernel.db import IDS_NEVER_REUSED, Base, UtcDateTime, string_enum, utcnow

PART_BYTES = 1024 * 1024
"""Bytes of an upload per stored part: what reading or writing one holds in memory."""


class Upload(Base):
    """A file sent to ``POST /uploads``, to be imported: its parts hold the bytes."""

    __tablename__ = "uploads"
    __table_args__ = IDS_NEVER_REUSED

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    """Who sent it, and alone may import it; None for the command line's."""
    filename: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class UploadPart(Base):
    """``PART_BYTES`` of an upload, in order of ``number``."""

    __tablename__ = "upload_parts"

    upload_id: Mapped[int] = mapped_column(
        ForeignKey("uploads.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class ImportMapping(Base):
    """Columns of a file mapped to contact fields, saved by name to use again
    ("Koppeling"): ``columns`` is a list of ``[column, field]`` pairs."""

    __tablename__ = "import_mappings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    name_key: Mapped[str] = mapped_column(String(200), unique=True)
    """The name trimmed and case-folded: names are unique in that form."""
    columns: Mapped[list[list[str]]] = mapped_column(JSON)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class RowStatus(enum.StrEnum):
    """What became of a row (in a dry run: what would)."""

    PENDING = "PENDING"
    REJECTED = "REJECTED"
    CREATED = "CREATED"
    UPDATED = "UPDATED"
    UNCHANGED = "UNCHANGED"
    SKIPPED = "SKIPPED"


class ImportRow(Base):
    """One row of an import's file, as mapped: ``values`` by field, ``cells`` as the file
    had them (for the error file), and its outcome."""

    __tablename__ = "import_rows"
    __table_args__ = (Index("ix_import_rows_job_id_match_key", "job_id", "match_key"),)

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    row: Mapped[int] = mapped_column(Integer, primary_key=True)
    """The row number a spreadsheet shows (the header is row 1)."""
    cells: Mapped[list[str]] = mapped_column(JSON)
    values: Mapped[dict[str, Any]] = mapped_column(JSON)
    holds_cells: Mapped[bool] = mapped_column(Boolean, default=True)
    """Whether ``cells`` and ``values`` still hold the file's data: they are emptied a week
    after the import ends (``uploads.KEEP``), as the upload goes; the outcome stays."""
    match_key: Mapped[str | None] = mapped_column(String(320))
    """The e-mail address (case-folded) or external id that finds the row's contact."""
    status: Mapped[RowStatus] = mapped_column(string_enum(RowStatus), default=RowStatus.PENDING)
    contact_id: Mapped[int | None] = mapped_column(Integer)
    linked: Mapped[bool] = mapped_column(Boolean, default=False)
    """Whether the import added the contact to a group it was not in."""
    linked_groups: Mapped[list[int]] = mapped_column(JSON, default=list)
    """The groups it added the contact to: what undoing it takes the contact out of."""
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    """``{"column", "code", "message"}`` each: why the row is rejected, or warnings."""
    undo: Mapped[str | None] = mapped_column(String(300))
    """What undoing the import did with the row: removed, or why it was kept."""
