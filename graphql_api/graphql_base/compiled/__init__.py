"""Compiled reads: a query planned once into one SQL statement per level, answered from rows.

Resolving field by field costs graphql-core some microseconds per field, and a page of 100
rows with five fields is 600 of them. A query document that asks only for what rows hold
(columns, ids, rows referred to, children, pages) is instead planned once: each level of
the query is one statement over the rows of the level above, selecting only the columns
asked for, and the answer is built from the rows directly.

What a plan cannot answer exactly as the resolvers would, it leaves to them: a document
with directives, abstract types or fields without a compiled form is never planned, and a
request of a planned document falls back whenever its variables, arguments, permissions
or rows are not the plain case (an invalid id, a missing permission, a null where the
schema promises a value, too high a cost). Reads change nothing, so falling back part way
is safe. A document is planned only after it has once run without errors through the
resolvers, with every validation rule, so a plan never answers what they would refuse.

Fields get a compiled form through their ``metadata`` (``compiled(...)``): ``ById`` for a
root field fetching one row, ``Reference`` for a row a column refers to, ``Children`` for
the rows referring to their parent, ``PageOf`` for a connection, ``FromColumns`` for a
value made of the row's columns; ``PluginColumn`` (a column of another table, a plugin's
own, by the row's id) and ``SqlValue`` (an SQL expression over the row, a correlated
``exists`` say) for values the row's own statement computes, which plugins declare through
``graphql_api.plugin``. A field without a resolver whose name is a column of its parent's
model is read from that column; an ``id`` made by ``global_id_field`` is encoded from the
``id`` column.
"""

from graphql_api.graphql_base.compiled.forms import (
    COMPILED,
    ById,
    Children,
    FromColumns,
    NotCompiled,
    PageOf,
    PluginColumn,
    Reference,
    Spec,
    SqlValue,
    compiled,
)
from graphql_api.graphql_base.compiled.plans import Plan
from graphql_api.graphql_base.compiled.running import CompiledReads

__all__ = [
    "COMPILED",
    "ById",
    "Children",
    "CompiledReads",
    "FromColumns",
    "NotCompiled",
    "PageOf",
    "Plan",
    "PluginColumn",
    "Reference",
    "Spec",
    "SqlValue",
    "compiled",
]
