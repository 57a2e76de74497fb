"""Derived membership kept in the writing transaction: after every change the stored rows
and counts equal a computation from scratch, and the DERIVED events of the change are
exactly the difference between the states before and after it. A plugin takes part: its
filter field ``energyLabel`` reads its own table, whose data changes by the plugin's own
write and ``contacts_changed`` (``tests/example_plugin/energy_plugin``)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.contacts.service import create_contact, update_contact
from graphql_api.groups import bulk
from graphql_api.groups.derived import differences
from graphql_api.groups.lifecycle import convert_to_static, create_group, delete_group, update_group
from graphql_api.groups.membership_writes import add_members, remove_members
from graphql_api.groups.models import (
    DerivedMembership,
    Group,
    GroupKind,
    MembershipEvent,
    MembershipSource,
)
from graphql_api.groups.rules import Rules
from graphql_api.jobs.kinds import JOB_KINDS
from graphql_api.jobs.runner import JobRunner
from graphql_api.kernel.access import SYSTEM
from graphql_api.kernel.db import create_engine, create_sessionmaker
from graphql_api.kernel.errors import UserInputError
from graphql_api.migrations.metadata import Base
from graphql_api.portal.privacy import erase_contact
from graphql_api.settings import Settings
from graphql_api.testing import empty_tables
from graphql_api.web.app import job_kinds, load_plugins
from tests.example_plugin.energy_plugin import EnergyLabels, labels
from tests.test_plugin_data import energy_tables

CITIES = ["Zwolle", "Ede", "Utrecht"]
ENERGY = ["A", "B"]
PLUGIN = EnergyLabels()
KEPT = {"users", "api_tokens", "staff_roles", "audit_log"}
Pairs = set[tuple[int, int]]


class DerivedMembershipMachine(RuleBasedStateMachine):
    """Random contact edits, adds, removes, lists of members added or removed (at once or
    as bulk jobs whose chunks interleave with the other changes), definition changes,
    deletions, conversions and erasures, through the domain services, and changes of the
    plugin's labels, on one database, with the plugin's rules (its filter field, its part
    in each change)."""

    database_url: str = ""
    plugin_rules: Rules | None = None

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.engine = create_engine(self.database_url)
        kinds = job_kinds()
        info = {"rules": self.plugin_rules, JOB_KINDS: kinds}
        self.sessions = create_sessionmaker(self.engine, info)
        # One contact a chunk: a job's chunks interleave with every other change.
        self.jobs = JobRunner(self.sessions, kinds, Settings(job_chunk_size=1))
        self.contacts: list[int] = []
        self.statics: list[int] = []
        self.derived: list[int] = []
        self.names = 0
        self.run(self._empty())
        self.before = self.run(self._derived_pairs())
        self.seen_event = 0

    def run(self, work: Any) -> Any:
        return self.loop.run_until_complete(work)

    def teardown(self) -> None:
        self.run(self.engine.dispose())
        self.loop.close()

    async def _empty(self) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(delete(labels))
            for table in reversed(Base.metadata.sorted_tables):
                if table.name not in KEPT:
                    await connection.execute(delete(table))

    async def _do(self, change: Any) -> Any:
        async with self.sessions() as session, session.begin():
            return await change(session)

    def _name(self) -> str:
        self.names += 1
        return f"G{self.names}"

    # Rules ---------------------------------------------------------------------------

    @rule(city=st.sampled_from(CITIES))
    def add_contact(self, city: str) -> None:
        contact = self.run(
            self._do(lambda s: create_contact(s, SYSTEM, {"last_name": "X", "city": city}))
        )
        self.contacts.append(contact.id)

    @precondition(lambda self: self.contacts)
    @rule(data=st.data(), city=st.sampled_from(CITIES))
    def edit_contact(self, data: st.DataObject, city: str) -> None:
        contact = data.draw(st.sampled_from(self.contacts))
        self.run(self._do(lambda s: update_contact(s, SYSTEM, contact, {"city": city})))

    @precondition(lambda self: self.contacts)
    @rule(data=st.data())
    def erase(self, data: st.DataObject) -> None:
        contact = data.draw(st.sampled_from(self.contacts))
        self.run(self._do(lambda s: erase_contact(s, SYSTEM, contact)))
        self.contacts.remove(contact)  # nothing is left to edit, nor to add by name

    @precondition(lambda self: self.contacts)
    @rule(data=st.data(), label=st.sampled_from([*ENERGY, None]))
    def relabel(self, data: st.DataObject, label: str | None) -> None:
        """The plugin's data changes: its own write, then ``contacts_changed``."""
        contacts = data.draw(
            st.lists(st.sampled_from(self.contacts), min_size=1, max_size=3, unique=True)
        )

        async def change(session: AsyncSession) -> None:
            await PLUGIN.set_labels(session, contacts, label)

        self.run(self._do(change))

    @rule()
    def add_static(self) -> None:
        group = self.run(self._do(lambda s: create_group(s, SYSTEM, {"name": self._name()})))
        self.statics.append(group.id)

    @precondition(lambda self: self.statics and self.contacts)
    @rule(data=st.data(), adding=st.booleans())
    def change_members(self, data: st.DataObject, adding: bool) -> None:
        group = data.draw(st.sampled_from(self.statics))
        contacts = data.draw(st.lists(st.sampled_from(self.contacts), min_size=1, max_size=3))
        change = add_members if adding else remove_members
        self.run(self._do(lambda s: change(s, SYSTEM, group, contacts, MembershipSource.API)))

    @precondition(lambda self: self.statics)
    @rule(
        data=st.data(),
        kind=st.sampled_from([bulk.ADD, bulk.REMOVE]),
        inline_limit=st.integers(0, 3),
    )
    def change_a_list(self, data: st.DataObject, kind: str, inline_limit: int) -> None:
        """A named list (a group's members, or a city), changed at once when it holds at
        most ``inline_limit`` contacts, else queued as a job that ``run_a_chunk`` moves on."""
        target = data.draw(st.sampled_from(self.statics))
        if data.draw(st.booleans()):
            members = bulk.MemberList(
                group_id=data.draw(st.sampled_from(self.statics + self.derived))
            )
        else:
            city = data.draw(st.sampled_from(CITIES))
            members = bulk.MemberList(
                filter={"condition": {"field": "city", "op": "EQ", "value": city}}
            )

        async def change(session: AsyncSession) -> Any:
            return await bulk.change_members(
                session, SYSTEM, kind, target, members, inline_limit=inline_limit
            )

        self.run(self._do(change))

    @rule()
    def run_a_chunk(self) -> None:
        """One step of the oldest waiting job: its start, or its next contact."""

        async def step() -> None:
            job = await self.jobs.claim()
            if job is not None:
                await self.jobs.step(job)
                await self.jobs.release(job)

        self.run(step())

    def _parts(self, data: st.DataObject) -> dict[str, Any]:
        groups = self.statics + self.derived
        included = data.draw(st.lists(st.sampled_from(groups), min_size=1, max_size=3, unique=True))
        rest = [g for g in groups if g not in included]
        excluded = data.draw(st.lists(st.sampled_from(rest), max_size=1)) if rest else []
        mode = data.draw(st.sampled_from(["ANY", "ALL"]))
        return {
            "composed_of_ids": included,
            "excluded_group_ids": excluded,
            "composition_mode": mode,
        }

    def _filter(self, data: st.DataObject, plugins: bool | None = None) -> dict[str, Any]:
        city = {
            "condition": {"field": "city", "op": "EQ", "value": data.draw(st.sampled_from(CITIES))}
        }
        if plugins or (plugins is None and data.draw(st.booleans())):
            # The plugin's field, over its own table.
            op = data.draw(st.sampled_from(["EQ", "NEQ"]))
            value = data.draw(st.sampled_from(ENERGY))
            city = {"condition": {"field": "energyLabel", "op": op, "value": value}}
        groups = self.statics + self.derived
        if not groups or data.draw(st.booleans()):
            return city
        member = {
            "condition": {
                "field": "memberOf",
                "op": data.draw(st.sampled_from(["EQ", "NEQ"])),
                "value": str(data.draw(st.sampled_from(groups))),
            }
        }
        return {data.draw(st.sampled_from(["all", "any"])): [city, member]}

    @precondition(lambda self: self.statics)
    @rule(data=st.data(), composite=st.booleans())
    def add_derived(self, data: st.DataObject, composite: bool) -> None:
        values = self._parts(data) if composite else {"filter": self._filter(data)}
        group = self.run(
            self._do(lambda s: create_group(s, SYSTEM, {"name": self._name(), **values}))
        )
        self.derived.append(group.id)

    @rule(data=st.data())
    def add_labelled(self, data: st.DataObject) -> None:
        """A dynamic group on the plugin's field (alone, or with a ``memberOf``)."""
        values = {"name": self._name(), "filter": self._filter(data, plugins=True)}
        group = self.run(self._do(lambda s: create_group(s, SYSTEM, values)))
        self.derived.append(group.id)

    @precondition(lambda self: self.derived)
    @rule(data=st.data())
    def redefine(self, data: st.DataObject) -> None:
        group = data.draw(st.sampled_from(self.derived))
        kind = self.run(self._do(lambda s: s.scalar(select(Group.kind).where(Group.id == group))))
        changes = (
            self._parts(data) if kind is GroupKind.COMPOSITE else {"filter": self._filter(data)}
        )
        try:
            self.run(self._do(lambda s: update_group(s, SYSTEM, group, changes)))
        except UserInputError as refused:  # a cycle, or a group used against its kind
            assert {p.code for p in refused.problems} <= {"CYCLE", "INVALID", "KIND_CONFLICT"}

    @precondition(lambda self: self.derived)
    @rule(data=st.data())
    def convert(self, data: st.DataObject) -> None:
        group = data.draw(st.sampled_from(self.derived))
        self.run(self._do(lambda s: convert_to_static(s, SYSTEM, group)))
        self.derived.remove(group)
        self.statics.append(group)

    @precondition(lambda self: self.statics or self.derived)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        group = data.draw(st.sampled_from(self.statics + self.derived))
        try:
            self.run(self._do(lambda s: delete_group(s, SYSTEM, group)))
        except UserInputError as refused:
            assert {p.code for p in refused.problems} == {"GROUP_IN_USE"}
            return
        for kept in (self.statics, self.derived):
            if group in kept:
                kept.remove(group)

    # What must hold after every step -------------------------------------------------

    async def _derived_pairs(self) -> dict[int, set[int]]:
        async with self.sessions() as session:
            derived = set(
                await session.scalars(select(Group.id).where(Group.kind != GroupKind.STATIC))
            )
            rows = await session.execute(
                select(DerivedMembership.group_id, DerivedMembership.contact_id)
            )
            found: dict[int, set[int]] = {g: set() for g in derived}
            for g, c in rows:
                found[g].add(c)
            return found

    async def _events_since(self, last: int) -> list[tuple[int, int, int, str]]:
        async with self.sessions() as session:
            rows = await session.execute(
                select(
                    MembershipEvent.id,
                    MembershipEvent.group_id,
                    MembershipEvent.contact_id,
                    MembershipEvent.action,
                )
                .where(
                    MembershipEvent.id > last, MembershipEvent.source == MembershipSource.DERIVED
                )
                .order_by(MembershipEvent.id)
            )
            return [(i, g, c, a.value) for i, g, c, a in rows]

    @invariant()
    def stored_equals_computed_and_events_equal_the_difference(self) -> None:
        async def check() -> list[str]:
            async with self.sessions() as session:
                return await differences(session)

        assert self.run(check()) == []
        now = self.run(self._derived_pairs())
        events = self.run(self._events_since(self.seen_event))
        entered = {
            (g, c) for g, members in now.items() for c in members - self.before.get(g, set())
        }
        left = {(g, c) for g, members in now.items() for c in self.before.get(g, set()) - members}
        assert {(g, c) for _, g, c, a in events if a == "ADDED"} == entered
        assert {(g, c) for _, g, c, a in events if a == "REMOVED"} == left
        assert len(events) == len(entered) + len(left), "each entry and exit once"
        if events:
            self.seen_event = events[-1][0]
        self.before = now


async def _emptied(database_url: str) -> None:
    engine = create_engine(database_url)
    await empty_tables(engine)
    await engine.dispose()


@pytest.fixture
async def energy_database(database_url: str) -> Any:
    """The test database with the energy plugin's table (its migration)."""
    async with energy_tables(database_url):
        yield database_url


def test_stored_membership_follows_every_change(energy_database: str) -> None:
    """Runs the state machine in a thread of its own, with its own event loop and engine."""
    database_url = energy_database
    DerivedMembershipMachine.database_url = database_url
    DerivedMembershipMachine.plugin_rules = load_plugins(Settings(), [PLUGIN]).rules()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            DerivedMembershipMachine.TestCase.settings = settings(
                max_examples=40,
                stateful_step_count=12,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            )
            DerivedMembershipMachine.TestCase().runTest()
        except BaseException as error:
            failure.append(error)
        finally:
            # The last example's groups would otherwise meet the next test.
            asyncio.run(_emptied(database_url))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
