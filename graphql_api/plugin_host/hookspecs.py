"""The hooks a plugin can implement. Every hook is documented in docs/plugins.md.

A hook implementation may take any subset of the arguments. Results of all plugins are
combined, so the order plugins run in does not matter;
conflicting contributions (two roles or fields of one name) stop the service at startup
with both plugins named. A hook may be ``async``; it is awaited. Arguments are read-only
values: snapshots and frozen dataclasses, never live rows. Every hook but
``plugin_settings`` may take ``settings``: the plugin's own settings object (None when it
has none).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

from graphql_api.kernel.hooks import PROJECT

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pydantic_settings import BaseSettings
    from sqlalchemy.ext.asyncio import AsyncSession
    from starlette.applications import Starlette
    from starlette.routing import BaseRoute

    from graphql_api.email_templates.merging import MergeField
    from graphql_api.groups.changes import Change
    from graphql_api.groups.filters import FilterField
    from graphql_api.jobs.kinds import JobKind
    from graphql_api.jobs.schedules import ScheduledJob
    from graphql_api.kernel.errors import Problem
    from graphql_api.notifications.outbox import Event
    from graphql_api.roles.registry import RoleDefinition

API_VERSION = "2.1"
"""The version of the plugin API; a plugin may declare ``requires_api = ">=2,<3"``.

2.0: a ``members.added`` / ``members.removed`` event carries ``contactIds`` (up to
``CONTACTS_PER_EVENT``, 1,000, of one group) and ``jobId`` instead of one ``contactId``.
2.1: hooks ``job_kinds``, ``scheduled_jobs``, ``http_routes`` and ``merge_fields``; events
``contacts.updated``, ``mail.opted_out`` and ``mail.opt_out_withdrawn``."""
EVENT_TYPES = (
    "group.created",
    "group.updated",
    "group.deleted",
    "members.added",
    "members.removed",
    "contact.erased",
    "contacts.updated",
    "mail.opted_out",
    "mail.opt_out_withdrawn",
    "portal.invitation",
    "portal.password_reset",
)
"""``portal.*`` events carry a single-use secret for the e-mail plugin: pass them on to
nobody else."""
hookspec = pluggy.HookspecMarker(PROJECT)


@hookspec
def register_roles(settings: Any) -> list[RoleDefinition]:
    """Roles in the neighbourhood approach ("Rol in buurtaanpak") this plugin provides."""


@hookspec
def graphql_types(settings: Any) -> list[type]:
    """Strawberry types the plugin adds to the schema (types its fields do not reach)."""


@hookspec
def query_fields(settings: Any) -> list[Any]:
    """``strawberry.field`` objects to add to ``Query``."""


@hookspec
def mutation_fields(settings: Any) -> list[Any]:
    """``strawberry.mutation`` objects to add to ``Mutation``."""


@hookspec
def group_fields(settings: Any) -> list[Any]:
    """``strawberry.field`` objects to add to ``Group``; the resolver's parent is the group row."""


@hookspec
def contact_fields(settings: Any) -> list[Any]:
    """``strawberry.field`` objects to add to ``Contact``; the parent is the contact row."""


@hookspec
def filter_fields(roles: Mapping[str, RoleDefinition], settings: Any) -> list[FilterField]:
    """Fields dynamic-group filters can test, each compiled to SQL on ``contacts``.

    ``roles`` are the roles every plugin registered, for fields whose values are roles.
    """


@hookspec
def validate_change(session: AsyncSession, change: Change, settings: Any) -> list[Problem] | None:
    """Problems that refuse ``change``; called inside its transaction, after it is written
    (``GroupDeleted``: just before the row goes, so its members can still be read)."""


@hookspec
def apply_change(session: AsyncSession, change: Change, settings: Any) -> None:
    """Take part in ``change`` inside its transaction, e.g. by writing the plugin's rows."""


@hookspec
def event_subscriptions(settings: Any) -> list[str]:
    """Event types the plugin wants delivered through the notification outbox, from
    ``EVENT_TYPES``; ``plugins { subscriptions }`` shows them."""


@hookspec
def deliver(event: Event, delivery_id: int, session: AsyncSession, settings: Any) -> None:
    """Handle one event the plugin subscribed to, outside any request.

    ``event.data`` is as docs/plugins.md lists it per type. A ``members.added`` or
    ``members.removed`` event is one group's change of up to 1,000 contacts at once:
    ``{"group", "source", "actorId", "cause", "jobId", "contactIds": [...]}``, so a handler
    loops over ``contactIds`` (the whole event is one delivery, retried whole).

    ``session`` is a transaction that commits together with marking the delivery done:
    the handler's own writes through it commit exactly once per delivery, and are rolled
    back when the attempt fails. External effects (mail, HTTP) are at least once.

    Raise to fail the attempt (it is retried with backoff, then DEAD); raise
    ``SkipDelivery(reason)`` when there is nothing to do. ``delivery_id`` is stable across
    retries: use it as the idempotency key (a Message-ID, a webhook id); an effect per
    contact of a membership event keys on the event's id and the contact's.
    """


@hookspec
def error_codes(settings: Any) -> dict[str, str]:
    """The plugin's own error codes, each with a description: ``{"EXAMPLE_TOO_LOUD": "..."}``.

    Each code starts with the plugin's name in capitals (``example`` -> ``EXAMPLE_``). They
    join the ``ErrorCode`` enum of the application's schema; a ``Problem`` may then use
    them, and a code nobody declared is a server fault.
    """


@hookspec
def register_permissions(settings: Any) -> dict[str, str]:
    """The plugin's own staff permissions, each with a description:
    ``{"example.publish": "Publish examples."}``.

    Each name is the plugin's name, a dot and an action. Admins hold them at once; other
    staff roles get them when an admin adds them (``updateStaffRole``). Check one in a
    service with ``@requires("example.publish")`` or ``actor.require(...)``, and on a field
    with ``guarded_field`` from ``graphql_api.plugin``.
    """


@hookspec
def plugin_settings() -> type[BaseSettings] | None:
    """A pydantic-settings class for the plugin's own settings (give it an ``env_prefix``
    such as ``GRAPHQL_API_COACH_``). It is read at startup; invalid values stop the plugin."""


@hookspec
def migrations(settings: Any) -> str | None:
    """The folder of the plugin's own Alembic revisions (a branch of its own)."""


@hookspec
def startup(app: Starlette, settings: Any) -> None:
    """Called once when the application starts serving."""


@hookspec
def job_kinds(settings: Any) -> dict[str, JobKind]:
    """The plugin's own kinds of job, by name: each ``<plugin>.<name>``
    (``email_notifications.group_mail``). Start one with ``start_job``; the server's runner
    and ``graphql-api worker`` run its chunks, each one transaction, resumed after the last
    committed chunk when a worker dies."""


@hookspec
def scheduled_jobs(settings: Any) -> list[ScheduledJob]:
    """Jobs of the plugin's own kinds to start every so often, as the system: the workers
    start one per period between them (``ScheduledJob(kind, every, params)``)."""


@hookspec
def http_routes(settings: Any) -> list[BaseRoute]:
    """Starlette routes answered under ``/plugins/<plugin>`` (a route ``/unsubscribe`` of
    the plugin ``example`` answers at ``/plugins/example/unsubscribe``). The core
    authenticates nobody for them: a route checks its own signature or secret. Open a
    transaction with ``plugin_transaction(request)``."""


@hookspec
def merge_fields(settings: Any) -> list[MergeField]:
    """Merge fields the plugin adds to every e-mail template, as ``contact.<name>``:
    ``MergeField(name, description, example, load)``, where ``load(session, contact_ids)``
    answers each contact's value in a few statements, whatever the number of contacts."""
