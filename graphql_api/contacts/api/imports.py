"""GraphQL of imports (docs/import.md): look at an uploaded file, save mappings, start an
import or its dry run, read what became of each row, undo it."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.contacts.imports import service
from graphql_api.contacts.imports.mapping import ImportField
from graphql_api.contacts.imports.models import ImportMapping as MappingRow
from graphql_api.contacts.imports.models import ImportRow, RowStatus
from graphql_api.contacts.imports.running import (
    FILL_EMPTY,
    MATCH_EMAIL,
    MATCH_EXTERNAL_ID,
    SKIP,
    UPDATE,
)
from graphql_api.contacts.imports.uploads import PERMISSION
from graphql_api.graphql_base.access import needing, needs
from graphql_api.graphql_base.context import Info
from graphql_api.graphql_base.enums import described_enum
from graphql_api.graphql_base.errors import UserError
from graphql_api.graphql_base.mutations import ErrorPaths, run_mutation
from graphql_api.graphql_base.relay import decode_id, query_id, to_global_id
from graphql_api.kernel.errors import UserInputError

if TYPE_CHECKING:
    from graphql_api.groups.api.types import Group
    from graphql_api.jobs.api.types import Job

JobRef = Annotated["Job", strawberry.lazy("graphql_api.jobs.api.types")]
GroupRef = Annotated["Group", strawberry.lazy("graphql_api.groups.api.types")]
ERROR_FILE_PATH = "/imports/{job}/errors.csv"
MAX_ROWS_PAGE = 500

ImportFieldType = described_enum(
    ImportField,
    "A field a column of an imported file can fill.",
    {
        ImportField.KIND: "PERSON or ORGANISATION (also persoon, organisatie); PERSON when "
        "not mapped.",
        ImportField.FIRST_NAME: "First name (voornaam).",
        ImportField.LAST_NAME: "Last name (achternaam); map Tussenvoegsel here too, before it.",
        ImportField.ORGANISATION_NAME: "Organisation name (organisatie).",
        ImportField.EMAIL: "E-mail address; what a contact is matched by, by default.",
        ImportField.PHONE: "Phone number (telefoonnummer).",
        ImportField.STREET: "Street (straat); map the house number here too, after it.",
        ImportField.POSTAL_CODE: "Postal code (postcode).",
        ImportField.CITY: "City (plaats).",
        ImportField.EXTERNAL_ID: "The contact's number in the system the file comes from "
        "(Econobis's #).",
        ImportField.GROUPS: "Names of static groups to add the row's contact to, separated by `;`.",
        ImportField.MEMBER_SINCE: "The day the contact joined the row's groups (lid sinds): "
        "31-12-2025 or 2025-12-31.",
    },
    name="ImportField",
)


class MatchBy(enum.Enum):
    EMAIL = MATCH_EMAIL
    EXTERNAL_ID = MATCH_EXTERNAL_ID


MatchByType = described_enum(
    MatchBy,
    "How a row finds the contact it is about.",
    {
        MatchBy.EMAIL: "By e-mail address, whatever its case.",
        MatchBy.EXTERNAL_ID: "By the column mapped to EXTERNAL_ID.",
    },
    name="ImportMatchBy",
)


class Duplicates(enum.Enum):
    SKIP = SKIP
    UPDATE = UPDATE
    FILL_EMPTY = FILL_EMPTY


DuplicatesType = described_enum(
    Duplicates,
    "What an import does with a row whose contact exists.",
    {
        Duplicates.SKIP: "Leave the contact as it is (it still joins the import's groups).",
        Duplicates.UPDATE: "Overwrite its fields with the row's non-empty cells.",
        Duplicates.FILL_EMPTY: "Fill only the fields the contact has empty.",
    },
    name="ImportDuplicates",
)

RowStatusType = described_enum(
    RowStatus,
    "What became of a row of an import (of a dry run: what would).",
    {
        RowStatus.PENDING: "Not handled yet.",
        RowStatus.REJECTED: "Refused: see its problems. Nothing of it was imported.",
        RowStatus.CREATED: "It made a new contact.",
        RowStatus.UPDATED: "It changed the contact it found.",
        RowStatus.UNCHANGED: "It found a contact that already had its values.",
        RowStatus.SKIPPED: "It found a contact and left it as it was (duplicates: SKIP).",
    },
    name="ImportRowStatus",
)


@strawberry.type(description="A column of the file and the field it fills.")
class ImportColumn:
    column: str = strawberry.field(description="The column's name in the file's header.")
    field: ImportFieldType = strawberry.field(description="The field it fills.")


@strawberry.input(description="A column of the file and the field it fills.")
class ImportColumnInput:
    column: str = strawberry.field(description="The column's name in the file's header.")
    field: ImportFieldType = strawberry.field(description="The field it fills.")


def _columns(pairs: list[tuple[str, Any]] | list[list[str]]) -> list[ImportColumn]:
    return [ImportColumn(column=column, field=ImportField(field)) for column, field in pairs]


@strawberry.type(description="The detect step of an import: how the file reads.")
class ImportPreview:
    file_kind: str | None = strawberry.field(default=None, description="CSV or XLSX.")
    columns: list[str] = strawberry.field(default_factory=list, description="The header.")
    samples: list[list[str]] = strawberry.field(
        default_factory=list, description="The first 5 rows, a value per column."
    )
    encoding: str | None = strawberry.field(
        default=None, description="Of a CSV: utf-8, utf-8-sig (with a BOM) or windows-1252."
    )
    separator: str | None = strawberry.field(default=None, description="Of a CSV: `;` or `,`.")
    sheet: str | None = strawberry.field(default=None, description="Of an XLSX: the sheet read.")
    sheets: list[str] = strawberry.field(
        default_factory=list, description="Of an XLSX: every sheet's name."
    )
    suggested_columns: list[ImportColumn] = strawberry.field(
        default_factory=list,
        description="A mapping guessed from the header's names (English, Dutch, Econobis's).",
    )
    warnings: list[str] = strawberry.field(
        default_factory=list,
        description="What was changed to read the file, e.g. a repeated column name "
        "numbered: the second `Voornaam` is `Voornaam (2)`.",
    )
    errors: list[UserError] = strawberry.field(
        default_factory=list, description="Why the file cannot be read; empty when it can."
    )


@strawberry.type(name="ImportMapping", description="Columns mapped to fields, saved by name.")
class ImportMappingType:
    name: str = strawberry.field(description="Its name, unique whatever its case.")
    columns: list[ImportColumn] = strawberry.field(description="The columns and their fields.")
    updated_at: datetime = strawberry.field(description="When it was last saved.")

    @classmethod
    def of(cls, row: MappingRow) -> ImportMappingType:
        return cls(name=row.name, columns=_columns(row.columns), updated_at=row.updated_at)


@strawberry.type(description="The result of saving a mapping.")
class ImportMappingPayload:
    mapping: ImportMappingType | None = strawberry.field(default=None, description="As saved.")
    errors: list[UserError] = strawberry.field(description="Why it was refused; empty on success.")


@strawberry.type(description="A problem of a row, or a warning about it.")
class ImportProblem:
    column: str | None = strawberry.field(description="The column at fault, when one is.")
    code: str = strawberry.field(description="Stable reason, as in UserError.code.")
    message: str = strawberry.field(description="What is wrong, in plain English.")
    warning: bool = strawberry.field(description="Only a warning: the row was imported.")


@strawberry.type(description="A row of an imported file and what became of it.")
class ImportRowResult:
    row: int = strawberry.field(description="Its number as a spreadsheet shows it (header: 1).")
    status: RowStatusType = strawberry.field(description="What became of it.")
    contact_id: strawberry.ID | None = strawberry.field(
        description="The global id of the contact it made or found (none in a dry run's new)."
    )
    problems: list[ImportProblem] = strawberry.field(description="Its errors and warnings.")
    cells: list[str] = strawberry.field(description="Its values as the file had them.")
    undo: str | None = strawberry.field(description="What undoing the import did with it.")

    @classmethod
    def of(cls, row: ImportRow) -> ImportRowResult:
        return cls(
            row=row.row,
            status=RowStatus(row.status),
            contact_id=to_global_id("Contact", row.contact_id) if row.contact_id else None,
            problems=[ImportProblem(**problem) for problem in row.errors],
            cells=list(row.cells),
            undo=row.undo,
        )


@strawberry.type(description="An import (or its dry run): its job and its rows' outcomes.")
class ImportReport:
    job: JobRef = strawberry.field(  # type: ignore[valid-type]
        description="Its job (taak): state and progress."
    )
    dry_run: bool = strawberry.field(description="A check only: nothing was written.")
    filename: str = strawberry.field(description="The uploaded file's name.")
    created: int = strawberry.field(description="Rows that made a contact.")
    updated: int = strawberry.field(description="Rows that changed a contact.")
    unchanged: int = strawberry.field(description="Rows whose contact had their values.")
    skipped: int = strawberry.field(description="Rows whose contact was left as it was.")
    rejected: int = strawberry.field(description="Rows refused; see the error file.")
    pending: int = strawberry.field(description="Rows not handled yet.")
    error_file_url: str = strawberry.field(
        description="A CSV of the rejected rows with the reason appended (GET, with the "
        "same token), relative to the API's address."
    )

    @strawberry.field(description="Its rows in file order, a page at a time.")
    async def rows(
        self,
        info: Info,
        status: Annotated[
            RowStatusType | None, strawberry.argument(description="Only rows in this state.")
        ] = None,
        first: Annotated[
            int, strawberry.argument(description=f"How many rows, at most {MAX_ROWS_PAGE}.")
        ] = 100,
        after_row: Annotated[
            int | None, strawberry.argument(description="Rows after this row number.")
        ] = None,
    ) -> list[ImportRowResult]:
        query = service.rows_query(self._job, status, after_row)
        limited = query.limit(max(0, min(first, MAX_ROWS_PAGE)))

        async def read(session: AsyncSession) -> list[ImportRowResult]:
            return [ImportRowResult.of(row) for row in await session.scalars(limited)]

        return await info.context.db.run(read)

    _job: strawberry.Private[int]


@strawberry.input(description="What to import, and how.")
class ImportInput:
    upload_id: strawberry.ID = strawberry.field(
        description="The id `POST /uploads` answered for the file."
    )
    columns: list[ImportColumnInput] | None = strawberry.field(
        default=None, description="Columns and the fields they fill; or give `mappingName`."
    )
    mapping_name: str | None = strawberry.field(default=None, description="A saved mapping.")
    save_mapping_as: str | None = strawberry.field(
        default=None, description="Save the columns as a mapping of this name, too."
    )
    match_by: MatchByType = strawberry.field(  # type: ignore[valid-type]
        default=MatchBy.EMAIL, description="How a row finds its contact."
    )
    duplicates: DuplicatesType = strawberry.field(  # type: ignore[valid-type]
        default=Duplicates.SKIP, description="What to do with a contact a row finds."
    )
    group_id: strawberry.ID | None = strawberry.field(
        default=None, description="A static group to add every imported contact to."
    )
    new_group_name: str | None = strawberry.field(
        default=None,
        description="Make a static group of this name and add every imported contact to "
        "it: the handle to mail them, or to undo the import.",
    )
    dry_run: bool = strawberry.field(
        default=False, description="Check every row as the import would; write nothing."
    )
    separator: str | None = strawberry.field(
        default=None, description="Of a CSV: the separator, when detecting it fails."
    )
    sheet: str | None = strawberry.field(
        default=None, description="Of an XLSX: the sheet to read (the first by default)."
    )


@strawberry.type(description="A started import, its undo, or why not.")
class ImportPayload:
    job: JobRef | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="The job (taak) running it: follow it with jobChanged."
    )
    group: GroupRef | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="The group the contacts go into, when there is one."
    )
    errors: list[UserError] = strawberry.field(description="Why it was refused; empty on success.")


BY_JOB = ErrorPaths({"job_id": "jobId"}, input=None)
BY_NAME = ErrorPaths({"name": "name", "columns": "columns"}, input=None)


@strawberry.type
class ImportQueries:
    @strawberry.field(
        description=needing(
            PERMISSION, "How an uploaded file reads: its columns, first rows and a mapping."
        ),
        extensions=needs(PERMISSION),
    )
    async def import_preview(
        self,
        info: Info,
        upload_id: Annotated[strawberry.ID, strawberry.argument(description="The upload.")],
        separator: Annotated[
            str | None, strawberry.argument(description="Of a CSV, instead of detecting it.")
        ] = None,
        sheet: Annotated[
            str | None, strawberry.argument(description="Of an XLSX: the sheet to read.")
        ] = None,
    ) -> ImportPreview:
        async def read(session: AsyncSession) -> service.Preview:
            pk = decode_id(upload_id, "Upload", ["upload_id"])
            return await service.preview(
                session, info.context.principal, pk, separator=separator, sheet=sheet
            )

        try:
            found = await info.context.db.run(read)
        except UserInputError as error:
            paths = ErrorPaths({"upload_id": "uploadId", "separator": "separator"}, input=None)
            return ImportPreview(errors=paths.user_errors(error.problems))
        seen = found.detection
        return ImportPreview(
            file_kind=seen.kind.upper(),
            columns=list(seen.columns),
            warnings=list(seen.warnings),
            samples=[[row.values.get(c, "") for c in seen.columns] for row in seen.samples],
            encoding=seen.encoding,
            separator=seen.separator,
            sheet=seen.sheet,
            sheets=list(seen.sheets),
            suggested_columns=_columns(found.suggested),
        )

    @strawberry.field(
        description=needing(PERMISSION, "The saved mappings, by name."),
        extensions=needs(PERMISSION),
    )
    async def import_mappings(self, info: Info) -> list[ImportMappingType]:
        async def read(session: AsyncSession) -> list[ImportMappingType]:
            return [
                ImportMappingType.of(m) for m in await session.scalars(service.mappings_query())
            ]

        return await info.context.db.run(read)

    @strawberry.field(
        description=needing(
            PERMISSION,
            "An import's outcome: counts, rows and the error file; null for a job that is "
            "no import you may see (your own; every one with `jobs.view`).",
        ),
        extensions=needs(PERMISSION),
    )
    async def import_report(
        self,
        info: Info,
        job_id: Annotated[strawberry.ID, strawberry.argument(description="The import's job.")],
    ) -> ImportReport | None:
        pk = query_id(job_id, "Job")

        async def read(session: AsyncSession) -> tuple[Any, dict[RowStatus, int]] | None:
            try:
                job = await service.import_job(session, info.context.principal, pk)
            except UserInputError:
                return None
            return job, await service.row_counts(session, job.id)

        found = await info.context.db.run(read)
        if found is None:
            return None
        job, counts = found
        return ImportReport(
            job=job,
            dry_run=bool(job.params.get("dryRun")),
            filename=str(job.params.get("filename", "")),
            created=counts[RowStatus.CREATED],
            updated=counts[RowStatus.UPDATED],
            unchanged=counts[RowStatus.UNCHANGED],
            skipped=counts[RowStatus.SKIPPED],
            rejected=counts[RowStatus.REJECTED],
            pending=counts[RowStatus.PENDING],
            error_file_url=ERROR_FILE_PATH.format(job=job.id),
            _job=job.id,
        )


@strawberry.type
class ImportMutations:
    @strawberry.mutation(
        description=needing(
            PERMISSION,
            "Import contacts (and memberships) from an uploaded CSV or XLSX file, or check "
            "it (`dryRun`), as a job (taak). Also needs `contacts.manage`, `members.manage` "
            "when contacts join groups, and `groups.manage` for a new group.",
        )
    )
    async def start_import(
        self,
        info: Info,
        input: Annotated[ImportInput, strawberry.argument(description="What and how.")],
    ) -> ImportPayload:
        async def work(session: AsyncSession) -> dict[str, Any]:
            request = service.ImportRequest(
                upload_id=decode_id(input.upload_id, "Upload", ["upload_id"]),
                columns=None
                if input.columns is None
                else [(c.column, ImportField(c.field).value) for c in input.columns],
                mapping_name=input.mapping_name,
                save_mapping_as=input.save_mapping_as,
                match=MatchBy(input.match_by).value,
                duplicates=Duplicates(input.duplicates).value,
                group_id=None
                if input.group_id is None
                else decode_id(input.group_id, "Group", ["group_id"]),
                new_group_name=input.new_group_name,
                dry_run=input.dry_run,
                separator=input.separator,
                sheet=input.sheet,
            )
            timezone = info.context.settings.timezone
            job, group = await service.start_import(
                session, info.context.principal, request, timezone=timezone
            )
            return {"job": job, "group": group}

        return await run_mutation(info, ImportPayload, ErrorPaths(), work)

    @strawberry.mutation(
        description=needing(
            PERMISSION,
            "Undo a finished import, as a job: removes the memberships it added, and the "
            "contacts it made that nobody changed or added to a group since; each row's "
            "`undo` says what became of it.",
        )
    )
    async def undo_import(
        self,
        info: Info,
        job_id: Annotated[strawberry.ID, strawberry.argument(description="The import's job.")],
    ) -> ImportPayload:
        async def work(session: AsyncSession) -> dict[str, Any]:
            pk = decode_id(job_id, "Job", ["job_id"])
            return {"job": await service.undo_import(session, info.context.principal, pk)}

        return await run_mutation(info, ImportPayload, BY_JOB, work)

    @strawberry.mutation(
        description=needing(PERMISSION, "Save a mapping by name, replacing one of that name.")
    )
    async def save_import_mapping(
        self,
        info: Info,
        name: Annotated[str, strawberry.argument(description="Its name (koppeling).")],
        columns: Annotated[
            list[ImportColumnInput], strawberry.argument(description="Columns and fields.")
        ],
    ) -> ImportMappingPayload:
        async def work(session: AsyncSession) -> dict[str, Any]:
            pairs = [[c.column, ImportField(c.field).value] for c in columns]
            saved = await service.save_mapping(session, info.context.principal, name, pairs)
            return {"mapping": ImportMappingType.of(saved)}

        return await run_mutation(info, ImportMappingPayload, BY_NAME, work)

    @strawberry.mutation(description=needing(PERMISSION, "Delete a saved mapping."))
    async def delete_import_mapping(
        self,
        info: Info,
        name: Annotated[str, strawberry.argument(description="Its name.")],
    ) -> ImportMappingPayload:
        async def work(session: AsyncSession) -> dict[str, Any]:
            await service.delete_mapping(session, info.context.principal, name)
            return {}

        return await run_mutation(info, ImportMappingPayload, BY_NAME, work)
