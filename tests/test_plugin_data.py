"""A plugin's own data driving a filter field keeps derived groups exact: the plugin
(``tests/example_plugin/energy_plugin``, written only against ``graphql_api.plugin``)
keeps energy labels in its own table, offers the filter field ``energyLabel`` over it, and
tells the core with ``contacts_changed`` after each write. Its dynamic groups, and the
groups reading them, follow its mutation, a bulk change, ``apply_change`` and ``deliver``;
an erased contact's label goes with the erasure, without the plugin refreshing anything.
The same plugin without the call leaves its groups stale, which ``differences`` shows.

The plugin's table comes from its own migration, applied to the test database as
``graphql-api migrate`` would (``energy_tables``) and undone after the module."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from sqlalchemy import Connection, event, insert, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette

from graphql_api.contacts.models import ContactKind
from graphql_api.groups.derived import differences
from graphql_api.groups.models import MembershipEvent, MembershipSource
from graphql_api.kernel.db import create_engine
from graphql_api.migrations.runner import histories, upgrade
from graphql_api.plugin import Contact, contacts_changed, decode_id, to_global_id
from graphql_api.testing import (
    GraphQLClient,
    StatementCounter,
    add_members,
    database_rows,
    deliver_all,
    make_user,
    member_names,
    new_contact_ids,
    new_group_id,
    new_static_group_id,
)
from tests.example_plugin.energy_plugin import FIELD, LOOKUP, RENOVATED, EnergyLabels, labels
from tests.test_docs import docs_plugin

MIGRATIONS = {"energy": EnergyLabels().migrations()}
SET_LABELS = """
mutation($ids: [ID!]!, $label: String) {
  setEnergyLabels(contactIds: $ids, label: $label) { changedCount errors { field code message } }
}"""
ERASE = "mutation($c: ID!) { eraseContact(contactId: $c) { errors { code } } }"
MEMBER_COUNT = "query($id: ID!) { group(id: $id) { memberCount } }"


@asynccontextmanager
async def energy_tables(database_url: str) -> AsyncIterator[None]:
    """The energy plugin's migration applied to the database for the block, then undone
    (left alone when the table is there already)."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            present = await connection.run_sync(lambda sync: inspect(sync).has_table(labels.name))
        if not present:
            await upgrade(engine, MIGRATIONS)
        yield
        if not present:

            def undo(connection: Connection) -> None:
                [config] = histories(MIGRATIONS)[1:]
                config.attributes["connection"] = connection
                command.downgrade(config, "base")

            async with engine.begin() as connection:
                await connection.run_sync(undo)
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
async def energy_database(database_url: str) -> AsyncIterator[str]:
    async with energy_tables(database_url):
        yield database_url


@asynccontextmanager
async def energy_app(
    app_factory: Callable[..., Starlette], plugin: Any, **settings: Any
) -> AsyncIterator[tuple[Starlette, GraphQLClient]]:
    """An application with ``plugin`` and a client acting as an admin."""
    app = app_factory(plugins=[plugin], **settings)
    _, token = await make_user(app, "Anna de Vries", "anna@example.coop", admin=True)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield app, GraphQLClient(http, token)


async def set_labels(client: GraphQLClient, contact_ids: list[str], label: str | None) -> int:
    data = await client.data(SET_LABELS, {"ids": contact_ids, "label": label})
    assert data["setEnergyLabels"]["errors"] == [], data
    return data["setEnergyLabels"]["changedCount"]


async def exact(app: Starlette) -> list[str]:
    """How the stored derived members differ from a computation from scratch (none)."""
    async with app.state.sessions() as session:
        return await differences(session)


def label_is(op: str, *values: str) -> dict[str, Any]:
    if op == "IN":
        return {"condition": {"field": FIELD, "op": op, "values": list(values)}}
    return {"condition": {"field": FIELD, "op": op, "value": values[0]}}


def pk(global_id: str, type_name: str = "Contact") -> int:
    return decode_id(global_id, type_name, ["id"])


async def names(client: GraphQLClient, group_id: str) -> list[str | None]:
    return sorted(await member_names(client, group_id), key=str)


async def derived_causes(app: Starlette) -> set[str]:
    async with app.state.sessions() as session:
        causes = await session.scalars(
            select(MembershipEvent.cause).where(MembershipEvent.source == MembershipSource.DERIVED)
        )
        return set(causes)


async def test_the_plugins_mutation_keeps_its_groups_and_their_readers_exact(
    app_factory: Any, energy_database: str
) -> None:
    async with energy_app(app_factory, EnergyLabels()) as (app, client):
        jansen, smit = await new_contact_ids(client, "Jansen", "Smit", city="Zwolle")
        boer, _ = await new_contact_ids(client, "Boer", "Visser", city="Ede")
        label_a = await new_group_id(client, name="Label A", filter=label_is("EQ", "A"))
        not_a = await new_group_id(client, name="Niet A", filter=label_is("NEQ", "A"))
        zwolle_good = {"all": [label_is("IN", "A", "B"), city_is("Zwolle")]}
        good = await new_group_id(client, name="Zuinig in Zwolle", filter=zwolle_good)
        board = await new_static_group_id(client, "Bestuur", [smit, boer])
        green_board = await new_group_id(
            client, name="Groen bestuur", composedOfIds=[label_a, board], compositionMode="ALL"
        )
        outside = {"condition": {"field": "memberOf", "op": "NEQ", "value": label_a}}
        not_green = await new_group_id(client, name="Nog niet groen", filter=outside)
        assert await names(client, label_a) == []
        assert await names(client, not_a) == ["Boer", "Jansen", "Smit", "Visser"]

        assert await set_labels(client, [jansen, smit], "A") == 2
        assert await names(client, label_a) == ["Jansen", "Smit"]
        assert await names(client, not_a) == ["Boer", "Visser"]
        assert await names(client, good) == ["Jansen", "Smit"]
        assert await names(client, green_board) == ["Smit"]
        assert await names(client, not_green) == ["Boer", "Visser"]
        assert await exact(app) == []
        assert "2 contacts' energyLabel changed" in await derived_causes(app)

        await set_labels(client, [smit, boer], "B")
        await set_labels(client, [jansen], None)
        assert await names(client, label_a) == []
        assert await names(client, good) == ["Smit"]
        assert await names(client, green_board) == []
        assert await names(client, not_green) == ["Boer", "Jansen", "Smit", "Visser"]
        assert await exact(app) == []
        assert f"contact {pk(jansen)}'s energyLabel changed" in await derived_causes(app)


def city_is(city: str) -> dict[str, Any]:
    return {"condition": {"field": "city", "op": "EQ", "value": city}}


async def test_without_contacts_changed_the_groups_go_stale_and_a_later_call_mends_them(
    app_factory: Any, energy_database: str
) -> None:
    """The test's power: the same plugin without the call leaves wrong members, which
    ``differences`` names; a call in a transaction of its own, begun without a write
    (not declared writing on SQLite), mends them."""
    async with energy_app(app_factory, EnergyLabels(tells_the_core=False)) as (app, client):
        [jansen] = await new_contact_ids(client, "Jansen")
        label_a = await new_group_id(client, name="Label A", filter=label_is("EQ", "A"))
        not_a = await new_group_id(client, name="Niet A", filter=label_is("NEQ", "A"))
        await set_labels(client, [jansen], "A")
        assert await exact(app) == [
            f"group {pk(label_a, 'Group')}: contact {pk(jansen)} is missing",
            f"group {pk(not_a, 'Group')}: contact {pk(jansen)} should not be in it",
        ]
        async with app.state.sessions() as session, session.begin():
            await contacts_changed(session, [pk(jansen)], fields={FIELD}, cause="labels mended")
            if session.bind.dialect.name == "sqlite":
                assert await holds_the_write_lock(session)
        assert await exact(app) == []
        assert await names(client, label_a) == ["Jansen"]
        assert "labels mended" in await derived_causes(app)


async def holds_the_write_lock(session: AsyncSession) -> bool:
    connection = await session.connection()
    return connection.sync_connection.connection.driver_connection.in_transaction


async def test_a_bulk_change_of_two_thousand_contacts_is_one_set_based_call(
    app_factory: Any, energy_database: str
) -> None:
    async with energy_app(app_factory, EnergyLabels()) as (app, client):
        async with app.state.sessions() as session, session.begin():
            rows = [
                {"kind": ContactKind.PERSON, "last_name": f"Huis {i:04}", "city": city}
                for i in range(2000)
                for city in ["Zwolle" if i % 2 else "Ede"]
            ]
            await session.execute(insert(Contact.__table__), rows)
            ids = list(await session.scalars(select(Contact.id).order_by(Contact.id)))
        label_a = await new_group_id(client, name="Label A", filter=label_is("EQ", "A"))
        not_a = await new_group_id(client, name="Niet A", filter=label_is("NEQ", "A"))
        zwolle_a = {"all": [label_is("EQ", "A"), city_is("Zwolle")]}
        good = await new_group_id(client, name="A in Zwolle", filter=zwolle_a)
        board = await new_static_group_id(client, "Bestuur", [to_global_id("Contact", ids[0])])
        either = await new_group_id(client, name="A of bestuur", composedOfIds=[label_a, board])
        every = [to_global_id("Contact", i) for i in ids]

        counter = StatementCounter()
        event.listen(app.state.engine.sync_engine, "before_cursor_execute", counter)
        started = time.perf_counter()
        with counter:
            assert await set_labels(client, every, "A") == 2000
        seconds = time.perf_counter() - started
        event.remove(app.state.engine.sync_engine, "before_cursor_execute", counter)
        # No statement per contact: the refresh of 2,000 contacts is a few dozen. (The
        # outbox events of the entries, one per contact as for every change, are written
        # one statement each on SQLite, where INSERT ... RETURNING is not batched.)
        own = [s for s in counter.statements if not s.startswith("INSERT INTO outbox_events")]
        assert len(own) < 60, (len(own), seconds)
        counts = {g: await member_count(client, g) for g in (label_a, not_a, good, either)}
        assert counts == {label_a: 2000, not_a: 0, good: 1000, either: 2000}
        assert await exact(app) == []
        assert "2000 contacts' energyLabel changed" in await derived_causes(app)

        await set_labels(client, every[:1500], "B")
        counts = {g: await member_count(client, g) for g in (label_a, not_a, good, either)}
        assert counts == {label_a: 500, not_a: 1500, good: 250, either: 501}
        assert await exact(app) == []


async def member_count(client: GraphQLClient, group_id: str) -> int:
    return (await client.data(MEMBER_COUNT, {"id": group_id}))["group"]["memberCount"]


@pytest.mark.parametrize("tells_the_core", [True, False])
async def test_an_erased_contacts_label_goes_and_its_groups_follow_without_the_plugin(
    app_factory: Any, energy_database: str, tells_the_core: bool
) -> None:
    """The core tells the plugins of the erasure first and refreshes the groups after, so
    the label the plugin deletes in ``apply_change`` is gone from them, whether or not the
    plugin calls ``contacts_changed`` (it does not, for an erasure). Strict mode: the
    plugin writes only its own table."""
    plugin = EnergyLabels(tells_the_core=tells_the_core)
    async with energy_app(app_factory, plugin, strict_plugins=True) as (app, client):
        jansen, smit = await new_contact_ids(client, "Jansen", "Smit")
        label_a = await new_group_id(client, name="Label A", filter=label_is("EQ", "A"))
        not_a = await new_group_id(client, name="Niet A", filter=label_is("NEQ", "A"))
        either = await new_group_id(client, name="A of niet A", composedOfIds=[label_a, not_a])
        async with app.state.sessions() as session, session.begin():
            await plugin.set_labels(session, [pk(jansen), pk(smit)], "A")
            if not tells_the_core:
                await contacts_changed(session, [pk(jansen), pk(smit)], fields={FIELD})
        assert await names(client, label_a) == ["Jansen", "Smit"]

        assert (await client.data(ERASE, {"c": jansen}))["eraseContact"]["errors"] == []
        assert await names(client, label_a) == ["Smit"]
        assert await member_count(client, not_a) == 1  # the erased contact, nameless now
        assert await member_count(client, either) == 2
        assert await exact(app) == []
        rows = (await database_rows(app))[labels.name]
        assert rows == [{"contact_id": pk(smit), "label": "A"}]


async def test_apply_change_calls_it_inside_the_cores_transaction(
    app_factory: Any, energy_database: str
) -> None:
    """A contact added to the renovation group gets label A in ``apply_change``, which
    tells the core there: the groups on labels follow in the same transaction. In strict
    mode too, where the hook may not write core rows itself, but the call may."""
    async with energy_app(app_factory, EnergyLabels(), strict_plugins=True) as (app, client):
        jansen, smit = await new_contact_ids(client, "Jansen", "Smit")
        renovated = await new_static_group_id(client, RENOVATED, [])
        label_a = await new_group_id(client, name="Label A", filter=label_is("EQ", "A"))
        both = await new_group_id(
            client, name="Gerenoveerd, A", composedOfIds=[renovated, label_a], compositionMode="ALL"
        )
        await add_members(client, renovated, [jansen])
        assert await names(client, label_a) == ["Jansen"]
        assert await names(client, both) == ["Jansen"]
        assert await exact(app) == []
        await add_members(client, renovated, [smit])
        assert await names(client, both) == ["Jansen", "Smit"]
        assert await exact(app) == []


async def test_deliver_calls_it_in_the_workers_transaction(
    app_factory: Any, energy_database: str
) -> None:
    plugin = EnergyLabels(register={"Jansen": "B", "Smit": "A"})
    async with energy_app(app_factory, plugin, strict_plugins=True) as (app, client):
        jansen, smit, boer = await new_contact_ids(client, "Jansen", "Smit", "Boer")
        label_b = await new_group_id(client, name="Label B", filter=label_is("EQ", "B"))
        good = await new_group_id(client, name="A of B", filter=label_is("IN", "A", "B"))
        readers = await new_group_id(client, name="Lezers", composedOfIds=[good])
        lookup = await new_static_group_id(client, LOOKUP, [jansen, smit, boer])
        assert await names(client, good) == []
        # One request naming the three (Boer is left out: no label known), then the
        # DERIVED entries it caused, an event per group and label (Smit's A: 2 groups,
        # Jansen's B: 3), which the plugin skips.
        assert await deliver_all(app) == 1 + 5
        assert await names(client, label_b) == ["Jansen"]
        assert await names(client, good) == ["Jansen", "Smit"]
        assert await names(client, readers) == ["Jansen", "Smit"]
        assert await names(client, lookup) == ["Boer", "Jansen", "Smit"]
        assert await exact(app) == []


async def test_bad_input_is_refused_clearly_and_nothing_to_do_costs_nothing(
    app_factory: Any, energy_database: str, sessions: Any
) -> None:
    async with energy_app(app_factory, EnergyLabels()) as (app, client):
        [jansen] = await new_contact_ids(client, "Jansen")
        await new_group_id(client, name="Label A", filter=label_is("EQ", "A"))
        async with app.state.sessions() as session, session.begin():
            with pytest.raises(ValueError, match=r"no filter field 'energyLable' in this app"):
                await contacts_changed(session, [pk(jansen)], fields={"energyLable"})
            with pytest.raises(ValueError, match=r"'nope'"):
                await contacts_changed(session, [], fields={FIELD, "nope"})
            with pytest.raises(TypeError, match="collection of filter field names"):
                await contacts_changed(session, [pk(jansen)], fields=FIELD)
            with pytest.raises(TypeError, match="collection of contact ids"):
                await contacts_changed(session, pk(jansen), fields={FIELD})  # type: ignore[arg-type]
            with pytest.raises(TypeError, match="a contact id is an int"):
                await contacts_changed(session, [jansen], fields={FIELD})  # type: ignore[list-item]

        before = await database_rows(app)
        counter = StatementCounter()
        event.listen(app.state.engine.sync_engine, "before_cursor_execute", counter)
        with counter:
            async with app.state.sessions() as session, session.begin():
                await contacts_changed(session, [], fields={FIELD})
                await contacts_changed(session, [pk(jansen)], fields=set())
        event.remove(app.state.engine.sync_engine, "before_cursor_execute", counter)
        assert [s for s in counter.statements if not s.startswith(("BEGIN", "COMMIT"))] == []

        # Ids of no contact are ignored, even out of the id range.
        async with app.state.sessions() as session, session.begin():
            await contacts_changed(session, [pk(jansen) + 1000, 2**40, -1], fields={FIELD})
        assert await database_rows(app) == before
        assert await exact(app) == []

    # Sessions with the core's rules alone know no energyLabel.
    async with sessions() as session, session.begin():
        with pytest.raises(ValueError, match="its filter fields are kind, firstName"):
            await contacts_changed(session, [1], fields={FIELD})


async def test_the_docs_example_of_a_field_over_a_plugins_table_keeps_groups_exact(
    app_factory: Any, tmp_path: Path
) -> None:
    """The example plugin of docs/plugins.md (``energyLabel``, ``setEnergyLabel``, its
    ``apply_change``), its tables made with ``metadata.create_all`` (a plugin would ship
    them as a migration)."""
    module = docs_plugin(tmp_path)
    app = app_factory(plugins=[module])
    tables = [module.badges, module.energy_labels]
    async with app.state.engine.begin() as connection:
        for table in tables:
            await connection.run_sync(table.metadata.create_all)
    try:
        await _run_the_docs_plugin(app)
    finally:
        async with app.state.engine.begin() as connection:
            for table in tables:
                await connection.execute(table.delete())
                await connection.run_sync(table.metadata.drop_all)


async def _run_the_docs_plugin(app: Starlette) -> None:
    _, token = await make_user(app, "Anna de Vries", "anna@example.coop", admin=True)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        client = GraphQLClient(http, token)
        jansen, smit = await new_contact_ids(client, "Jansen", "Smit")
        label_a = await new_group_id(client, name="Label A", filter=label_is("EQ", "A"))
        readers = await new_group_id(client, name="Lezers", composedOfIds=[label_a])
        set_one = """mutation($c: ID!, $l: String!) {
          setEnergyLabel(contactId: $c, label: $l) { contact { lastName } errors { code } } }"""
        answer = await client.data(set_one, {"c": jansen, "l": "A"})
        assert answer["setEnergyLabel"] == {"contact": {"lastName": "Jansen"}, "errors": []}
        wrong = await client.data(set_one, {"c": smit, "l": "Z"})
        assert wrong["setEnergyLabel"]["errors"] == [{"code": "INVALID"}]
        await client.data(set_one, {"c": smit, "l": "A"})
        assert await names(client, label_a) == ["Jansen", "Smit"]
        assert await names(client, readers) == ["Jansen", "Smit"]
        assert await exact(app) == []
        await client.data(set_one, {"c": jansen, "l": "B"})
        assert await names(client, readers) == ["Smit"]
        assert (await client.data(ERASE, {"c": smit}))["eraseContact"]["errors"] == []
        assert await names(client, readers) == []
        assert await exact(app) == []
