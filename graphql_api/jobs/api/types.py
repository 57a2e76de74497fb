"""GraphQL types of jobs: ``Job`` (a Node), its state, and the payload of ``cancelJob``."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.utils.str_converters import to_camel_case

from graphql_api.graphql_base.context import Info
from graphql_api.graphql_base.enums import described_enum
from graphql_api.graphql_base.errors import UserError
from graphql_api.graphql_base.nodes import findable
from graphql_api.graphql_base.relay import Node, global_id_field, rows_of
from graphql_api.jobs import models
from graphql_api.jobs.models import JobState
from graphql_api.jobs.service import VIEW_ALL
from graphql_api.users import models as user_models

if TYPE_CHECKING:
    from graphql_api.users.api.types import User

UserRef = Annotated["User", strawberry.lazy("graphql_api.users.api.types")]

JobStateType = described_enum(
    JobState,
    "Where a job (taak) stands.",
    {
        JobState.QUEUED: "Waiting for a worker (in de wachtrij).",
        JobState.RUNNING: "A worker is at it, chunk by chunk; `done` rises as chunks commit.",
        JobState.SUCCEEDED: "Every item was handled.",
        JobState.FAILED: "Stopped on a problem, which `errors` names; what chunks did "
        "before it stays.",
        JobState.CANCELLED: "Stopped by `cancelJob`; what chunks did before it stays.",
    },
)


@findable(models.Job, VIEW_ALL, owner="owner_id")
@strawberry.type(
    description="A bulk change running in the background (taak), in chunks of one "
    "transaction each: not all-or-nothing, and it says how far it got. Seen by whoever "
    "started it, and with `jobs.view`."
)
class Job(Node):
    id: strawberry.ID = global_id_field("Job")
    kind: str = strawberry.field(description="What it does, e.g. `members.add`.")
    state: JobStateType = strawberry.field(description="Where it stands.")
    cause: str = strawberry.field(
        description="What it does, in words, e.g. \"add 10,000 contacts to group 7 ('Leden "
        "2025')\"; the history rows it writes name it."
    )
    total: int | None = strawberry.field(
        description="Items to handle (contacts, say); null until its list is known, when "
        'it names one ("everyone in group X") instead of giving it.'
    )
    done: int = strawberry.field(description="Items handled by the chunks committed so far.")
    failed: int = strawberry.field(
        description="Items of the chunk that was refused, when one was (then it FAILED)."
    )
    changed: int = strawberry.field(
        description="Rows the committed chunks actually changed, e.g. contacts that became "
        "members (those who were members already are done, not changed)."
    )
    cancel_requested: bool = strawberry.field(
        description="`cancelJob` asked it to stop; a running job stops after its current chunk."
    )
    created_at: datetime = strawberry.field(description="When it was started (queued).")
    started_at: datetime | None = strawberry.field(
        description="When a worker began it; null while QUEUED."
    )
    finished_at: datetime | None = strawberry.field(
        description="When it SUCCEEDED, FAILED or was CANCELLED; null before."
    )
    updated_at: datetime = strawberry.field(description="When it last changed (progress too).")
    is_type_of = rows_of(models.Job)

    @strawberry.field(description="Who started it; null for the system or a deleted user.")
    async def owner(self, root: strawberry.Parent[models.Job], info: Info) -> UserRef | None:
        return await info.context.row(user_models.User, root.owner_id)

    @strawberry.field(
        description="Why it FAILED, each with a stable `code` (`INTERNAL`: a fault of the "
        "service, not of its input); empty otherwise."
    )
    def errors(self, root: strawberry.Parent[models.Job]) -> list[UserError]:
        return [_user_error(error) for error in root.errors or []]


def _user_error(error: dict[str, Any]) -> UserError:
    field = error.get("field")
    return UserError(
        field=[to_camel_case(str(part)) for part in field] if field else None,
        code=error["code"],
        message=error["message"],
    )


@strawberry.type(description="Result of a change to a job.")
class JobPayload:
    job: Job | None = strawberry.field(default=None, description="The job, when changed.")
    errors: list[UserError] = strawberry.field(description="Why it was refused; empty on success.")
