"""The values in a file's cells: every cell is read as text, and turned into a date here
when its column holds dates.

An XLSX cell holding a number becomes its digits (``1234``, not ``1234.0``), so a postal
code or phone number typed as a number reads as the text it shows; a CSV cell is never
converted, so ``0612345678`` keeps its leading zero and ``=1+2`` is plain text."""

from __future__ import annotations

import math
import re
from datetime import date, datetime, time, timedelta

_ISO = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})")
_DUTCH = re.compile(r"(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})")
_TWO_DIGIT_YEAR = re.compile(r"\d{1,2}[-/.]\d{1,2}[-/.]\d{2}")


class InvalidValue(ValueError):
    """A cell whose text is not what its column needs; ``Row.invalid`` places it."""


def cell_text(value: object) -> str:
    """The text of an XLSX cell as read: whole numbers without ``.0`` (a postal code
    ``1234``), dates in ISO form (``2025-12-31``, or ``2025-12-31 10:30:00`` with a
    time of day), booleans as ``TRUE``/``FALSE``, an empty cell as ``""``."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 2**53:
            return str(int(value))
        return repr(value) if math.isfinite(value) else ""
    if isinstance(value, datetime):
        if value.time() == time():
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    return str(value)


def parse_date(text: str) -> date | None:
    """A date written as ``2025-12-31`` (ISO, and what an XLSX date cell reads as) or in
    Dutch order ``31-12-2025`` (also ``1-2-2025``, ``31/12/2025``, ``31.12.2025``); None
    for an empty cell. A two-digit year (``31-12-25``) is refused: a birth date in 1925
    and a date in 2025 look the same, and guessing the century would import the wrong
    one silently."""
    stripped = text.strip()
    if not stripped:
        return None
    if match := _ISO.fullmatch(stripped):
        year, month, day = match.groups()
    elif match := _DUTCH.fullmatch(stripped):
        day, month, year = match.groups()
    elif _TWO_DIGIT_YEAR.fullmatch(stripped):
        raise InvalidValue(f'"{stripped}" has a two-digit year: write it as dd-mm-yyyy')
    else:
        raise InvalidValue(f'"{stripped}" is not a date (write dd-mm-yyyy or yyyy-mm-dd)')
    try:
        return date(int(year), int(month), int(day))
    except ValueError:
        raise InvalidValue(f'"{stripped}" is not a date in the calendar') from None
