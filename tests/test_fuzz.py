"""Every query and mutation of both served schemas, fuzzed over real ASGI requests
(hypothesis-graphql): whatever a client sends, the answer is no 5xx, carries no
``INTERNAL_SERVER_ERROR``, and every error in it has an ``extensions.code``.

The generated documents are valid against the schema; their values are drawn so that
resolvers get past the first checks: ids are mostly the global ids of rows that exist
(contacts, groups, templates, users, roles, tokens, deliveries, history), strings are
often words the API knows (filter fields, permissions, role keys, dates, a template), and
the rest is garbage. Each operation gets ``GRAPHQL_API_FUZZ_EXAMPLES`` examples (40 by
default, derandomized so every run sends the same documents); docs/reliability.md has the
figures of a longer run. Failures are counted, not raised, so a run reports every one.

``test_malformed_requests_are_refused_with_a_code`` sends what is not a valid request:
generated documents with characters dropped, duplicated, swapped or replaced, documents
with one schema violation (hypothesis-graphql's negative mode), random bytes, broken JSON,
JSON of the wrong shape, variables and members of the wrong types, GETs with any query
string, other content types and ``Content-Encoding: gzip``; to the portal and the staff API
anonymously and to the staff API as an admin (its planned fast lane on). Whatever it is,
the answer is no 5xx, no ``INTERNAL_SERVER_ERROR``, and a JSON answer's errors all have a
code. Its examples follow the Hypothesis profile (tests/conftest.py)."""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import graphql
import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, mutations, nodes, queries
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


# Malformed requests: what a careless or hostile client sends, valid or not, to both
# endpoints, anonymously (and as an admin on /graphql, whose requests reach the parser,
# the validator and the planned fast lane). The property: never a 5xx, never
# INTERNAL_SERVER_ERROR, and every error of a JSON answer has a code.

MALFORMED_EXAMPLES = settings.default.max_examples * 5
"""Requests per endpoint: 125 in the default profile, 500 in CI's (tests/conftest.py); a
quarter of it to /graphql without a token, which refuses them all (401) before GraphQL."""

GRAPHQL_RESPONSE = "application/graphql-response+json"

SEEDS = {
    "/graphql": [
        "{ groups { nodes { name memberCount } } }",
        "query Groups($first: Int, $after: String) { groups(first: $first, after: $after) "
        "{ totalCount nodes { id name kind } } }",
        "query One($id: ID!) { group(id: $id) { name members(first: 5) { totalCount } } }",
        "mutation New($input: CreateGroupInput!) { createGroup(input: $input) { group { id } "
        "errors { code } } }",
        "query A { me { permissions } } query B { roles { key } }",
    ],
    PORTAL_PATH: [
        "{ groups { id name isMember canChange } }",
        "query Me { me { displayName } }",
        "mutation Login($e: String!, $p: String!) { portalLogin(email: $e, password: $p) "
        "{ sessionToken errors { code } } }",
        "mutation Join($g: ID!) { joinGroup(groupId: $g) { group { name } errors { code } } }",
    ],
}
"""Documents of each endpoint with variables, operation names, planned reads: mutated,
or sent with variables of the wrong types."""


@st.composite
def mutated(draw: st.DrawFn, original: st.SearchStrategy[Any]) -> Any:
    """``original``'s value (a str or bytes) with one to three characters dropped,
    duplicated, swapped with the next, or replaced."""
    value = draw(original)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        if not value:
            break
        i = draw(st.integers(min_value=0, max_value=len(value) - 1))
        edit = draw(st.sampled_from(["drop", "duplicate", "swap", "replace"]))
        if edit == "drop":
            value = value[:i] + value[i + 1 :]
        elif edit == "duplicate":
            value = value[:i] + value[i : i + 1] * 2 + value[i + 1 :]
        elif edit == "swap" and i + 1 < len(value):
            value = value[:i] + value[i + 1 : i + 2] + value[i : i + 1] + value[i + 2 :]
        else:
            other = draw(
                st.binary(min_size=1, max_size=1) if isinstance(value, bytes) else st.characters()
            )
            value = value[:i] + other + value[i + 1 :]
    return value


def json_values() -> st.SearchStrategy[Any]:
    """Any JSON value, numbers past every limit included (Python's parser also takes
    NaN and Infinity, and so must the service)."""
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(min_value=2**63).map(lambda n: n**3),
        st.floats(),
        st.text(max_size=20),
        st.sampled_from(["", "\x00", "\ud800", "x" * 300, "2024-02-30", "R3JvdXA6MQ=="]),
    )
    return st.recursive(
        leaves,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
        ),
        max_leaves=8,
    )


@dataclass
class Malformed:
    """One request to send: GET with ``params`` or POST with ``body``."""

    method: str
    accept: str | None
    content_type: str
    body: bytes = b""
    params: dict[str, str] = field(default_factory=dict)
    encoding: str | None = None


def documents(schema: graphql.GraphQLSchema, path: str) -> st.SearchStrategy[str]:
    """Documents mostly almost right: generated ones (valid, or with one schema violation,
    as hypothesis-graphql's negative mode makes them) and the seeds, mutated or not."""
    negative = [
        make(schema, mode=Mode.NEGATIVE)
        for make, root in ((queries, schema.query_type), (mutations, schema.mutation_type))
        # A negative document violates an argument: the root needs a field with one.
        if root is not None and any(f.args for f in root.fields.values())
    ]
    generated = st.one_of(
        queries(schema, allow_x00=False), mutations(schema, allow_x00=False), *negative
    )
    seeds = st.sampled_from(SEEDS[path])
    return st.one_of(mutated(generated), mutated(seeds), seeds, generated, st.text(max_size=60))


def malformed_requests(schema: graphql.GraphQLSchema, path: str) -> st.SearchStrategy[Malformed]:
    values = json_values()
    document = documents(schema, path)
    variables = st.one_of(
        st.dictionaries(st.sampled_from(["first", "after", "id", "input", "e", "p", "g"]), values),
        values,
    )
    request = st.fixed_dictionaries(
        {"query": st.one_of(document, document, values)},
        optional={
            "variables": variables,
            "operationName": st.one_of(st.sampled_from(["A", "B", "Groups", "Nope"]), values),
            "extensions": values,
            "documentId": st.one_of(st.text(max_size=64), values),
        },
    )

    def dumped(value: Any) -> bytes:
        return json.dumps(value).encode("utf-8", "surrogatepass")

    bodies = st.one_of(
        request.map(dumped),  # wrong types in variables and members
        request.map(dumped).flatmap(lambda body: mutated(st.just(body))),  # broken JSON
        values.map(dumped),  # wrong top-level shapes
        st.binary(max_size=200),  # random bytes
        document.map(lambda text: text.encode("utf-8", "surrogatepass")),  # a bare document
    )
    accepts = st.sampled_from([None, "application/json", GRAPHQL_RESPONSE, "*/*", "text/html"])
    content_types = st.sampled_from(
        ["application/json"] * 6
        + ["application/json; charset=latin-1", "text/plain", "application/graphql", ""]
    )
    posts = st.builds(
        Malformed,
        method=st.just("POST"),
        accept=accepts,
        content_type=content_types,
        body=bodies,
        encoding=st.sampled_from([None] * 9 + ["gzip"]),
    )
    parameter = st.one_of(document, st.text(max_size=30), values.map(json.dumps))
    gets = st.builds(
        Malformed,
        method=st.just("GET"),
        accept=accepts,
        content_type=st.just(""),
        params=st.dictionaries(
            st.sampled_from(["query", "variables", "operationName", "extensions", "documentId"]),
            parameter,
        ),
    )
    return st.one_of(posts, posts, posts, gets)


def check_malformed(request: Malformed, response: httpx.Response) -> None:
    what = f"{request}\n{response.status_code} {response.text[:500]}"
    assert response.status_code < 500, what
    if "json" not in response.headers.get("content-type", ""):
        assert response.status_code == 200 and response.headers["content-type"].startswith(
            "text/html"
        ), what  # GraphiQL's page, for a browser's GET without an operation
        return
    answer = response.json()
    assert isinstance(answer, dict) and ("data" in answer or answer.get("errors")), what
    for error in answer.get("errors") or []:
        code = (error.get("extensions") or {}).get("code")
        assert code and code != "INTERNAL_SERVER_ERROR", what
    if response.status_code >= 400:
        assert "data" not in answer or answer["data"] is None, what


async def fuzz_malformed(
    http: httpx.AsyncClient, path: str, schema: Any, token: str | None, examples: int
) -> int:
    """Send ``examples`` malformed requests to ``path`` (and those of the regressions
    below); how many."""
    loop = asyncio.get_running_loop()
    sent = 0

    async def send(request: Malformed) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if request.accept is not None:
            headers["Accept"] = request.accept
        if request.method == "GET":
            # Percent-encoded by hand: httpx refuses half of a surrogate pair.
            query = urlencode(request.params, errors="surrogatepass")
            return await http.get(f"{path}?{query}", headers=headers)
        headers["Content-Type"] = request.content_type
        if request.encoding:
            headers["Content-Encoding"] = request.encoding
        return await http.post(path, content=request.body, headers=headers)

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(malformed_requests(schema, path))
    # What earlier versions answered with a 500, whatever the examples drawn.
    @example(Malformed("POST", None, "application/json", body=b'{"query": "\x80"}'))
    @example(Malformed("POST", None, "application/json", body=b'"{ __typename }"'))
    @example(Malformed("POST", None, "application/json", body=b'{"query": "{ nope }"}'))
    @example(Malformed("POST", None, "application/json", body=b'{"query": "{ me { } }"}'))
    @example(
        Malformed(
            "POST", None, "application/json", body=b'{"query": "{ a }", "operationName": [1]}'
        )
    )
    def run(request: Malformed) -> None:
        nonlocal sent
        # Hypothesis drives the examples from a thread; the requests run on the test's loop.
        response = asyncio.run_coroutine_threadsafe(send(request), loop).result(timeout=60)
        sent += 1
        check_malformed(request, response)

    await asyncio.to_thread(run)
    return sent


@pytest.mark.parametrize(
    ("path", "as_admin"),
    [(PORTAL_PATH, False), ("/graphql", False), ("/graphql", True)],
    ids=["portal-anonymous", "staff-anonymous", "staff-admin"],
)
async def test_malformed_requests_are_refused_with_a_code(
    app_factory: Any, path: str, as_admin: bool
):
    # The planned fast lane answers JSON POSTs of queries that once ran cleanly.
    app = app_factory(compiled_reads="on")
    token = None
    if as_admin:
        _, token = await make_user(app, "Johannes Frölich", "johannes@example.coop", admin=True)
    endpoint = next(route.endpoint for route in app.routes if route.path == path)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        if as_admin:
            for seed in SEEDS[path][:2]:  # planned from now on
                await GraphQLClient(http, token).data(seed)
            assert app.state.compiled_reads.plan_for(SEEDS[path][0], None) is not None
        examples = (
            MALFORMED_EXAMPLES if path == PORTAL_PATH or as_admin else MALFORMED_EXAMPLES // 4
        )
        sent = await fuzz_malformed(http, path, endpoint.schema._schema, token, examples)
    assert sent >= examples // 2
