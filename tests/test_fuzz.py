"""Every query and mutation of both served schemas, fuzzed over real ASGI requests
(hypothesis-graphql): whatever a client sends, the answer is no 5xx, carries no
``INTERNAL_SERVER_ERROR``, and every error in it has an ``extensions.code``.

The generated documents are valid against the schema; their values are drawn so that
resolvers get past the first checks: ids are mostly the global ids of rows that exist
(contacts, groups, templates, users, roles, tokens, deliveries, history), strings are
often words the API knows (filter fields, permissions, role keys, dates, a template), and
the rest is garbage. Each operation gets ``GRAPHQL_API_FUZZ_EXAMPLES`` examples (40 by
default, derandomized so every run sends the same documents); docs/reliability.md has the
figures of a longer run. Failures are counted, not raised, so a run reports every one."""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import graphql
import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import mutations, nodes, queries
from sqlalchemy import select

from graphql_api.auth.middleware import PORTAL_PATH
from graphql_api.contacts.models import Contact
from graphql_api.email_templates.models import EmailTemplate
from graphql_api.graphql_base.relay import to_global_id
from graphql_api.groups.models import Group, MembershipEvent
from graphql_api.notifications.models import Delivery
from graphql_api.testing import (
    PORTAL_PASSWORD,
    GraphQLClient,
    add_members,
    make_user,
    new_contact_ids,
    new_group_id,
    new_static_group_id,
    new_template_id,
    portal_client,
)
from graphql_api.users.models import ApiToken, AuditEntry, StaffRole, User

EXAMPLES = int(os.environ.get("GRAPHQL_API_FUZZ_EXAMPLES", "40"))
"""Examples per operation; a longer run sets more (docs/reliability.md)."""

NODE_MODELS = {
    "Contact": Contact,
    "Group": Group,
    "EmailTemplate": EmailTemplate,
    "User": User,
    "StaffRole": StaffRole,
    "ApiToken": ApiToken,
    "NotificationDelivery": Delivery,
    "MembershipEvent": MembershipEvent,
    "AuditEntry": AuditEntry,
}
"""Each type of global id, and the table whose rows it names."""

WORDS = [
    "",
    " ",
    "Ede",
    "Zwolle",
    "7411 AB",
    "anna@example.nl",
    "2024-02-29",
    "9999-12-31",
    "0001-01-01",
    "2024-01-01T00:00:00+00:00",
    "{{ contact.firstName }} {{ group.name }}",
    "{% for i in range(1000) %}{{ i }}{% endfor %}",
    "{{ contact.__class__ }}",
    "-1",
    "0",
    "2147483648",
    "%",
    "_",
    "\\",
    "'; DROP TABLE groups; --",
    "a" * 201,
    "x" * 5000,
]
"""Strings the API gives meaning to, or that test its edges; the schema's own names (filter
fields, permissions, role keys) and the existing ids join them."""


@dataclass
class Tally:
    """What one operation's examples got back."""

    sent: int = 0
    server_errors: int = 0
    internal: int = 0
    without_code: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    """Top-level errors by code."""
    answered: int = 0
    """Answers without top-level errors: the whole document ran."""
    failures: list[str] = field(default_factory=list)

    def check(self, document: str, response: httpx.Response) -> None:
        self.sent += 1
        failed = []
        if response.status_code >= 500:
            self.server_errors += 1
            failed.append(f"status {response.status_code}")
        if "INTERNAL_SERVER_ERROR" in response.text:
            self.internal += 1
            failed.append("INTERNAL_SERVER_ERROR")
        errors = response.json().get("errors") or []
        self.answered += not errors
        for error in errors:
            code = (error.get("extensions") or {}).get("code")
            self.codes[code or "(none)"] += 1
            if code is None:
                self.without_code += 1
                failed.append(f"no code: {error.get('message')}")
        if failed:
            self.failures.append(f"{', '.join(failed)}\n{document}\n{response.text[:500]}")


def value_node(value: Any) -> graphql.ValueNode:
    """A literal of the document for a JSON-like Python value."""
    if value is None:
        return graphql.NullValueNode()
    if isinstance(value, bool):
        return graphql.BooleanValueNode(value=value)
    if isinstance(value, int):
        return graphql.IntValueNode(value=str(value))
    if isinstance(value, list):
        return graphql.ListValueNode(values=tuple(value_node(item) for item in value))
    if isinstance(value, dict):
        return graphql.ObjectValueNode(
            fields=tuple(
                graphql.ObjectFieldNode(name=graphql.NameNode(value=k), value=value_node(v))
                for k, v in value.items()
            )
        )
    return graphql.StringValueNode(value=str(value))


ID_MARK = "\ufdd0"
"""Starts an ``ID`` the strategy leaves to ``FillIds``: the index of an existing row."""

ID_TYPES = [
    ("template", "EmailTemplate"),
    ("staffrole", "StaffRole"),
    ("roleid", "StaffRole"),
    ("token", "ApiToken"),
    ("deliver", "NotificationDelivery"),
    ("group", "Group"),
    ("composed", "Group"),
    ("excluded", "Group"),
    ("contact", "Contact"),
    ("hoomdossier", "Contact"),
    ("user", "User"),
    ("responsible", "User"),
]
"""Which type of id an argument or input field takes, by a word in its name (or, for
``id`` and ``ids``, in the name of its field): ``groupId``, ``updateStaffRole(id:)``."""


class FillIds(graphql.Visitor):
    """Replaces each marked ``ID`` literal with the global id of an existing row of the
    type its argument or input field takes, so that resolvers get past decoding."""

    def __init__(self, ids: dict[str, list[str]]) -> None:
        super().__init__()
        self.ids = ids
        self.everything = [gid for pool in ids.values() for gid in pool]
        self.names: list[str] = []

    def enter_field(self, node: graphql.FieldNode, *_: Any) -> None:
        self.names.append(node.name.value)

    def leave_field(self, *_: Any) -> None:
        self.names.pop()

    enter_argument = enter_object_field = enter_field
    leave_argument = leave_object_field = leave_field

    def enter_string_value(self, node: graphql.StringValueNode, *_: Any) -> Any:
        if not node.value.startswith(ID_MARK):
            return None
        meaningful = [name for name in self.names if name not in ("id", "ids")]
        name = meaningful[-1].lower() if meaningful else ""
        pool = (
            next(
                (self.ids[type_name] for word, type_name in ID_TYPES if word in name),
                self.everything,
            )
            or self.everything
        )
        return graphql.StringValueNode(value=pool[int(node.value[1:]) % len(pool)])


def scalars(
    ids: dict[str, list[str]], words: list[str]
) -> dict[str, st.SearchStrategy[graphql.ValueNode]]:
    """Strategies for every scalar of the schemas: known values mostly, garbage sometimes."""
    everything = [gid for pool in ids.values() for gid in pool]
    garbage_ids = st.one_of(
        st.text(max_size=30),
        st.sampled_from(everything).map(lambda gid: gid.rstrip("=")),
        st.builds(
            to_global_id,
            st.sampled_from([*NODE_MODELS, "Nope"]),
            st.integers(min_value=0, max_value=2**31 - 1),
        ),
    )
    existing = st.integers(min_value=0, max_value=10_000).map(lambda n: f"{ID_MARK}{n}")
    text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
    strings = st.one_of(st.sampled_from(words), st.sampled_from(everything), text)
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | strings,
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.sampled_from(["all", "any", "not", "condition", "field"]), inner)
        ),
        max_leaves=8,
    )
    return {
        "ID": st.one_of(existing, existing, existing, garbage_ids).map(nodes.String),
        "String": strings.map(nodes.String),
        "Date": st.one_of(st.dates().map(str), strings).map(nodes.String),
        "DateTime": st.one_of(st.datetimes().map(lambda d: d.isoformat() + "Z"), strings).map(
            nodes.String
        ),
        "JSON": json_values.map(value_node),
    }


Submit = Callable[[Coroutine[Any, Any, httpx.Response]], httpx.Response]


def fuzz(
    schema: graphql.GraphQLSchema,
    root: str,
    name: str,
    custom: dict[str, st.SearchStrategy[graphql.ValueNode]],
    fill: FillIds,
    send: Callable[[str], Coroutine[Any, Any, httpx.Response]],
    submit: Submit,
) -> Tally:
    """Send ``EXAMPLES`` documents using the root field ``name``; what came back."""
    make = queries if root == "query" else mutations
    documents = make(
        schema,
        fields=[name],
        custom_scalars=custom,
        allow_x00=False,
        print_ast=lambda document: graphql.print_ast(graphql.visit(document, fill)),
    )
    tally = Tally()

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(documents)
    def run(document: str) -> None:
        tally.check(document, submit(send(document)))

    run()
    return tally


async def fuzz_schema(
    schema: graphql.GraphQLSchema,
    custom: dict[str, st.SearchStrategy[graphql.ValueNode]],
    fill: FillIds,
    connect: Callable[[], Coroutine[Any, Any, GraphQLClient]],
) -> dict[str, Tally]:
    """Every query and mutation of ``schema``, each with a fresh client from ``connect``
    (a mutation of one may log it out); the tally of each, by ``root.field``."""
    loop = asyncio.get_running_loop()

    def submit(request: Coroutine[Any, Any, httpx.Response]) -> httpx.Response:
        # Hypothesis drives the examples from a thread; the requests run on the test's loop.
        return asyncio.run_coroutine_threadsafe(request, loop).result(timeout=60)

    tallies = {}
    for root, type_ in (("query", schema.query_type), ("mutation", schema.mutation_type)):
        assert type_ is not None
        for name in sorted(type_.fields):
            client = await connect()

            async def send(document: str, client: GraphQLClient = client) -> httpx.Response:
                return await client.post(document)

            tallies[f"{root}.{name}"] = await asyncio.to_thread(
                fuzz, schema, root, name, custom, fill, send, submit
            )
    return tallies


async def existing_ids(app: Any) -> dict[str, list[str]]:
    """The global ids of every row the fuzzed requests may name, by type."""
    async with app.state.sessions() as session:
        return {
            type_name: [
                to_global_id(type_name, key)
                for key in await session.scalars(select(model.id).order_by(model.id))
            ]
            for type_name, model in NODE_MODELS.items()
        }


async def seed(client: GraphQLClient) -> tuple[str, str]:
    """A little of everything: contacts, static, dynamic and composite groups, a template,
    members (whose e-mails are deliveries), another user with a token. The id of the
    contact with a portal account, and its e-mail address."""
    people = await new_contact_ids(client, "Jansen", "De Vries", "Bakker", city="Ede")
    template = await new_template_id(client)
    static = await new_static_group_id(client, "Buurtteam", people[:2])
    mailing = await new_group_id(
        client, name="Nieuwsbrief", emailOnNewMember=True, newMemberEmailTemplateId=template
    )
    await add_members(client, mailing, people)
    await new_group_id(client, name="Coaches", neighbourhoodRole="coach")
    dynamic = await new_group_id(
        client, name="Ede", filter={"condition": {"field": "city", "op": "EQ", "value": "Ede"}}
    )
    await new_group_id(client, name="Samen", composedOfIds=[static, dynamic])
    await client.data('mutation { createApiToken(input: {name: "Koppeling"}) { errors { code } } }')
    portal_contact = await new_contact_ids(client, "Portaal", email="portaal@example.nl")
    return portal_contact[0], "portaal@example.nl"


async def words_of(client: GraphQLClient) -> list[str]:
    """WORDS and the names the schema's data knows."""
    data = await client.data("{ filterFields { name } permissions { name } roles { key } }")
    return [
        *WORDS,
        *(f["name"] for f in data["filterFields"]),
        *(p["name"] for p in data["permissions"]),
        *(r["key"] for r in data["roles"]),
    ]


def report(tallies: dict[str, Tally]) -> str:
    sent = sum(t.sent for t in tallies.values())
    codes = sum((t.codes for t in tallies.values()), Counter())
    return (
        f"{len(tallies)} operations, {sent} requests, "
        f"{sum(t.answered for t in tallies.values())} answered without errors, "
        f"{sum(t.server_errors for t in tallies.values())} 5xx, "
        f"{sum(t.internal for t in tallies.values())} INTERNAL_SERVER_ERROR, "
        f"{sum(t.without_code for t in tallies.values())} without a code; errors by code {json.dumps(codes)}"
    )


def failures(tallies: dict[str, Tally]) -> list[str]:
    return [f"{name}: {failure}" for name, t in tallies.items() for failure in t.failures[:3]]


async def test_every_staff_operation_answers_with_a_code(app_factory: Any):
    app = app_factory()
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    _, token = await make_user(app, "Johannes Frölich", "johannes@example.coop", admin=True)
    admin = GraphQLClient(http, token)
    await seed(admin)
    await make_user(app, "Bea Bakker", "bea@example.coop")
    ids = await existing_ids(app)
    custom = scalars(ids, await words_of(admin))

    admins = iter(range(1000))

    async def connect() -> GraphQLClient:
        # Another admin for each operation: one fuzzed mutation may revoke its own token.
        n = next(admins)
        _, token = await make_user(app, f"Admin {n}", f"admin{n}@example.coop", admin=True)
        return GraphQLClient(http, token)

    tallies = await fuzz_schema(app.state.schema._schema, custom, FillIds(ids), connect)
    await http.aclose()
    print(report(tallies))
    assert not failures(tallies), "\n\n".join(failures(tallies))
    assert len(tallies) == len(app.state.schema._schema.query_type.fields) + len(
        app.state.schema._schema.mutation_type.fields
    )


async def test_every_portal_operation_answers_with_a_code(app_factory: Any):
    app = app_factory()
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    _, token = await make_user(app, "Johannes Frölich", "johannes@example.coop", admin=True)
    admin = GraphQLClient(http, token)
    contact, email = await seed(admin)
    await portal_client(admin, contact)
    ids = await existing_ids(app)
    custom = scalars(ids, [*await words_of(admin), email, PORTAL_PASSWORD])
    anonymous = GraphQLClient(http, None, path=PORTAL_PATH)

    async def connect() -> GraphQLClient:
        logged_in = await anonymous.data(
            "mutation($e: String!, $p: String!) { portalLogin(email: $e, password: $p) { sessionToken } }",
            {"e": email, "p": PORTAL_PASSWORD},
        )
        session = logged_in["portalLogin"]["sessionToken"]
        # A fuzzed resetPassword may have changed the password: go on without a session.
        return GraphQLClient(http, session, path=PORTAL_PATH)

    schema = next(route.endpoint for route in app.routes if route.path == PORTAL_PATH).schema
    tallies = await fuzz_schema(schema._schema, custom, FillIds(ids), connect)
    await http.aclose()
    print(report(tallies))
    assert not failures(tallies), "\n\n".join(failures(tallies))
