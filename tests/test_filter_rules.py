"""Checking dynamic-group filters (graphql_api.groups.filters.validate_filter), as plain
values: the tree a valid filter is cleaned to, the groups its memberOf names, and for each
fault the exact problem (path in the tree, code, message). Compiling them to SQL is in
test_filter_compile.py."""

from __future__ import annotations

from typing import Any

import pytest

from graphql_api.groups.filters import (
    CONTACT_FIELDS,
    MAX_CONDITIONS,
    MAX_DEPTH,
    FieldType,
    FilterField,
    validate_filter,
)
from graphql_api.kernel.errors import ErrorCode, Problem, UserInputError

FIELDS = {
    "city": FilterField("city", FieldType.TEXT),
    "kind": FilterField("kind", FieldType.CHOICE, ("PERSON", "ORGANISATION")),
    "createdAt": FilterField("createdAt", FieldType.DATE),
    "memberOf": FilterField("memberOf", FieldType.GROUP),
}


def cond(field: Any, op: Any, value: Any = None, values: Any = None) -> dict[str, Any]:
    condition: dict[str, Any] = {"field": field, "op": op}
    if value is not None:
        condition["value"] = value
    if values is not None:
        condition["values"] = values
    return {"condition": condition}


def problems_of(tree: Any, field: tuple[str, ...] = ("filter",)) -> list[Problem]:
    with pytest.raises(UserInputError) as refused:
        validate_filter(tree, FIELDS, field)
    return list(refused.value.problems)


def test_a_valid_filter_reads_back_as_written_without_unset_keys():
    tree = {
        "all": [
            {"condition": {"field": "city", "op": "EQ", "value": "Zwolle", "values": None}},
            {"not": {"condition": {"field": "kind", "op": "IN", "values": ["ORGANISATION"]}}},
            {
                "any": [
                    cond("createdAt", "GTE", "2024-03-01"),
                    {"condition": {"field": "city", "op": "IS_EMPTY", "value": None}},
                ],
                "all": None,
            },
        ],
        "any": None,
        "condition": None,
    }
    cleaned, groups = validate_filter(tree, FIELDS)
    assert cleaned == {
        "all": [
            cond("city", "EQ", "Zwolle"),
            {"not": cond("kind", "IN", values=["ORGANISATION"])},
            {"any": [cond("createdAt", "GTE", "2024-03-01"), cond("city", "IS_EMPTY")]},
        ]
    }
    assert groups == set()


def test_the_core_fields_are_the_default():
    cleaned, _ = validate_filter(cond("postalCode", "STARTS_WITH", "80"))
    assert cleaned == cond("postalCode", "STARTS_WITH", "80")
    assert set(CONTACT_FIELDS) >= {"firstName", "kind", "createdAt", "memberOf"}


def test_member_of_conditions_give_their_group_ids():
    tree = {
        "any": [
            cond("memberOf", "EQ", "7"),
            {"not": cond("memberOf", "NEQ", "12")},
            cond("memberOf", "IN", values=["3", "7", "40"]),
        ]
    }
    cleaned, groups = validate_filter(tree, FIELDS)
    assert cleaned == tree
    assert groups == {3, 7, 12, 40}


def test_an_operator_without_a_value_takes_none():
    for op in ("IS_EMPTY", "IS_NOT_EMPTY"):
        assert validate_filter(cond("city", op), FIELDS) == (cond("city", op), set())
        assert problems_of(cond("city", op, "x")) == [
            Problem(("filter", "condition"), ErrorCode.INVALID, f"{op} takes no value.")
        ]
        assert problems_of(cond("city", op, values=["x"])) == [
            Problem(("filter", "condition"), ErrorCode.INVALID, f"{op} takes no value.")
        ]


NODE = "Each filter node has exactly one of all, any, not and condition"


@pytest.mark.parametrize(
    ("tree", "message"),
    [
        (None, f"{NODE}; this one is empty."),
        ({}, f"{NODE}; this one is empty."),
        ({"all": None, "condition": None}, f"{NODE}; this one is empty."),
        (
            {"any": [cond("city", "IS_EMPTY")], "all": [cond("city", "IS_EMPTY")]},
            f"{NODE}; this one has all, any.",
        ),
        ({"or": [cond("city", "IS_EMPTY")]}, f"{NODE}; this one has or."),
        ({"condition": {}, "not": {}, "any": []}, f"{NODE}; this one has any, condition, not."),
    ],
)
def test_a_node_has_exactly_one_known_key(tree: Any, message: str):
    assert problems_of(tree, ("input", "filter")) == [
        Problem(("input", "filter"), ErrorCode.INVALID, message)
    ]


def test_each_key_is_a_node_kind():
    for kind in ("all", "any"):
        cleaned, _ = validate_filter({kind: [cond("city", "IS_EMPTY")]}, FIELDS)
        assert cleaned == {kind: [cond("city", "IS_EMPTY")]}
    assert validate_filter({"not": cond("city", "IS_EMPTY")}, FIELDS)[0] == {
        "not": cond("city", "IS_EMPTY")
    }


@pytest.mark.parametrize("kind", ["all", "any"])
def test_all_and_any_need_a_filter(kind: str):
    assert problems_of({"not": {kind: []}}) == [
        Problem(("filter", "not", kind), ErrorCode.REQUIRED, f"{kind} needs at least one filter.")
    ]


def test_problems_are_at_their_place_in_the_tree_and_all_are_reported():
    tree = {
        "any": [
            cond("city", "EQ", "Zwolle"),
            cond("street", "EQ", "Dorpsstraat"),
            {"not": cond("kind", "LIKE", "P%")},
            {"all": [cond("createdAt", "EQ", "gisteren"), cond("memberOf", "IN", values=["x"])]},
        ]
    }
    problems = problems_of(tree)
    assert [(p.field, p.code) for p in problems] == [
        (("filter", "any", "1", "condition", "field"), ErrorCode.INVALID),
        (("filter", "any", "2", "not", "condition", "op"), ErrorCode.INVALID),
        (("filter", "any", "3", "all", "0", "condition", "value"), ErrorCode.INVALID),
        (("filter", "any", "3", "all", "1", "condition", "values", "0"), ErrorCode.INVALID_ID),
    ]


def nested(levels: int, leaf: dict[str, Any], kind: str) -> dict[str, Any]:
    """``leaf`` at depth ``levels``: inside ``levels - 1`` ``not`` or one-child ``all`` nodes."""
    tree = leaf
    for _ in range(levels - 1):
        tree = {"not": tree} if kind == "not" else {"all": [tree]}
    return tree


@pytest.mark.parametrize("kind", ["not", "all"])
def test_a_filter_nests_at_most_twenty_levels(kind: str):
    leaf = cond("city", "IS_EMPTY")
    deepest = nested(MAX_DEPTH, leaf, kind)
    assert validate_filter(deepest, FIELDS) == (deepest, set())
    too_deep = nested(MAX_DEPTH + 1, leaf, kind)
    step = ("not",) if kind == "not" else ("all", "0")
    assert problems_of(too_deep) == [
        Problem(
            ("filter", *step * MAX_DEPTH),
            ErrorCode.TOO_LONG,
            f"A filter nests at most {MAX_DEPTH} levels.",
        )
    ]


def test_a_filter_has_at_most_two_hundred_conditions():
    most = {"any": [cond("city", "EQ", str(i)) for i in range(MAX_CONDITIONS)]}
    assert validate_filter(most, FIELDS)[0] == most
    nots = {"all": [{"not": cond("city", "EQ", str(i))} for i in range(MAX_CONDITIONS)]}
    assert validate_filter(nots, FIELDS)[0] == nots
    too_many = {"any": [*most["any"], {"not": cond("city", "IS_EMPTY")}]}
    assert problems_of(too_many, ("input", "filter")) == [
        Problem(
            ("input", "filter"),
            ErrorCode.TOO_LONG,
            f"A filter has at most {MAX_CONDITIONS} conditions.",
        )
    ]


@pytest.mark.parametrize("name", ["street", None, ""])
def test_an_unknown_field_names_the_known_ones(name: str | None):
    assert problems_of(cond(name, "EQ", "x")) == [
        Problem(
            ("filter", "condition", "field"),
            ErrorCode.INVALID,
            f"Unknown field {name!r}; known fields: city, kind, createdAt, memberOf.",
        )
    ]


@pytest.mark.parametrize("op", ["LIKE", "eq", None])
def test_an_unknown_operator(op: str | None):
    assert problems_of(cond("city", op, "x")) == [
        Problem(("filter", "condition", "op"), ErrorCode.INVALID, f"Unknown operator {op!r}.")
    ]


@pytest.mark.parametrize(
    ("field", "op", "message"),
    [
        ("kind", "GT", "GT does not apply to kind (choice); use one of EQ, IN, NEQ."),
        (
            "createdAt",
            "IN",
            "IN does not apply to createdAt (date); use one of EQ, GT, GTE, LT, LTE, NEQ.",
        ),
        (
            "memberOf",
            "IS_EMPTY",
            "IS_EMPTY does not apply to memberOf (group); use one of EQ, IN, NEQ.",
        ),
    ],
)
def test_an_operator_must_fit_the_field(field: str, op: str, message: str):
    assert problems_of(cond(field, op, "x")) == [
        Problem(("filter", "condition", "op"), ErrorCode.INVALID, message)
    ]


def test_every_operator_fits_a_text_field():
    for op in ("EQ", "NEQ", "CONTAINS", "NOT_CONTAINS", "STARTS_WITH", "ENDS_WITH"):
        assert validate_filter(cond("city", op, "z"), FIELDS)[0] == cond("city", op, "z")
    for op in ("LT", "LTE", "GT", "GTE"):
        assert validate_filter(cond("city", op, "z"), FIELDS)[0] == cond("city", op, "z")


@pytest.mark.parametrize(
    "condition",
    [
        {"field": "city", "op": "IN", "value": "Zwolle", "values": ["Zwolle"]},
        {"field": "city", "op": "IN", "value": "Zwolle"},
        {"field": "city", "op": "IN", "values": []},
        {"field": "city", "op": "IN"},
    ],
)
def test_in_takes_a_non_empty_values_list_and_no_value(condition: dict[str, Any]):
    assert problems_of({"condition": condition}) == [
        Problem(
            ("filter", "condition", "values"),
            ErrorCode.REQUIRED,
            "IN takes a non-empty values list.",
        )
    ]


def test_in_takes_at_most_a_thousand_values():
    most = cond("city", "IN", values=[str(i) for i in range(1000)])
    assert validate_filter(most, FIELDS)[0] == most
    assert problems_of(cond("city", "IN", values=[str(i) for i in range(1001)])) == [
        Problem(("filter", "condition", "values"), ErrorCode.TOO_LONG, "At most 1000 values.")
    ]


@pytest.mark.parametrize(
    "condition",
    [
        {"field": "city", "op": "EQ"},
        {"field": "city", "op": "EQ", "values": ["Zwolle"]},
        {"field": "city", "op": "EQ", "value": "Zwolle", "values": ["Zwolle"]},
    ],
)
def test_other_operators_take_exactly_one_value(condition: dict[str, Any]):
    assert problems_of({"condition": condition}) == [
        Problem(("filter", "condition", "value"), ErrorCode.REQUIRED, "EQ takes exactly one value.")
    ]


def test_values_are_text_of_at_most_five_hundred_characters():
    longest = "x" * 500
    assert validate_filter(cond("city", "EQ", longest), FIELDS)[0] == cond("city", "EQ", longest)
    assert problems_of(cond("city", "IN", values=["a", 3, "x" * 501])) == [
        Problem(("filter", "condition", "values", "1"), ErrorCode.INVALID, "A value is text."),
        Problem(
            ("filter", "condition", "values", "2"),
            ErrorCode.TOO_LONG,
            "A value has at most 500 characters.",
        ),
    ]
    assert problems_of(cond("city", "EQ", 12)) == [
        Problem(("filter", "condition", "value"), ErrorCode.INVALID, "A value is text.")
    ]


def test_values_must_fit_their_field():
    assert validate_filter(cond("kind", "EQ", "PERSON"), FIELDS)[0] == cond("kind", "EQ", "PERSON")
    assert validate_filter(cond("createdAt", "LT", "2024-02-29"), FIELDS)[0] == cond(
        "createdAt", "LT", "2024-02-29"
    )
    assert problems_of(cond("kind", "IN", values=["PERSON", "person"])) == [
        Problem(
            ("filter", "condition", "values", "1"),
            ErrorCode.INVALID,
            "kind is one of PERSON, ORGANISATION.",
        )
    ]
    assert problems_of(cond("createdAt", "EQ", "2023-02-29")) == [
        Problem(
            ("filter", "condition", "value"),
            ErrorCode.INVALID,
            "'2023-02-29' is not an ISO date (YYYY-MM-DD).",
        )
    ]
    assert problems_of(cond("memberOf", "NEQ", "12a")) == [
        Problem(("filter", "condition", "value"), ErrorCode.INVALID_ID, "'12a' is not a group id.")
    ]
