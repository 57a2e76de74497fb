"""Property test: random group graphs, checked against a plain Python set computation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from graphql_api.migrations.metadata import Base
from graphql_api.testing import GraphQLClient, new_group_id, new_static_group_id

CITIES = ["Zwolle", "Deventer", "Utrecht"]
NAMES = ["Bos", "Vos", "de Vries", "Smit"]
CONTACTS = 8


@dataclass
class Derived:
    """A composite (``filter`` None) or dynamic group over groups defined before it."""

    included: list[int] = field(default_factory=list)
    excluded: list[int] = field(default_factory=list)
    mode: str = "ANY"
    filter: dict[str, Any] | None = None


@dataclass
class Scenario:
    contacts: list[tuple[str, str]]
    statics: list[set[int]]
    derived: list[Derived]


def condition_strategy(earlier: int) -> st.SearchStrategy[dict[str, Any]]:
    leaves = [
        st.builds(lambda c: ("city", "EQ", c), st.sampled_from(CITIES)),
        st.builds(lambda n: ("lastName", "CONTAINS", n[:2]), st.sampled_from(NAMES)),
        st.builds(lambda g: ("memberOf", "EQ", g), st.integers(0, earlier - 1)),
        st.builds(lambda g: ("memberOf", "NEQ", g), st.integers(0, earlier - 1)),
    ]
    leaf = st.one_of(leaves).map(
        lambda t: {"condition": {"field": t[0], "op": t[1], "value": t[2]}}
    )
    return st.recursive(
        leaf,
        lambda children: st.one_of(
            st.lists(children, min_size=1, max_size=3).map(lambda c: {"all": c}),
            st.lists(children, min_size=1, max_size=3).map(lambda c: {"any": c}),
            children.map(lambda c: {"not": c}),
        ),
        max_leaves=4,
    )


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    contacts = [
        (draw(st.sampled_from(CITIES)), draw(st.sampled_from(NAMES))) for _ in range(CONTACTS)
    ]
    statics = [
        draw(st.sets(st.integers(0, CONTACTS - 1), max_size=CONTACTS))
        for _ in range(draw(st.integers(1, 4)))
    ]
    derived: list[Derived] = []
    for _ in range(draw(st.integers(1, 5))):
        earlier = len(statics) + len(derived)
        if draw(st.booleans()):
            included = draw(
                st.lists(st.integers(0, earlier - 1), min_size=1, max_size=3, unique=True)
            )
            others = [g for g in range(earlier) if g not in included]
            excluded = (
                draw(st.lists(st.sampled_from(others), max_size=2, unique=True)) if others else []
            )
            derived.append(Derived(included, excluded, draw(st.sampled_from(["ANY", "ALL"]))))
        else:
            derived.append(Derived(filter=draw(condition_strategy(earlier))))
    return Scenario(contacts, statics, derived)


def expected_members(scenario: Scenario) -> list[set[int]]:
    """Each group's members, computed in plain Python in definition order."""
    sets = [set(s) for s in scenario.statics]
    for group in scenario.derived:
        if group.filter is None:
            parts = [sets[i] for i in group.included]
            base = set.intersection(*parts) if group.mode == "ALL" else set.union(*parts)
            sets.append(base - set().union(*(sets[i] for i in group.excluded)))
        else:
            sets.append({c for c in range(CONTACTS) if matches(group.filter, c, scenario, sets)})
    return sets


def matches(tree: dict[str, Any], contact: int, scenario: Scenario, sets: list[set[int]]) -> bool:
    if "all" in tree:
        return all(matches(t, contact, scenario, sets) for t in tree["all"])
    if "any" in tree:
        return any(matches(t, contact, scenario, sets) for t in tree["any"])
    if "not" in tree:
        return not matches(tree["not"], contact, scenario, sets)
    condition = tree["condition"]
    city, name = scenario.contacts[contact]
    if condition["field"] == "city":
        return city.lower() == condition["value"].lower()
    if condition["field"] == "lastName":
        return condition["value"].lower() in name.lower()
    inside = contact in sets[condition["value"]]
    return inside if condition["op"] == "EQ" else not inside


def with_group_ids(tree: dict[str, Any], ids: list[str]) -> dict[str, Any]:
    if "condition" in tree:
        condition = dict(tree["condition"])
        if condition["field"] == "memberOf":
            condition["value"] = ids[condition["value"]]
        return {"condition": condition}
    if "not" in tree:
        return {"not": with_group_ids(tree["not"], ids)}
    key = "all" if "all" in tree else "any"
    return {key: [with_group_ids(t, ids) for t in tree[key]]}


MAX_ALIASES = 30
"""The API's limit of aliases in one document."""


async def ask(client: GraphQLClient, fields: list[str], operation: str = "query") -> list[Any]:
    """The answers to several fields sent as one document, aliased ``a0``, ``a1``, ...:
    one request instead of one each."""
    assert len(fields) <= MAX_ALIASES
    aliased = " ".join(f"a{i}: {field}" for i, field in enumerate(fields))
    data = await client.data(f"{operation} {{ {aliased} }}")
    return [data[f"a{i}"] for i in range(len(fields))]


CREATE = 'createContact(input: {{lastName: "{}", city: "{}"}}) {{ contact {{ id }} }}'
MEMBERS = 'group(id: "{}") {{ memberCount members(first: 100) {{ totalCount nodes {{ id }} }} }}'
CONTACT_GROUPS = 'contact(id: "{}") {{ groups {{ id }} }}'
HAS_MEMBER = 'group(id: "{}") {{ hasMember(contactId: "{}") }}'


@settings(
    # How many examples, and whether at random, is the profile's (tests/conftest.py).
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios())
async def test_random_group_graphs_match_set_semantics(
    app: Any, client: GraphQLClient, scenario: Scenario
):
    await _clear_groups_and_contacts(app)
    creates = [CREATE.format(name, city) for city, name in scenario.contacts]
    contact_ids = [c["contact"]["id"] for c in await ask(client, creates, "mutation")]
    group_ids: list[str] = []
    for index, members in enumerate(scenario.statics):
        group_ids.append(
            await new_static_group_id(client, f"S{index}", [contact_ids[m] for m in members])
        )
    for index, group in enumerate(scenario.derived):
        values: dict[str, Any] = {"name": f"D{index}"}
        if group.filter is None:
            values |= {
                "composedOfIds": [group_ids[i] for i in group.included],
                "excludedGroupIds": [group_ids[i] for i in group.excluded],
                "compositionMode": group.mode,
            }
        else:
            values["filter"] = with_group_ids(group.filter, group_ids)
        group_ids.append(await new_group_id(client, **values))

    expected = expected_members(scenario)
    position = {cid: i for i, cid in enumerate(contact_ids)}
    groups = await ask(client, [MEMBERS.format(group_id) for group_id in group_ids])
    for index, group in enumerate(groups):
        got = {position[n["id"]] for n in group["members"]["nodes"]}
        assert got == expected[index], (index, scenario)
        assert group["memberCount"] == group["members"]["totalCount"] == len(expected[index])

    # Every (group, contact) pair, from the contact's side and through hasMember, in as few
    # requests as the limit of aliases allows.
    per_contact = 1 + len(group_ids)
    fields = [
        field
        for contact_id in contact_ids
        for field in [
            CONTACT_GROUPS.format(contact_id),
            *(HAS_MEMBER.format(group_id, contact_id) for group_id in group_ids),
        ]
    ]
    step = MAX_ALIASES // per_contact * per_contact
    answers = [
        answer
        for start in range(0, len(fields), step)
        for answer in await ask(client, fields[start : start + step])
    ]
    for contact in range(len(contact_ids)):
        side, *has = answers[contact * per_contact : (contact + 1) * per_contact]
        in_groups = {g["id"] for g in side["groups"]}
        for index, group_id in enumerate(group_ids):
            member = contact in expected[index]
            assert (group_id in in_groups) is member, (index, contact, scenario)
            assert has[index]["hasMember"] is member, (index, contact, scenario)


async def _clear_groups_and_contacts(app: Any) -> None:
    """Each example starts without groups or contacts (users and tokens stay)."""
    keep = {"users", "api_tokens", "staff_roles", "audit_log", "alembic_version"}
    async with app.state.engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name not in keep:
                await connection.execute(text(f"DELETE FROM {table.name}"))
