"""Which column of a file fills which field of a contact ("koppeling"): checked against the
file's header, suggested from it, and turned into a row's values.

Several columns may fill one text field, joined by a space in the order given: Econobis
and most Dutch spreadsheets keep ``Tussenvoegsel`` apart from ``Achternaam``, and the house
number apart from the street."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from graphql_api.contacts.imports.values import InvalidValue, parse_date
from graphql_api.kernel.errors import ErrorCode, Problems, UserInputError


class ImportField(StrEnum):
    """What a column can fill: a contact's own fields (as the contact's columns are
    named), the groups a row names, and the day it joined them."""

    KIND = "kind"
    FIRST_NAME = "first_name"
    LAST_NAME = "last_name"
    ORGANISATION_NAME = "organisation_name"
    EMAIL = "email"
    PHONE = "phone"
    STREET = "street"
    POSTAL_CODE = "postal_code"
    CITY = "city"
    EXTERNAL_ID = "external_id"
    GROUPS = "groups"
    MEMBER_SINCE = "member_since"


JOINED = frozenset(
    {
        ImportField.FIRST_NAME,
        ImportField.LAST_NAME,
        ImportField.ORGANISATION_NAME,
        ImportField.STREET,
        ImportField.CITY,
        ImportField.PHONE,
    }
)
"""Fields several columns may fill together."""
CONTACT_FIELDS = tuple(
    f for f in ImportField if f not in (ImportField.GROUPS, ImportField.MEMBER_SINCE)
)
GROUP_SEPARATOR = ";"
"""Between the names of the groups in one cell: ``Leden; Nieuwsbrief``."""
KIND_WORDS = {
    "person": "PERSON",
    "persoon": "PERSON",
    "organisation": "ORGANISATION",
    "organization": "ORGANISATION",
    "organisatie": "ORGANISATION",
}
"""How a cell may name a contact's kind, case-folded: English, or Dutch as Econobis writes."""

SYNONYMS: Mapping[ImportField, tuple[str, ...]] = {
    ImportField.KIND: ("kind", "type", "soort", "soort contact"),
    ImportField.FIRST_NAME: ("firstname", "first name", "voornaam"),
    ImportField.LAST_NAME: ("lastname", "last name", "achternaam", "tussenvoegsel"),
    ImportField.ORGANISATION_NAME: (
        "organisationname",
        "organisation",
        "organization",
        "organisatie",
        "bedrijfsnaam",
        "naam organisatie",
    ),
    ImportField.EMAIL: (
        "email",
        "e-mail",
        "e-mailadres",
        "emailadres",
        "email primair",
        "e-mail primair",
    ),
    ImportField.PHONE: (
        "phone",
        "telefoon",
        "telefoonnummer",
        "telefoonnummer primair",
        "mobiel",
    ),
    ImportField.STREET: (
        "street",
        "straat",
        "adres",
        "bezoek adres",
        "huisnummer",
        "bezoek huisnummer",
        "bezoek toevoeging",
    ),
    ImportField.POSTAL_CODE: ("postalcode", "postal code", "postcode", "bezoek postcode"),
    ImportField.CITY: ("city", "plaats", "woonplaats", "bezoek plaats"),
    ImportField.EXTERNAL_ID: ("externalid", "external id", "#", "contactnummer", "nummer"),
    ImportField.GROUPS: ("groups", "groepen", "groep"),
    ImportField.MEMBER_SINCE: ("membersince", "member since", "lid sinds", "lid vanaf"),
}
"""Headers a column is suggested for, compared case-folded with runs of spaces as one:
the API's own names, and the Dutch ones of spreadsheets and Econobis's contact export."""
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class ColumnMapping:
    """The file's columns for each field they fill, in the order they are joined."""

    columns: tuple[tuple[str, ImportField], ...]

    @classmethod
    def checked(
        cls,
        pairs: Sequence[tuple[str, str]],
        header: Sequence[str],
        path: Sequence[str] = ("columns",),
    ) -> ColumnMapping:
        """``pairs`` of (column, field) against the file's ``header``: every column must be
        in it, a column is mapped once, and only text fields take several columns; at least
        a name or an e-mail address must be mapped, or no row could make a contact."""
        problems = Problems()
        known = {name.casefold(): name for name in header}
        seen: dict[str, int] = {}
        taken: dict[ImportField, int] = {}
        checked: list[tuple[str, ImportField]] = []
        for position, (column, field_name) in enumerate(pairs):
            where = [*path, str(position)]
            try:
                field = ImportField(field_name)
            except ValueError:
                problems.add(
                    [*where, "field"],
                    ErrorCode.INVALID,
                    f"{field_name!r} is not a field an import fills.",
                )
                continue
            found = known.get(column.strip().casefold())
            if found is None:
                problems.add(
                    [*where, "column"], ErrorCode.NOT_FOUND, f"The file has no column {column!r}."
                )
                continue
            if found.casefold() in seen:
                problems.add(
                    [*where, "column"], ErrorCode.DUPLICATE, f"Column {found!r} is mapped twice."
                )
                continue
            seen[found.casefold()] = position
            if field in taken and field not in JOINED:
                problems.add(
                    [*where, "field"],
                    ErrorCode.DUPLICATE,
                    f"Only one column can fill {field.value}; several can fill a name, "
                    "street, city or phone.",
                )
                continue
            taken[field] = position
            checked.append((found, field))
        problems.raise_if_any()
        if not taken.keys() & {
            ImportField.FIRST_NAME,
            ImportField.LAST_NAME,
            ImportField.ORGANISATION_NAME,
            ImportField.EMAIL,
            ImportField.EXTERNAL_ID,
        }:
            raise UserInputError.single(
                list(path),
                ErrorCode.REQUIRED,
                "Map a column to a name, the e-mail address or the external id: no row could "
                "make or find a contact without one.",
            )
        return cls(tuple(checked))

    @property
    def fields(self) -> set[ImportField]:
        return {field for _, field in self.columns}

    def columns_of(self, field: ImportField) -> list[str]:
        return [column for column, mapped in self.columns if mapped is field]

    def as_pairs(self) -> list[list[str]]:
        """As stored: ``[[column, field], ...]``."""
        return [[column, field.value] for column, field in self.columns]


def suggested(header: Sequence[str]) -> list[tuple[str, ImportField]]:
    """A mapping guessed from the header's names, for the user to check: each column whose
    name is a known synonym, each field once unless several columns may fill it."""
    lookup = {synonym: field for field, synonyms in SYNONYMS.items() for synonym in synonyms}
    chosen: list[tuple[str, ImportField]] = []
    taken: set[ImportField] = set()
    for column in header:
        field = lookup.get(_SPACES.sub(" ", column.strip().casefold()))
        if field is None or (field in taken and field not in JOINED):
            continue
        taken.add(field)
        chosen.append((column, field))
    return chosen


@dataclass(frozen=True)
class MappedRow:
    """A row's values by field, as text, or the problems of its cells (``column``,
    ``code``, ``message``). Dates and group names stay text here; they are checked when
    mapped (``mapped_row``) and used when the row runs."""

    values: dict[str, str]
    problems: list[dict[str, Any]]


def mapped_row(mapping: ColumnMapping, cells: Mapping[str, str]) -> MappedRow:
    """The values of one row: joined columns, a kind named in English or Dutch, a date in
    ISO or Dutch order; empty cells leave a field out."""
    values: dict[str, str] = {}
    problems: list[dict[str, Any]] = []
    for field in mapping.fields:
        columns = mapping.columns_of(field)
        text = " ".join(part for column in columns if (part := cells.get(column, "").strip()))
        if not text:
            continue
        column = columns[0]
        if field is ImportField.KIND:
            kind = KIND_WORDS.get(text.casefold(), text.upper())
            if kind not in ("PERSON", "ORGANISATION"):
                problems.append(
                    row_problem(
                        column,
                        ErrorCode.INVALID,
                        f'"{text}" is not a kind: write PERSON or ORGANISATION '
                        "(persoon, organisatie).",
                    )
                )
                continue
            text = kind
        elif field is ImportField.MEMBER_SINCE:
            try:
                day = parse_date(text)
            except InvalidValue as error:
                problems.append(row_problem(column, ErrorCode.INVALID, str(error)))
                continue
            text = day.isoformat() if day is not None else ""
        values[field.value] = text
    return MappedRow(values, problems)


def group_names(text: str) -> list[str]:
    """The group names of a cell, trimmed, each once."""
    return list(dict.fromkeys(name.strip() for name in text.split(GROUP_SEPARATOR) if name.strip()))


def row_problem(
    column: str | None, code: str, message: str, *, warning: bool = False
) -> dict[str, Any]:
    """A problem of a row as stored: the column at fault, a stable code, what is wrong,
    and whether it only warns (the row is imported all the same)."""
    return {"column": column, "code": str(code), "message": message, "warning": warning}
