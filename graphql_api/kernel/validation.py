"""Small checks every service uses, so each rule reads the same everywhere."""

from __future__ import annotations

from collections.abc import Sequence

from graphql_api.kernel.errors import ErrorCode, Problems


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
) -> str | None:
    """Trim a text value; empty becomes None. Records REQUIRED or TOO_LONG problems."""
    label = field_label(field)
    text = value.strip() if value is not None else None
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
