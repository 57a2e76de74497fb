"""Group mail ("E-mail naar groep") to static, dynamic and composite groups, through a real
SMTP server on loopback (aiosmtpd), run by the real job runner."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import graphql_api_email_notifications
import httpx
import pytest
from graphql_api_email_notifications.sending import TokenBucket
from group_mail_testing import (
    CANCEL,
    PREVIEW,
    RETRY,
    mail_and_contact,
    pk,
    read,
    send,
    sent,
)
from smtp_testing import contacts
from sqlalchemy import func, select

from graphql_api.plugin import MailOptOut, to_global_id
from graphql_api.testing import (
    GraphQLClient,
    make_job_runner,
    make_user,
    new_group_id,
    new_static_group_id,
    new_template_id,
    run_jobs,
    unchanged,
)

BODY = "Beste {{ contact.firstName }},\n\nNieuws van {{ group.name }}."


@pytest.fixture
def unlimited(monkeypatch: pytest.MonkeyPatch) -> None:
    """No rate limit, and chunks of 4 recipients: a few chunks in every test."""
    monkeypatch.setenv("GRAPHQL_API_SMTP_RATE", "0")
    monkeypatch.setenv("GRAPHQL_API_GROUP_MAIL_CHUNK_SIZE", "4")
    monkeypatch.setenv("GRAPHQL_API_PUBLIC_URL", "https://crm.zonnedael.coop")


@pytest.fixture
async def mailer(app_factory: Any, smtp: Any, unlimited: None) -> Any:
    app = app_factory(plugins=[graphql_api_email_notifications], outbox_retry_base_seconds=0)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    _, token = await make_user(app, "Johannes Frölich", "johannes@example.coop", admin=True)
    yield app, GraphQLClient(http, token), http
    await http.aclose()


async def test_a_static_group_is_mailed_and_the_statuses_add_up(mailer: Any, smtp: Any):
    app, client, _ = mailer
    inbox, _ = smtp
    people = await contacts(
        client, ("Anna", "anna@example.nl"), ("Bram", "bram@example.nl"), ("Cor", None)
    )
    group = await new_static_group_id(client, "Nieuwsbrief <Zon & Wind>", people)
    mail = await sent(
        client, groupId=group, subject="Nieuws voor {{ contact.firstName }}", body=BODY
    )
    before = await read(client, mail)
    assert before["job"]["state"] == "QUEUED" and before["counts"]["total"] == 0
    assert await run_jobs(app) == 1

    assert sorted(m["To"] for m in inbox.messages) == ["anna@example.nl", "bram@example.nl"]
    anna = next(m for m in inbox.messages if m["To"] == "anna@example.nl")
    assert anna["Subject"] == "Nieuws voor Anna"
    assert "Beste Anna," in anna.get_body(("plain",)).get_content()
    assert "Nieuwsbrief &lt;Zon &amp; Wind&gt;" in anna.get_body(("html",)).get_content()
    assert mail_and_contact(anna) == (pk(mail, "GroupMail"), pk(people[0]))
    link = anna["List-Unsubscribe"]
    assert link.startswith(
        "<https://crm.zonnedael.coop/plugins/email_notifications/unsubscribe?t="
    ), link
    assert anna["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    after = await read(client, mail)
    assert after["job"] == {"state": "SUCCEEDED", "total": 3, "done": 3}
    assert after["counts"] == {"queued": 0, "sent": 2, "failed": 0, "skipped": 1, "total": 3}
    states = {
        r["contact"]["firstName"]: (r["state"], r["reason"]) for r in after["recipients"]["nodes"]
    }
    assert states == {
        "Anna": ("SENT", None),
        "Bram": ("SENT", None),
        "Cor": ("SKIPPED", "no e-mail address"),
    }
    assert all(r["sentAt"] for r in after["recipients"]["nodes"] if r["state"] == "SENT")
    listed = await client.data(
        "query($g: ID!) { groupMails(groupId: $g) { nodes { id subject } } }", {"g": group}
    )
    assert listed["groupMails"]["nodes"] == [
        {"id": mail, "subject": "Nieuws voor {{ contact.firstName }}"}
    ]


async def test_dynamic_and_composite_groups_mail_their_current_members(mailer: Any, smtp: Any):
    app, client, _ = mailer
    inbox, _ = smtp
    anna, bram, cor, dirk = await contacts(
        client,
        ("Anna", "anna@zwolle.nl"),
        ("Bram", "bram@zwolle.nl"),
        ("Cor", "cor@elders.nl"),
        ("Dirk", "dirk@zwolle.nl"),
    )
    move = (
        'mutation($c: ID!) { updateContact(id: $c, input: {city: "Zwolle"}) { errors { code } } }'
    )
    for contact in (anna, bram, dirk):
        await client.data(move, {"c": contact})
    zwolle = await new_group_id(
        client,
        name="Zwolle",
        filter={"condition": {"field": "city", "op": "EQ", "value": "Zwolle"}},
    )
    extra = await new_static_group_id(client, "Extra", [cor])
    blocked = await new_static_group_id(client, "Geblokkeerd", [dirk])
    composite = await new_group_id(
        client, name="Samen", composedOfIds=[zwolle, extra], excludedGroupIds=[blocked]
    )
    template = await new_template_id(
        client, name="Nieuws", subject="Nieuws van {{ group.name }}", body=BODY
    )
    dynamic_mail = await sent(client, groupId=zwolle, templateId=template)
    composite_mail = await sent(client, groupId=composite, templateId=template)
    assert await run_jobs(app) == 2

    by_mail = Counter(mail_and_contact(m) for m in inbox.messages)
    assert set(by_mail.values()) == {1}, "each member once per mail"
    dynamic_pk, composite_pk = pk(dynamic_mail, "GroupMail"), pk(composite_mail, "GroupMail")
    assert sorted(c for m, c in by_mail if m == dynamic_pk) == sorted(
        pk(c) for c in (anna, bram, dirk)
    )
    assert sorted(c for m, c in by_mail if m == composite_pk) == sorted(
        pk(c) for c in (anna, bram, cor)
    ), "Zwolle and Extra, without Geblokkeerd"
    subjects = {m["Subject"] for m in inbox.messages}
    assert subjects == {"Nieuws van Zwolle", "Nieuws van Samen"}
    for mail, members in ((dynamic_mail, 3), (composite_mail, 3)):
        counts = (await read(client, mail))["counts"]
        assert counts == {"queued": 0, "sent": members, "failed": 0, "skipped": 0, "total": 3}


async def test_a_refused_address_fails_alone_and_a_retry_sends_it(mailer: Any, smtp: Any):
    app, client, _ = mailer
    inbox, _ = smtp
    people = await contacts(client, *[(f"Lid{i}", f"lid{i}@example.nl") for i in range(6)])
    group = await new_static_group_id(client, "Leden", people)
    inbox.refusing["lid2@example.nl"] = "550 5.1.1 no such user"
    mail = await sent(client, groupId=group, subject="Hallo", body=BODY)
    await run_jobs(app)
    assert len(inbox.messages) == 5
    failed = await read(client, mail, state="FAILED")
    assert failed["counts"] == {"queued": 0, "sent": 5, "failed": 1, "skipped": 0, "total": 6}
    assert [(r["email"], r["reason"]) for r in failed["recipients"]["nodes"]] == [
        ("lid2@example.nl", "550 5.1.1 no such user")
    ]

    del inbox.refusing["lid2@example.nl"]
    retried = (await client.data(RETRY, {"id": mail}))["retryGroupMail"]
    assert retried["errors"] == [] and retried["job"]["id"]
    await run_jobs(app)
    assert len(inbox.messages) == 6
    assert len({m["Message-ID"] for m in inbox.messages}) == 6
    again = await read(client, mail)
    assert again["counts"] == {"queued": 0, "sent": 6, "failed": 0, "skipped": 0, "total": 6}
    assert again["job"]["total"] == 1, "the retry's job: the one that failed"
    nothing = (await client.data(RETRY, {"id": mail}))["retryGroupMail"]
    assert [e["code"] for e in nothing["errors"]] == ["EMAIL_NOTIFICATIONS_NOTHING_TO_RETRY"]


async def test_preview_renders_for_a_member_without_sending(mailer: Any, smtp: Any):
    app, client, _ = mailer
    inbox, _ = smtp
    anna, bram = await contacts(client, ("Anna", "anna@example.nl"), ("Bram", "bram@example.nl"))
    [outsider] = await contacts(client, ("Els", "els@example.nl"))
    group = await new_static_group_id(client, "Leden", [anna, bram])
    variables = {"g": group, "s": "Voor {{ contact.firstName }}", "b": BODY}
    async with unchanged(app):
        first = (await client.data(PREVIEW, variables))["previewGroupMail"]
        chosen = (await client.data(PREVIEW, {**variables, "c": bram}))["previewGroupMail"]
        other = (await client.data(PREVIEW, {**variables, "c": outsider}))["previewGroupMail"]
    assert first["errors"] == [] and first["preview"]["subject"] == "Voor Anna"
    assert first["preview"]["contact"] == {"id": anna}
    assert chosen["preview"]["subject"] == "Voor Bram"
    assert "Beste Bram," in chosen["preview"]["text"]
    assert "<br>" in chosen["preview"]["html"]
    assert other["preview"] is None
    assert [(e["field"], e["code"]) for e in other["errors"]] == [
        (["contactId"], "EMAIL_NOTIFICATIONS_NOT_A_MEMBER")
    ]
    empty = await new_static_group_id(client, "Leeg", [])
    sample = (await client.data(PREVIEW, {**variables, "g": empty}))["previewGroupMail"]
    assert sample["preview"]["subject"] == "Voor Anna" and sample["preview"]["contact"] is None
    assert inbox.messages == []


async def test_test_to_sends_one_mail_and_starts_nothing(mailer: Any, smtp: Any):
    _, client, _ = mailer
    inbox, _ = smtp
    people = await contacts(client, ("Anna", "anna@example.nl"), ("Bram", "bram@example.nl"))
    group = await new_static_group_id(client, "Leden", people)
    payload = await send(
        client,
        groupId=group,
        subject="Test {{ contact.firstName }}",
        body=BODY,
        testTo="redactie@zonnedael.coop",
    )
    assert payload["errors"] == [] and payload["groupMail"] is None and payload["job"] is None
    [test] = inbox.messages
    assert test["To"] == "redactie@zonnedael.coop" and test["Subject"] == "Test Anna"
    assert test["Message-ID"] == payload["testMessageId"]
    listed = await client.data(
        "query($g: ID!) { groupMails(groupId: $g) { totalCount } jobs { totalCount } }",
        {"g": group},
    )
    assert listed == {"groupMails": {"totalCount": 0}, "jobs": {"totalCount": 0}}

    inbox.refusing["nee@zonnedael.coop"] = "550 5.7.1 not here"
    refused = await send(client, groupId=group, subject="T", body="B", testTo="nee@zonnedael.coop")
    assert [(e["field"], e["code"]) for e in refused["errors"]] == [
        (["input", "testTo"], "EMAIL_NOTIFICATIONS_NOT_SENT")
    ]
    assert "550 5.7.1 not here" in refused["errors"][0]["message"]


async def test_bad_input_is_refused_and_changes_nothing(mailer: Any, smtp: Any):
    app, client, http = mailer
    inbox, _ = smtp
    people = await contacts(client, ("Anna", "anna@example.nl"))
    group = await new_static_group_id(client, "Leden", people)
    template = await new_template_id(client, name="Nieuws", subject="Hallo", body=BODY)
    _, manager_token = await make_user(app, "Pieter", "pieter@example.coop")
    manager = GraphQLClient(http, manager_token)
    cases = [
        (
            {"groupId": to_global_id("Group", 999_999), "subject": "S", "body": "B"},
            [(["input", "groupId"], "NOT_FOUND")],
        ),
        (
            {"groupId": "nonsense", "subject": "S", "body": "B"},
            [(["input", "groupId"], "INVALID_ID")],
        ),
        (
            {"groupId": group, "templateId": to_global_id("EmailTemplate", 999_999)},
            [(["input", "templateId"], "NOT_FOUND")],
        ),
        (
            {"groupId": group, "templateId": template, "body": "B"},
            [(["input", "templateId"], "EMAIL_NOTIFICATIONS_TEMPLATE_OR_TEXT")],
        ),
        ({"groupId": group}, [(["input", "templateId"], "EMAIL_NOTIFICATIONS_TEMPLATE_OR_TEXT")]),
        ({"groupId": group, "subject": "  ", "body": "B"}, [(["input", "subject"], "REQUIRED")]),
        (
            {"groupId": group, "subject": "S", "body": "x" * 100_001},
            [(["input", "body"], "TOO_LONG")],
        ),
        (
            {"groupId": group, "subject": "Hallo {{ contact.shoeSize }}", "body": BODY},
            [(["input", "subject"], "EMAIL_NOTIFICATIONS_UNRENDERABLE")],
        ),
        (
            {"groupId": group, "subject": "S", "body": "{{ contact.firstName }"},
            [(["input", "body"], "EMAIL_NOTIFICATIONS_UNRENDERABLE")],
        ),
        (
            {"groupId": group, "subject": "S", "body": "B", "testTo": "geen-adres"},
            [(["input", "testTo"], "INVALID")],
        ),
    ]
    for given, expected in cases:
        async with unchanged(app):
            payload = await send(client, **given)
        assert [(e["field"], e["code"]) for e in payload["errors"]] == expected, given
        assert payload["groupMail"] is None and payload["job"] is None
    unknown = await send(client, groupId=group, subject="{{ contact.shoeSize }}", body="B")
    assert "shoeSize" in unknown["errors"][0]["message"]
    async with unchanged(app):
        forbidden = await send(manager, groupId=group, subject="S", body="B")
    assert [e["code"] for e in forbidden["errors"]] == ["FORBIDDEN"]
    answer = await manager.execute(
        "query($id: ID!) { groupMail(id: $id) { subject } }",
        {"id": to_global_id("GroupMail", 1)},
    )
    assert answer["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await run_jobs(app) == 0 and inbox.messages == []


async def test_a_cancelled_mail_stops_between_chunks(mailer: Any, smtp: Any):
    app, client, _ = mailer
    inbox, _ = smtp
    people = await contacts(client, *[(f"Lid{i}", f"lid{i}@example.nl") for i in range(10)])
    group = await new_static_group_id(client, "Leden", people)
    payload = await send(client, groupId=group, subject="Hallo", body=BODY)
    mail, job = payload["groupMail"]["id"], payload["job"]["id"]
    runner = make_job_runner(app)
    job_pk = await runner.claim()
    assert job_pk == pk(job, "Job")
    assert await runner.step(job_pk)  # prepared: ten QUEUED recipients
    assert await runner.step(job_pk)  # the first chunk of four sent
    cancelled = (await client.data(CANCEL, {"id": job}))["cancelJob"]
    assert cancelled["errors"] == []
    assert not await runner.step(job_pk)
    after = await read(client, mail)
    assert after["job"]["state"] == "CANCELLED"
    assert after["counts"] == {"queued": 6, "sent": 4, "failed": 0, "skipped": 0, "total": 10}
    assert len(inbox.messages) == 4
    # A retry sends the rest (left QUEUED by the cancelled job).
    retried = (await client.data(RETRY, {"id": mail}))["retryGroupMail"]
    assert retried["errors"] == []
    await run_jobs(app)
    assert len({m["Message-ID"] for m in inbox.messages}) == len(inbox.messages) == 10


async def test_recipients_page_by_state(mailer: Any, smtp: Any):
    app, client, _ = mailer
    people = await contacts(
        client, *[(f"Lid{i}", f"lid{i}@example.nl") for i in range(5)], ("Zonder", None)
    )
    group = await new_static_group_id(client, "Leden", people)
    mail = await sent(client, groupId=group, subject="Hallo", body=BODY)
    await run_jobs(app)
    seen: list[str] = []
    after = None
    while True:
        page = (await read(client, mail, state="SENT", first=2, after=after))["recipients"]
        assert page["totalCount"] == 5
        seen += [r["contact"]["firstName"] for r in page["nodes"]]
        assert all(r["state"] == "SENT" for r in page["nodes"])
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == [f"Lid{i}" for i in range(5)], "by contact, each once"
    skipped = (await read(client, mail, state="SKIPPED"))["recipients"]
    assert [r["contact"]["firstName"] for r in skipped["nodes"]] == ["Zonder"]
    assert (await read(client, mail, state="QUEUED"))["recipients"]["totalCount"] == 0


async def opt_outs(app: Any) -> int:
    async with app.state.sessions() as session:
        return await session.scalar(select(func.count()).select_from(MailOptOut)) or 0


async def test_the_unsubscribe_link_opts_out_and_the_next_mail_skips(mailer: Any, smtp: Any):
    app, client, http = mailer
    inbox, _ = smtp
    anna, bram = await contacts(client, ("Anna", "anna@example.nl"), ("Bram", "bram@example.nl"))
    group = await new_static_group_id(client, "Nieuwsbrief", [anna, bram])
    await sent(client, groupId=group, subject="Eerste", body=BODY)
    await run_jobs(app)
    anna_mail = next(m for m in inbox.messages if m["To"] == "anna@example.nl")
    link = anna_mail["List-Unsubscribe"].strip("<>")
    path = link.removeprefix("https://crm.zonnedael.coop")
    token = path.split("t=", 1)[1]

    page = await http.get(path)
    assert page.status_code == 200 and "<form method=post" in page.text
    assert "Nieuwsbrief" in page.text
    assert (await http.head(path)).status_code == 200
    assert await opt_outs(app) == 0, "showing the page unsubscribes nobody"

    mail_id, contact_id, signature = token.split(".")
    forged = [
        f"{mail_id}.{pk(bram)}.{signature}",  # another contact, Anna's signature
        f"{mail_id}.{contact_id}.{signature[:-2]}AA",
        f"{mail_id}.{contact_id}",
        "",
        "x" * 500,
    ]
    async with unchanged(app):
        for bad in forged:
            answer = await http.post(
                "/plugins/email_notifications/unsubscribe",
                params={"t": bad},
                content="List-Unsubscribe=One-Click",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert answer.status_code == 400, bad
            assert answer.headers["content-type"].startswith("text/plain")
            assert "not valid" in answer.text

    one_click = await http.post(
        path,
        content="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert one_click.status_code == 200 and "Afgemeld" in one_click.text
    assert await opt_outs(app) == 1
    again = await http.post(path, content="List-Unsubscribe=One-Click")
    assert again.status_code == 200 and await opt_outs(app) == 1, "once is enough"
    events = await client.data(
        "{ notificationDeliveries { totalCount } }"
    )  # the opt-out is an event (mail.opted_out) for subscribers
    assert events is not None

    inbox.messages.clear()
    second = await sent(client, groupId=group, subject="Tweede", body=BODY)
    await run_jobs(app)
    assert [m["To"] for m in inbox.messages] == ["bram@example.nl"]
    skipped = await read(client, second, state="SKIPPED")
    assert skipped["counts"] == {"queued": 0, "sent": 1, "failed": 0, "skipped": 1, "total": 2}
    assert [(r["contact"]["id"], r["reason"]) for r in skipped["recipients"]["nodes"]] == [
        (anna, "opted out of this group")
    ]


NOWHERE_GROUP = to_global_id("Group", 999_999)
NOWHERE_MAIL = to_global_id("GroupMail", 999_999)
OPERATIONS = {
    "groupMail": f'{{ groupMail(id: "{NOWHERE_MAIL}") {{ subject }} }}',
    "groupMails": f'{{ groupMails(groupId: "{NOWHERE_GROUP}") {{ totalCount }} }}',
    "previewGroupMail": f'{{ previewGroupMail(groupId: "{NOWHERE_GROUP}", subject: "S", '
    'body: "B") { errors { code message } } }',
    "sendGroupMail": f'mutation {{ sendGroupMail(input: {{groupId: "{NOWHERE_GROUP}", '
    'subject: "S", body: "B"}) { errors { code message } } }',
    "retryGroupMail": f'mutation {{ retryGroupMail(id: "{NOWHERE_MAIL}") '
    "{ errors { code message } } }",
}


def forbidden(body: dict[str, Any]) -> list[str]:
    """The messages of every FORBIDDEN in an answer, top-level and in payloads."""
    found = [
        e["message"] for e in body.get("errors") or [] if e["extensions"]["code"] == "FORBIDDEN"
    ]
    for payload in (body.get("data") or {}).values():
        if isinstance(payload, dict):
            found += [e["message"] for e in payload.get("errors") or [] if e["code"] == "FORBIDDEN"]
    return found


async def test_group_mail_needs_its_permission_and_groups_view(mailer: Any, smtp: Any):
    app, admin, http = mailer
    _, manager_token = await make_user(app, "Pieter", "pieter@example.coop")
    narrowed = await admin.data(
        'mutation { createApiToken(input: {name: "mail", permissions: '
        '["email_notifications.group_mail"]}) { secret errors { code } } }'
    )
    callers = {
        "manager": (GraphQLClient(http, manager_token), "email_notifications.group_mail"),
        "mail only": (
            GraphQLClient(http, narrowed["createApiToken"]["secret"]),
            "groups.view",
        ),
    }
    for name, document in OPERATIONS.items():
        body = await admin.execute(document)
        assert forbidden(body) == [] and not body.get("errors"), (name, body)
        for caller, (client, lacking) in callers.items():
            async with unchanged(app):
                body = await client.execute(document)
            refusals = forbidden(body)
            assert refusals and lacking in refusals[0], (name, caller, body)


async def test_an_erased_contacts_address_leaves_the_recipients(mailer: Any, smtp: Any):
    app, client, _ = mailer
    anna, bram = await contacts(client, ("Anna", "anna@example.nl"), ("Bram", "bram@example.nl"))
    group = await new_static_group_id(client, "Leden", [anna, bram])
    mail = await sent(client, groupId=group, subject="Hallo", body=BODY)
    await run_jobs(app)
    erased = await client.data(
        "mutation($c: ID!) { eraseContact(contactId: $c) { errors { code } } }", {"c": anna}
    )
    assert erased["eraseContact"]["errors"] == []
    recipients = (await read(client, mail))["recipients"]["nodes"]
    assert [(r["email"], r["state"]) for r in recipients] == [
        (None, "SENT"),
        ("bram@example.nl", "SENT"),
    ], "by contact: Anna first"


async def test_an_smtp_outage_fails_the_chunk_which_is_sent_later(mailer: Any, smtp: Any):
    app, client, _ = mailer
    inbox, server = smtp
    people = await contacts(client, *[(f"Lid{i}", f"lid{i}@example.nl") for i in range(6)])
    group = await new_static_group_id(client, "Leden", people)
    mail = await sent(client, groupId=group, subject="Hallo", body=BODY)
    server.stop()
    runner = make_job_runner(app)
    job_pk = await runner.claim()
    assert job_pk is not None
    assert await runner.step(job_pk)  # prepared
    assert not await runner.step(job_pk), "the chunk failed: to be tried again later"
    waiting = await read(client, mail)
    assert waiting["job"]["state"] == "RUNNING"
    assert waiting["counts"] == {"queued": 6, "sent": 0, "failed": 0, "skipped": 0, "total": 6}

    server.start()
    await run_jobs(app)
    done = await read(client, mail)
    assert done["job"]["state"] == "SUCCEEDED"
    assert done["counts"] == {"queued": 0, "sent": 6, "failed": 0, "skipped": 0, "total": 6}
    assert sorted(m["To"] for m in inbox.messages) == sorted(f"lid{i}@example.nl" for i in range(6))
    assert len(set(inbox.connections)) <= 4, "two connections a chunk, reused for its mails"


async def test_the_rate_limit_spaces_mails_out() -> None:
    bucket = TokenBucket(50)
    started = time.monotonic()
    for _ in range(75):  # 50 at once (a second's burst), 25 more at 50 a second
        await bucket.take()
    assert time.monotonic() - started >= 0.45
