"""The small checks every service shares (graphql_api.kernel.validation), as plain values:
how names are compared, how a text is trimmed and limited, what an e-mail address is, and
the exact problem (field, code, message) each refusal records."""

from __future__ import annotations

import pytest

from graphql_api.kernel.errors import ErrorCode, Problem, Problems
from graphql_api.kernel.validation import clean_email, clean_text, field_label, name_key


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("Buurtteam", "buurtteam"),
        ("  Buurt   Team  Oost ", "buurt team oost"),
        ("Buurt\tteam\noost", "buurt team oost"),
        ("STRASSE", "strasse"),
        ("Straße", "strasse"),  # case-folded, not only lowered
        ("", ""),
    ],
)
def test_name_key_trims_collapses_and_casefolds(name: str, key: str):
    assert name_key(name) == key


def test_field_label_is_the_last_part_in_words():
    assert field_label(["first_name"]) == "first name"
    assert field_label(("input", "contact", "postal_code")) == "postal code"
    assert field_label(("input", "new_member_email_template_id")) == (
        "new member email template id"
    )


def test_clean_text_trims_and_keeps_inner_text():
    problems = Problems()
    assert clean_text(problems, ["name"], "  Buurt  team  ", max_length=20) == "Buurt  team"
    assert problems.items == []


@pytest.mark.parametrize("empty", [None, "", "   ", "\t\n"])
def test_empty_text_is_none_and_only_required_text_is_a_problem(empty: str | None):
    optional = Problems()
    assert clean_text(optional, ["description"], empty, max_length=10) is None
    assert optional.items == []

    required = Problems()
    field = ("input", "contact", "first_name")
    assert clean_text(required, field, empty, max_length=10, required=True) is None
    assert required.items == [Problem(field, ErrorCode.REQUIRED, "first name is required.")]


def test_text_of_exactly_max_length_is_allowed_one_more_is_too_long():
    problems = Problems()
    assert clean_text(problems, ["city"], " " + "a" * 10 + " ", max_length=10) == "a" * 10
    assert problems.items == []

    field = ("input", "postal_code")
    assert clean_text(problems, field, "b" * 11, max_length=10) is None
    assert problems.items == [
        Problem(
            field,
            ErrorCode.TOO_LONG,
            "postal code is 11 characters long; at most 10 are allowed.",
        )
    ]


def test_a_too_long_required_text_is_too_long_not_missing():
    problems = Problems()
    assert clean_text(problems, ["name"], "x" * 5, max_length=4, required=True) is None
    assert [p.code for p in problems.items] == [ErrorCode.TOO_LONG]


@pytest.mark.parametrize(
    ("given", "cleaned"),
    [
        ("anna@example.coop", "anna@example.coop"),
        ("  Anna.de.Vries@Buurt.Example.NL ", "Anna.de.Vries@Buurt.Example.NL"),
        ("a@b.c", "a@b.c"),
    ],
)
def test_clean_email_accepts_an_address_and_trims_it(given: str, cleaned: str):
    problems = Problems()
    assert clean_email(problems, ["email"], given) == cleaned
    assert problems.items == []


@pytest.mark.parametrize("empty", [None, "", "  "])
def test_an_empty_email_is_none_and_no_problem(empty: str | None):
    problems = Problems()
    assert clean_email(problems, ["email"], empty) is None
    assert problems.items == []


@pytest.mark.parametrize(
    "address",
    [
        "anna",  # no @
        "anna.example.coop",  # no @, a dot
        "@example.coop",  # nothing before the @
        "anna@",  # nothing after it
        "anna@example",  # no dot in the domain
        "anna@exa@mple.coop",  # two @
        "an@na@example.coop",  # two @, the first part has none
        "anna@@example.coop",
        "anna de vries@example.coop",  # a space
        "anna@example.co\top",  # a tab
    ],
)
def test_clean_email_refuses_what_is_not_an_address(address: str):
    problems = Problems()
    field = ("input", "email")
    assert clean_email(problems, field, address) is None
    assert problems.items == [
        Problem(field, ErrorCode.INVALID, f"{address!r} is not an e-mail address.")
    ]


def test_an_email_of_320_characters_is_allowed_321_is_too_long():
    domain = "@example.coop"
    longest = "a" * (320 - len(domain)) + domain
    problems = Problems()
    assert clean_email(problems, ["email"], longest) == longest
    assert problems.items == []

    too_long = "a" + longest
    assert clean_email(problems, ["email"], too_long) is None
    assert problems.items == [
        Problem(
            ("email",),
            ErrorCode.TOO_LONG,
            "email is 321 characters long; at most 320 are allowed.",
        )
    ]


def test_problems_of_several_fields_are_all_kept():
    problems = Problems()
    clean_text(problems, ["name"], None, max_length=5, required=True)
    clean_email(problems, ["email"], "nope")
    clean_text(problems, ["city"], "Zwolle", max_length=5)
    assert [(p.field, p.code) for p in problems.items] == [
        (("name",), ErrorCode.REQUIRED),
        (("email",), ErrorCode.INVALID),
        (("city",), ErrorCode.TOO_LONG),
    ]
