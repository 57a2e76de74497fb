"""Dynamic-group filters: validated trees of conditions, compiled to SQL expressions.

A filter is a tree of ``all`` / ``any`` / ``not`` nodes over conditions
``{field, op, value | values}``, stored as JSON in exactly the shape it was written.
Fields are typed; an operator or value that does not fit its field is a validation
error, never a crash or a silent no-match. Text matching is case-insensitive and
the same on SQLite and PostgreSQL (both use Unicode-aware ``lower``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from types import MappingProxyType
from typing import Any

from graphql_api.contacts.models import ContactKind
from graphql_api.kernel.db import UtcDateTime
from graphql_api.kernel.errors import BrokenValue, ErrorCode, Problems, UserInputError
from graphql_api.kernel.labels import localized
from graphql_api.kernel.repository import escape_like
from graphql_api.kernel.sql import SqlText
from graphql_api.kernel.validation import FIRST_YEAR, LAST_YEAR, MAX_ID, text_problem

MAX_DEPTH = 20
MAX_CONDITIONS = 200
MAX_VALUE_LENGTH = 500
MAX_VALUES = 1000


class FilterOp(enum.StrEnum):
    EQ = "EQ"
    NEQ = "NEQ"
    CONTAINS = "CONTAINS"
    NOT_CONTAINS = "NOT_CONTAINS"
    STARTS_WITH = "STARTS_WITH"
    ENDS_WITH = "ENDS_WITH"
    LT = "LT"
    LTE = "LTE"
    GT = "GT"
    GTE = "GTE"
    IN = "IN"
    IS_EMPTY = "IS_EMPTY"
    IS_NOT_EMPTY = "IS_NOT_EMPTY"


class FieldType(enum.StrEnum):
    TEXT = "TEXT"
    CHOICE = "CHOICE"
    DATE = "DATE"
    GROUP = "GROUP"


OPERATORS: Mapping[FieldType, frozenset[FilterOp]] = {
    FieldType.TEXT: frozenset(FilterOp),
    FieldType.CHOICE: frozenset({FilterOp.EQ, FilterOp.NEQ, FilterOp.IN}),
    FieldType.DATE: frozenset(
        {FilterOp.EQ, FilterOp.NEQ, FilterOp.LT, FilterOp.LTE, FilterOp.GT, FilterOp.GTE}
    ),
    FieldType.GROUP: frozenset({FilterOp.EQ, FilterOp.NEQ, FilterOp.IN}),
}
NO_VALUE = frozenset({FilterOp.IS_EMPTY, FilterOp.IS_NOT_EMPTY})


CompileCondition = Callable[["FilterOp", list[str], "SqlText"], str]
"""Writes the SQL condition on ``contacts`` for an operator and its values (a plugin's field)."""


@dataclass(frozen=True)
class FilterField:
    """A field conditions can test: its type decides the operators and values it takes.

    Core fields read a column of ``contacts``; a plugin's field brings ``compile``.
    ``labels`` name it for a filter editor, per locale (``nl`` at least, else the name).
    """

    name: str
    type: FieldType
    choices: tuple[str, ...] = ()
    compile: CompileCondition | None = None
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        # Read-only like the rest: every application shares the core's fields.
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))

    def label(self, locale: str | None) -> str:
        return localized(self.labels, locale, self.name)

    @property
    def operators(self) -> list[FilterOp]:
        """The operators this field takes, in ``FilterOp``'s order."""
        return [op for op in FilterOp if op in OPERATORS[self.type]]


def _text(name: str, nl: str, en: str) -> FilterField:
    return FilterField(name, FieldType.TEXT, labels={"nl": nl, "en": en})


CONTACT_FIELDS: dict[str, FilterField] = {
    spec.name: spec
    for spec in (
        FilterField(
            "kind", FieldType.CHOICE, tuple(ContactKind), labels={"nl": "Soort", "en": "Kind"}
        ),
        _text("firstName", "Voornaam", "First name"),
        _text("lastName", "Achternaam", "Last name"),
        _text("organisationName", "Organisatie", "Organisation"),
        _text("email", "E-mailadres", "E-mail address"),
        _text("phone", "Telefoonnummer", "Telephone number"),
        _text("street", "Straat", "Street"),
        _text("postalCode", "Postcode", "Postal code"),
        _text("city", "Plaats", "City"),
        FilterField(
            "createdAt", FieldType.DATE, labels={"nl": "Aangemaakt op", "en": "Created on"}
        ),
        FilterField(
            "memberOf", FieldType.GROUP, labels={"nl": "Lid van groep", "en": "Member of group"}
        ),
    )
}


def validate_filter(
    tree: Any,
    fields: Mapping[str, FilterField] = CONTACT_FIELDS,
    field: Sequence[str] = ("filter",),
) -> tuple[dict[str, Any], set[int]]:
    """Check a filter tree; return it cleaned and the group ids its ``memberOf`` names.

    Raises ``UserInputError`` with a problem per fault, each at its path in the tree.
    """
    problems = Problems()
    groups: set[int] = set()
    counter = [0]
    cleaned = _validate_node(tree, tuple(field), fields, problems, groups, counter, depth=1)
    if counter[0] > MAX_CONDITIONS:
        problems.add(
            field, ErrorCode.TOO_LONG, f"A filter has at most {MAX_CONDITIONS} conditions."
        )
    problems.raise_if_any()
    assert cleaned is not None
    return cleaned, groups


def _validate_node(
    node: Any,
    path: tuple[str, ...],
    fields: Mapping[str, FilterField],
    problems: Problems,
    groups: set[int],
    counter: list[int],
    depth: int,
) -> dict[str, Any] | None:
    if depth > MAX_DEPTH:
        problems.add(path, ErrorCode.TOO_LONG, f"A filter nests at most {MAX_DEPTH} levels.")
        return None
    if not isinstance(node, Mapping | None):
        problems.add(path, ErrorCode.INVALID, "A filter node is an object.")
        return None
    given = {key: value for key, value in (node or {}).items() if value is not None}
    if len(given) != 1 or not set(given) <= {"all", "any", "not", "condition"}:
        problems.add(
            path,
            ErrorCode.INVALID,
            "Each filter node has exactly one of all, any, not and condition"
            + (f"; this one has {', '.join(sorted(given))}." if given else "; this one is empty."),
        )
        return None
    [(kind, value)] = given.items()
    if kind in ("all", "any"):
        if not isinstance(value, list | tuple):
            problems.add((*path, kind), ErrorCode.INVALID, f"{kind} is a list of filters.")
            return None
        if not value:
            problems.add((*path, kind), ErrorCode.REQUIRED, f"{kind} needs at least one filter.")
            return None
        children = [
            _validate_node(
                child, (*path, kind, str(i)), fields, problems, groups, counter, depth + 1
            )
            for i, child in enumerate(value)
        ]
        return {kind: children}
    if kind == "not":
        not_ = _validate_node(value, (*path, "not"), fields, problems, groups, counter, depth + 1)
        return {"not": not_}
    counter[0] += 1
    return {"condition": _validate_condition(value, (*path, "condition"), fields, problems, groups)}


def _validate_condition(
    condition: Mapping[str, Any],
    path: tuple[str, ...],
    fields: Mapping[str, FilterField],
    problems: Problems,
    groups: set[int],
) -> dict[str, Any] | None:
    if not isinstance(condition, Mapping):
        problems.add(path, ErrorCode.INVALID, "A condition is an object.")
        return None
    name = condition.get("field")
    spec = fields.get(name) if isinstance(name, str) else None
    if spec is None:
        problems.add(
            (*path, "field"),
            ErrorCode.INVALID,
            f"Unknown field {name!r}; known fields: {', '.join(fields)}.",
        )
        return None
    try:
        op = FilterOp(condition.get("op"))
    except (ValueError, TypeError):
        problems.add((*path, "op"), ErrorCode.INVALID, f"Unknown operator {condition.get('op')!r}.")
        return None
    if op not in OPERATORS[spec.type]:
        allowed = ", ".join(sorted(OPERATORS[spec.type]))
        problems.add(
            (*path, "op"),
            ErrorCode.INVALID,
            f"{op} does not apply to {name} ({spec.type.lower()}); use one of {allowed}.",
        )
        return None
    value, values = condition.get("value"), condition.get("values")
    cleaned: dict[str, Any] = {"field": name, "op": op.value}
    if op in NO_VALUE:
        if value is not None or values is not None:
            problems.add(path, ErrorCode.INVALID, f"{op} takes no value.")
        return cleaned
    if op is FilterOp.IN:
        if value is not None or not values:
            problems.add((*path, "values"), ErrorCode.REQUIRED, "IN takes a non-empty values list.")
            return None
        if not isinstance(values, list | tuple):
            problems.add((*path, "values"), ErrorCode.INVALID, "values is a list.")
            return None
        if len(values) > MAX_VALUES:
            problems.add((*path, "values"), ErrorCode.TOO_LONG, f"At most {MAX_VALUES} values.")
            return None
        checked = [
            _validate_value(spec, v, (*path, "values", str(i)), problems, groups)
            for i, v in enumerate(values)
        ]
        cleaned["values"] = checked
        return cleaned
    if values is not None or value is None:
        problems.add((*path, "value"), ErrorCode.REQUIRED, f"{op} takes exactly one value.")
        return None
    cleaned["value"] = _validate_value(spec, value, (*path, "value"), problems, groups)
    return cleaned


def _validate_value(
    spec: FilterField, value: Any, path: tuple[str, ...], problems: Problems, groups: set[int]
) -> Any:
    if not isinstance(value, str):
        problems.add(path, ErrorCode.INVALID, "A value is text.")
        return None
    if len(value) > MAX_VALUE_LENGTH:
        problems.add(
            path, ErrorCode.TOO_LONG, f"A value has at most {MAX_VALUE_LENGTH} characters."
        )
        return None
    if (reason := text_problem(value)) is not None:
        problems.add(path, ErrorCode.INVALID_TEXT, f"The value {reason}.")
        return None
    if spec.type is FieldType.CHOICE and value not in spec.choices:
        problems.add(path, ErrorCode.INVALID, f"{spec.name} is one of {', '.join(spec.choices)}.")
    elif spec.type is FieldType.DATE:
        _validate_date(value, path, problems)
    elif spec.type is FieldType.GROUP:
        # Only ids as the API writes them: ASCII digits, no leading zero, within the column.
        if (
            not (value.isascii() and value.isdigit() and str(int(value)) == value)
            or int(value) > MAX_ID
        ):
            problems.add(path, ErrorCode.INVALID_ID, f"{value!r} is not a group id.")
        else:
            groups.add(int(value))
    return value


def _validate_date(value: str, path: tuple[str, ...], problems: Problems) -> None:
    """An ISO date (exactly YYYY-MM-DD) in the years both databases store and compare,
    with the day after it too (a day is compared as [start, start + 1 day))."""
    try:
        day = date.fromisoformat(value)
    except ValueError:
        day = None
    if day is None or len(value) != len("YYYY-MM-DD"):
        problems.add(path, ErrorCode.INVALID, f"{value!r} is not an ISO date (YYYY-MM-DD).")
    elif not FIRST_YEAR <= day.year <= LAST_YEAR:
        problems.add(
            path,
            ErrorCode.INVALID,
            f"A date lies in the years {FIRST_YEAR:04d} to {LAST_YEAR}; {value!r} does not.",
        )


GroupMembers = Callable[[int], str]
"""Gives, for a group id, SQL selecting its members' contact ids."""

COLUMNS = {
    "kind": "kind",
    "firstName": "first_name",
    "lastName": "last_name",
    "organisationName": "organisation_name",
    "email": "email",
    "phone": "phone",
    "street": "street",
    "postalCode": "postal_code",
    "city": "city",
    "createdAt": "created_at",
}


class BrokenFilter(BrokenValue):
    """A stored filter that does not validate: written past validation, it would fail in
    SQL (or fail to compile) on every read and write that needs it."""

    code = "BROKEN_FILTER"


def stored_filter(
    name: str, tree: Any, fields: Mapping[str, FilterField] = CONTACT_FIELDS
) -> tuple[dict[str, Any], set[int]]:
    """A dynamic group's stored filter, validated again before it is compiled, and the
    group ids it names; one that does not validate raises ``BrokenFilter`` naming the
    group (``name``), so that only what needs this group fails, and says why."""
    try:
        return validate_filter(tree, fields)
    except UserInputError as error:
        reasons = "; ".join(f"{'.'.join(p.field)}: {p.message}" for p in error.problems[:3])
        raise BrokenFilter(
            f"The stored filter of group {name!r} cannot be used ({reasons}); change the filter."
        ) from error


def fields_of(tree: Any) -> set[str] | None:
    """The names of the fields a stored filter tree tests; None when it is no filter tree
    at all (broken: whoever needs it finds out with ``stored_filter``)."""
    found: set[str] = set()
    waiting = [tree]
    while waiting:
        node = waiting.pop()
        if not isinstance(node, Mapping):
            return None
        children = node.get("all") or node.get("any")
        if isinstance(children, list):
            waiting.extend(children)
        elif "not" in node:
            waiting.append(node["not"])
        elif isinstance(node.get("condition"), Mapping):
            name = node["condition"].get("field")
            if not isinstance(name, str):
                return None
            found.add(name)
        else:
            return None
    return found


def compile_filter(
    tree: Mapping[str, Any],
    sql: SqlText,
    members_of: GroupMembers,
    fields: Mapping[str, FilterField] = CONTACT_FIELDS,
) -> str:
    """The SQL condition on ``contacts`` that a validated filter tree stands for."""
    if "all" in tree or "any" in tree:
        joiner = " AND " if "all" in tree else " OR "
        children = tree.get("all") or tree["any"]
        return "(" + joiner.join(compile_filter(c, sql, members_of, fields) for c in children) + ")"
    if "not" in tree:
        return f"NOT {compile_filter(tree['not'], sql, members_of, fields)}"
    return _compile_condition(tree["condition"], sql, members_of, fields)


def _compile_condition(
    condition: Mapping[str, Any],
    sql: SqlText,
    members_of: GroupMembers,
    fields: Mapping[str, FilterField],
) -> str:
    spec = fields[condition["field"]]
    op = FilterOp(condition["op"])
    value: str = condition.get("value") or ""
    values: list[str] = condition.get("values") or []
    if spec.compile is not None:
        return spec.compile(op, values if op is FilterOp.IN else [value], sql)
    if spec.type is FieldType.GROUP:
        ids = [int(v) for v in values] if op is FilterOp.IN else [int(value)]
        inside = " OR ".join(f"contacts.id IN ({members_of(group_id)})" for group_id in ids)
        return f"NOT ({inside})" if op is FilterOp.NEQ else f"({inside})"
    column = f"contacts.{COLUMNS[spec.name]}"
    if spec.type is FieldType.DATE:
        return _compile_date(column, op, date.fromisoformat(value), sql)
    if spec.type is FieldType.CHOICE:
        if op is FilterOp.IN:
            return f"{column} IN ({', '.join(sql.bind(v) for v in values)})"
        return f"{column} {'=' if op is FilterOp.EQ else '<>'} {sql.bind(value)}"
    return _compile_text(column, op, value, values, sql)


def _compile_text(column: str, op: FilterOp, value: str, values: list[str], sql: SqlText) -> str:
    # NULL and "" are the same to a user: both are "empty", and neither equals a value.
    # Both sides are lowered by the database, so they are folded alike.
    text = f"lower(coalesce({column}, ''))"
    like = escape_like(value)
    patterns = {
        FilterOp.CONTAINS: f"%{like}%",
        FilterOp.NOT_CONTAINS: f"%{like}%",
        FilterOp.STARTS_WITH: f"{like}%",
        FilterOp.ENDS_WITH: f"%{like}",
    }
    comparisons = {FilterOp.LT: "<", FilterOp.LTE: "<=", FilterOp.GT: ">", FilterOp.GTE: ">="}
    if op in patterns:
        matched = f"{text} LIKE lower({sql.bind(patterns[op])}) ESCAPE '\\'"
        return f"NOT ({matched})" if op is FilterOp.NOT_CONTAINS else matched
    if op in comparisons:
        # An empty value has no order: it is neither before nor after anything.
        ordered = sql.codepoint_order(text)
        wanted = sql.codepoint_order(f"lower({sql.bind(value)})")
        return f"({text} <> '' AND {ordered} {comparisons[op]} {wanted})"
    if op is FilterOp.IN:
        return f"{text} IN ({', '.join(f'lower({sql.bind(v)})' for v in values)})"
    if op is FilterOp.IS_EMPTY:
        return f"coalesce({column}, '') = ''"
    if op is FilterOp.IS_NOT_EMPTY:
        return f"coalesce({column}, '') <> ''"
    return f"{text} {'=' if op is FilterOp.EQ else '<>'} lower({sql.bind(value)})"


def _compile_date(column: str, op: FilterOp, day: date, sql: SqlText) -> str:
    # A timestamp is compared by the UTC day it falls on: [start, start + 1 day).
    start = datetime.combine(day, time(), tzinfo=UTC)
    end = start + timedelta(days=1)

    def at(moment: datetime) -> str:
        return sql.bind(moment, UtcDateTime())

    if op is FilterOp.EQ:
        return f"({column} >= {at(start)} AND {column} < {at(end)})"
    if op is FilterOp.NEQ:
        return f"({column} < {at(start)} OR {column} >= {at(end)})"
    if op is FilterOp.LT:
        return f"{column} < {at(start)}"
    if op is FilterOp.LTE:
        return f"{column} < {at(end)}"
    if op is FilterOp.GT:
        return f"{column} >= {at(end)}"
    return f"{column} >= {at(start)}"
