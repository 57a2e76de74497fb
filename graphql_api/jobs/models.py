"""Bulk jobs (taken): a change too large for one request, run in chunks by the workers.

A job's list of items (``job_items``, e.g. contact ids) is stored with it, in item order,
and ``position`` is the last item handled: each chunk takes the items after it and moves
it on in the same transaction as the chunk's own rows, so a worker that dies resumes
exactly where the last commit left off.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from graphql_api.kernel.db import IDS_NEVER_REUSED, Base, UtcDateTime, string_enum, utcnow


class JobState(enum.StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


FINISHED = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
"""States a job never leaves."""


class Job(Base):
    """One bulk change: what it does (``kind``, ``params``), whose it is, how far it got."""

    __tablename__ = "jobs"
    __table_args__ = IDS_NEVER_REUSED

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(100))
    """The registered ``JobKind`` that runs it, e.g. ``members.add``."""
    state: Mapped[JobState] = mapped_column(
        string_enum(JobState), default=JobState.QUEUED, index=True
    )
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    """Who started it; its chunks run with this user's permissions, checked at each."""
    as_system: Mapped[bool] = mapped_column(Boolean, default=False)
    """Started by the system (the command line): runs with every permission. A job whose
    owner was deleted has no owner and is not the system's: it fails."""
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    cause: Mapped[str] = mapped_column(Text)
    """What it does, in words: "add 10,000 contacts to group 7 ('Leden 2025')"."""
    total: Mapped[int | None] = mapped_column(Integer)
    """Items in its list; null until the list is known (prepared)."""
    done: Mapped[int] = mapped_column(Integer, default=0)
    """Items handled by committed chunks."""
    failed: Mapped[int] = mapped_column(Integer, default=0)
    """Items of the chunk that was refused, when one was."""
    changed: Mapped[int] = mapped_column(Integer, default=0)
    """Rows the chunks actually changed (new members, say): at most ``done``."""
    position: Mapped[int] = mapped_column(Integer, default=0)
    """The last item handled: the next chunk starts after it (items are positive ids)."""
    prepared: Mapped[bool] = mapped_column(Boolean, default=False)
    """Whether ``job_items`` holds the whole list."""
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    """Why it failed: ``{"code", "message", "field"}`` each."""
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    """The worker running it, while one does."""
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    """Until then no other worker takes it; after it, one may (its worker died)."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    """Failed tries of the current chunk (a fault, or a worker that died running it)."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class JobItem(Base):
    """One item of a job's list (a contact id, say) still to handle: deleted by the chunk
    that handles it, the rest when the job finishes."""

    __tablename__ = "job_items"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    item: Mapped[int] = mapped_column(Integer, primary_key=True)


class JobSchedule(Base):
    """When a scheduled job (a plugin's ``scheduled_jobs``) is next due: the worker that
    moves ``next_run_at`` on starts it, so many workers start it once per period."""

    __tablename__ = "job_schedules"

    name: Mapped[str] = mapped_column(String(300), primary_key=True)
    """The job's kind, and its parameters when it has any."""
    next_run_at: Mapped[datetime] = mapped_column(UtcDateTime)
