"""GraphQL shapes of dynamic-group filters: the input, and the same tree read back."""

from __future__ import annotations

from typing import Any

import strawberry

from graphql_api.api.relay import decode_id, to_global_id
from graphql_api.groups.filters import FilterOp

FilterOpType = strawberry.enum(
    FilterOp,
    name="FilterOp",
    description="How a condition compares a field with its value. Text comparisons ignore "
    "case; IN takes `values`; IS_EMPTY and IS_NOT_EMPTY take no value.",
)

MEMBER_OF = "memberOf"


@strawberry.input(description="One test of a contact field, e.g. postalCode STARTS_WITH '12'.")
class ConditionInput:
    field: str = strawberry.field(
        description="A contact field (firstName, lastName, organisationName, email, phone, "
        "street, postalCode, city, kind, createdAt) or memberOf (a group id)."
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
