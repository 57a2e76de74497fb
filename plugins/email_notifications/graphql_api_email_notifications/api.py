"""GraphQL of group mail ("E-mail naar groep"): ``sendGroupMail``, ``retryGroupMail``,
``previewGroupMail``, ``groupMail`` and ``groupMails``."""

# Strawberry reads these resolvers' annotations at runtime: no postponed annotations here.
import enum
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

import strawberry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.plugin import (
    After,
    Connection,
    Contact,
    ContactType,
    ErrorPaths,
    First,
    Group,
    GroupType,
    Info,
    Job,
    JobType,
    Ordering,
    PublicError,
    UserError,
    UserInputError,
    decode_id,
    global_id_field,
    needing,
    needs,
    paginate,
    query_id,
    rows_of,
    run_mutation,
)
from graphql_api_email_notifications import group_mail
from graphql_api_email_notifications.group_mail import ALSO_NEEDED, PERMISSION
from graphql_api_email_notifications.models import GroupMail, GroupMailRecipient
from graphql_api_email_notifications.sending import SmtpSettings

ALSO = f" Also needs `{ALSO_NEEDED}`."


@strawberry.enum(description="How far a group mail got for one member (status).")
class GroupMailRecipientState(enum.Enum):
    QUEUED = strawberry.enum_value(
        "QUEUED", description="Not sent yet (in de wachtrij): its job has not reached it."
    )
    SENT = strawberry.enum_value("SENT", description="Accepted by the mail server (verzonden).")
    FAILED = strawberry.enum_value(
        "FAILED",
        description="Refused by the mail server for good (mislukt); `reason` has its words. "
        "`retryGroupMail` sends it again.",
    )
    SKIPPED = strawberry.enum_value(
        "SKIPPED",
        description="Not mailed (overgeslagen): no e-mail address, or opted out of the "
        "group's mail; `reason` says which.",
    )


@strawberry.type(description="A group mail's recipients by status (aantallen).")
class GroupMailCounts:
    queued: int = strawberry.field(description="Not sent yet.")
    sent: int = strawberry.field(description="Accepted by the mail server.")
    failed: int = strawberry.field(description="Refused by the mail server for good.")
    skipped: int = strawberry.field(description="Not mailed: no address, or opted out.")
    total: int = strawberry.field(description="Every recipient: the four added up.")


@strawberry.type(
    name="GroupMailRecipient",
    description="A member a group mail is for (ontvanger), and how far their mail got.",
)
class GroupMailRecipientType:
    is_type_of = rows_of(GroupMailRecipient)

    @strawberry.field(description="The contact; null once erased.")
    async def contact(
        self, root: strawberry.Parent[GroupMailRecipient], info: Info
    ) -> ContactType | None:
        return await info.context.row(Contact, root.contact_id)

    @strawberry.field(description="How far the mail got (status).")
    def state(self, root: strawberry.Parent[GroupMailRecipient]) -> GroupMailRecipientState:
        return GroupMailRecipientState(root.status)

    @strawberry.field(
        description="Why it FAILED (the mail server's words) or was SKIPPED; null otherwise."
    )
    def reason(self, root: strawberry.Parent[GroupMailRecipient]) -> str | None:
        return root.reason

    @strawberry.field(description="The address it was sent to (or tried); null while QUEUED.")
    def email(self, root: strawberry.Parent[GroupMailRecipient]) -> str | None:
        return root.email

    @strawberry.field(description="When the mail server accepted it; null unless SENT.")
    def sent_at(self, root: strawberry.Parent[GroupMailRecipient]) -> datetime | None:
        return root.sent_at


async def load_counts(session: AsyncSession, mail_ids: Sequence[int]) -> list[GroupMailCounts]:
    return [
        GroupMailCounts(
            queued=c["QUEUED"],
            sent=c["SENT"],
            failed=c["FAILED"],
            skipped=c["SKIPPED"],
            total=sum(c.values()),
        )
        for c in await group_mail.counts(session, mail_ids)
    ]


BY_CONTACT = Ordering((GroupMailRecipient.contact_id,))
NEWEST_FIRST = Ordering((GroupMail.id,), descending=True)


@strawberry.type(
    name="GroupMail",
    description="A mail to every member of a group (E-mail naar groep): what it says, the "
    "job sending it, and each recipient's status.",
)
class GroupMailType:
    id: strawberry.ID = global_id_field("GroupMail")
    subject: str = strawberry.field(description="The subject as written, merge fields and all.")
    body: str = strawberry.field(description="The body as written, merge fields and all.")
    group_name: str = strawberry.field(description="The group's name when it was sent.")
    created_at: datetime = strawberry.field(description="When it was asked for.")
    is_type_of = rows_of(GroupMail)

    @strawberry.field(description="The group (groep); null once deleted.")
    async def group(self, root: strawberry.Parent[GroupMail], info: Info) -> GroupType | None:
        return await info.context.row(Group, root.group_id)

    @strawberry.field(
        description="The job (taak) sending it, or the latest retry's: its progress "
        "(`total`, `done`), and `cancelJob` stops it."
    )
    async def job(self, root: strawberry.Parent[GroupMail], info: Info) -> JobType | None:
        return await info.context.row(Job, root.job_id)

    @strawberry.field(description="Recipients by status.")
    async def counts(self, root: strawberry.Parent[GroupMail], info: Info) -> GroupMailCounts:
        return await info.context.loader(load_counts).load(root.id)

    @strawberry.field(description="The recipients (ontvangers), by contact id.")
    async def recipients(
        self,
        root: strawberry.Parent[GroupMail],
        info: Info,
        state: Annotated[
            GroupMailRecipientState | None,
            strawberry.argument(description="Only the recipients with this status."),
        ] = None,
        first: First = None,
        after: After = None,
    ) -> Connection[GroupMailRecipientType]:
        query = select(GroupMailRecipient).where(GroupMailRecipient.group_mail_id == root.id)
        if state is not None:
            query = query.where(GroupMailRecipient.status == state.value)
        return await paginate(
            info, query, BY_CONTACT, first=first, after=after, key_of=lambda r: (r.contact_id,)
        )


@strawberry.type(description="A mail rendered for one member, not sent (voorbeeld).")
class GroupMailPreview:
    subject: str = strawberry.field(description="The subject, merge fields filled in.")
    text: str = strawberry.field(description="The body as plain text.")
    html: str = strawberry.field(description="The body as HTML (values escaped).")
    contact_id: strawberry.Private[int | None]

    @strawberry.field(
        description="The member it was rendered for; null for a sample (a group without members)."
    )
    async def contact(self, info: Info) -> ContactType | None:
        return await info.context.row(Contact, self.contact_id)


@strawberry.type(description="Result of previewing a group mail.")
class GroupMailPreviewPayload:
    preview: GroupMailPreview | None = strawberry.field(
        default=None, description="The rendered mail, unless refused."
    )
    errors: list[UserError] = strawberry.field(description="Why it was refused; empty on success.")


@strawberry.input(description="What to mail to a group's members: a template, or your own text.")
class SendGroupMailInput:
    group_id: strawberry.ID = strawberry.field(
        description="The group (groep) whose members get it."
    )
    template_id: strawberry.ID | None = strawberry.field(
        default=None, description="An e-mail template (sjabloon); or give subject and body."
    )
    subject: str | None = strawberry.field(
        default=None, description="The subject (onderwerp), with merge fields; not with a template."
    )
    body: str | None = strawberry.field(
        default=None, description="The body (bericht), with merge fields; not with a template."
    )
    test_to: str | None = strawberry.field(
        default=None,
        description="Send one test mail to this address instead (rendered for the group's "
        "first member), and start nothing.",
    )


@strawberry.type(description="Result of sending (or testing) a group mail.")
class SendGroupMailPayload:
    group_mail: GroupMailType | None = strawberry.field(
        default=None, description="The group mail; null for a test mail or when refused."
    )
    job: JobType | None = strawberry.field(default=None, description="The job (taak) sending it.")
    test_message_id: str | None = strawberry.field(
        default=None, description="The Message-ID of the test mail, when one was sent."
    )
    errors: list[UserError] = strawberry.field(description="Why it was refused; empty on success.")


@strawberry.type(description="Result of retrying a group mail's failed recipients.")
class RetryGroupMailPayload:
    group_mail: GroupMailType | None = strawberry.field(
        default=None, description="The group mail, when a retry was started."
    )
    job: JobType | None = strawberry.field(default=None, description="The new job (taak).")
    errors: list[UserError] = strawberry.field(description="Why it was refused; empty on success.")


SEND_PATHS = ErrorPaths()
PREVIEW_PATHS = ErrorPaths(
    {
        "group_id": "groupId",
        "template_id": "templateId",
        "subject": "subject",
        "body": "body",
        "contact_id": "contactId",
    },
    input=None,
)
RETRY_PATHS = ErrorPaths({"id": "id"}, input=None)

GroupMailId = Annotated[
    strawberry.ID, strawberry.argument(description="Global id of the group mail.")
]


def _reader(info: Info) -> None:
    if not info.context.principal.can(ALSO_NEEDED):
        message = f"This needs the permission '{ALSO_NEEDED}', which you lack."
        raise PublicError(message, "FORBIDDEN")


def query_fields() -> list[Any]:
    async def group_mail_by_id(info: Info, id: GroupMailId) -> GroupMailType | None:
        _reader(info)
        pk = query_id(id, "GroupMail")
        return await info.context.row(GroupMail, pk)  # type: ignore[return-value]

    async def group_mails(
        info: Info,
        group_id: Annotated[strawberry.ID, strawberry.argument(description="The group.")],
        first: First = None,
        after: After = None,
    ) -> Connection[GroupMailType]:
        _reader(info)
        pk = query_id(group_id, "Group")
        query = select(GroupMail).where(GroupMail.group_id == pk)
        return await paginate(
            info, query, NEWEST_FIRST, first=first, after=after, key_of=lambda m: (m.id,)
        )

    async def preview_group_mail(
        info: Info,
        group_id: Annotated[strawberry.ID, strawberry.argument(description="The group.")],
        template_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(description="An e-mail template; or give subject and body."),
        ] = None,
        subject: Annotated[
            str | None, strawberry.argument(description="The subject, with merge fields.")
        ] = None,
        body: Annotated[
            str | None, strawberry.argument(description="The body, with merge fields.")
        ] = None,
        contact_id: Annotated[
            strawberry.ID | None,
            strawberry.argument(description="The member to render it for; default the first."),
        ] = None,
    ) -> GroupMailPreviewPayload:
        async def work(session: AsyncSession) -> GroupMailPreview:
            shown = await group_mail.preview(
                session,
                info.context.principal,
                group_id=decode_id(group_id, "Group", ["group_id"]),
                template_id=_optional(template_id, "EmailTemplate", "template_id"),
                subject=subject,
                body=body,
                contact_id=_optional(contact_id, "Contact", "contact_id"),
            )
            return GroupMailPreview(
                subject=shown.subject, text=shown.text, html=shown.html, contact_id=shown.contact_id
            )

        try:
            return GroupMailPreviewPayload(preview=await info.context.db.run(work), errors=[])
        except UserInputError as error:
            return GroupMailPreviewPayload(errors=PREVIEW_PATHS.user_errors(error.problems))

    return [
        strawberry.field(
            resolver=group_mail_by_id,
            name="groupMail",
            description=needing(PERMISSION, "A group mail (E-mail naar groep) by id." + ALSO),
            extensions=needs(PERMISSION),
        ),
        strawberry.field(
            resolver=group_mails,
            name="groupMails",
            description=needing(PERMISSION, "A group's group mails, newest first." + ALSO),
            extensions=needs(PERMISSION),
        ),
        strawberry.field(
            resolver=preview_group_mail,
            name="previewGroupMail",
            description=needing(
                PERMISSION,
                "A group mail rendered for one member (voorbeeld), without sending it: "
                "subject, text and HTML." + ALSO,
            ),
        ),
    ]


def _optional(global_id: str | None, type_name: str, field: str) -> int | None:
    return decode_id(global_id, type_name, [field]) if global_id is not None else None


def mutation_fields(settings: SmtpSettings) -> list[Any]:
    async def send_group_mail(
        info: Info,
        input: Annotated[SendGroupMailInput, strawberry.argument(description="What to send.")],
    ) -> SendGroupMailPayload:
        async def work(session: AsyncSession) -> dict[str, Any]:
            done = await group_mail.send_group_mail(
                session,
                info.context.principal,
                settings,
                group_id=decode_id(input.group_id, "Group", ["group_id"]),
                template_id=_optional(input.template_id, "EmailTemplate", "template_id"),
                subject=input.subject,
                body=input.body,
                test_to=input.test_to,
            )
            return {
                "group_mail": done.mail,
                "job": done.job,
                "test_message_id": done.test_message_id,
            }

        return await run_mutation(info, SendGroupMailPayload, SEND_PATHS, work)

    async def retry_group_mail(info: Info, id: GroupMailId) -> RetryGroupMailPayload:
        async def work(session: AsyncSession) -> dict[str, Any]:
            pk = decode_id(id, "GroupMail", ["id"])
            done = await group_mail.retry(session, info.context.principal, pk)
            return {"group_mail": done.mail, "job": done.job}

        return await run_mutation(info, RetryGroupMailPayload, RETRY_PATHS, work)

    return [
        strawberry.mutation(
            resolver=send_group_mail,
            name="sendGroupMail",
            description=needing(
                PERMISSION,
                "Mail every current member of a group (E-mail naar groep), static, dynamic "
                "or composite, as a job (taak) you follow with `job` and stop with "
                "`cancelJob`; members without an address or opted out are SKIPPED. With "
                "`testTo`, one test mail goes there instead and no job starts. A merge "
                "field nobody defines is refused (`EMAIL_NOTIFICATIONS_UNRENDERABLE`)." + ALSO,
            ),
        ),
        strawberry.mutation(
            resolver=retry_group_mail,
            name="retryGroupMail",
            description=needing(
                PERMISSION,
                "Send a finished group mail again to its FAILED recipients (and any a "
                "cancelled job left QUEUED), as a new job, under the same Message-IDs." + ALSO,
            ),
        ),
    ]


TYPES = [GroupMailType, GroupMailRecipientType, GroupMailCounts, GroupMailPreview]
