"""The rules of neighbourhood roles (the built-in plugin graphql_api.roles.core_plugin),
through the domain services of an application with a role plugin of this module: the
problems a role conflict gives, in order and in words, the groups that cannot give a role,
and the ``neighbourhoodRole`` filter field."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from graphql_api.contacts.models import Contact
from graphql_api.groups.lifecycle import create_group, update_group
from graphql_api.groups.membership_reads import filter_contacts
from graphql_api.groups.membership_writes import add_members
from graphql_api.groups.models import MembershipSource
from graphql_api.kernel.access import SYSTEM
from graphql_api.kernel.errors import ErrorCode, Problem, UserInputError
from graphql_api.plugin import RoleDefinition, hookimpl

API = MembershipSource.API


class NeighbourhoodRoles:
    """Two roles; the English label of ``buurtouder`` differs from its Dutch one."""

    __name__ = "neighbourhood-roles"

    @hookimpl
    def register_roles(self) -> list[RoleDefinition]:
        return [
            RoleDefinition("buurtouder", {"nl": "Is buurtouder", "en": "Neighbourhood elder"}),
            RoleDefinition("sleutelhouder", {"nl": "Heeft een sleutel"}),
        ]


@pytest.fixture
def app(app_factory: Any) -> Any:
    return app_factory(plugins=[NeighbourhoodRoles()])


async def setup(app: Any, *names: str) -> dict[str, int]:
    """Contacts with these last names (in this order of ids); their ids by name."""
    async with app.state.sessions() as session, session.begin():
        contacts = [Contact(first_name="Ank", last_name=name) for name in names]
        session.add_all(contacts)
        await session.flush()
        return {c.last_name: c.id for c in contacts}


async def group(app: Any, name: str, role: str | None = None, **values: Any) -> int:
    async with app.state.sessions() as session, session.begin():
        made = await create_group(
            session, SYSTEM, {"name": name, "neighbourhood_role": role, **values}
        )
        return made.id


async def add(app: Any, group_id: int, contact_ids: list[int]) -> None:
    async with app.state.sessions() as session, session.begin():
        await add_members(session, SYSTEM, group_id, contact_ids, API)


async def refused_add(app: Any, group_id: int, contact_ids: list[int]) -> tuple[Problem, ...]:
    with pytest.raises(UserInputError) as refused:
        await add(app, group_id, contact_ids)
    return refused.value.problems


def conflict(position: int, who: str, held: str, wanted: str) -> Problem:
    """The problem of the contact at ``position`` in the list the caller gave."""
    return Problem(
        ("contact_ids", str(position)),
        ErrorCode.ROLE_CONFLICT,
        f"{who} already holds {held}; a contact holds one role, so cannot also become {wanted!r}.",
    )


async def test_a_conflict_names_every_role_held_and_the_role_wanted(app: Any):
    c = await setup(app, "Aa", "Bb", "Cc", "Dd")
    zeta = await group(app, "Zeta sleutels", "sleutelhouder")
    alpha = await group(app, "alpha sleutels", "sleutelhouder")
    elders = await group(app, "Ouderen", "buurtouder")
    plain = await group(app, "Nieuwsbrief")
    await add(app, zeta, [c["Aa"], c["Bb"]])
    await add(app, alpha, [c["Bb"], c["Cc"]])
    await add(app, plain, [c["Dd"]])
    await add(app, elders, [c["Dd"]])

    # one problem per contact that holds another role, in the order of the contacts' ids
    assert await refused_add(app, elders, [c["Cc"], c["Dd"], c["Bb"], c["Aa"]]) == (
        conflict(3, "Ank Aa", "sleutelhouder through 'Zeta sleutels'", "Neighbourhood elder"),
        conflict(
            2,
            "Ank Bb",
            "sleutelhouder through 'alpha sleutels', sleutelhouder through 'Zeta sleutels'",
            "Neighbourhood elder",
        ),
        conflict(0, "Ank Cc", "sleutelhouder through 'alpha sleutels'", "Neighbourhood elder"),
    )
    assert await refused_add(app, zeta, [c["Dd"]]) == (
        conflict(0, "Ank Dd", "buurtouder through 'Ouderen'", "Heeft een sleutel"),
    )


async def test_the_same_role_again_or_no_role_is_no_conflict(app: Any):
    c = await setup(app, "Aa")
    first = await group(app, "Eerste", "buurtouder")
    second = await group(app, "Tweede", "buurtouder")
    plain = await group(app, "Nieuwsbrief")
    await add(app, first, [c["Aa"]])
    await add(app, second, [c["Aa"]])
    await add(app, plain, [c["Aa"]])
    async with app.state.sessions() as session:
        rows = await filter_contacts(session, select(Contact.id), _role("EQ", "buurtouder"))
        assert list(await session.scalars(rows)) == [c["Aa"]]


async def test_a_role_no_plugin_registers_any_more_is_named_by_its_key(app: Any, app_factory: Any):
    c = await setup(app, "Aa")
    keys = await group(app, "Sleutels", "sleutelhouder")
    elders = await group(app, "Ouderen", "buurtouder")
    await add(app, keys, [c["Aa"]])
    without_roles = app_factory(plugins=[])
    assert await refused_add(without_roles, elders, [c["Aa"]]) == (
        conflict(0, "Ank Aa", "sleutelhouder through 'Sleutels'", "buurtouder"),
    )


async def test_only_a_static_group_gives_a_role(app: Any):
    base = await group(app, "Basis")
    with pytest.raises(UserInputError) as refused:
        await group(app, "Samen", "buurtouder", composed_of_ids=[base])
    assert refused.value.problems == (
        Problem(("neighbourhood_role",), ErrorCode.INVALID, "Only a static group gives a role."),
    )
    dynamic = await group(app, "Zwolle", filter={"condition": {"field": "city", "op": "IS_EMPTY"}})
    with pytest.raises(UserInputError) as refused:
        async with app.state.sessions() as session, session.begin():
            await update_group(session, SYSTEM, dynamic, {"neighbourhood_role": "buurtouder"})
    assert refused.value.problems == (
        Problem(("neighbourhood_role",), ErrorCode.INVALID, "Only a static group gives a role."),
    )


async def test_the_role_of_a_group_with_members_stays(app: Any):
    c = await setup(app, "Aa")
    elders = await group(app, "Ouderen", "buurtouder")
    await add(app, elders, [c["Aa"]])
    with pytest.raises(UserInputError) as refused:
        async with app.state.sessions() as session, session.begin():
            await update_group(session, SYSTEM, elders, {"neighbourhood_role": "sleutelhouder"})
    assert refused.value.problems == (
        Problem(
            ("neighbourhood_role",),
            ErrorCode.ROLE_IN_USE,
            "'Ouderen' has members, who hold its role; remove them first.",
        ),
    )


def _role(op: str, *roles: str) -> dict[str, Any]:
    condition: dict[str, Any] = {"field": "neighbourhoodRole", "op": op}
    if op == "IN":
        condition["values"] = list(roles)
    else:
        [condition["value"]] = roles
    return {"condition": condition}


async def test_filters_test_the_role_a_contact_holds(app: Any):
    c = await setup(app, "Aa", "Bb", "Cc")
    elders = await group(app, "Ouderen", "buurtouder")
    keys = await group(app, "Sleutels", "sleutelhouder")
    await add(app, elders, [c["Aa"]])
    await add(app, keys, [c["Bb"]])

    async def holders(tree: dict[str, Any]) -> list[str]:
        async with app.state.sessions() as session:
            query = await filter_contacts(session, select(Contact).order_by(Contact.id), tree)
            return [contact.last_name for contact in await session.scalars(query)]

    assert await holders(_role("EQ", "buurtouder")) == ["Aa"]
    assert await holders(_role("NEQ", "buurtouder")) == ["Bb", "Cc"]
    assert await holders(_role("IN", "buurtouder", "sleutelhouder")) == ["Aa", "Bb"]
    assert await holders(_role("IN", "sleutelhouder")) == ["Bb"]
    assert await holders({"not": _role("IN", "buurtouder", "sleutelhouder")}) == ["Cc"]
