"""A third-party plugin whose own data drives a filter field, written only against
``graphql_api.plugin``: an energy label (A to G) per contact in a table of its own, the
filter field ``energyLabel`` over that table, a mutation that sets labels, a reaction to
changes (an erased contact's label goes; a contact added to a renovation group gets an A)
and a worker delivery that looks labels up in an outside register.

Every write of its labels ends with ``contacts_changed``, so the dynamic groups filtering
on ``energyLabel``, and the groups reading them, stay exact. ``EnergyLabels(
tells_the_core=False)`` is the same plugin forgetting that call: the tests show its groups
go stale. Its table comes from its own migration (``migrations/``), applied as
``graphql-api migrate`` would (``tests/test_plugin_data.py``, ``energy_tables``).
"""

# Strawberry reads these resolvers' annotations at runtime: no postponed annotations here.
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any

import strawberry
from sqlalchemy import (
    Column,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    delete,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from graphql_api.plugin import (
    NAMING_CONVENTION,
    Change,
    Contact,
    ContactErased,
    ErrorCode,
    ErrorPaths,
    Event,
    FieldType,
    FilterField,
    FilterOp,
    Info,
    MembersAdded,
    MembershipSource,
    Problem,
    SkipDelivery,
    SqlText,
    UserError,
    UserInputError,
    contacts_changed,
    decode_ids,
    hookimpl,
    needing,
    run_mutation,
)

LABELS = ("A", "B", "C", "D", "E", "F", "G")
FIELD = "energyLabel"
PERMISSION = "energy.set_labels"
RENOVATED = "Nul-op-de-meter"
"""A static group: a contact added to it has been renovated, and gets label A."""
LOOKUP = "Energielabel opvragen"
"""A static group: for a contact added to it, the worker looks the label up."""

labels = Table(
    "energy_labels",
    MetaData(naming_convention=NAMING_CONVENTION),
    Column("contact_id", Integer, ForeignKey(Contact.id), primary_key=True),
    Column("label", String(1), nullable=False, index=True),
)


def compile_energy_label(op: FilterOp, values: list[str], sql: SqlText) -> str:
    """``energyLabel`` EQ, NEQ or IN, as SQL on ``contacts``: read from the plugin's table.
    A contact without a label is not EQ any label, and is NEQ every one."""
    wanted = ", ".join(sql.bind(value) for value in values)
    labelled = f"SELECT contact_id FROM energy_labels WHERE label IN ({wanted})"
    return f"contacts.id {'NOT IN' if op is FilterOp.NEQ else 'IN'} ({labelled})"


@strawberry.type(description="Result of setEnergyLabels.")
class EnergyLabelsPayload:
    changed_count: int = strawberry.field(
        default=0, description="How many contacts have the label now."
    )
    errors: list[UserError] = strawberry.field(description="Why it was refused; empty on success.")


SET_LABELS = ErrorPaths({"contact_ids": "contactIds", "label": "label"}, input=None)


class EnergyLabels:
    """The plugin; ``tells_the_core=False``: the same, without ``contacts_changed``.
    ``register`` is the outside register ``deliver`` consults: last name -> label."""

    PLUGIN_NAME = "energy"
    __version__ = "0.1.0"

    def __init__(self, *, tells_the_core: bool = True, register: Mapping[str, str] = {}) -> None:
        self.tells_the_core = tells_the_core
        self.register = dict(register)

    async def set_labels(
        self,
        session: AsyncSession,
        contact_ids: Iterable[int],
        label: str | None,
        actor_id: int | None = None,
    ) -> int:
        """Give these contacts ``label`` (None: take their label away), in a few
        statements whatever their number; how many contacts have it now. Ids of no contact
        are left out."""
        if label is not None and label not in LABELS:
            message = f"An energy label is one of {', '.join(LABELS)}."
            raise UserInputError([Problem(("label",), ErrorCode.INVALID, message)])
        ids = sorted(set(contact_ids))
        await session.execute(delete(labels).where(labels.c.contact_id.in_(ids)))
        count = 0
        if label is not None:
            existing = select(Contact.id, literal(label)).where(Contact.id.in_(ids))
            await session.execute(insert(labels).from_select(["contact_id", "label"], existing))
            count = await session.scalar(
                select(func.count()).select_from(labels).where(labels.c.contact_id.in_(ids))
            )
        if self.tells_the_core:
            await contacts_changed(session, ids, fields={FIELD}, actor_id=actor_id)
        return count or 0

    @hookimpl
    def filter_fields(self) -> list[FilterField]:
        names = {"nl": "Energielabel", "en": "Energy label"}
        return [FilterField(FIELD, FieldType.CHOICE, LABELS, compile_energy_label, names)]

    @hookimpl
    def register_permissions(self) -> dict[str, str]:
        return {PERMISSION: "Set contacts' energy labels."}

    @hookimpl
    def mutation_fields(self) -> list[Any]:
        plugin = self

        async def set_energy_labels(
            info: Info,
            contact_ids: Annotated[
                list[strawberry.ID], strawberry.argument(description="The contacts.")
            ],
            label: Annotated[
                str | None, strawberry.argument(description="A to G; null takes it away.")
            ] = None,
        ) -> EnergyLabelsPayload:
            async def work(session: AsyncSession) -> dict[str, Any]:
                principal = info.context.principal
                principal.require(PERMISSION)
                ids = decode_ids(contact_ids, "Contact", ["contact_ids"])
                count = await plugin.set_labels(session, ids, label, principal.user_id)
                return {"changed_count": count}

            return await run_mutation(info, EnergyLabelsPayload, SET_LABELS, work)

        description = needing(PERMISSION, "Give contacts an energy label.")
        return [
            strawberry.mutation(
                resolver=set_energy_labels, name="setEnergyLabels", description=description
            )
        ]

    @hookimpl
    async def apply_change(self, session: AsyncSession, change: Change) -> None:
        if isinstance(change, ContactErased):
            # The core refreshes the groups after this: nothing more to do.
            await session.execute(delete(labels).where(labels.c.contact_id == change.contact_id))
        elif (
            isinstance(change, MembersAdded)
            and change.source is not MembershipSource.DERIVED
            and change.group.name == RENOVATED
        ):
            await self.set_labels(session, change.contact_ids, "A", change.actor_id)

    @hookimpl
    def event_subscriptions(self) -> list[str]:
        return ["members.added"]

    @hookimpl
    async def deliver(self, event: Event, session: AsyncSession) -> None:
        data = event.data
        if data["source"] == MembershipSource.DERIVED.value or data["group"]["name"] != LOOKUP:
            raise SkipDelivery("not a request for a label")
        # One event names up to 1,000 contacts: their labels are set a label at a time.
        contact_ids = data["contactIds"]
        names = await session.execute(
            select(Contact.id, Contact.last_name).where(Contact.id.in_(contact_ids))
        )
        by_label: dict[str, list[int]] = {}
        for contact_id, last_name in names:
            if (label := self.register.get(last_name or "")) is not None:
                by_label.setdefault(label, []).append(contact_id)
        if not by_label:
            raise SkipDelivery(f"no label registered for contacts {contact_ids}")
        for label, ids in sorted(by_label.items()):
            await self.set_labels(session, ids, label)

    @hookimpl
    def migrations(self) -> str:
        return str(Path(__file__).parent / "migrations")
