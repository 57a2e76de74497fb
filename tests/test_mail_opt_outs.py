"""Opt-outs of a group's mail on the portal (seen, made, withdrawn by the contact), their
events, and ``contacts.updated``: what the group mail and mailing-list plugins build on."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from starlette.applications import Starlette

from graphql_api.email_templates.models import MailOptOut, OptOutSource
from graphql_api.email_templates.opt_outs import (
    opted_out,
    record_opt_out,
    record_opt_outs,
    withdraw_opt_outs,
)
from graphql_api.graphql_base.relay import decode_id, to_global_id
from graphql_api.notifications.models import OutboxEvent
from graphql_api.plugin import hookimpl
from graphql_api.testing import (
    GraphQLClient,
    add_members,
    admin_client,
    new_contact_id,
    new_group_id,
    portal_client,
    unchanged,
)

ME = "{ me { mailOptOuts { groupId groupName source since } } }"
OPT_OUT = """mutation($g: ID!) { optOutOfMail(groupId: $g) {
  mailOptOuts { groupName source } errors { field code message } } }"""
WITHDRAW = """mutation($g: ID!) { withdrawMailOptOut(groupId: $g) {
  mailOptOuts { groupName source } errors { field code message } } }"""


class Listener:
    """A plugin that wants the events these tests look for delivered."""

    PLUGIN_NAME = "listener"

    @hookimpl
    def event_subscriptions(self) -> list[str]:
        return ["contacts.updated", "mail.opted_out", "mail.opt_out_withdrawn"]

    @hookimpl
    async def deliver(self, event: Any) -> None:
        return None


async def events(app: Starlette, kind: str) -> list[dict[str, Any]]:
    async with app.state.sessions() as session:
        found = await session.scalars(
            select(OutboxEvent.data).where(OutboxEvent.type == kind).order_by(OutboxEvent.id)
        )
        return list(found)


async def test_a_contact_opts_out_of_a_groups_mail_sees_it_and_withdraws_it(app_factory: Any):
    app = app_factory(plugins=[Listener()])
    http, client = await admin_client(app)
    async with http:
        anna = await new_contact_id(client, firstName="Anna", email="anna@zon.nl")
        news = await new_group_id(client, name="Nieuwsbrief")
        other = await new_group_id(client, name="Algemene ledenvergadering")
        await add_members(client, news, [anna])
        portal = await portal_client(client, anna)
        assert (await portal.data(ME))["me"]["mailOptOuts"] == []

        done = (await portal.data(OPT_OUT, {"g": news}))["optOutOfMail"]
        assert done == {
            "mailOptOuts": [{"groupName": "Nieuwsbrief", "source": "PORTAL"}],
            "errors": [],
        }
        [seen] = (await portal.data(ME))["me"]["mailOptOuts"]
        assert (seen["groupId"], seen["source"]) == (news, "PORTAL") and seen["since"]
        # Twice is once.
        again = (await portal.data(OPT_OUT, {"g": news}))["optOutOfMail"]
        assert again["mailOptOuts"] == done["mailOptOuts"]
        opted = await events(app, "mail.opted_out")
        assert opted == [
            {
                "contactIds": [await _pk(app, "contacts", anna)],
                "groupId": await _pk(app, "groups", news),
                "source": "PORTAL",
            }
        ]
        async with app.state.sessions() as session:
            assert (
                list(await session.scalars(opted_out(opted[0]["groupId"])))
                == (opted[0]["contactIds"])
            )

        withdrawn = (await portal.data(WITHDRAW, {"g": news}))["withdrawMailOptOut"]
        assert withdrawn == {"mailOptOuts": [], "errors": []}
        [event] = await events(app, "mail.opt_out_withdrawn")
        assert event == opted[0]
        # Another group's mail was never in question.
        async with app.state.sessions() as session:
            assert list(await session.scalars(opted_out(await _pk(app, "groups", other)))) == []


async def test_opting_out_of_a_group_one_is_not_in_or_withdrawing_none_changes_nothing(
    app_factory: Any,
):
    app = app_factory(plugins=[Listener()])
    http, client = await admin_client(app)
    async with http:
        anna = await new_contact_id(client, firstName="Anna", email="anna@zon.nl")
        other = await new_group_id(client, name="Andermans groep")
        portal = await portal_client(client, anna)
        cases = [
            (OPT_OUT, other, "NOT_FOUND"),
            (WITHDRAW, other, "NOT_FOUND"),
            (OPT_OUT, to_global_id("Group", 999_999), "NOT_FOUND"),
            (OPT_OUT, anna, "INVALID_ID"),
            (WITHDRAW, "niet-een-id", "INVALID_ID"),
        ]
        for mutation, group, code in cases:
            async with unchanged(app):
                answer = await portal.data(mutation, {"g": group})
            [payload] = answer.values()
            assert payload["mailOptOuts"] is None
            assert [(e["field"], e["code"]) for e in payload["errors"]] == [(["groupId"], code)]


async def test_a_staff_token_cannot_reach_the_portals_opt_outs(app: Starlette, client: Any):
    anna = await new_contact_id(client, firstName="Anna", email="anna@zon.nl")
    news = await new_group_id(client, name="Nieuwsbrief")
    await add_members(client, news, [anna])
    staff_on_portal = GraphQLClient(client.http, client.token, path="/portal/graphql")
    async with unchanged(app):
        answer = await staff_on_portal.post(OPT_OUT, {"g": news})
    assert answer.status_code == 401, answer.text


async def test_opt_outs_of_many_contacts_are_recorded_set_based_with_one_event(
    app_factory: Any, statements: Any
):
    app = app_factory(plugins=[Listener()])
    http, client = await admin_client(app)
    async with http:
        news = await _pk(app, "groups", await new_group_id(client, name="Nieuwsbrief"))
        ids = [
            await _pk(app, "contacts", await new_contact_id(client, lastName=f"Zon {n}"))
            for n in range(30)
        ]
    counts = []
    for batch in (ids[:3], ids):  # the second time, 3 of them are opted out already
        with statements:
            async with app.state.sessions() as session, session.begin():
                new = await record_opt_outs(session, batch, news, OptOutSource.MAILING_LIST)
        counts.append(statements.count)
        assert new == sorted(batch) if batch is not ids else new == ids[3:]
    assert counts[0] == counts[1], "the statements do not grow with the contacts"
    assert [e["contactIds"] for e in await events(app, "mail.opted_out")] == [ids[:3], ids[3:]]
    async with app.state.sessions() as session, session.begin():
        gone = await withdraw_opt_outs(session, [*ids[:5], 999_999], news, OptOutSource.STAFF)
    assert gone == ids[:5]
    [withdrawn] = await events(app, "mail.opt_out_withdrawn")
    assert withdrawn == {"contactIds": ids[:5], "groupId": news, "source": "STAFF"}


async def test_record_opt_out_is_idempotent_and_keeps_the_first_source(app: Starlette, client: Any):
    anna = await new_contact_id(client, firstName="Anna", email="anna@zon.nl")
    news = await new_group_id(client, name="Nieuwsbrief")
    contact_pk = await _pk(app, "contacts", anna)
    group_pk = await _pk(app, "groups", news)
    async with app.state.sessions() as session, session.begin():
        assert await record_opt_out(session, contact_pk, group_pk, OptOutSource.MAILING_LIST)
        assert not await record_opt_out(session, contact_pk, group_pk, OptOutSource.PORTAL)
    async with app.state.sessions() as session:
        [row] = (await session.scalars(select(MailOptOut))).all()
        assert row.source is OptOutSource.MAILING_LIST


async def test_updating_a_contact_tells_plugins_which_fields_were_set(app_factory: Any):
    app = app_factory(plugins=[Listener()])
    http, client = await admin_client(app)
    async with http:
        anna = await new_contact_id(client, firstName="Anna", email="anna@zon.nl")
        assert await events(app, "contacts.updated") == [], "a new contact is no update"
        changed = await client.data(
            """mutation($c: ID!) { updateContact(id: $c, input: {email: "anna@wind.nl",
            lastName: "Wind"}) { errors { code } } }""",
            {"c": anna},
        )
        assert changed["updateContact"]["errors"] == []
        [event] = await events(app, "contacts.updated")
        assert event["fields"] == ["email", "lastName"]
        assert event["contactIds"] == [await _pk(app, "contacts", anna)]
        assert event["jobId"] is None and event["actorId"] is not None
        # A refused edit records nothing.
        refused = await client.data(
            """mutation($c: ID!) { updateContact(id: $c, input: {email: "geen adres"})
            { errors { code } } }""",
            {"c": anna},
        )
        assert refused["updateContact"]["errors"]
        assert len(await events(app, "contacts.updated")) == 1


async def _pk(app: Starlette, table: str, global_id: str) -> int:
    return decode_id(global_id, "Contact" if table == "contacts" else "Group", ["id"])


STAFF_OPT_OUT = """mutation($c: ID!, $g: ID!) { optContactOutOfMail(contactId: $c, groupId: $g) {
  mailOptOuts { groupId groupName source } errors { field code } } }"""
STAFF_WITHDRAW = """mutation($c: ID!, $g: ID!) {
  withdrawContactMailOptOut(contactId: $c, groupId: $g) {
  mailOptOuts { groupName source } errors { field code } } }"""


async def test_staff_record_and_withdraw_an_opt_out_at_a_contacts_request(
    app: Starlette, client: GraphQLClient
):
    anna = await new_contact_id(client, firstName="Anna", email="anna@zon.nl")
    news = await new_group_id(client, name="Nieuwsbrief")
    # Not a member: staff may record it all the same (say, before she is added).
    done = (await client.data(STAFF_OPT_OUT, {"c": anna, "g": news}))["optContactOutOfMail"]
    assert done == {
        "mailOptOuts": [{"groupId": news, "groupName": "Nieuwsbrief", "source": "STAFF"}],
        "errors": [],
    }
    shown = await client.data(
        "query($c: ID!) { contact(id: $c) { mailOptOuts { groupName source since } } }",
        {"c": anna},
    )
    [seen] = shown["contact"]["mailOptOuts"]
    assert (seen["groupName"], seen["source"]) == ("Nieuwsbrief", "STAFF") and seen["since"]
    portal = await portal_client(client, anna)
    [on_portal] = (await portal.data(ME))["me"]["mailOptOuts"]
    assert on_portal["source"] == "STAFF"

    gone = await client.data(STAFF_WITHDRAW, {"c": anna, "g": news})
    assert gone["withdrawContactMailOptOut"] == {"mailOptOuts": [], "errors": []}

    cases = [
        (STAFF_WITHDRAW, anna, news, ["groupId"], "NOT_FOUND"),
        (STAFF_OPT_OUT, to_global_id("Contact", 999_999), news, ["contactId"], "NOT_FOUND"),
        (STAFF_OPT_OUT, anna, to_global_id("Group", 999_999), ["groupId"], "NOT_FOUND"),
        (STAFF_OPT_OUT, news, news, ["contactId"], "INVALID_ID"),
        (STAFF_OPT_OUT, anna, anna, ["groupId"], "INVALID_ID"),
    ]
    for mutation, contact, group, field, code in cases:
        async with unchanged(app):
            answer = await client.data(mutation, {"c": contact, "g": group})
        [payload] = answer.values()
        assert payload["mailOptOuts"] is None
        assert [(e["field"], e["code"]) for e in payload["errors"]] == [(field, code)], mutation


async def test_a_pages_opt_outs_cost_the_same_statements_for_2_or_6_contacts(
    app: Starlette, client: GraphQLClient, statements: Any
):
    news = await new_group_id(client, name="Nieuwsbrief")
    query = "{ contacts(first: 100) { edges { node { mailOptOuts { groupName } } } } }"
    counts = []
    for more in (2, 4):
        for n in range(more):
            contact = await new_contact_id(client, lastName=f"Zon {more}-{n}")
            await client.data(STAFF_OPT_OUT, {"c": contact, "g": news})
        with statements:
            answer = await client.data(query)
        assert [e["node"]["mailOptOuts"] for e in answer["contacts"]["edges"]] == [
            [{"groupName": "Nieuwsbrief"}]
        ] * (2 if more == 2 else 6)
        counts.append(statements.count)
    assert counts[0] == counts[1]
