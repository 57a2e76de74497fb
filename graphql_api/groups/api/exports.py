"""GraphQL mutations that answer a download link of an export (docs/export.md):
``exportGroupMembers`` and ``exportGroupReport``."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.graphql_base.access import needing
from graphql_api.graphql_base.context import Info
from graphql_api.graphql_base.enums import described_enum
from graphql_api.graphql_base.errors import UserError
from graphql_api.graphql_base.mutations import ErrorPaths, run_mutation
from graphql_api.graphql_base.relay import decode_ids
from graphql_api.groups.export import (
    DEFAULT_FIELDS,
    LINK_PATH,
    PERMISSION,
    ExportRequest,
    issue_link,
)


class ExportFormat(enum.StrEnum):
    CSV = "csv"
    XLSX = "xlsx"


ExportFormatType = described_enum(
    ExportFormat,
    "The file format of an export.",
    {
        ExportFormat.CSV: "Text, UTF-8 with a byte order mark, every field quoted.",
        ExportFormat.XLSX: "An Excel workbook of one sheet.",
    },
)

Fields = Annotated[
    list[str] | None,
    strawberry.argument(
        description="Contact fields, as named in `Contact` (kind, firstName, lastName, "
        "organisationName, email, phone, street, postalCode, city, externalId, createdAt), and "
        "id: the contact's number (an integer), not its global ID; for a group's members also "
        "memberSince, source and addedBy. Default: " + ", ".join(DEFAULT_FIELDS) + "."
    ),
]
Format = Annotated[ExportFormatType, strawberry.argument(description="CSV (the default) or XLSX.")]
Separator = Annotated[
    str,
    strawberry.argument(description="Of a CSV: `;` (the default, as Dutch Excel reads) or `,`."),
]


@strawberry.type(description="A single-use link to download an export, or why there is none.")
class ExportLinkPayload:
    url: str | None = strawberry.field(
        default=None,
        description="Where to download it with GET, relative to the API's address; works "
        "once, without a token, until `expiresAt`.",
    )
    expires_at: datetime | None = strawberry.field(
        default=None, description="When the link stops working (UTC)."
    )
    errors: list[UserError] = strawberry.field(description="Why it was refused; empty on success.")


MEMBERS = ErrorPaths({"group_ids": "groupId"}, input=None)
REPORT = ErrorPaths({"group_ids": "groupIds"}, input=None)


async def _link(
    info: Info, paths: ErrorPaths, kind: str, group_ids: list[str], **options: Any
) -> ExportLinkPayload:
    async def work(session: AsyncSession) -> dict[str, Any]:
        wanted = ExportRequest(
            kind=kind, group_ids=tuple(decode_ids(group_ids, "Group", ["group_ids"])), **options
        )
        token, expires_at = await issue_link(session, info.context.principal, wanted)
        return {"url": LINK_PATH + token, "expires_at": expires_at}

    return await run_mutation(info, ExportLinkPayload, paths, work)


def _options(fields: list[str] | None, format: ExportFormat, separator: str) -> dict[str, Any]:
    chosen = DEFAULT_FIELDS if fields is None else tuple(fields)
    return {"fields": chosen, "format": format.value, "separator": separator}


@strawberry.type
class ExportMutations:
    @strawberry.mutation(
        description=needing(
            PERMISSION,
            "A link to download a group's members (any kind of group) as CSV or XLSX: the "
            "chosen contact fields, one row per member. It reads contacts and groups, so "
            "`contacts.view` and `groups.view` are needed too.",
        )
    )
    async def export_group_members(
        self,
        info: Info,
        group_id: Annotated[strawberry.ID, strawberry.argument(description="The group.")],
        fields: Fields = None,
        format: Format = ExportFormat.CSV,
        separator: Separator = ";",
    ) -> ExportLinkPayload:
        return await _link(
            info, MEMBERS, "members", [group_id], **_options(fields, format, separator)
        )

    @strawberry.mutation(
        description=needing(
            PERMISSION,
            "A link to download the contacts x groups report: one row per contact in any "
            "of the groups, one column per group holding the day the contact joined it. It "
            "reads contacts and groups, so `contacts.view` and `groups.view` are needed too.",
        )
    )
    async def export_group_report(
        self,
        info: Info,
        group_ids: Annotated[
            list[strawberry.ID], strawberry.argument(description="The groups, at most 50.")
        ],
        fields: Fields = None,
        format: Format = ExportFormat.CSV,
        separator: Separator = ";",
    ) -> ExportLinkPayload:
        return await _link(info, REPORT, "report", group_ids, **_options(fields, format, separator))
