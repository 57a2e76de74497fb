"""A consistent copy of a SQLite database while the service writes to it (docs/backup.md).

SQLite's online backup API copies one snapshot of the database: under WAL the copy reads
while ``serve`` and the worker go on writing, and it never sees half of a transaction.
PostgreSQL has its own tool for this, ``pg_dump``."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from pathlib import Path
from urllib.parse import quote

from sqlalchemy.engine import make_url


class BackupRefused(Exception):
    """Why no backup was made, in words an operator can act on."""


def backup_sqlite(database_url: str, target: Path) -> int:
    """Copy the SQLite database of ``database_url`` to ``target``, which must not exist;
    the number of pages copied.

    The copy is written beside ``target`` under another name, checked with ``PRAGMA
    integrity_check`` and only then linked to ``target``: a backup cut short, or one
    that does not check, leaves nothing at ``target``."""
    source_path = _sqlite_path(database_url)
    if target.exists():
        raise BackupRefused(f"{target} exists already; give a path that does not")
    if not target.parent.is_dir():
        raise BackupRefused(f"there is no folder {target.parent} to write {target.name} into")
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(handle)
    try:
        pages = _copy(source_path, Path(temporary))
        try:
            # A link fails on an existing name, where a rename would replace it: a file
            # made at ``target`` while we copied is never overwritten.
            os.link(temporary, target)
        except FileExistsError:
            raise BackupRefused(f"{target} exists already; give a path that does not") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    _sync_folder(target.parent)
    return pages


def _sqlite_path(database_url: str) -> Path:
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        raise BackupRefused(
            f"`graphql-api backup` copies SQLite databases; for {url.get_backend_name()} use "
            "`pg_dump -Fc` (docs/backup.md)"
        )
    if not url.database or url.database == ":memory:" or "mode=memory" in database_url:
        raise BackupRefused("an in-memory database cannot be backed up")
    path = Path(url.database)
    if not path.is_file():
        raise BackupRefused(f"there is no database file {path}")
    return path


def _copy(source_path: Path, temporary: Path) -> int:
    # mode=rw: a mistyped path must not create an empty database to back up.
    source = sqlite3.connect(f"file:{quote(str(source_path.resolve()))}?mode=rw", uri=True)
    copy = sqlite3.connect(temporary)
    try:
        # The service's writers hold the write lock briefly; wait as they do for each other.
        source.execute("PRAGMA busy_timeout = 5000")
        # One step: one read transaction, so the copy is one snapshot however long it takes.
        source.backup(copy)
        # A self-contained file, no -wal beside it; the service turns WAL on again on open.
        copy.execute("PRAGMA journal_mode = DELETE")
        checked = [row[0] for row in copy.execute("PRAGMA integrity_check")]
        if checked != ["ok"]:
            raise BackupRefused(f"the copy does not check: {'; '.join(checked[:3])}")
        pages = int(copy.execute("PRAGMA page_count").fetchone()[0])
        copy.commit()
    except sqlite3.Error as error:
        raise BackupRefused(f"cannot copy {source_path}: {error}") from error
    finally:
        copy.close()
        source.close()
    with temporary.open("rb+") as written:
        os.fsync(written.fileno())
    return pages


def _sync_folder(folder: Path) -> None:
    """Make the rename durable: a crash right after must not lose the new name."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
