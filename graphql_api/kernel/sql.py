"""SQL text with bound parameters, for statements whose shape follows the group graph.

Membership of derived groups is one statement with a CTE per group; with hundreds of
groups, building and compiling that through SQLAlchemy's expression language costs more
than running it. Writing the text directly is cheap, and every value is still bound.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Integer, TextClause, bindparam, column, text
from sqlalchemy.sql.selectable import TextualSelect
from sqlalchemy.types import TypeEngine

PLACEHOLDER = re.compile(r":(p\d+)\b")


class SqlText:
    """Collects bound parameters while a statement is written."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self._binds: list[Any] = []

    def bind(self, value: Any, type_: TypeEngine[Any] | None = None) -> str:
        """A placeholder for ``value``."""
        name = f"p{len(self._binds)}"
        self._binds.append(bindparam(name, value, type_=type_))
        return f":{name}"

    def ints(self, values: list[int]) -> str:
        """Placeholders for a list of integers, for ``IN (...)``."""
        return ", ".join(self.bind(int(v), Integer()) for v in values)

    def codepoint_order(self, expression: str) -> str:
        """``expression`` compared by code point, as SQLite always compares text."""
        return f'({expression}) COLLATE "C"' if self.dialect == "postgresql" else expression

    def statement(self, sql: str) -> TextClause:
        """The text with the parameters it uses bound (a text may use only some of them)."""
        used = set(PLACEHOLDER.findall(sql))
        return text(sql).bindparams(*(b for b in self._binds if b.key in used))

    def contact_ids(self, sql: str) -> TextualSelect:
        """A statement selecting one ``contact_id`` column, usable inside ``IN (...)``."""
        return self.statement(sql).columns(column("contact_id", Integer))
