"""Planned reads refuse exactly what the resolvers refuse: a generated matrix of documents,
each needing one or several permissions at some level, asked by callers holding some of
them.

What is generated, from the staff schema itself (no document is written by hand):

- **Paths.** Walking from ``Query`` through every field with a compiled form
  (``graphql_api.graphql_base.compiled``: ``ById`` or ``PageOf`` at the root, then
  ``Reference``, ``Children`` and ``PageOf``, never a page under a list, as the planner
  plans them) gives every path the planner can plan, up to ``MAX_HOPS`` object levels:
  ``group``, ``group.members``, ``group.history.contact``, ``contacts.memberships.group``,
  ``contact.memberships.contact`` (a joined row), ...
- **Documents.** Each path ends at an object level asking for a plain field (``id``, or a
  column) and, where that level has fields guarded by a permission (``guarded_field``:
  ``Contact.email``, ``phone``, ``street``, ``postalCode``, ``city``), one of them, taken in
  turn so each is asked at every kind of level. Each path is written in four shapes:
  plain (connections through ``nodes``), aliased (every field, connections' own included,
  under an alias; connections through ``edges { node }``), fragment spreads (the root's
  and the last level's selections in named fragments) and inline fragments (every
  level's selection in ``... on Type``). Documents joining two roots need both roots'
  permissions besides.
- **Permissions needed.** The union of the ``Needs`` permissions of every field a document
  asks for, read from the fields' metadata (Strawberry's ``PermissionExtension``); a root
  field is guarded (``groups.view``, ``contacts.view``), so is a column below it.
- **Callers.** The admin, a manager, a viewer, a custom staff role holding only
  ``groups.view``, one holding only ``contacts.view``, and API tokens narrowed to each of
  those two.

Each document runs first as the admin on an application with compiled reads on, as
deployed: the resolvers answer and it is planned (asserted; its plan must need exactly
the permissions the schema says). Then every caller sends it again, as a JSON ``POST``
(``PlannedReads``' fast lane) and as a ``GET`` (the plan inside the view): the answer is
refused with ``FORBIDDEN`` exactly when the caller lacks a permission the document needs,
it is then the very answer of an application with ``GRAPHQL_API_COMPILED_READS=off``,
and otherwise it is the admin's data, without errors. The lists on the way are never
empty, so the resolvers meet every guarded field they are asked for.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from graphql import GraphQLField, GraphQLObjectType, get_named_type, is_leaf_type
from strawberry.permission import PermissionExtension

from graphql_api.graphql_base.compiled import COMPILED, ById, Children, PageOf, Reference
from graphql_api.graphql_base.cost import DEFINITION
from graphql_api.graphql_base.relay import GLOBAL_ID
from graphql_api.testing import (
    GraphQLClient,
    add_members,
    first_user_id,
    make_user,
    new_contact_id,
    new_group_id,
    new_template_id,
)

MAX_HOPS = 4
"""Object levels a generated path goes down, the root's included."""
ARGUMENTS = {"group": "(id: $group)", "contact": "(id: $contact)"}
"""Root fields fetching one row take its id from a variable; pages take ``first: 5``."""
VARIABLES = {"group": "$group: ID!", "contact": "$contact: ID!"}
SHAPES = ["plain", "aliased", "fragments", "inline"]


# The schema, walked ------------------------------------------------------------------


@dataclass(frozen=True)
class Hop:
    """One field on a path: its name, the spec of its compiled form, the object type below
    it (a connection's node type for a page) and the permissions it needs."""

    name: str
    spec: Any
    below: GraphQLObjectType
    needs: frozenset[str]


def needs_of(field: GraphQLField) -> frozenset[str]:
    """The permissions a field needs, as its metadata says (``guarded_field``)."""
    definition = field.extensions.get(DEFINITION)
    if definition is None:
        return frozenset()
    return frozenset(
        permission.permission
        for extension in definition.extensions
        if isinstance(extension, PermissionExtension)
        for permission in extension.permissions
    )


def spec_of(field: GraphQLField) -> Any:
    definition = field.extensions.get(DEFINITION)
    return None if definition is None else definition.metadata.get(COMPILED)


def node_type(connection: Any) -> GraphQLObjectType:
    edge = get_named_type(connection.fields["edges"].type)
    return get_named_type(edge.fields["node"].type)  # type: ignore[return-value]


def paths(schema: Any) -> list[list[Hop]]:
    """Every path the planner can plan, root first, up to ``MAX_HOPS`` levels."""
    found: list[list[Hop]] = []

    def below(path: list[Hop], many: bool) -> None:
        found.append(path)
        if len(path) == MAX_HOPS:
            return
        for name, field in path[-1].below.fields.items():
            spec = spec_of(field)
            if isinstance(spec, Reference | Children):
                hop = Hop(name, spec, get_named_type(field.type), needs_of(field))  # type: ignore[arg-type]
                below([*path, hop], many or isinstance(spec, Children))
            elif isinstance(spec, PageOf) and not many:  # no page under a list
                hop = Hop(name, spec, node_type(get_named_type(field.type)), needs_of(field))
                below([*path, hop], True)

    for name, field in schema.query_type.fields.items():
        spec = spec_of(field)
        if isinstance(spec, ById):
            below([Hop(name, spec, get_named_type(field.type), needs_of(field))], False)  # type: ignore[arg-type]
        elif isinstance(spec, PageOf):
            below([Hop(name, spec, node_type(get_named_type(field.type)), needs_of(field))], True)
    return found


def leaves(object_type: GraphQLObjectType) -> tuple[str, list[tuple[str, frozenset[str]]]]:
    """An unguarded field the planner reads from the row (the global id, else a column),
    and the guarded leaves of the type with what each needs."""
    plain, guarded = [], []
    for name, field in object_type.fields.items():
        definition = field.extensions.get(DEFINITION)
        if definition is None or not is_leaf_type(get_named_type(field.type)):
            continue
        needs = needs_of(field)
        if needs and definition.base_resolver is None:
            guarded.append((name, needs))
        elif not needs and (GLOBAL_ID in definition.metadata or definition.base_resolver is None):
            plain.append(name)
    return ("id" if "id" in plain else plain[0]), guarded


# Documents ---------------------------------------------------------------------------


@dataclass
class Document:
    name: str
    text: str
    needs: frozenset[str]


def _render(
    path: list[Hop], shape: str, turn: int, tag: str = ""
) -> tuple[str, str, frozenset[str], set[str]]:
    """A root selection for ``path`` in ``shape``: its text, the fragments it spreads,
    the permissions it needs and the variables it uses."""
    plain, guarded = leaves(path[-1].below)
    fields = [plain]
    needs: set[str] = set()
    if guarded:
        leaf, leaf_needs = guarded[turn % len(guarded)]
        fields.append(leaf)
        needs |= leaf_needs
    aliased = shape == "aliased"
    edges = shape in ("aliased", "inline")

    def named(name: str) -> str:
        return f"x{name}: {name}" if aliased else name

    def level(object_type: GraphQLObjectType, selection: str) -> str:
        return f"... on {object_type.name} {{ {selection} }}" if shape == "inline" else selection

    fragments = ""
    selection = " ".join(named(f) for f in fields)
    if shape == "fragments":
        fragments += f"fragment Last{tag} on {path[-1].below.name} {{ {selection} }}\n"
        selection = f"...Last{tag}"
    selection = level(path[-1].below, selection)
    variables: set[str] = set()
    for depth in range(len(path) - 1, -1, -1):
        hop = path[depth]
        needs |= hop.needs
        arguments = ""
        if depth == 0 and hop.name in ARGUMENTS:
            arguments = ARGUMENTS[hop.name]
            variables.add(hop.name)
        elif isinstance(hop.spec, PageOf):
            arguments = "(first: 5)"
        if isinstance(hop.spec, PageOf):
            inner = (
                f"{named('edges')} {{ {named('node')} {{ {selection} }} }}"
                if edges
                else f"{named('nodes')} {{ {selection} }}"
            )
        else:
            inner = selection
        field = f"{named(hop.name)}{arguments} {{ {inner} }}"
        selection = field if depth == 0 else level(path[depth - 1].below, field)
    if shape == "inline":
        selection = f"... on Query {{ {selection} }}"
    return selection, fragments, frozenset(needs), variables


def document(parts: list[tuple[str, str, frozenset[str], set[str]]], name: str) -> Document:
    selections = " ".join(part[0] for part in parts)
    fragments = "".join(part[1] for part in parts)
    needs = frozenset().union(*(part[2] for part in parts))
    variables = sorted(set().union(*(part[3] for part in parts)))
    declared = f"({', '.join(VARIABLES[v] for v in variables)})" if variables else ""
    if fragments and "fragment Root" not in fragments:
        fragments += f"fragment Root on Query {{ {selections} }}\n"
        selections = "...Root"
    return Document(name, f"query{declared} {{ {selections} }}\n{fragments}", needs)


def documents(schema: Any, shape: str) -> list[Document]:
    made = []
    found = paths(schema)
    for turn, path in enumerate(found):
        name = ".".join(hop.name for hop in path)
        made.append(document([_render(path, shape, turn + SHAPES.index(shape))], name))
    return made


def deepest(found: list[list[Hop]]) -> list[Hop]:
    """The longest path ending at a level with guarded fields, or else the longest."""
    return max(found, key=lambda path: (bool(leaves(path[-1].below)[1]), len(path)))


def joined_documents(schema: Any) -> list[Document]:
    """Two roots in one document (each shape once), so a caller needs both roots'
    permissions and the deepest guarded leaf of each."""
    by_root: dict[str, list[list[Hop]]] = {}
    for path in paths(schema):
        by_root.setdefault(path[0].name, []).append(path)
    roots = sorted(by_root)
    made = []
    for i, first in enumerate(roots):
        for second in roots[i + 1 :]:
            for turn, shape in enumerate(SHAPES):
                a = _render(deepest(by_root[first]), shape, turn, tag="A")
                b = _render(deepest(by_root[second]), shape, turn + 1, tag="B")
                made.append(document([a, b], f"{first}+{second} ({shape})"))
    return made


# Callers -----------------------------------------------------------------------------


@dataclass
class Caller:
    name: str
    token: str
    holds: frozenset[str]


CUSTOM_ROLE = """mutation($name: String!, $permissions: [String!]!) {
  createStaffRole(input: {name: $name, permissions: $permissions}) { errors { code } } }"""
NARROWED_TOKEN = """mutation($permissions: [String!]!) {
  createApiToken(input: {name: "narrowed", permissions: $permissions}) { secret errors { code } } }"""


async def callers(app: Any, admin: GraphQLClient) -> list[Caller]:
    everything = frozenset((await admin.data("{ me { permissions } }"))["me"]["permissions"])
    made = [Caller("admin", admin.token or "", everything)]
    for role in ("manager", "viewer"):
        _, token = await make_user(app, role.title(), f"{role}@example.coop", role=role)
        me = await GraphQLClient(admin.http, token).data("{ me { permissions } }")
        made.append(Caller(role, token, frozenset(me["me"]["permissions"])))
    assert {"groups.view", "contacts.view"} <= made[1].holds & made[2].holds
    for permission in ("groups.view", "contacts.view"):
        role = f"Alleen {permission}"
        created = await admin.data(CUSTOM_ROLE, {"name": role, "permissions": [permission]})
        assert created["createStaffRole"]["errors"] == []
        _, token = await make_user(app, role, f"{permission}@example.coop", role=role)
        made.append(Caller(f"role with {permission}", token, frozenset({permission})))
        # A manager's token narrowed to the one permission.
        manager = GraphQLClient(admin.http, made[1].token)
        narrowed = await manager.data(NARROWED_TOKEN, {"permissions": [permission]})
        secret = narrowed["createApiToken"]["secret"]
        assert secret, narrowed
        made.append(
            Caller(f"manager's token narrowed to {permission}", secret, frozenset({permission}))
        )
    return made


# The data ----------------------------------------------------------------------------


async def fill(client: GraphQLClient) -> dict[str, str]:
    """A group with every reference set, members with every guarded field filled, and
    history: no list a path goes through is empty, no reference null."""
    template = await new_template_id(client)
    responsible = await first_user_id(client)
    group = await new_group_id(
        client, name="Zonnepanelen", responsibleId=responsible, newMemberEmailTemplateId=template
    )
    contacts = [
        await new_contact_id(
            client,
            firstName=first,
            lastName=last,
            email=f"{first.lower()}@example.coop",
            phone=f"06-1234567{i}",
            street=f"Dorpsstraat {i}",
            postalCode=f"123{i} AB",
            city="Utrecht",
        )
        for i, (first, last) in enumerate([("Anna", "Jansen"), ("Bram", "de Vries")])
    ]
    await add_members(client, group, contacts)
    return {"group": group, "contact": contacts[0]}


@asynccontextmanager
async def over_asgi(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


async def ask(
    http: httpx.AsyncClient, token: str, doc: Document, variables: dict[str, str], method: str
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    used = {k: v for k, v in variables.items() if f"${k}" in doc.text}
    if method == "GET":
        params = {"query": doc.text, "variables": json.dumps(used)}
        response = await http.get("/graphql", params=params, headers=headers)
    else:
        response = await http.post(
            "/graphql", json={"query": doc.text, "variables": used}, headers=headers
        )
    assert response.status_code == 200, (doc.name, response.text)
    return response.json()


def forbidden(answer: dict[str, Any]) -> bool:
    codes = {error["extensions"]["code"] for error in answer.get("errors", [])}
    assert codes <= {"FORBIDDEN"}, answer
    return codes == {"FORBIDDEN"}


@pytest.fixture
async def app(app_factory: Any) -> Any:
    """Compiled reads on, as deployed (the suite's own default is ``check``)."""
    return app_factory(compiled_reads="on")


async def check_documents(
    app: Any, app_factory: Any, client: GraphQLClient, docs: list[Document]
) -> None:
    variables = await fill(client)
    everyone = await callers(app, client)
    failures: list[str] = []
    resolving = app_factory(compiled_reads="off")
    async with over_asgi(resolving) as off:
        for doc in docs:
            learned = await ask(client.http, client.token or "", doc, variables, "POST")
            assert "errors" not in learned, (doc.name, doc.text, learned)
            plan = app.state.compiled_reads.plan_for(doc.text, None)
            assert plan is not None, f"the generated document is not planned: {doc.text}"
            assert plan.permissions == doc.needs, (doc.name, plan.permissions, doc.needs)
            by_resolvers: dict[frozenset[str], dict[str, Any]] = {}
            for caller in everyone:
                refused = not doc.needs <= caller.holds
                for method in ("POST", "GET"):
                    answer = await ask(client.http, caller.token, doc, variables, method)
                    where = f"{doc.name} [{caller.name}, {method}]"
                    if forbidden(answer) != refused:
                        failures.append(f"{where}: refused={not refused} expected\n{doc.text}")
                        continue
                    if not refused:
                        if answer != learned:
                            failures.append(f"{where}: {answer} != admin's {learned}")
                        continue
                    held = doc.needs & caller.holds
                    if held not in by_resolvers:
                        by_resolvers[held] = await ask(off, caller.token, doc, variables, "POST")
                    if answer != by_resolvers[held]:
                        failures.append(f"{where}: {answer} != resolvers' {by_resolvers[held]}")
    assert not failures, f"{len(failures)} wrong answers:\n" + "\n".join(failures[:20])


@pytest.mark.parametrize("shape", SHAPES)
async def test_each_path_in_each_shape_is_refused_by_its_plan_as_by_the_resolvers(
    app: Any, app_factory: Any, client: GraphQLClient, shape: str
):
    docs = documents(app.state.schema._schema, shape)
    # The walk reaches every guarded field the planner can plan: the roots and the
    # guarded columns, at the root, in a row, in a list, in a page, in a joined row.
    names = {doc.name for doc in docs}
    assert {"group", "groups", "contact", "contacts", "group.members"} <= names
    assert {"contact.memberships.contact", "group.history.contact"} <= names
    assert {"group.members.memberships.contact"} <= names
    await check_documents(app, app_factory, client, docs)


async def test_documents_joining_two_roots_need_the_permissions_of_both(
    app: Any, app_factory: Any, client: GraphQLClient
):
    docs = joined_documents(app.state.schema._schema)
    assert any(doc.needs == {"groups.view", "contacts.view"} for doc in docs)
    await check_documents(app, app_factory, client, docs)


def test_every_guarded_field_with_a_compiled_form_is_generated(app: Any):
    """The generator is not narrower than the schema: each field the planner could read
    that a permission guards (a root, a column) is in some generated document."""
    schema = app.state.schema._schema
    generated = " ".join(doc.text for shape in SHAPES for doc in documents(schema, shape))
    guarded = set()
    for type_name, object_type in schema.type_map.items():
        if type_name.startswith("__") or not isinstance(object_type, GraphQLObjectType):
            continue
        for name, field in object_type.fields.items():
            definition = field.extensions.get(DEFINITION)
            if definition is None or not needs_of(field) or type_name == "Subscription":
                continue
            readable = spec_of(field) is not None or (
                definition.base_resolver is None and is_leaf_type(get_named_type(field.type))
            )
            if readable:
                guarded.add(name)
    assert guarded >= {"group", "groups", "contact", "contacts", "email", "city"}
    missing = {name for name in guarded if f" {name}" not in generated}
    assert not missing, missing
