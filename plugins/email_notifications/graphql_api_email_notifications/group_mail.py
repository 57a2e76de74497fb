"""Group mail ("E-mail naar groep"): one mail to every current member of a group, sent by a
job chunk by chunk, each recipient with a status.

Asking for a group mail checks everything that can be checked at once (the group, the
template or the subject and body, their merge fields) and stores the mail with a job.
The job's ``prepare`` stores a QUEUED recipient row for each member and the members as
the job's items, each in one ``INSERT ... SELECT``. Each chunk then skips the members it
may not mail (no e-mail address; opted out of the group), renders the rest in one batch,
sends them over a few reused SMTP connections at the plugin's rate, and records each
status in the chunk's transaction.

Exactly once, as far as a mail server allows: a chunk's statuses commit with it, so a
job resumed after its worker died starts after the last committed chunk. Only the mails
of the chunk that was being sent when the worker died are sent again (at most
``GRAPHQL_API_GROUP_MAIL_CHUNK_SIZE``), under the same Message-ID
``<groupmail-M-contact-C@domain>``, by which a receiver can tell the repeat.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import false, func, insert, literal, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.plugin import (
    Contact,
    EmailTemplate,
    ErrorCode,
    Forbidden,
    Group,
    Job,
    JobItem,
    JobKind,
    JobState,
    Principal,
    Problems,
    Rendered,
    UserInputError,
    check_template,
    clean_email,
    clean_text,
    member_ids,
    merge_sample,
    merge_values,
    opted_out,
    render_many,
    start_job,
    utcnow,
)
from graphql_api_email_notifications import unsubscribe
from graphql_api_email_notifications.models import (
    GroupMail,
    GroupMailRecipient,
    RecipientStatus,
)
from graphql_api_email_notifications.sending import (
    Mail,
    SmtpSettings,
    bucket,
    message,
    send_each,
)

KIND = "email_notifications.group_mail"
PERMISSION = "email_notifications.group_mail"
ALSO_NEEDED = "groups.view"
MAX_SUBJECT = 500
MAX_BODY = 100_000
"""The limits of a template's subject and body."""

TEMPLATE_OR_TEXT = "EMAIL_NOTIFICATIONS_TEMPLATE_OR_TEXT"
UNRENDERABLE = "EMAIL_NOTIFICATIONS_UNRENDERABLE"
STILL_SENDING = "EMAIL_NOTIFICATIONS_STILL_SENDING"
NOTHING_TO_RETRY = "EMAIL_NOTIFICATIONS_NOTHING_TO_RETRY"
NOT_A_MEMBER = "EMAIL_NOTIFICATIONS_NOT_A_MEMBER"
NOT_SENT = "EMAIL_NOTIFICATIONS_NOT_SENT"
ERROR_CODES = {
    TEMPLATE_OR_TEXT: "Give a template, or a subject and a body: one of the two, not both.",
    UNRENDERABLE: "The subject or body cannot be rendered: a merge field nobody defines, "
    "its syntax, or more than a rendering's budget.",
    STILL_SENDING: "The group mail's job has not finished: cancel it or wait for it first.",
    NOTHING_TO_RETRY: "No recipient of the group mail FAILED (or was left QUEUED).",
    NOT_A_MEMBER: "The contact is not a member of the group.",
    NOT_SENT: "The test mail could not be sent; the message has the mail server's words.",
}

ONE_CLICK = "List-Unsubscribe=One-Click"
NO_ADDRESS = "no e-mail address"
OPTED_OUT = "opted out of this group"
GROUP_DELETED = "the group was deleted"

FINISHED_JOB_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


@dataclass(frozen=True)
class Content:
    """What a group mail says: a template's subject and body as they are now, or the
    caller's own."""

    subject: str
    body: str
    template_id: int | None


@dataclass(frozen=True)
class Preview:
    subject: str
    text: str
    html: str
    contact_id: int | None
    """The member it was rendered for; None for the sample (a group without members)."""


@dataclass(frozen=True)
class Outcome:
    """What ``send_group_mail`` did: a mail and its job, or a test mail sent."""

    mail: GroupMail | None = None
    job: Job | None = None
    test_message_id: str | None = None


def allowed(actor: Principal) -> None:
    """Sending and reading group mails needs the plugin's permission and ``groups.view``."""
    actor.require(PERMISSION)
    actor.require(ALSO_NEEDED)


async def existing_group(session: AsyncSession, group_id: int) -> Group:
    group = await session.get(Group, group_id)
    if group is None:
        raise UserInputError.single(["group_id"], ErrorCode.NOT_FOUND, "No group with this id.")
    return group


async def content(
    session: AsyncSession, template_id: int | None, subject: str | None, body: str | None
) -> Content:
    """The template's subject and body, or the given ones, each refused when it cannot be
    rendered with this application's merge fields (an unknown field above all)."""
    if template_id is not None and (subject is not None or body is not None):
        raise UserInputError.single(
            ["template_id"],
            TEMPLATE_OR_TEXT,
            "Give a template, or a subject and a body, not both.",
        )
    problems = Problems()
    if template_id is not None:
        template = await session.get(EmailTemplate, template_id)
        if template is None:
            raise UserInputError.single(
                ["template_id"], ErrorCode.NOT_FOUND, "No e-mail template with this id."
            )
        chosen = Content(template.subject, template.body, template.id)
    else:
        if subject is None and body is None:
            raise UserInputError.single(
                ["template_id"], TEMPLATE_OR_TEXT, "Give a template, or a subject and a body."
            )
        cleaned_subject = clean_text(
            problems, ["subject"], subject, max_length=MAX_SUBJECT, required=True
        )
        cleaned_body = clean_text(problems, ["body"], body, max_length=MAX_BODY, required=True)
        problems.raise_if_any()
        assert cleaned_subject is not None and cleaned_body is not None
        chosen = Content(cleaned_subject, cleaned_body, None)
    for field, source in (("subject", chosen.subject), ("body", chosen.body)):
        problem = await check_template(session, source)
        if problem is not None:
            where = "template_id" if template_id is not None else field
            problems.add([where], UNRENDERABLE, f"The {field} cannot be rendered: {problem}.")
    problems.raise_if_any()
    return chosen


async def send_group_mail(
    session: AsyncSession,
    actor: Principal,
    settings: SmtpSettings,
    *,
    group_id: int,
    template_id: int | None,
    subject: str | None,
    body: str | None,
    test_to: str | None,
) -> Outcome:
    """Mail every current member of the group as a job, or, with ``test_to``, send one
    test mail there (rendered for the first member) and start nothing."""
    allowed(actor)
    problems = Problems()
    test_address = clean_email(problems, ["test_to"], test_to) if test_to is not None else None
    if test_to is not None and test_address is None and not problems:
        problems.add(["test_to"], ErrorCode.REQUIRED, "Give the address for the test mail.")
    group = await existing_group(session, group_id)
    problems.raise_if_any()
    chosen = await content(session, template_id, subject, body)
    if test_address is not None:
        sent = await _send_test(session, settings, group, chosen, test_address)
        return Outcome(test_message_id=sent)
    mail = GroupMail(
        group_id=group.id,
        group_name=group.name,
        template_id=chosen.template_id,
        subject=chosen.subject,
        body=chosen.body,
        secret=secrets.token_hex(32),
        created_by_id=actor.user_id,
        created_at=utcnow(),
    )
    session.add(mail)
    await session.flush()
    job = await start_job(
        session,
        kind=KIND,
        owner=actor,
        params={"groupMailId": mail.id},
        cause=f"e-mail {chosen.subject!r} to the members of group {group.id} ({group.name!r})",
        items=None,
    )
    mail.job_id = job.id
    await session.flush()
    return Outcome(mail=mail, job=job)


async def preview(
    session: AsyncSession,
    actor: Principal,
    *,
    group_id: int,
    template_id: int | None,
    subject: str | None,
    body: str | None,
    contact_id: int | None,
) -> Preview:
    """The mail as ``contact_id`` (a member; default the first) would get it, unsent."""
    allowed(actor)
    group = await existing_group(session, group_id)
    chosen = await content(session, template_id, subject, body)
    members = member_ids(group.id)
    if contact_id is not None:
        found = await session.scalar(members.where(members.selected_columns[0] == contact_id))
        if found is None:
            raise UserInputError.single(
                ["contact_id"], NOT_A_MEMBER, "This contact is not a member of the group."
            )
    return await _render_one(session, group, chosen, contact_id)


async def _render_one(
    session: AsyncSession, group: Group, chosen: Content, contact_id: int | None
) -> Preview:
    """The mail for ``contact_id``, or for the group's first member, or for a sample."""
    if contact_id is None:
        first = member_ids(group.id).subquery()
        contact_id = await session.scalar(select(func.min(first.c[0])))
    fields = (await merge_values(session, group.id, [contact_id])) if contact_id else {}
    values = fields.get(contact_id) if contact_id else None
    if values is None:
        contact_id = None
        values = await _sample(session, group)
    [rendered] = await render_many(chosen.subject, chosen.body, [values])
    if isinstance(rendered, Exception):
        raise UserInputError.single(
            ["body"], UNRENDERABLE, f"The mail cannot be rendered: {rendered}."
        )
    return Preview(rendered.subject, rendered.text, rendered.html, contact_id)


async def _sample(session: AsyncSession, group: Group) -> dict[str, Any]:
    """The group's own fields with a sample contact (the group has no members)."""
    any_contact = await session.scalar(select(Contact.id).limit(1))
    group_fields: dict[str, Any] = {
        "name": group.name,
        "description": group.description,
        "responsible": {"name": None, "email": None},
    }
    if any_contact is not None:
        # The group's fields as every mail has them, responsible user included.
        loaded = await merge_values(session, group.id, [any_contact])
        group_fields = loaded[any_contact]["group"]
    return {"contact": merge_sample(session)["contact"], "group": group_fields}


async def _send_test(
    session: AsyncSession, settings: SmtpSettings, group: Group, chosen: Content, to: str
) -> str:
    rendered = await _render_one(session, group, chosen, None)
    message_id = f"<groupmail-test-{secrets.token_hex(8)}@{settings.domain}>"
    mail = message(settings, message_id, to, rendered.subject, rendered.text, rendered.html)
    try:
        [refused] = await send_each(settings, [mail])
    except Exception as error:  # the connection, TLS, a timeout: said, not raised
        refused = f"{type(error).__name__}: {error}"
    if refused:
        raise UserInputError.single(
            ["test_to"], NOT_SENT, f"The test mail was not sent: {refused}"[:500]
        )
    return message_id


async def counts(session: AsyncSession, mail_ids: Sequence[int]) -> list[dict[str, int]]:
    """Recipients of each mail by status, in one statement for all."""
    rows = await session.execute(
        select(GroupMailRecipient.group_mail_id, GroupMailRecipient.status, func.count())
        .where(GroupMailRecipient.group_mail_id.in_(list(mail_ids)))
        .group_by(GroupMailRecipient.group_mail_id, GroupMailRecipient.status)
    )
    found: dict[int, dict[str, int]] = defaultdict(dict)
    for mail_id, status, number in rows:
        found[mail_id][status] = number
    return [
        {state.value: found[mail_id].get(state.value, 0) for state in RecipientStatus}
        for mail_id in mail_ids
    ]


async def retry(session: AsyncSession, actor: Principal, mail_id: int) -> Outcome:
    """Send the FAILED recipients again (and any a stopped job left QUEUED), as a new job
    of the same mail: the same Message-IDs, the same unsubscribe links."""
    allowed(actor)
    mail = await session.get(GroupMail, mail_id, with_for_update=True)
    if mail is None:
        raise UserInputError.single(["id"], ErrorCode.NOT_FOUND, "No group mail with this id.")
    if mail.group_id is None:
        raise UserInputError.single(["id"], ErrorCode.NOT_FOUND, "The group was deleted.")
    job = await session.get(Job, mail.job_id) if mail.job_id is not None else None
    if job is not None and job.state not in FINISHED_JOB_STATES:
        raise UserInputError.single(
            ["id"], STILL_SENDING, "The group mail is still being sent; wait or cancel it first."
        )
    retried = await session.execute(
        update(GroupMailRecipient)
        .where(
            GroupMailRecipient.group_mail_id == mail.id,
            GroupMailRecipient.status.in_([RecipientStatus.FAILED, RecipientStatus.QUEUED]),
        )
        .values(status=RecipientStatus.QUEUED, reason=None)
    )
    if not retried.rowcount:
        raise UserInputError.single(
            ["id"], NOTHING_TO_RETRY, "No recipient of this group mail failed."
        )
    job = await start_job(
        session,
        kind=KIND,
        owner=actor,
        params={"groupMailId": mail.id, "retry": True},
        cause=f"e-mail {mail.subject!r} again to {retried.rowcount} members of group "
        f"{mail.group_id} ({mail.group_name!r}) it failed for",
        items=None,
    )
    mail.job_id = job.id
    await session.flush()
    return Outcome(mail=mail, job=job)


async def forget_address(session: AsyncSession, contact_id: int) -> None:
    """Remove an erased contact's address from every recipient row (the status stays)."""
    await session.execute(
        update(GroupMailRecipient)
        .where(GroupMailRecipient.contact_id == contact_id)
        .values(email=None)
        .execution_options(synchronize_session=False)
    )


# The job.


async def _prepare(session: AsyncSession, job: Job) -> None:
    """The recipients (a first send: every current member, QUEUED) and the job's items
    (the QUEUED recipients), each in one statement."""
    mail = await _job_mail(session, job)
    if not job.params.get("retry"):
        group = await session.get(Group, mail.group_id) if mail.group_id is not None else None
        if group is None:
            raise UserInputError.single((), ErrorCode.NOT_FOUND, "The group was deleted.")
        members = member_ids(group.id).subquery()
        await session.execute(
            insert(GroupMailRecipient).from_select(
                ["group_mail_id", "contact_id", "status"],
                select(literal(mail.id), members.c[0], literal(RecipientStatus.QUEUED.value)),
            )
        )
    if session.bind.dialect.name == "postgresql":
        # Fresh statistics for the rows just written, so the chunks' statements look their
        # recipients up by key instead of scanning the mail's thousands (which a planner
        # that believes the mail has none would do): from quadratic to linear.
        await session.execute(text(f"ANALYZE {GroupMailRecipient.__tablename__}"))
    queued = select(literal(job.id), GroupMailRecipient.contact_id).where(
        GroupMailRecipient.group_mail_id == mail.id,
        GroupMailRecipient.status == RecipientStatus.QUEUED,
    )
    await session.execute(insert(JobItem).from_select(["job_id", "item"], queued))


async def _job_mail(session: AsyncSession, job: Job) -> GroupMail:
    mail = await session.get(GroupMail, job.params["groupMailId"])
    if mail is None:
        raise UserInputError.single((), ErrorCode.NOT_FOUND, "The group mail no longer exists.")
    return mail


def make_kind(settings: SmtpSettings) -> JobKind:
    """The job kind, sending with ``settings``."""

    async def run_chunk(
        session: AsyncSession, job: Job, owner: Principal, contact_ids: list[int]
    ) -> int:
        if not owner.can(ALSO_NEEDED):
            raise Forbidden(ALSO_NEEDED)
        mail = await _job_mail(session, job)
        return await _send_chunk(session, settings, mail, contact_ids)

    return JobKind(
        permission=PERMISSION,
        prepare=_prepare,
        run_chunk=run_chunk,
        max_chunk=settings.group_mail_chunk,
    )


async def _send_chunk(
    session: AsyncSession, settings: SmtpSettings, mail: GroupMail, contact_ids: list[int]
) -> int:
    """Skip, render, send and record the chunk's QUEUED recipients; how many were sent."""
    recipients = GroupMailRecipient
    these = (
        recipients.group_mail_id == mail.id,
        recipients.contact_id.in_(contact_ids),
        recipients.status == RecipientStatus.QUEUED,
    )
    if mail.group_id is None:
        await _set(session, mail, None, RecipientStatus.SKIPPED, GROUP_DELETED, these)
        return 0
    without = select(Contact.id).where(
        Contact.id.in_(contact_ids), or_(Contact.email.is_(None), Contact.email == "")
    )
    await _set(
        session,
        mail,
        None,
        RecipientStatus.SKIPPED,
        OPTED_OUT,
        (*these, recipients.contact_id.in_(opted_out(mail.group_id))),
    )
    await _set(
        session,
        mail,
        None,
        RecipientStatus.SKIPPED,
        NO_ADDRESS,
        (*these, recipients.contact_id.in_(without)),
    )
    rows = (
        await session.execute(
            select(recipients.contact_id, Contact.email)
            .join(Contact, Contact.id == recipients.contact_id)
            .where(*these)
            .order_by(recipients.contact_id)
        )
    ).all()
    if not rows:
        return 0
    addresses = dict(rows)
    ids = list(addresses)
    values = await merge_values(session, mail.group_id, ids)
    rendered = await render_many(mail.subject, mail.body, [values[pk] for pk in ids])
    failed: dict[str, list[int]] = defaultdict(list)
    mails: list[Mail] = []
    sending: list[int] = []
    for pk, result in zip(ids, rendered, strict=True):
        if isinstance(result, Exception):
            failed[f"cannot be rendered: {result}"[:500]].append(pk)
            continue
        token = unsubscribe.token(mail.secret, mail.id, pk)
        link = f"{settings.public_url.rstrip('/')}{unsubscribe.PATH}?t={token}"
        headers = {"List-Unsubscribe": f"<{link}>", "List-Unsubscribe-Post": ONE_CLICK}
        message_id = f"<groupmail-{mail.id}-contact-{pk}@{settings.domain}>"
        mails.append(message(settings, message_id, addresses[pk], *_parts(result), headers))
        sending.append(pk)
    outcome = await send_each(settings, mails, bucket(settings.rate))
    sent = [pk for pk, refused in zip(sending, outcome, strict=True) if refused is None]
    for pk, refused in zip(sending, outcome, strict=True):
        if refused is not None:
            failed[refused[:500]].append(pk)
    now = utcnow()
    if sent:
        await _set(session, mail, sent, RecipientStatus.SENT, None, (), sent_at=now)
    for reason, pks in failed.items():
        await _set(session, mail, pks, RecipientStatus.FAILED, reason, ())
    return len(sent)


def _parts(rendered: Rendered) -> tuple[str, str, str]:
    return rendered.subject, rendered.text, rendered.html


async def _set(
    session: AsyncSession,
    mail: GroupMail,
    contact_ids: list[int] | None,
    status: RecipientStatus,
    reason: str | None,
    where: tuple[Any, ...],
    **values: Any,
) -> None:
    """One UPDATE of many recipients: ``contact_ids`` of ``mail`` (or those ``where``
    names), with the address they were (or would be) sent to."""
    recipients = GroupMailRecipient
    condition = where or (
        recipients.group_mail_id == mail.id,
        recipients.contact_id.in_(contact_ids or []) if contact_ids else false(),
    )
    address = select(Contact.email).where(Contact.id == recipients.contact_id).scalar_subquery()
    await session.execute(
        update(recipients)
        .where(*condition)
        .values(status=status.value, reason=reason, email=address, **values)
        .execution_options(synchronize_session=False)
    )
