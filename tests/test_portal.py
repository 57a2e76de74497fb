"""The customer portal (/portal/graphql): accounts, sessions, what a contact sees and may
change, and that no contact ever reaches another's data."""

from __future__ import annotations

import re
import statistics
import time
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from graphql_api.graphql_base.relay import to_global_id
from graphql_api.groups.models import MembershipEvent
from graphql_api.kernel.db import utcnow
from graphql_api.portal.accounts import wait_needed
from graphql_api.portal.models import PortalAccount, PortalToken, TokenKind
from graphql_api.testing import (
    PORTAL_PASSWORD,
    GraphQLClient,
    new_contact_id,
    new_group_id,
    portal_client,
    unchanged,
)

GROUPS = "{ groups { name isMember canChange } }"
ME = "{ me { displayName email groups { name } } }"
JOIN = (
    "mutation($g: ID!) { joinGroup(groupId: $g) { group { name isMember } errors { field code } } }"
)
LEAVE = "mutation($g: ID!) { leaveGroup(groupId: $g) { group { name isMember } errors { field code } } }"
LOGIN = """mutation($e: String!, $p: String!) {
  portalLogin(email: $e, password: $p) { sessionToken retryAfterSeconds errors { code message } } }"""
ACCEPT = """mutation($t: String!, $p: String!) {
  acceptPortalInvitation(token: $t, password: $p) { ok errors { field code } } }"""
INVITE = "mutation($c: ID!) { invitePortalUser(contactId: $c) { token portalAccount { status } errors { code } } }"
TODAY = date.today()


def anonymous(http: httpx.AsyncClient) -> GraphQLClient:
    return GraphQLClient(http, None, path="/portal/graphql")


@pytest.fixture
async def world(client: GraphQLClient) -> dict[str, str]:
    """Two contacts (Anna, Bram) and groups of every kind the rules tell apart."""
    anna = await new_contact_id(client, firstName="Anna", lastName="Zon", email="anna@zon.nl")
    bram = await new_contact_id(client, firstName="Bram", lastName="Wind", email="bram@wind.nl")
    shown = {"showOnPortal": True}
    ids = {
        "anna": anna,
        "bram": bram,
        "open": await new_group_id(client, name="Open", editableOnPortal=True, **shown),
        "fixed": await new_group_id(client, name="Vast", **shown),
        "hidden": await new_group_id(client, name="Verborgen", editableOnPortal=True),
        "closed": await new_group_id(
            client, name="Gesloten", closed=True, editableOnPortal=True, **shown
        ),
        "ended": await new_group_id(
            client,
            name="Afgelopen",
            editableOnPortal=True,
            startDate=str(TODAY - timedelta(days=30)),
            endDate=str(TODAY - timedelta(days=1)),
            **shown,
        ),
        "later": await new_group_id(
            client,
            name="Later",
            editableOnPortal=True,
            startDate=str(TODAY + timedelta(days=3)),
            **shown,
        ),
        "coaches": await new_group_id(
            client, name="Coaches", neighbourhoodRole="coach", editableOnPortal=True, **shown
        ),
    }
    ids["dynamic"] = await new_group_id(
        client,
        name="Wind",
        filter={"condition": {"field": "email", "op": "ENDS_WITH", "value": "wind.nl"}},
        editableOnPortal=True,
        **shown,
    )
    ids["composite"] = await new_group_id(
        client,
        name="Samen",
        composedOfIds=[ids["open"], ids["fixed"]],
        editableOnPortal=True,
        **shown,
    )
    return ids


async def test_a_contact_sees_only_groups_shown_today_and_joins_and_leaves(
    client: GraphQLClient, world: dict[str, str], app: Any
):
    anna = await portal_client(client, world["anna"])
    listed = (await anna.data(GROUPS))["groups"]
    assert [(g["name"], g["isMember"], g["canChange"]) for g in listed] == [
        ("Coaches", False, False),
        ("Open", False, True),
        ("Samen", False, False),
        ("Vast", False, False),
        ("Wind", False, False),
    ]
    joined = await anna.data(JOIN, {"g": world["open"]})
    assert joined["joinGroup"] == {"group": {"name": "Open", "isMember": True}, "errors": []}
    me = (await anna.data(ME))["me"]
    assert me == {
        "displayName": "Anna Zon",
        "email": "anna@zon.nl",
        "groups": [{"name": "Open"}, {"name": "Samen"}],
    }, "derived groups included"
    history = await client.data(
        "query($g: ID!) { group(id: $g) { history(first: 5) { nodes { action source actor { name } contact { displayName } } } } }",
        {"g": world["open"]},
    )
    assert history["group"]["history"]["nodes"] == [
        {
            "action": "ADDED",
            "source": "PORTAL",
            "actor": None,
            "contact": {"displayName": "Anna Zon"},
        }
    ]
    left = await anna.data(LEAVE, {"g": world["open"]})
    assert left["leaveGroup"]["group"] == {"name": "Open", "isMember": False}


@pytest.mark.parametrize(
    ("group", "code"),
    [
        ("hidden", "NOT_FOUND"),
        ("closed", "NOT_FOUND"),
        ("ended", "NOT_FOUND"),
        ("later", "NOT_FOUND"),
        ("dynamic", "NOT_STATIC"),
        ("composite", "NOT_STATIC"),
        ("coaches", "ROLE_GROUP"),
        ("fixed", "NOT_EDITABLE"),
    ],
)
async def test_groups_a_contact_may_not_change_are_refused_and_nothing_changes(
    client: GraphQLClient, world: dict[str, str], app: Any, group: str, code: str
):
    anna = await portal_client(client, world["anna"])
    for document, name in ((JOIN, "joinGroup"), (LEAVE, "leaveGroup")):
        async with unchanged(app):
            body = await anna.data(document, {"g": world[group]})
        assert body[name] == {"group": None, "errors": [{"field": ["groupId"], "code": code}]}


async def test_a_group_that_does_not_exist_and_a_hidden_one_answer_alike(
    client: GraphQLClient, world: dict[str, str]
):
    anna = await portal_client(client, world["anna"])
    answers = [
        await anna.data(JOIN, {"g": gid})
        for gid in (world["hidden"], to_global_id("Group", 999_999), world["anna"], "rubbish")
    ]
    codes = [a["joinGroup"]["errors"][0]["code"] for a in answers]
    assert codes == ["NOT_FOUND", "NOT_FOUND", "INVALID_ID", "INVALID_ID"]


async def test_no_contact_reaches_anothers_data(
    client: GraphQLClient, world: dict[str, str], app: Any
):
    anna = await portal_client(client, world["anna"])
    bram = await portal_client(client, world["bram"], password="stormachtig-99")
    await anna.data(JOIN, {"g": world["open"]})
    assert (await bram.data(ME))["me"]["displayName"] == "Bram Wind"
    assert [g["name"] for g in (await bram.data(ME))["me"]["groups"]] == ["Wind"]
    assert all(
        not g["isMember"] for g in (await bram.data(GROUPS))["groups"] if g["name"] == "Open"
    )
    bram_data = (await bram.data("{ myData }"))["myData"]
    assert "anna" not in str(bram_data).lower()
    # Bram leaving Open does not touch Anna's membership.
    async with unchanged(app):
        await bram.data(LEAVE, {"g": world["open"]})
    assert [g["name"] for g in (await anna.data(ME))["me"]["groups"]] == ["Open", "Samen"]
    # The portal schema has no way to name another contact at all.
    schema = app.routes
    assert not any("contactId" in str(getattr(route, "path", "")) for route in schema)
    introspected = await anna.data('{ __type(name: "Mutation") { fields { args { name } } } }')
    arguments = {a["name"] for f in introspected["__type"]["fields"] for a in f["args"]}
    assert arguments == {"token", "password", "email", "groupId"}


async def test_sessions_and_tokens_stay_on_their_own_endpoint(
    client: GraphQLClient, world: dict[str, str], http: httpx.AsyncClient, admin: tuple[int, str]
):
    anna = await portal_client(client, world["anna"])
    on_staff = await GraphQLClient(http, anna.token).post("{ me { permissions } }")
    assert on_staff.status_code == 401
    assert "portal session is not accepted" in on_staff.json()["errors"][0]["message"]
    staff_on_portal = await GraphQLClient(http, admin[1], path="/portal/graphql").post(ME)
    assert staff_on_portal.status_code == 401
    assert "Staff API tokens are not accepted" in staff_on_portal.json()["errors"][0]["message"]
    for forged in ("gpp_forged", "gpp_" + "x" * 300):
        response = await GraphQLClient(http, forged, path="/portal/graphql").post(ME)
        assert response.status_code == 401
    without = await anonymous(http).execute(ME)
    assert without["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert without["data"] is None


async def test_logout_and_expiry_end_a_session(
    client: GraphQLClient, world: dict[str, str], app: Any
):
    anna = await portal_client(client, world["anna"])
    out = await anna.data("mutation { portalLogout { ok } }")
    assert out == {"portalLogout": {"ok": True}}
    assert (await anna.post(ME)).status_code == 401
    again = await portal_client_login(anna.http, "anna@zon.nl")
    async with app.state.sessions() as session, session.begin():
        await session.execute(
            update(PortalToken)
            .where(PortalToken.kind == TokenKind.SESSION, PortalToken.used_at.is_(None))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert (await again.post(ME)).status_code == 401


async def portal_client_login(http: httpx.AsyncClient, email: str) -> GraphQLClient:
    body = await anonymous(http).data(LOGIN, {"e": email, "p": PORTAL_PASSWORD})
    token = body["portalLogin"]["sessionToken"]
    assert token, body
    return GraphQLClient(http, token, path="/portal/graphql")


async def test_invitations_work_once_and_expire(
    client: GraphQLClient, world: dict[str, str], http: httpx.AsyncClient, app: Any
):
    invited = await client.data(INVITE, {"c": world["anna"]})
    token = invited["invitePortalUser"]["token"]
    assert invited["invitePortalUser"]["portalAccount"] == {"status": "INVITED"}
    first = await anonymous(http).data(ACCEPT, {"t": token, "p": PORTAL_PASSWORD})
    assert first["acceptPortalInvitation"] == {"ok": True, "errors": []}
    async with unchanged(app):
        second = await anonymous(http).data(ACCEPT, {"t": token, "p": PORTAL_PASSWORD})
    assert second["acceptPortalInvitation"]["errors"] == [
        {"field": ["token"], "code": "INVALID_TOKEN"}
    ]
    again = await client.data(INVITE, {"c": world["anna"]})
    assert again["invitePortalUser"]["errors"] == [{"code": "ALREADY_ACTIVE"}]

    bram = (await client.data(INVITE, {"c": world["bram"]}))["invitePortalUser"]["token"]
    async with app.state.sessions() as session, session.begin():
        await session.execute(
            update(PortalToken)
            .where(PortalToken.kind == TokenKind.INVITATION)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    async with unchanged(app):
        expired = await anonymous(http).data(ACCEPT, {"t": bram, "p": PORTAL_PASSWORD})
    assert expired["acceptPortalInvitation"]["errors"] == [
        {"field": ["token"], "code": "INVALID_TOKEN"}
    ]


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("kort", "TOO_SHORT"),
        ("x" * 10_000, "TOO_LONG"),
        ("wachtwoord123", "WEAK_PASSWORD"),
        ("ANNA@ZON.NL", "WEAK_PASSWORD"),
    ],
)
async def test_weak_passwords_are_refused(
    client: GraphQLClient,
    world: dict[str, str],
    http: httpx.AsyncClient,
    app: Any,
    password: str,
    code: str,
):
    token = (await client.data(INVITE, {"c": world["anna"]}))["invitePortalUser"]["token"]
    async with unchanged(app):
        body = await anonymous(http).data(ACCEPT, {"t": token, "p": password})
    assert body["acceptPortalInvitation"]["errors"] == [{"field": ["password"], "code": code}]


async def test_a_password_reset_needs_its_own_accounts_link(
    client: GraphQLClient, world: dict[str, str], http: httpx.AsyncClient, app: Any
):
    await portal_client(client, world["anna"])
    bram_invitation = (await client.data(INVITE, {"c": world["bram"]}))["invitePortalUser"]["token"]
    reset = "mutation($t: String!, $p: String!) { resetPassword(token: $t, password: $p) { ok errors { code } } }"
    async with unchanged(app):
        wrong_kind = await anonymous(http).data(
            reset, {"t": bram_invitation, "p": "nieuw-wachtwoord-1"}
        )
    assert wrong_kind["resetPassword"]["errors"] == [{"code": "INVALID_TOKEN"}]
    asked = "mutation($e: String!) { requestPasswordReset(email: $e) { ok errors { code } } }"
    known = await anonymous(http).data(asked, {"e": "anna@zon.nl"})
    unknown = await anonymous(http).data(asked, {"e": "nobody@zon.nl"})
    assert known == unknown == {"requestPasswordReset": {"ok": True, "errors": []}}


async def test_failed_logins_make_the_next_wait_and_never_tell_the_email_is_known(
    client: GraphQLClient, world: dict[str, str], http: httpx.AsyncClient, app: Any
):
    await portal_client(client, world["anna"])
    answers = []
    for attempt in range(6):
        body = await anonymous(http).data(LOGIN, {"e": "anna@zon.nl", "p": f"fout-{attempt}-xxxxx"})
        answers.append(body["portalLogin"])
    assert [a["errors"][0]["code"] for a in answers] == ["INVALID_CREDENTIALS"] * 5 + [
        "TOO_MANY_ATTEMPTS"
    ]
    assert (
        answers[5]["retryAfterSeconds"] >= 1
        and "try again in" in answers[5]["errors"][0]["message"]
    )
    right = await anonymous(http).data(LOGIN, {"e": "anna@zon.nl", "p": PORTAL_PASSWORD})
    assert right["portalLogin"]["errors"][0]["code"] == "TOO_MANY_ATTEMPTS", (
        "even the right one waits"
    )
    async with app.state.sessions() as session:
        failures = await session.scalar(select(PortalAccount.failed_logins))
    assert failures == 5


async def test_a_known_and_an_unknown_email_are_throttled_alike(
    client: GraphQLClient, world: dict[str, str], app: Any
):
    """Six failures for one e-mail, each from another client address (so only the
    per-address throttle of the e-mail can answer): the same answers for an e-mail with an
    account and one without, and about the same time (the unknown one is checked against a
    dummy hash)."""
    await portal_client(client, world["anna"])

    async def six_failures(email: str, network: int) -> tuple[list[tuple[str, ...]], float]:
        answers, seconds = [], []
        for attempt in range(6):
            transport = httpx.ASGITransport(app=app, client=(f"10.{network}.0.{attempt}", 5000))
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as h:
                started = time.perf_counter()
                body = await anonymous(h).data(LOGIN, {"e": email, "p": "fout-wachtwoord-1"})
                seconds.append(time.perf_counter() - started)
            [error] = body["portalLogin"]["errors"]
            answers.append((error["code"], re.sub(r"\d+", "N", error["message"])))
        return answers, statistics.median(seconds[:5])

    known, known_seconds = await six_failures("anna@zon.nl", 1)
    unknown, unknown_seconds = await six_failures("niemand@zon.nl", 2)
    assert known == unknown
    assert [code for code, _ in known] == ["INVALID_CREDENTIALS"] * 5 + ["TOO_MANY_ATTEMPTS"]
    assert unknown_seconds > known_seconds / 2, (known_seconds, unknown_seconds)


def test_the_wait_doubles_after_five_failures_and_locks_after_twenty():
    now = utcnow()
    assert wait_needed(4, now, now) == timedelta(0)
    assert wait_needed(5, now, now) == timedelta(seconds=1)
    assert wait_needed(6, now, now) == timedelta(seconds=2)
    assert wait_needed(10, now, now) == timedelta(seconds=32)
    assert wait_needed(19, now, now) == timedelta(minutes=15), "capped"
    assert wait_needed(20, now, now) == timedelta(minutes=15)
    assert wait_needed(20, now - timedelta(minutes=16), now) == timedelta(0)


async def test_a_disabled_account_is_shut_out_at_once(client: GraphQLClient, world: dict[str, str]):
    anna = await portal_client(client, world["anna"])
    disabled = await client.data(
        "mutation($c: ID!) { disablePortalUser(contactId: $c) { portalAccount { status } errors { code } } }",
        {"c": world["anna"]},
    )
    assert disabled["disablePortalUser"] == {"portalAccount": {"status": "DISABLED"}, "errors": []}
    assert (await anna.post(ME)).status_code == 401
    staff_view = await client.data(
        "query($c: ID!) { contact(id: $c) { portalAccount { status lastLoginAt } } }",
        {"c": world["anna"]},
    )
    assert staff_view["contact"]["portalAccount"]["status"] == "DISABLED"
    assert staff_view["contact"]["portalAccount"]["lastLoginAt"] is not None


async def test_my_data_holds_everything_about_me(client: GraphQLClient, world: dict[str, str]):
    anna = await portal_client(client, world["anna"])
    await anna.data(JOIN, {"g": world["open"]})
    mine = (await anna.data("{ myData }"))["myData"]
    assert mine["contact"]["firstName"] == "Anna" and mine["contact"]["email"] == "anna@zon.nl"
    assert [m["group"] for m in mine["memberships"]] == ["Open"]
    assert [(h["group"], h["action"], h["source"]) for h in mine["history"]] == [
        ("Open", "ADDED", "PORTAL"),
        ("Samen", "ADDED", "DERIVED"),
    ], "the composite holding Open follows"
    assert [e["kind"] for e in mine["portalAccount"]["events"]] == [
        "invited",
        "activated",
        "logged in",
    ]


async def test_erasing_a_contact_keeps_counts_and_no_personal_text(
    client: GraphQLClient, world: dict[str, str], app: Any
):
    anna = await portal_client(client, world["anna"])
    await anna.data(JOIN, {"g": world["open"]})
    await client.data(
        "mutation($c: ID!, $p: [ID!]!) { addGroupMembers(groupId: $c, contactIds: $p) { errors { code } } }",
        {"c": world["fixed"], "p": [world["anna"]]},
    )
    async with app.state.sessions() as session:
        history_before = await session.scalar(select(func.count()).select_from(MembershipEvent))
    erased = await client.data(
        "mutation($c: ID!) { eraseContact(contactId: $c) { erasedId errors { code } } }",
        {"c": world["anna"]},
    )
    assert erased["eraseContact"] == {"erasedId": world["anna"], "errors": []}
    async with app.state.sessions() as session:
        assert (
            await session.scalar(select(func.count()).select_from(MembershipEvent))
            == history_before
        )
    assert (await anna.post(ME)).status_code == 401, "the portal account is gone"
    rows = await _every_text(app)
    for personal in ("Anna", "anna@zon.nl", "Zon"):
        assert not [r for r in rows if personal.lower() in r.lower()], personal
    count = await client.data(
        "query($g: ID!) { group(id: $g) { memberCount } }", {"g": world["fixed"]}
    )
    assert count["group"]["memberCount"] == 1, "the anonymised contact still counts"


async def _every_text(app: Any) -> list[str]:
    from graphql_api.testing import database_rows

    return [
        str(value)
        for table, rows in (await database_rows(app)).items()
        if table != "groups"
        for row in rows
        for value in row.values()
        if isinstance(value, str | dict | list)
    ]


async def test_failures_from_one_address_count_whatever_email_they_try(
    client: GraphQLClient, world: dict[str, str], http: httpx.AsyncClient, app: Any
):
    await portal_client(client, world["anna"])
    for attempt in range(5):
        body = await anonymous(http).data(
            LOGIN, {"e": f"guess-{attempt}@zon.nl", "p": "geraden-wachtwoord"}
        )
        assert body["portalLogin"]["errors"][0]["code"] == "INVALID_CREDENTIALS"
    blocked = await anonymous(http).data(LOGIN, {"e": "anna@zon.nl", "p": PORTAL_PASSWORD})
    assert blocked["portalLogin"]["errors"][0]["code"] == "TOO_MANY_ATTEMPTS"
    other_client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("10.0.0.9", 5000)),
        base_url="http://testserver",
    )
    async with other_client:
        elsewhere = await anonymous(other_client).data(
            LOGIN, {"e": "anna@zon.nl", "p": PORTAL_PASSWORD}
        )
    assert elsewhere["portalLogin"]["sessionToken"], "another address is not held up"


async def reset_link(app: Any, email: str) -> str:
    """The token of the newest password-reset mail waiting in the outbox for ``email``."""
    from graphql_api.notifications.models import OutboxEvent

    async with app.state.sessions() as session:
        events = await session.scalars(
            select(OutboxEvent)
            .where(OutboxEvent.type == "portal.password_reset")
            .order_by(OutboxEvent.id.desc())
        )
        return next(e.data["token"] for e in events if e.data["email"] == email)


RESET = """mutation($t: String!, $p: String!) {
  resetPassword(token: $t, password: $p) { ok errors { field code } } }"""
ASK_RESET = "mutation($e: String!) { requestPasswordReset(email: $e) { ok } }"


async def test_a_reset_link_changes_its_own_accounts_password_once(
    client: GraphQLClient, world: dict[str, str], http: httpx.AsyncClient, app: Any
):
    anna = await portal_client(client, world["anna"])
    await portal_client(client, world["bram"], password="stormachtig-99")
    await anonymous(http).data(ASK_RESET, {"e": "ANNA@zon.nl "})
    token = await reset_link(app, "anna@zon.nl")
    done = await anonymous(http).data(RESET, {"t": token, "p": "nieuw-en-lang-1"})
    assert done["resetPassword"] == {"ok": True, "errors": []}
    assert (await anna.post(ME)).status_code == 401, "a reset ends every session"
    logins = {
        (email, password): (await anonymous(http).data(LOGIN, {"e": email, "p": password}))[
            "portalLogin"
        ]["errors"]
        for email, password in [
            ("anna@zon.nl", "nieuw-en-lang-1"),
            ("bram@wind.nl", "stormachtig-99"),
            ("bram@wind.nl", "nieuw-en-lang-1"),
        ]
    }
    assert [bool(errors) for errors in logins.values()] == [False, False, True]
    async with unchanged(app):
        again = await anonymous(http).data(RESET, {"t": token, "p": "nog-een-keer-22"})
    assert again["resetPassword"]["errors"] == [{"field": ["token"], "code": "INVALID_TOKEN"}]


async def _annas_rows(app: Any, contact_pk: int) -> list[Any]:
    from graphql_api.groups.models import Membership

    async with app.state.sessions() as session:
        account = await session.scalar(
            select(PortalAccount).where(PortalAccount.contact_id == contact_pk)
        )
        assert account is not None
        memberships = (
            await session.execute(
                select(Membership.group_id, Membership.source).where(
                    Membership.contact_id == contact_pk
                )
            )
        ).all()
        tokens = (
            await session.execute(
                select(PortalToken.id, PortalToken.used_at, PortalToken.expires_at).where(
                    PortalToken.account_id == account.id
                )
            )
        ).all()
        return [account.password_hash, account.status, account.failed_logins, memberships, tokens]


async def test_every_portal_operation_of_one_contact_leaves_the_other_alone(
    client: GraphQLClient, world: dict[str, str], http: httpx.AsyncClient, app: Any
):
    from graphql_api.graphql_base.relay import parse_global_id

    anna = await portal_client(client, world["anna"])
    await anna.data(JOIN, {"g": world["open"]})
    bram = await portal_client(client, world["bram"], password="stormachtig-99")
    anna_pk = parse_global_id(world["anna"])[1]
    before = await _annas_rows(app, anna_pk)
    for document, variables in [
        (ME, {}),
        (GROUPS, {}),
        ("{ myData }", {}),
        (JOIN, {"g": world["open"]}),
        (LEAVE, {"g": world["open"]}),
        (ACCEPT, {"t": "gpl_not-annas", "p": "wat-dan-ook-1"}),
        (RESET, {"t": "gpl_not-annas", "p": "wat-dan-ook-1"}),
        ("mutation { portalLogout { ok } }", {}),
    ]:
        body = await bram.execute(document, variables)
        assert "Anna" not in str(body) and "anna@zon.nl" not in str(body), document
    assert await _annas_rows(app, anna_pk) == before
    assert (await anna.data(ME))["me"]["groups"] == [{"name": "Open"}, {"name": "Samen"}]


async def test_bad_portal_account_calls_of_staff_are_refused_and_change_nothing(
    client: GraphQLClient, world: dict[str, str], app: Any
):
    no_mail = await new_contact_id(client, firstName="Cor", lastName="Zonder")
    same_mail = await new_contact_id(client, lastName="Dubbel", email="ANNA@zon.nl")
    await client.data(INVITE, {"c": world["anna"]})
    disable = "mutation($c: ID!) { disablePortalUser(contactId: $c) { errors { field code } } }"
    erase = "mutation($c: ID!) { eraseContact(contactId: $c) { errors { field code } } }"
    nowhere = to_global_id("Contact", 999_999)
    cases = [
        (INVITE, no_mail, "invitePortalUser", "REQUIRED"),
        (INVITE, same_mail, "invitePortalUser", "EMAIL_TAKEN"),
        (INVITE, nowhere, "invitePortalUser", "NOT_FOUND"),
        (INVITE, world["open"], "invitePortalUser", "INVALID_ID"),
        (disable, world["bram"], "disablePortalUser", "NOT_FOUND"),
        (disable, "rubbish", "disablePortalUser", "INVALID_ID"),
        (erase, nowhere, "eraseContact", "NOT_FOUND"),
        (erase, world["open"], "eraseContact", "INVALID_ID"),
    ]
    for document, contact, name, code in cases:
        async with unchanged(app):
            body = await client.data(document, {"c": contact})
        assert [e["code"] for e in body[name]["errors"]] == [code], (name, contact)
