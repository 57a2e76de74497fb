"""GraphQL shapes of dynamic-group filters: the input, and the same tree read back."""

from __future__ import annotations

from typing import Any

import strawberry

from graphql_api.graphql_base.enums import described_enum
from graphql_api.graphql_base.labels import Locale
from graphql_api.graphql_base.relay import decode_id, to_global_id
from graphql_api.groups.filters import FieldType, FilterField, FilterOp
from graphql_api.kernel.labels import DEFAULT_LOCALE

FilterOpType = described_enum(
    FilterOp,
    "How a condition compares a field with its value; text comparisons ignore case. "
    "`filterFields` lists the operators each field takes.",
    {
        FilterOp.EQ: "Equals the value (a date: on that day; a group: member of it).",
        FilterOp.NEQ: "Differs from the value (a group: not a member of it).",
        FilterOp.CONTAINS: "The text contains the value.",
        FilterOp.NOT_CONTAINS: "The text does not contain the value.",
        FilterOp.STARTS_WITH: "The text starts with the value.",
        FilterOp.ENDS_WITH: "The text ends with the value.",
        FilterOp.LT: "Before the value (text: in code-point order; empty text never).",
        FilterOp.LTE: "Before the value or equal to it.",
        FilterOp.GT: "After the value.",
        FilterOp.GTE: "After the value or equal to it.",
        FilterOp.IN: "Equals one of `values`.",
        FilterOp.IS_EMPTY: "Empty or absent; takes no value.",
        FilterOp.IS_NOT_EMPTY: "Not empty; takes no value.",
    },
)
FilterFieldTypeType = described_enum(
    FieldType,
    "What a filter field holds, which decides its operators and values.",
    {
        FieldType.TEXT: "Text; compared ignoring case.",
        FieldType.CHOICE: "One of the field's `choices`.",
        FieldType.DATE: "A date; the value is an ISO date (YYYY-MM-DD).",
        FieldType.GROUP: "Membership of a group; the value is a group id.",
    },
    name="FilterFieldType",
)

MEMBER_OF = "memberOf"


@strawberry.type(
    name="FilterField",
    description="A field filter conditions can test, the core's or a plugin's: what a "
    "filter editor offers.",
)
class FilterFieldInfo:
    name: str = strawberry.field(description="What `ConditionInput.field` takes.")
    type: FilterFieldTypeType = strawberry.field(description="What the field holds.")
    operators: list[FilterOpType] = strawberry.field(
        description="The operators it takes, in a stable order."
    )
    choices: list[str] = strawberry.field(
        description="The values a CHOICE field takes (e.g. role keys); empty for other types."
    )

    @strawberry.field(description="Its name for people, e.g. 'Postcode'.")
    def label(self, root: strawberry.Parent[FilterField], locale: Locale = DEFAULT_LOCALE) -> str:
        return root.label(locale)


@strawberry.input(description="One test of a contact field, e.g. postalCode STARTS_WITH '12'.")
class ConditionInput:
    field: str = strawberry.field(
        description="A field of `filterFields`: a contact field (firstName, postalCode, ...), "
        "memberOf (a group id) or a plugin's field."
    )
    op: FilterOpType = strawberry.field(description="The comparison.")
    value: str | None = strawberry.field(
        default=None, description="The value; an ISO date for createdAt, a group id for memberOf."
    )
    values: list[str] | None = strawberry.field(default=None, description="The values, for IN.")


@strawberry.input(
    description="A filter over contacts (dynamische groep). Exactly one of the four per node."
)
class ContactFilterInput:
    all: list[ContactFilterInput] | None = strawberry.field(
        default=None, description="Every filter in the list holds (AND)."
    )
    any: list[ContactFilterInput] | None = strawberry.field(
        default=None, description="At least one filter in the list holds (OR)."
    )
    not_: ContactFilterInput | None = strawberry.field(
        default=None, name="not", description="The filter does not hold."
    )
    condition: ConditionInput | None = strawberry.field(default=None, description="A test.")

    def to_domain(self) -> dict[str, Any]:
        """The plain tree the domain validates (for features that take a filter)."""
        return filter_to_domain(self)


@strawberry.type(description="A stored condition, as it was written.")
class Condition:
    field: str = strawberry.field(description="The contact field, or memberOf.")
    op: FilterOpType = strawberry.field(description="The comparison.")
    value: str | None = strawberry.field(description="The value, if the operator takes one.")
    values: list[str] | None = strawberry.field(description="The values, for IN.")


@strawberry.type(description="A dynamic group's filter, in the shape it was written.")
class ContactFilter:
    all: list[ContactFilter] | None = strawberry.field(description="Every filter holds.")
    any: list[ContactFilter] | None = strawberry.field(description="At least one holds.")
    not_: ContactFilter | None = strawberry.field(name="not", description="Does not hold.")
    condition: Condition | None = strawberry.field(description="A test.")


def filter_to_domain(
    node: ContactFilterInput, path: tuple[str, ...] = ("filter",)
) -> dict[str, Any]:
    """The input as the plain tree the domain validates, with group ids as primary keys."""
    tree: dict[str, Any] = {}
    if node.all is not None:
        tree["all"] = [filter_to_domain(c, (*path, "all", str(i))) for i, c in enumerate(node.all)]
    if node.any is not None:
        tree["any"] = [filter_to_domain(c, (*path, "any", str(i))) for i, c in enumerate(node.any)]
    if node.not_ is not None:
        tree["not"] = filter_to_domain(node.not_, (*path, "not"))
    if node.condition is not None:
        condition = node.condition
        here = (*path, "condition")
        value, values = condition.value, condition.values
        if condition.field == MEMBER_OF:
            if value is not None:
                value = str(decode_id(value, "Group", (*here, "value")))
            if values is not None:
                values = [
                    str(decode_id(v, "Group", (*here, "values", str(i))))
                    for i, v in enumerate(values)
                ]
        tree["condition"] = {
            "field": condition.field,
            "op": condition.op.value,
            "value": value,
            "values": values,
        }
    return tree


def filter_from_domain(tree: dict[str, Any] | None) -> ContactFilter | None:
    """A stored tree as the API shows it: group ids become global ids again."""
    if tree is None:
        return None
    condition = tree.get("condition")
    if condition is not None:
        value, values = condition.get("value"), condition.get("values")
        if condition["field"] == MEMBER_OF:
            value = to_global_id("Group", int(value)) if value is not None else None
            values = [to_global_id("Group", int(v)) for v in values] if values else values
        condition = Condition(
            field=condition["field"], op=FilterOp(condition["op"]), value=value, values=values
        )
    return ContactFilter(
        all=[filter_from_domain(c) for c in tree["all"]] if "all" in tree else None,  # type: ignore[misc]
        any=[filter_from_domain(c) for c in tree["any"]] if "any" in tree else None,  # type: ignore[misc]
        not_=filter_from_domain(tree["not"]) if "not" in tree else None,
        condition=condition,
    )
