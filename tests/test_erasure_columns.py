"""Erasure (``eraseContact``, docs/portal.md) leaves none of the contact's personal data in
any column of any table, and touches no one else's.

Nothing here lists the columns to look in: the tables and their columns come from the
database itself (every table, plugins' too, read whole as ``database_rows`` reads it), and
the personal fields to fill from the schema (every text field of ``ContactInput``). So a
personal column added later, to ``contacts`` or a plugin's table, that erasure forgets
fails these tests without a change to them:

- every personal field of the contact is filled with a marker of its own, twice (made,
  then edited), and the contact leaves traces everywhere it can: memberships and history
  of static, dynamic and composite groups, a group mailing new members, a Hoomdossier link
  (the coach plugin's table), a portal account that was invited, activated, logged in,
  joined a group and asked for a password reset (its mails wait in the outbox, with the
  address and name in their payload);
- after ``eraseContact`` no value of any column of any table holds any of those markers
  (text, JSON payloads, case-insensitively); every column of the contact's row but its id,
  kind and timestamps is empty; no row of a table that refers to the contact or to its
  portal account is left, but for the anonymised membership history the docs keep;
- another contact with markers of their own, with the same traces, has every marker in
  exactly the same rows and columns as before.
"""

from __future__ import annotations

import json
import secrets
from collections import defaultdict
from typing import Any

from graphql import GraphQLEnumType, GraphQLInputObjectType, get_named_type
from sqlalchemy import inspect, text

from graphql_api.graphql_base.relay import parse_global_id
from graphql_api.testing import (
    UPDATE_CONTACT,
    GraphQLClient,
    add_members,
    database_rows,
    new_contact_id,
    new_group_id,
    new_template_id,
    portal_client,
)

STRUCTURAL = frozenset({"id", "kind", "created_at", "updated_at"})
"""The columns of ``contacts`` that are no personal data: kept after erasure."""
HISTORY = frozenset({"memberships", "derived_memberships", "membership_events"})
"""Tables whose rows about the contact stay, anonymised (docs/portal.md): counts over time."""

LINK = """mutation($c: ID!, $a: String!) {
  linkHoomdossier(contactId: $c, accountId: $a) { errors { code } } }"""
ERASE = "mutation($c: ID!) { eraseContact(contactId: $c) { erasedId errors { code } } }"
RESET = "mutation($e: String!) { requestPasswordReset(email: $e) { ok errors { code } } }"
JOIN = "mutation($g: ID!) { joinGroup(groupId: $g) { errors { code } } }"


def marker(field: str) -> str:
    """A value no other data holds: short enough for every column (a postal code takes 20
    characters), an address where one is asked for."""
    unique = secrets.token_hex(4)
    return f"q{unique}@m{unique}.example" if field == "email" else f"Q{unique}"


def personal_values(schema: Any) -> dict[str, str]:
    """A marker for every personal field of ``ContactInput``, found in the schema: each
    text field (the kind, an enum, is no personal data). A field of another type fails:
    this test must learn to fill it."""
    contact_input = schema.type_map["ContactInput"]
    assert isinstance(contact_input, GraphQLInputObjectType)
    values = {}
    for name, field in contact_input.fields.items():
        named = get_named_type(field.type)
        if isinstance(named, GraphQLEnumType):
            continue
        assert named.name == "String", f"fill ContactInput.{name} ({named.name}) here too"
        values[name] = marker(name)
    return values


def pk(global_id: str) -> int:
    parsed = parse_global_id(global_id)
    assert parsed is not None
    return parsed[1]


def flat(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def table_names(connection: Any) -> list[str]:
    return sorted(
        name
        for name in inspect(connection).get_table_names()
        if not name.startswith("alembic_version")
    )


async def found(app: Any, markers: list[str]) -> dict[str, set[tuple[str, str, str]]]:
    """Where each marker is: (table, column, the row's other values) of every value of every
    column of every table that holds it."""
    where: dict[str, set[tuple[str, str, str]]] = defaultdict(set)
    lowered = [(m, m.lower()) for m in markers]
    for table, rows in (await database_rows(app)).items():
        for row in rows:
            for column, value in row.items():
                if value is None:
                    continue
                held = flat(value).lower()
                for original, needle in lowered:
                    if needle in held:
                        key = repr(sorted((k, flat(v)) for k, v in row.items() if k != column))
                        where[original].add((table, column, key))
    return where


async def traces(
    client: GraphQLClient, schema: Any, name: str, groups: dict[str, str]
) -> tuple[str, list[str], GraphQLClient]:
    """A contact with every personal field filled, then edited, who leaves every trace the
    service keeps; its id, all its markers, and its portal session."""
    first = personal_values(schema)
    contact = await new_contact_id(client, **first)
    second = personal_values(schema)
    updated = await client.data(UPDATE_CONTACT, {"id": contact, "input": second})
    assert updated["updateContact"]["errors"] == [], updated
    await add_members(client, groups["static"], [contact])
    await add_members(client, groups["coaches"], [contact])
    await add_members(client, groups["mailing"], [contact])
    account = f"hd-{name}-{secrets.token_hex(4)}"
    linked = await client.data(LINK, {"c": contact, "a": account})
    assert linked["linkHoomdossier"]["errors"] == [], linked
    portal = await portal_client(client, contact)
    joined = await portal.data(JOIN, {"g": groups["portal"]})
    assert joined["joinGroup"]["errors"] == [], joined
    anonymous = GraphQLClient(client.http, None, path="/portal/graphql")
    reset = await anonymous.data(RESET, {"e": second["email"]})
    assert reset["requestPasswordReset"]["errors"] == [], reset
    return contact, [*first.values(), *second.values(), account], portal


async def test_erasure_leaves_no_personal_value_in_any_column_and_touches_no_one_else(
    app: Any, client: GraphQLClient
):
    schema = app.state.schema._schema
    template = await new_template_id(client, body="Welkom {{ contact.firstName }}")
    groups = {
        "static": await new_group_id(client, name="Vast"),
        "coaches": await new_group_id(client, name="Coaches", neighbourhoodRole="coach"),
        "mailing": await new_group_id(
            client, name="Nieuwsbrief", emailOnNewMember=True, newMemberEmailTemplateId=template
        ),
        "portal": await new_group_id(client, name="Open", showOnPortal=True, editableOnPortal=True),
    }
    named = {"condition": {"field": "lastName", "op": "IS_NOT_EMPTY"}}
    dynamic = await new_group_id(client, name="Met achternaam", filter=named)
    await new_group_id(client, name="Samen", composedOfIds=[dynamic, groups["static"]])
    erased, erased_markers, erased_portal = await traces(client, schema, "erased", groups)
    kept, kept_markers, _ = await traces(client, schema, "kept", groups)

    everything = erased_markers + kept_markers
    before = await found(app, everything)
    # Each marker is somewhere to begin with (the first values only in what keeps old
    # values, if anything does); the current ones are at least in the contact's row.
    assert all(before[m] for m in erased_markers[len(erased_markers) // 2 : -1])
    assert all(before[m] for m in kept_markers[len(kept_markers) // 2 : -1])

    answer = await client.data(ERASE, {"c": erased})
    assert answer["eraseContact"] == {"erasedId": erased, "errors": []}

    after = await found(app, everything)
    left = {m: sorted(after[m]) for m in erased_markers if after[m]}
    assert not left, f"personal values of the erased contact remain: {left}"
    moved = {
        m: (sorted(before[m]), sorted(after[m])) for m in kept_markers if before[m] != after[m]
    }
    assert not moved, f"another contact's data changed: {moved}"
    assert (await erased_portal.post("{ me { displayName } }")).status_code == 401

    async with app.state.engine.connect() as connection:
        columns = await connection.run_sync(
            lambda sync: [c["name"] for c in inspect(sync).get_columns("contacts")]
        )
        row = (
            (
                await connection.execute(
                    text("SELECT * FROM contacts WHERE id = :id"), {"id": pk(erased)}
                )
            )
            .mappings()
            .one()
        )
        other = (
            (
                await connection.execute(
                    text("SELECT * FROM contacts WHERE id = :id"), {"id": pk(kept)}
                )
            )
            .mappings()
            .one()
        )
    personal = [c for c in columns if c not in STRUCTURAL]
    assert personal, columns
    assert {c: row[c] for c in personal if row[c] is not None} == {}
    assert all(other[c] is not None for c in personal), "the other contact keeps every field"


async def test_no_row_refers_to_the_erased_contact_or_its_portal_account_but_its_history(
    app: Any, client: GraphQLClient
):
    """The tables that refer to ``contacts`` or ``portal_accounts`` are found by their
    foreign keys: a plugin's table among them, or one added later, is checked too; and the
    two that name contacts without a key."""
    schema = app.state.schema._schema
    groups = {
        "static": await new_group_id(client, name="Vast"),
        "coaches": await new_group_id(client, name="Coaches", neighbourhoodRole="coach"),
        "mailing": await new_group_id(client, name="Nieuwsbrief"),
        "portal": await new_group_id(client, name="Open", showOnPortal=True, editableOnPortal=True),
    }
    erased, _, _ = await traces(client, schema, "erased", groups)
    kept, _, _ = await traces(client, schema, "kept", groups)

    async def references() -> dict[str, list[tuple[str, str]]]:
        """Per referred table (contacts, portal_accounts): each (table, column) referring."""

        def read(sync: Any) -> dict[str, list[tuple[str, str]]]:
            inspector = inspect(sync)
            found: dict[str, list[tuple[str, str]]] = defaultdict(list)
            for table in table_names(sync):
                for key in inspector.get_foreign_keys(table):
                    if key["referred_table"] in ("contacts", "portal_accounts"):
                        [column] = key["constrained_columns"]
                        found[key["referred_table"]].append((table, column))
            return found

        async with app.state.engine.connect() as connection:
            found = await connection.run_sync(read)
        # Written by the hundred thousand, these name contacts without a key (migration 0009).
        found["contacts"] += [
            ("membership_events", "contact_id"),
            ("derived_memberships", "contact_id"),
        ]
        return found

    async def accounts_of(contact: int) -> list[int]:
        async with app.state.engine.connect() as connection:
            return list(
                await connection.scalars(
                    text("SELECT id FROM portal_accounts WHERE contact_id = :c"), {"c": contact}
                )
            )

    async def rows_referring(
        refs: dict[str, list[tuple[str, str]]], contact: int, accounts: list[int]
    ) -> dict[str, int]:
        """Rows referring to the contact, or to one of its portal accounts (as they were
        before the erasure), per referring column."""
        counts = {}
        async with app.state.engine.connect() as connection:
            for referred, ids in (("contacts", [contact]), ("portal_accounts", accounts)):
                for table, column in refs[referred]:
                    for key in ids:
                        count = await connection.scalar(
                            text(f'SELECT count(*) FROM "{table}" WHERE "{column}" = :k'),
                            {"k": key},
                        )
                        counts[f"{table}.{column}"] = counts.get(f"{table}.{column}", 0) + count
        return counts

    refs = await references()
    referring = {table for pairs in refs.values() for table, _ in pairs}
    # Found by their keys, not listed: the portal's tables and the coach plugin's.
    assert {"portal_accounts", "portal_tokens", "portal_events"} <= referring
    assert "coach_hoomdossier_links" in referring
    erased_accounts, kept_accounts = await accounts_of(pk(erased)), await accounts_of(pk(kept))
    assert len(erased_accounts) == len(kept_accounts) == 1
    before = await rows_referring(refs, pk(erased), erased_accounts)
    assert before["portal_accounts.contact_id"] == 1
    assert before["coach_hoomdossier_links.contact_id"] == 1
    assert before["portal_tokens.account_id"] >= 2, "a session and a reset link"
    kept_before = await rows_referring(refs, pk(kept), kept_accounts)

    answer = await client.data(ERASE, {"c": erased})
    assert answer["eraseContact"]["errors"] == []

    after = await rows_referring(refs, pk(erased), erased_accounts)
    left = {
        where: count
        for where, count in after.items()
        if count and where.split(".")[0] not in HISTORY
    }
    assert not left, f"rows still refer to the erased contact: {left}"
    assert after["membership_events.contact_id"] >= before["membership_events.contact_id"]
    assert await rows_referring(refs, pk(kept), kept_accounts) == kept_before
