"""Contact edits travel through every chain of derived groups (docs/derived-membership.md):
one regression test per chain kind and kind of edit that can move a contact.

The edits are generated from the filter fields an application offers
(``groups.filters.CONTACT_FIELDS`` and the plugins' ``filter_fields``): every text field
and ``kind`` is edited through ``updateContact``, ``memberOf`` by adding to and removing
from a static group, a plugin's role field (``neighbourhoodRole``) by adding to and
removing from a group with that role; ``createdAt`` cannot be edited, so it moves nobody.
Erasure (``eraseContact``, the only way a contact's data goes: there is no deletion)
moves the contact out of what tested the cleared fields.

Each edit kind gives the condition of a dynamic group that its edit makes the contact
meet ("enter") and then no longer meet ("leave"). The chains, with ``D`` that dynamic
group, ``S`` static groups:

- ``static -> composite``: ``S`` (the edit adds to and removes from it), and a composite
  of it (only membership and erasure edits apply: nothing else moves a static member);
- ``dynamic -> composite``: ``D``, and a composite of ``D`` and a static group;
- ``static -> dynamic (memberOf) -> composite``: a dynamic group of the members of a
  static group meeting the condition, and a composite of that;
- ``composite -> composite``: a composite of ``D``, nested in another composite;
- ``exclusion``: a composite of a static group excluding ``D``;
- ``intersection``: a composite of all of a static group and ``D``.

Three contacts: the one edited, one who never meets the condition, one who always does
(a refresh limited to the edited contact must leave the others be). After the contacts
are made and after each edit, every group's stored members (``members``,
``memberCount`` and ``totalCount`` through GraphQL) are what the test computes itself,
and ``groups.derived.differences`` (what ``graphql-api check-membership`` runs) finds
nothing.

The tests are parametrized over chain kind x edit kind, but one edit moves its contact
through every chain of its kind at once: the first test of an edit kind makes all the
chains over the same contacts and dynamic group, runs the edit, and keeps what went
wrong in each chain; the other tests of that edit kind report their chain's part. (On
PostgreSQL emptying the tables after a test costs more than a chain does.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from graphql_api.graphql_base.relay import parse_global_id
from graphql_api.groups.derived import differences
from graphql_api.groups.filters import COLUMNS, CONTACT_FIELDS, FieldType
from graphql_api.settings import Settings
from graphql_api.testing import (
    UPDATE_CONTACT,
    GraphQLClient,
    add_members,
    make_user,
    new_group_id,
    remove_members,
)
from graphql_api.web.app import load_plugins

NOT_EDITABLE = {"createdAt": "set when the contact is made, never edited"}
"""Filter fields no edit changes, so no edit moves a contact by them."""

MATCH = {"email": "treffer@example.coop", "postalCode": "1234 AB"}
"""The value the condition tests for (``Treffer`` for other text fields)."""
OTHER = {"email": "ander{n}@example.coop", "postalCode": "999{n} ZZ"}


def match(field: str) -> str:
    return MATCH.get(field, "Treffer")


def other(field: str, n: int) -> str:
    return OTHER.get(field, "Anders {n}").format(n=n)


def condition(field: str, op: str, value: str) -> dict[str, Any]:
    return {"condition": {"field": field, "op": op, "value": value}}


# Edits, generated from the filter fields --------------------------------------------


@dataclass
class World:
    """What a test made: the client, its contacts and the groups an edit needs."""

    client: GraphQLClient
    edited: str = ""
    never: str = ""
    always: str = ""
    toggled: str = ""
    """The static group a membership edit adds the contact to and removes it from."""


Step = Callable[[World], Awaitable[None]]


@dataclass(frozen=True)
class Edit:
    name: str
    condition: Callable[[World], dict[str, Any]]
    """The filter the contact meets after ``enter`` and not after ``leave``."""
    values: Callable[[str], dict[str, Any]]
    """``ContactInput`` of each contact ("edited", "never", "always") when it is made."""
    enter: Step | None
    """None: the edited contact meets the condition from the start."""
    leave: Step
    toggles_a_static_group: bool = False
    role: str | None = None
    erases: bool = False


async def update(world: World, values: dict[str, Any]) -> None:
    data = await world.client.data(UPDATE_CONTACT, {"id": world.edited, "input": values})
    assert data["updateContact"]["errors"] == [], data


async def erase(world: World) -> None:
    data = await world.client.data(
        "mutation($c: ID!) { eraseContact(contactId: $c) { errors { code } } }",
        {"c": world.edited},
    )
    assert data["eraseContact"]["errors"] == [], data


def person(who: str, **values: Any) -> dict[str, Any]:
    return {"firstName": who.title(), "lastName": "Jansen", **values}


def text_edit(field: str) -> Edit:
    def values(who: str) -> dict[str, Any]:
        given = {"always": match(field), "never": other(field, 1), "edited": other(field, 2)}
        return person(who, **{field: given[who]})

    async def enter(world: World) -> None:
        await update(world, {field: match(field)})

    async def leave(world: World) -> None:
        await update(world, {field: other(field, 3)})

    return Edit(field, lambda _: condition(field, "EQ", match(field)), values, enter, leave)


def kind_edit() -> Edit:
    def values(who: str) -> dict[str, Any]:
        kind = "ORGANISATION" if who == "always" else "PERSON"
        return person(who, kind=kind, organisationName=f"{who.title()} BV")

    async def enter(world: World) -> None:
        await update(world, {"kind": "ORGANISATION"})

    async def leave(world: World) -> None:
        await update(world, {"kind": "PERSON"})

    return Edit("kind", lambda _: condition("kind", "EQ", "ORGANISATION"), values, enter, leave)


def member_of_edit() -> Edit:
    async def enter(world: World) -> None:
        await add_members(world.client, world.toggled, [world.edited])

    async def leave(world: World) -> None:
        await remove_members(world.client, world.toggled, [world.edited])

    return Edit(
        "memberOf",
        lambda world: condition("memberOf", "EQ", world.toggled),
        person,
        enter,
        leave,
        toggles_a_static_group=True,
    )


def role_edit(field: str, role: str) -> Edit:
    """A plugin's role field: the contact holds the role while in a group with it."""
    edit = member_of_edit()
    return Edit(
        f"{field}={role}",
        lambda _: condition(field, "EQ", role),
        person,
        edit.enter,
        edit.leave,
        toggles_a_static_group=True,
        role=role,
    )


def erase_edit() -> Edit:
    """Erasure clears every personal field: the contact made meeting ``city = Treffer``
    leaves."""

    def values(who: str) -> dict[str, Any]:
        return person(who, city=match("city") if who != "never" else other("city", 1))

    return Edit(
        "eraseContact",
        lambda _: condition("city", "EQ", match("city")),
        values,
        None,
        erase,
        erases=True,
    )


def edits() -> list[Edit]:
    fields = load_plugins(Settings()).filter_fields
    assert set(CONTACT_FIELDS) <= set(fields)
    made = []
    for name, spec in fields.items():
        if name in NOT_EDITABLE:
            continue
        if spec.type is FieldType.TEXT:
            assert name in COLUMNS, f"teach this test to edit {name}"
            made.append(text_edit(name))
        elif name == "kind":
            made.append(kind_edit())
        elif spec.type is FieldType.GROUP:
            made.append(member_of_edit())
        elif spec.type is FieldType.CHOICE and spec.compile is not None:
            made.append(role_edit(name, spec.choices[0]))
        else:
            raise AssertionError(f"teach this test to edit {name} ({spec.type})")
    return [*made, erase_edit()]


EDITS = edits()


# Chains ------------------------------------------------------------------------------

CHAINS = [
    "static -> composite",
    "dynamic -> composite",
    "static -> dynamic (memberOf) -> composite",
    "composite -> composite",
    "exclusion",
    "intersection",
]


def applies(chain: str, edit: Edit) -> bool:
    """Only a membership edit or erasure can move a static group's members."""
    return chain != "static -> composite" or edit.toggles_a_static_group or edit.erases


CASES = [
    pytest.param(chain, edit, id=f"{chain} | {edit.name}")
    for edit in EDITS
    for chain in CHAINS
    if applies(chain, edit)
]

Expected = Callable[[set[str], set[str]], set[str]]
"""What a group holds, given who meets the condition and who is in the toggled group."""


@dataclass
class Chains:
    """Every chain of one edit kind, made over the same contacts and dynamic group: each
    chain's groups, by name, with the group id and what it holds."""

    world: World
    groups: dict[str, dict[str, tuple[str, Expected]]]


async def made_chains(world: World, edit: Edit) -> Chains:
    client = world.client
    edited, never, always = world.edited, world.never, world.always
    everyone = {edited, never, always}

    async def static(name: str, members: set[str], **values: Any) -> str:
        group = await new_group_id(client, name=name, **values)
        await add_members(client, group, sorted(members))
        return group

    async def composite(name: str, of: list[str], **values: Any) -> str:
        return await new_group_id(client, name=name, composedOfIds=of, **values)

    chains: dict[str, dict[str, tuple[str, Expected]]] = {}
    if edit.toggles_a_static_group:
        role = {"neighbourhoodRole": edit.role} if edit.role else {}
        world.toggled = await static("Wisselend", {always}, **role)
    elif edit.erases:  # the erased contact stays a static member
        world.toggled = await static("Vast", {edited, always})
    only_never = await static("Nooit", {never})
    all_three = await static("Iedereen", everyone)
    dynamic = await new_group_id(client, name="Treffers", filter=edit.condition(world))
    d: tuple[str, Expected] = (dynamic, lambda meeting, _: meeting)

    if world.toggled:
        chains["static -> composite"] = {
            "static": (world.toggled, lambda _, toggled: toggled),
            "composite": (
                await composite("Vast samen", [world.toggled, only_never]),
                lambda _, toggled: toggled | {never},
            ),
        }
    chains["dynamic -> composite"] = {
        "dynamic": d,
        "composite": (
            await composite("Samen", [dynamic, only_never]),
            lambda meeting, _: meeting | {never},
        ),
    }
    tree = {"all": [condition("memberOf", "EQ", all_three), edit.condition(world)]}
    member_of = await new_group_id(client, name="Lid en treffer", filter=tree)
    chains["static -> dynamic (memberOf) -> composite"] = {
        "static": (all_three, lambda _, __: everyone),
        "dynamic": (member_of, lambda meeting, _: meeting & everyone),
        "composite": (
            await composite("Lid en treffer samen", [member_of]),
            lambda meeting, _: meeting & everyone,
        ),
    }
    inner = await composite("Binnen", [dynamic])
    chains["composite -> composite"] = {
        "dynamic": d,
        "inner": (inner, lambda meeting, _: meeting),
        "outer": (
            await composite("Buiten", [inner, only_never]),
            lambda meeting, _: meeting | {never},
        ),
    }
    chains["exclusion"] = {
        "dynamic": d,
        "composite": (
            await composite("Behalve treffers", [all_three], excludedGroupIds=[dynamic]),
            lambda meeting, _: everyone - meeting,
        ),
    }
    chains["intersection"] = {
        "dynamic": d,
        "composite": (
            await composite("Treffers van iedereen", [all_three, dynamic], compositionMode="ALL"),
            lambda meeting, _: meeting & everyone,
        ),
    }
    return Chains(world, chains)


STORED = "query({vars}) {{ {fields} }}"
CREATE_CONTACTS = """
mutation($edited: ContactInput!, $never: ContactInput!, $always: ContactInput!) {
  edited: createContact(input: $edited) { contact { id } errors { code } }
  never: createContact(input: $never) { contact { id } errors { code } }
  always: createContact(input: $always) { contact { id } errors { code } }
}"""


async def stored(client: GraphQLClient, ids: list[str]) -> dict[str, set[str]]:
    """Each group's members as the API reads them, by group id; its ``memberCount`` and
    ``totalCount`` must agree with them."""
    query = STORED.format(
        vars=", ".join(f"$g{i}: ID!" for i in range(len(ids))),
        fields=" ".join(
            f"g{i}: group(id: $g{i}) {{ memberCount members(first: 100) "
            "{ totalCount nodes { id } } }"
            for i in range(len(ids))
        ),
    )
    data = await client.data(query, {f"g{i}": group for i, group in enumerate(ids)})
    found = {}
    for i, group_id in enumerate(ids):
        group = data[f"g{i}"]
        members = {node["id"] for node in group["members"]["nodes"]}
        counts = (group["memberCount"], group["members"]["totalCount"])
        found[group_id] = members if counts == (len(members),) * 2 else {f"counts {counts}"}
    return found


async def travel(app: Any, edit: Edit) -> dict[str, list[str]]:
    """Make the contacts and every chain for ``edit``, check after the contacts are made
    and after each step of the edit; what went wrong in each chain."""
    _, token = await make_user(app, "Johannes Frölich", "johannes@example.coop", admin=True)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        client = GraphQLClient(http, token)
        world = World(client)
        made = await client.data(
            CREATE_CONTACTS, {who: edit.values(who) for who in ("edited", "never", "always")}
        )
        for who, payload in made.items():
            assert payload["errors"] == [], payload
            setattr(world, who, payload["contact"]["id"])
        chains = await made_chains(world, edit)
        names = {world.edited: "edited", world.never: "never", world.always: "always"}
        wrong: dict[str, list[str]] = {chain: [] for chain in CHAINS}
        ids = sorted({gid for groups in chains.groups.values() for gid, _ in groups.values()})

        async def check(step: str, edited_in: bool) -> None:
            meeting = {world.always} | ({world.edited} if edited_in else set())
            # An erased contact stays in the static group it was put in.
            toggled = meeting if edit.toggles_a_static_group else {world.edited, world.always}
            found = await stored(client, ids)
            async with app.state.sessions() as session:
                problems = await differences(session)
            for chain, groups in chains.groups.items():
                for name, (group_id, expected) in groups.items():
                    want = expected(meeting, toggled)
                    if found[group_id] != want:
                        got = sorted(names.get(c, c) for c in found[group_id])
                        wrong[chain].append(
                            f"after {step}, {name} holds {got}, "
                            f"not {sorted(names[c] for c in want)}"
                        )
                    pk = parse_global_id(group_id)
                    assert pk is not None
                    wrong[chain] += [
                        f"after {step}, check-membership: {problem}"
                        for problem in problems
                        if problem.startswith(f"group {pk[1]}:")
                    ]

        await check("making the contacts", edited_in=edit.enter is None)
        if edit.enter is not None:
            await edit.enter(world)
            await check(f"{edit.name}: entering", edited_in=True)
        await edit.leave(world)
        await check(f"{edit.name}: leaving", edited_in=False)
        return wrong


_TRAVELLED: dict[tuple[str, str], dict[str, list[str]]] = {}
"""What went wrong in each chain, per database and edit kind: one edit moves its contact
through every chain at once, so the first test of an edit kind runs it for all."""


@pytest.mark.parametrize(("chain", "edit"), CASES)
async def test_a_contact_edit_travels_through_the_chain(
    app_factory: Any, database_url: str, chain: str, edit: Edit
):
    key = (database_url, edit.name)
    if key not in _TRAVELLED:
        # Tables are emptied after the test that made an application (the kit's rule).
        _TRAVELLED[key] = await travel(app_factory(), edit)
    assert not _TRAVELLED[key][chain], "\n".join(_TRAVELLED[key][chain])


def test_every_filter_field_is_edited_or_said_to_be_uneditable():
    fields = load_plugins(Settings()).filter_fields
    edited = {edit.name.split("=")[0] for edit in EDITS if not edit.erases}
    assert set(fields) == edited | set(NOT_EDITABLE)
    assert {chain for chain, _ in (case.values for case in CASES)} == set(CHAINS)
