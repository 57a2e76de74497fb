"""Plugin fields with a compiled form (``PluginColumn``, ``SqlValue``, attached with
``compiled`` from ``graphql_api.plugin``): a query asking for them is planned, one
statement per level whatever the number of rows, and answers as the resolvers do.

The built-in plugins' fields (``isCoach``, ``isProjectLeader`` and ``isExternalParty``,
which ``RolePlugin`` makes, and the coach plugin's ``hoomdossierAccountId``) in a list of
contacts, a page of members and a contact joined to its memberships; then a third-party
plugin written here with the plugin API alone: a column of its own tables on ``Contact``
and on ``Group``, values SQL computes (one of them guarded by a permission), and a field
without a form, whose queries the resolvers answer.

The suite's own mode (``check``) compares every planned answer with the resolvers'
already; these tests use ``on``, as a deployment does, and compare them themselves.
"""

# Strawberry reads the resolvers' annotations at runtime: no postponed annotations here.
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest
import strawberry
from graphql_api_coach.models import HoomdossierLink
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    event,
    exists,
    func,
    insert,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.plugin import (
    NAMING_CONVENTION,
    Contact,
    Group,
    Info,
    Membership,
    PluginColumn,
    SqlValue,
    compiled,
    decode_id,
    guarded_field,
    hookimpl,
)
from graphql_api.testing import (
    GraphQLClient,
    StatementCounter,
    add_members,
    make_user,
    new_contact_ids,
    new_group_id,
)

ROLES = {
    "coach": "isCoach",
    "projectleider": "isProjectLeader",
    "external_party": "isExternalParty",
}
"""Each role's flag; a contact holds one role at most."""


def role_of(i: int) -> str | None:
    """The role of contact ``i``: of every four, the first three hold one each."""
    return [*ROLES, None][i % 4]


LINK = """mutation($c: ID!, $a: String!) { linkHoomdossier(contactId: $c, accountId: $a) {
  errors { code } } }"""
FIELDS = "id lastName isCoach isProjectLeader isExternalParty hoomdossierAccountId"
CONTACTS = f"query($first: Int) {{ contacts(first: $first) {{ nodes {{ {FIELDS} }} }} }}"
MEMBERS = f"""query($id: ID!) {{ group(id: $id) {{ name
  members(first: 50) {{ totalCount nodes {{ {FIELDS} }} }} }} }}"""
MEMBERSHIPS = """{ contacts(first: 30) { nodes { memberships {
  group { name } contact { id isCoach hoomdossierAccountId } } } } }"""
"""Each membership's contact comes with it, by an outer join on an alias of ``contacts``."""


@pytest.fixture
async def app(app_factory: Any) -> Any:
    """The application as deployed (compiled reads on), with the installed plugins."""
    return app_factory(compiled_reads="on")


@asynccontextmanager
async def over_asgi(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@contextmanager
def counting(app: Any) -> Iterator[StatementCounter]:
    """The statements ``app`` sends inside the block."""
    counter = StatementCounter()
    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", counter)
    try:
        with counter:
            yield counter
    finally:
        event.remove(engine, "before_cursor_execute", counter)


def planned(app: Any, query: str) -> bool:
    return app.state.compiled_reads.plan_for(query, None) is not None


async def by_resolvers(
    app_factory: Any, token: str, query: str, variables: dict[str, Any] | None = None, **app: Any
) -> dict[str, Any]:
    """The answer of an application with compiled reads off."""
    async with over_asgi(app_factory(compiled_reads="off", **app)) as http:
        return await GraphQLClient(http, token).data(query, variables)


async def planned_answer(
    app: Any, client: GraphQLClient, query: str, variables: dict[str, Any] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """The answer a plan gives to ``query`` (learnt from the resolvers' run first), and
    the statements it took."""
    await client.data(query, variables)
    assert planned(app, query), query
    with counting(app) as statements:
        answer = await client.data(query, variables)
    return answer, statements.statements


# The built-in plugins ----------------------------------------------------------------


class Contacts:
    """Contacts numbered from 0, each holding the role ``role_of`` its number, in one
    static group ``everyone``; every other coach (0, 8, ...) is linked to Hoomdossier,
    and contact 1, no coach, has a link left behind (which counts for nothing)."""

    def __init__(self, app: Any, client: GraphQLClient) -> None:
        self.app, self.client = app, client
        self.ids: list[str] = []
        self.everyone = ""
        self.groups: dict[str, str] = {}

    async def add(self, count: int) -> None:
        client = self.client
        if not self.everyone:
            self.everyone = await new_group_id(client, name="Iedereen")
            for role in ROLES:
                self.groups[role] = await new_group_id(
                    client, name=f"Groep {role}", neighbourhoodRole=role
                )
        start = len(self.ids)
        new = await new_contact_ids(client, *(f"Lid{i:02d}" for i in range(start, start + count)))
        self.ids += new
        await add_members(client, self.everyone, new)
        for role in ROLES:
            holders = [c for i, c in enumerate(new, start) if role_of(i) == role]
            if holders:
                await add_members(client, self.groups[role], holders)
        for i, contact in enumerate(new, start):
            if i % 8 == 0:
                linked = await client.data(LINK, {"c": contact, "a": f"HD-{i}"})
                assert linked["linkHoomdossier"]["errors"] == []
        if start <= 1 < start + count:
            left_behind = insert(HoomdossierLink).values(
                contact_id=decode_id(self.ids[1], "Contact", ["id"]), account_id="HD-LEFT"
            )
            async with self.app.state.engine.begin() as connection:
                await connection.execute(left_behind)

    def expected(self) -> list[dict[str, Any]]:
        """Each contact's ``FIELDS``, oldest first."""
        return [
            {
                "id": contact,
                "lastName": f"Lid{i:02d}",
                **{flag: role_of(i) == role for role, flag in ROLES.items()},
                "hoomdossierAccountId": f"HD-{i}" if i % 8 == 0 else None,
            }
            for i, contact in enumerate(self.ids)
        ]


async def test_the_built_in_plugin_fields_are_planned_in_a_list_of_contacts(
    app: Any, client: GraphQLClient, app_factory: Any
):
    contacts = Contacts(app, client)
    await contacts.add(5)
    few, few_statements = await planned_answer(app, client, CONTACTS, {"first": 50})
    assert few["contacts"]["nodes"] == contacts.expected()
    await contacts.add(45)
    many, statements = await planned_answer(app, client, CONTACTS, {"first": 50})
    assert many["contacts"]["nodes"] == contacts.expected()
    # One statement, the page, whatever its size: the flags are EXISTS subqueries and the
    # account a subquery of the coach plugin's table, all in the page's statement.
    assert len(few_statements) == len(statements) == 1, statements
    assert "EXISTS" in statements[0] and "coach_hoomdossier_links" in statements[0]
    assert many == await by_resolvers(app_factory, client.token or "", CONTACTS, {"first": 50})
    linked, unlinked, left_behind = (many["contacts"]["nodes"][i] for i in (8, 4, 1))
    assert (linked["isCoach"], linked["hoomdossierAccountId"]) == (True, "HD-8")
    assert (unlinked["isCoach"], unlinked["hoomdossierAccountId"]) == (True, None)
    assert (left_behind["isCoach"], left_behind["isProjectLeader"]) == (False, True)
    assert left_behind["hoomdossierAccountId"] is None


async def test_the_built_in_plugin_fields_are_planned_in_a_page_of_members(
    app: Any, client: GraphQLClient, app_factory: Any
):
    contacts = Contacts(app, client)
    await contacts.add(5)
    asked = {"id": contacts.everyone}
    few, few_statements = await planned_answer(app, client, MEMBERS, asked)
    assert few["group"]["members"]["nodes"] == contacts.expected()
    await contacts.add(45)
    many, statements = await planned_answer(app, client, MEMBERS, asked)
    members = many["group"]["members"]
    assert members["totalCount"] == 50 and members["nodes"] == contacts.expected()
    # The group, the page (joining memberships, which the flags' subqueries read too) and
    # its count.
    assert len(few_statements) == len(statements) == 3, statements
    assert many == await by_resolvers(app_factory, client.token or "", MEMBERS, asked)


async def test_the_built_in_plugin_fields_are_planned_on_a_joined_contact(
    app: Any, client: GraphQLClient, app_factory: Any
):
    contacts = Contacts(app, client)
    await contacts.add(5)
    _, few_statements = await planned_answer(app, client, MEMBERSHIPS)
    await contacts.add(25)
    many, statements = await planned_answer(app, client, MEMBERSHIPS)
    # The page, then the memberships with their groups and contacts, joined.
    assert len(few_statements) == len(statements) == 2, statements
    expected = {
        row["id"]: {key: row[key] for key in ("id", "isCoach", "hoomdossierAccountId")}
        for row in contacts.expected()
    }
    seen = [m["contact"] for node in many["contacts"]["nodes"] for m in node["memberships"]]
    assert len(seen) == 30 + 8 + 8 + 7  # everyone, and each role's holders
    assert all(contact == expected[contact["id"]] for contact in seen)
    assert {contact["hoomdossierAccountId"] for contact in seen} == {
        None,
        "HD-0",
        "HD-8",
        "HD-16",
        "HD-24",
    }
    assert many == await by_resolvers(app_factory, client.token or "", MEMBERSHIPS)


# A third-party plugin ----------------------------------------------------------------

metadata = MetaData(naming_convention=NAMING_CONVENTION)
badges = Table(
    "compiled_test_badges",
    metadata,
    Column("contact_id", Integer, primary_key=True),
    Column("label", String(50), nullable=False),
)
mottos = Table(
    "compiled_test_mottos",
    metadata,
    Column("group_id", Integer, primary_key=True),
    Column("motto", String(100), nullable=False),
)
VIEW = "badges.view"


def badge_of(contact: Any) -> Any:
    return select(badges.c.label).where(badges.c.contact_id == contact.id).scalar_subquery()


def badged_members(group: Any) -> Any:
    members = badges.join(Membership, Membership.contact_id == badges.c.contact_id)
    count = select(func.count()).select_from(members).where(Membership.group_id == group.id)
    return count.scalar_subquery()


async def load_badges(session: AsyncSession, contact_ids: Sequence[int]) -> list[str | None]:
    rows = await session.execute(
        select(badges.c.contact_id, badges.c.label).where(badges.c.contact_id.in_(contact_ids))
    )
    found = {key: value for key, value in rows}
    return [found.get(contact_id) for contact_id in contact_ids]


async def load_mottos(session: AsyncSession, group_ids: Sequence[int]) -> list[str | None]:
    rows = await session.execute(
        select(mottos.c.group_id, mottos.c.motto).where(mottos.c.group_id.in_(group_ids))
    )
    found = {key: value for key, value in rows}
    return [found.get(group_id) for group_id in group_ids]


async def load_badged_members(session: AsyncSession, group_ids: Sequence[int]) -> list[int]:
    rows = await session.execute(
        select(Membership.group_id, func.count())
        .join(badges, badges.c.contact_id == Membership.contact_id)
        .where(Membership.group_id.in_(group_ids))
        .group_by(Membership.group_id)
    )
    found = {key: value for key, value in rows}
    return [found.get(group_id, 0) for group_id in group_ids]


class Badges:
    """Badges for contacts and mottos for groups, in the plugin's own tables; its fields
    have compiled forms, but ``badgeUnplanned``."""

    __name__ = "badges"

    @hookimpl
    def register_permissions(self) -> dict[str, str]:
        return {VIEW: "See whether contacts have a badge."}

    @hookimpl
    def contact_fields(self) -> list[Any]:
        async def badge(root: strawberry.Parent[Contact], info: Info) -> str | None:
            return await info.context.loader(load_badges).load(root.id)

        async def has_badge(root: strawberry.Parent[Contact], info: Info) -> bool:
            return await info.context.loader(load_badges).load(root.id) is not None

        async def badge_or_name(root: strawberry.Parent[Contact], info: Info) -> str:
            return await info.context.loader(load_badges).load(root.id) or root.last_name

        async def badge_unplanned(root: strawberry.Parent[Contact], info: Info) -> str | None:
            return await info.context.loader(load_badges).load(root.id)

        return [
            strawberry.field(
                resolver=badge,
                description="The contact's badge.",
                metadata=compiled(PluginColumn(badges.c.label, key=badges.c.contact_id)),
            ),
            guarded_field(
                VIEW,
                "Whether the contact has a badge.",
                resolver=has_badge,
                metadata=compiled(
                    SqlValue(lambda contact: exists().where(badges.c.contact_id == contact.id))
                ),
            ),
            strawberry.field(
                resolver=badge_or_name,
                description="The badge, or else the last name.",
                # Neither EXISTS nor a subquery: read by a subquery on the contact's id.
                metadata=compiled(
                    SqlValue(lambda contact: func.coalesce(badge_of(contact), contact.last_name))
                ),
            ),
            strawberry.field(
                resolver=badge_unplanned, description="The badge, by the resolver alone."
            ),
        ]

    @hookimpl
    def group_fields(self) -> list[Any]:
        async def motto(root: strawberry.Parent[Group], info: Info) -> str | None:
            return await info.context.loader(load_mottos).load(root.id)

        async def badged_member_count(root: strawberry.Parent[Group], info: Info) -> int:
            return await info.context.loader(load_badged_members).load(root.id)

        return [
            strawberry.field(
                resolver=motto,
                description="The group's motto.",
                metadata=compiled(PluginColumn(mottos.c.motto, key=mottos.c.group_id)),
            ),
            strawberry.field(
                resolver=badged_member_count,
                description="Explicit members with a badge.",
                metadata=compiled(SqlValue(badged_members)),
            ),
        ]


@pytest.fixture
async def badges_app(app_factory: Any) -> AsyncIterator[Any]:
    """An application with the plugin ``Badges`` alone, its tables made for the test."""
    application = app_factory(compiled_reads="on", plugins=[Badges()])
    engine = application.state.engine
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield application
    async with engine.begin() as connection:
        await connection.run_sync(metadata.drop_all)


@pytest.fixture
async def badges_client(badges_app: Any) -> AsyncIterator[GraphQLClient]:
    _, token = await make_user(badges_app, "Anna", "anna@example.coop", admin=True)
    async with over_asgi(badges_app) as http:
        client = GraphQLClient(http, token)
        await client.data("{ me { permissions } }")
        yield client


async def badge_world(app: Any, client: GraphQLClient, count: int) -> dict[str, Any]:
    """``count`` contacts, the even ones with a badge, in a group with a motto."""
    contacts = await new_contact_ids(client, *(f"Lid{i:02d}" for i in range(count)))
    group = await new_group_id(client, name="Badgeclub")
    await add_members(client, group, contacts)
    async with app.state.engine.begin() as connection:
        await connection.execute(
            insert(badges),
            [
                {"contact_id": decode_id(contact, "Contact", ["id"]), "label": f"Badge {i}"}
                for i, contact in enumerate(contacts)
                if i % 2 == 0
            ],
        )
        await connection.execute(
            insert(mottos).values(group_id=decode_id(group, "Group", ["id"]), motto="Samen")
        )
    return {"group": group, "contacts": contacts}


BADGES = """query($id: ID!) {
  group(id: $id) { motto badgedMemberCount
    members(first: 50) { nodes { lastName badge hasBadge badgeOrName } } }
  groups(first: 10) { nodes { name motto badgedMemberCount } }
  contacts(first: 50) { nodes { memberships {
    group { name motto badgedMemberCount } contact { badge badgeOrName } } } }
}"""


async def test_a_third_party_plugins_columns_and_values_are_planned(
    badges_app: Any, badges_client: GraphQLClient, app_factory: Any
):
    world = await badge_world(badges_app, badges_client, 4)
    asked = {"id": world["group"]}
    few, few_statements = await planned_answer(badges_app, badges_client, BADGES, asked)
    more = await new_contact_ids(badges_client, *(f"Extra{i}" for i in range(20)))
    await add_members(badges_client, world["group"], more)
    answer, statements = await planned_answer(badges_app, badges_client, BADGES, asked)
    # The group, its page of members, the groups, the contacts, their memberships (with
    # each membership's group and contact joined): the plugin's fields add none.
    assert len(few_statements) == len(statements) == 5, statements
    assert answer == await by_resolvers(
        app_factory, badges_client.token or "", BADGES, asked, plugins=[Badges()]
    )
    group = answer["group"]
    assert (group["motto"], group["badgedMemberCount"]) == ("Samen", 2)
    assert group["members"]["nodes"][:2] == [
        {"lastName": "Lid00", "badge": "Badge 0", "hasBadge": True, "badgeOrName": "Badge 0"},
        {"lastName": "Lid01", "badge": None, "hasBadge": False, "badgeOrName": "Lid01"},
    ]
    assert len(group["members"]["nodes"]) == 24
    assert answer["groups"]["nodes"] == [
        {"name": "Badgeclub", "motto": "Samen", "badgedMemberCount": 2}
    ]
    memberships = [m for node in answer["contacts"]["nodes"] for m in node["memberships"]]
    assert len(memberships) == 24
    assert memberships[2] == {
        "group": {"name": "Badgeclub", "motto": "Samen", "badgedMemberCount": 2},
        "contact": {"badge": "Badge 2", "badgeOrName": "Badge 2"},
    }
    assert few["group"]["members"]["nodes"] == group["members"]["nodes"][:4]


async def test_a_guarded_plugin_value_needs_its_permission_in_a_plan_too(
    badges_app: Any, badges_client: GraphQLClient, app_factory: Any
):
    await badge_world(badges_app, badges_client, 2)
    query = "{ contacts { nodes { lastName hasBadge } } }"
    await badges_client.data(query)
    plan = badges_app.state.compiled_reads.plan_for(query, None)
    assert plan is not None and plan.permissions == {"contacts.view", VIEW}
    narrowed = await badges_client.data(
        'mutation { createApiToken(input: {name: "sync", permissions: ["contacts.view"]}) '
        "{ secret } }"
    )
    token = narrowed["createApiToken"]["secret"]
    answer = await GraphQLClient(badges_client.http, token).execute(query)
    assert {e["extensions"]["code"] for e in answer["errors"]} == {"FORBIDDEN"}
    async with over_asgi(app_factory(compiled_reads="off", plugins=[Badges()])) as http:
        assert await GraphQLClient(http, token).execute(query) == answer
    allowed = await badges_client.data(query)
    assert allowed["contacts"]["nodes"] == [
        {"lastName": "Lid00", "hasBadge": True},
        {"lastName": "Lid01", "hasBadge": False},
    ]


async def test_a_plugin_field_without_a_form_leaves_its_queries_to_the_resolvers(
    badges_app: Any, badges_client: GraphQLClient
):
    await badge_world(badges_app, badges_client, 3)
    query = "{ contacts { nodes { lastName badge badgeUnplanned } } }"
    first = await badges_client.data(query)
    assert badges_app.state.compiled_reads.known(query, None)
    assert not planned(badges_app, query)
    assert await badges_client.data(query) == first
    assert [node["badgeUnplanned"] for node in first["contacts"]["nodes"]] == [
        "Badge 0",
        None,
        "Badge 2",
    ]
    assert [node["badge"] for node in first["contacts"]["nodes"]] == ["Badge 0", None, "Badge 2"]
