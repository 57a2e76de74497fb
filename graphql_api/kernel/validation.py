"""Small checks every service uses, so each rule reads the same everywhere."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from graphql_api.kernel.errors import ErrorCode, Problems

UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
"""NUL, which PostgreSQL cannot store in text, and the halves of surrogate pairs, which no
UTF-8 database can store alone."""
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
"""Embeddings, overrides and isolates: they can make a name read as another."""
BLANKS = frozenset("\u115f\u1160\u2800\u3164\uffa0")
"""Letters and symbols that show as nothing (Hangul fillers, the blank Braille pattern)."""
MAX_ID = 2**31 - 1
"""The largest id both databases store: ids are 32-bit integer columns on PostgreSQL."""
FIRST_YEAR, LAST_YEAR = 1, 9998
"""The years of dates and timestamps taken from clients: both databases store and compare
them, and a day after the last one is still a date Python and both databases know."""
MAX_SEARCH_LENGTH = 200
"""Longest search text: longer ones are refused, not cut."""


def text_problem(text: str) -> str | None:
    """Why neither database could store ``text`` (a NUL, a lone surrogate), or None."""
    found = UNSTORABLE.search(text)
    if found is None:
        return None
    character = found.group()
    what = "a NUL character" if character == "\x00" else "half of a surrogate pair"
    return f"holds {what} (U+{ord(character):04X}) at position {found.start()}"


def label_problem(text: str) -> str | None:
    """Why ``text`` cannot name something people pick from a list, or None: it holds a
    character neither database stores, a control character or a bidirectional control,
    or shows nothing at all (only zero-width or blank characters)."""
    problem = text_problem(text)
    if problem is not None:
        return problem
    for position, character in enumerate(text):
        if character in BIDI_CONTROLS:
            return f"holds a bidirectional control (U+{ord(character):04X}) at position {position}"
        if unicodedata.category(character) == "Cc":
            return f"holds a control character (U+{ord(character):04X}) at position {position}"
    if all(_invisible(character) for character in text):
        return "shows nothing: it holds only invisible characters"
    return None


def _invisible(character: str) -> bool:
    return character in BLANKS or unicodedata.category(character) in ("Cf", "Zs", "Mn", "Me")


def name_key(name: str) -> str:
    """The form a name is compared in: trimmed, inner spaces collapsed, case-folded."""
    return " ".join(name.split()).casefold()


def field_label(field: Sequence[str]) -> str:
    """How a message names a field: its domain name in words (``first_name`` -> first name)."""
    return field[-1].replace("_", " ")


def clean_text(
    problems: Problems,
    field: Sequence[str],
    value: str | None,
    *,
    max_length: int,
    required: bool = False,
    name: bool = False,
) -> str | None:
    """Trim a text value; empty becomes None. Records REQUIRED, TOO_LONG or INVALID_TEXT
    problems; a ``name`` (of a group, a role, a user, ...) is held to ``label_problem``."""
    label = field_label(field)
    text = value.strip() if value is not None else None
    if text and (reason := (label_problem if name else text_problem)(text)) is not None:
        problems.add(field, ErrorCode.INVALID_TEXT, f"{label} {reason}.")
        return None
    if not text:
        if required:
            problems.add(field, ErrorCode.REQUIRED, f"{label} is required.")
        return None
    if len(text) > max_length:
        problems.add(
            field,
            ErrorCode.TOO_LONG,
            f"{label} is {len(text)} characters long; at most {max_length} are allowed.",
        )
        return None
    return text


def clean_email(problems: Problems, field: Sequence[str], value: str | None) -> str | None:
    """An e-mail address with one @ and a dot in its domain, or None when empty."""
    text = clean_text(problems, field, value, max_length=320)
    if text is None:
        return None
    local, at, domain = text.partition("@")
    if not at or not local or "." not in domain or "@" in domain or any(c.isspace() for c in text):
        problems.add(field, ErrorCode.INVALID, f"{text!r} is not an e-mail address.")
        return None
    return text


def search_text(problems: Problems, field: Sequence[str], value: str | None) -> str | None:
    """A search term, trimmed; None when empty. Refused when it is longer than
    ``MAX_SEARCH_LENGTH`` or holds what neither database can compare."""
    return clean_text(problems, field, value, max_length=MAX_SEARCH_LENGTH)
