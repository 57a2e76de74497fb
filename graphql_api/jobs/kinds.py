"""What each kind of job does, registered by the composition root (``web/app.py``).

The registry of one application is kept in its sessions' ``info`` (as its domain rules
are), so ``start_job`` and the runner find the same kinds on every path without a module
global that an import fills in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.jobs.models import Job
from graphql_api.kernel.access import Principal

Prepare = Callable[[AsyncSession, Job], Awaitable[None]]
RunChunk = Callable[[AsyncSession, Job, Principal, list[int]], Awaitable[int]]

JOB_KINDS = "job_kinds"
"""Key of a session's ``info``: the application's ``JobKinds``."""


@dataclass(frozen=True)
class JobKind:
    """One kind of job.

    ``permission``: what its owner needs, when it starts and at every chunk.
    ``prepare(session, job)``: fills ``job_items`` set-based (``INSERT ... SELECT``) for a
    job whose list is named rather than given ("everyone in group 7 when the job runs");
    None when lists are always given.
    ``run_chunk(session, job, owner, items)``: does the work for these items inside the
    chunk's transaction and answers how many rows it changed; raises ``UserInputError``
    to refuse (the job fails, earlier chunks stay).
    ``max_chunk``: at most this many items per chunk, whatever ``job_chunk_size`` says,
    for a kind whose items each weigh more than a contact id (an imported row)."""

    permission: str
    prepare: Prepare | None
    run_chunk: RunChunk
    max_chunk: int | None = None


class JobKinds(Mapping[str, JobKind]):
    """The kinds of one application, by name (``members.add``)."""

    def __init__(self, kinds: Mapping[str, JobKind] | None = None) -> None:
        self._kinds: dict[str, JobKind] = {}
        for name, kind in (kinds or {}).items():
            self.register(name, kind)

    def register(self, name: str, kind: JobKind) -> None:
        """Add a kind; a name registered twice is a mistake of the composition."""
        if name in self._kinds:
            raise ValueError(f"job kind {name!r} is registered already")
        self._kinds[name] = kind

    def __getitem__(self, name: str) -> JobKind:
        return self._kinds[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._kinds)

    def __len__(self) -> int:
        return len(self._kinds)


NO_KINDS = JobKinds()


def kinds_of(session: AsyncSession) -> JobKinds:
    """The job kinds of the application that made ``session`` (none without one)."""
    return session.info.get(JOB_KINDS, NO_KINDS)
