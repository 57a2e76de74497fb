"""Text a request brings, checked at the edge: a NUL or half of a surrogate pair anywhere in
the variables or in a string of the document refuses the whole request with INVALID_TEXT
before anything runs, whatever field it is meant for. Neither database can store such
text, so none of it may reach a resolver, the domain or a database driver.

The rules themselves are the kernel's (``kernel.validation``), which the domain applies
again to what it stores, with the stricter rules of names."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError, StringValueNode, ValidationRule
from strawberry.extensions import SchemaExtension

from graphql_api.graphql_base.errors import PublicError
from graphql_api.kernel.errors import ErrorCode, Problems
from graphql_api.kernel.validation import search_text, text_problem


class CleanStringLiterals(ValidationRule):
    """A string written in the document itself holds only text both databases store.
    A validation rule, so each document is checked once (validation is cached)."""

    def enter_string_value(self, node: StringValueNode, *_: Any) -> None:
        reason = text_problem(node.value)
        if reason is not None:
            self.report_error(
                GraphQLError(
                    f"A string of the document {reason}.",
                    node,
                    extensions={"code": ErrorCode.INVALID_TEXT.value},
                )
            )


class CleanVariables(SchemaExtension):
    """Every string among the request's variables holds only text both databases store;
    checked before execution, so a refusal changes nothing."""

    def on_execute(self) -> Iterator[None]:
        reason = variables_problem(self.execution_context.variables or {})
        if reason is not None:
            raise PublicError(reason, code=ErrorCode.INVALID_TEXT)
        yield


def variables_problem(variables: dict[str, Any]) -> str | None:
    """Why a string among the variables cannot be stored, naming where it is, or None.
    Walked without recursion: nesting is bounded where the body is read, not here."""
    waiting: deque[tuple[str, Any]] = deque((f"${name}", v) for name, v in variables.items())
    while waiting:
        path, value = waiting.popleft()
        if isinstance(value, str):
            reason = text_problem(value)
            if reason is not None:
                return f"Variable {path} {reason}."
        elif isinstance(value, dict):
            waiting.extend((f"{path}.{key}", item) for key, item in value.items())
        elif isinstance(value, list):
            waiting.extend((f"{path}.{index}", item) for index, item in enumerate(value))
    return None


def query_search(term: str | None, argument: str = "search") -> str | None:
    """A query's search argument, trimmed (None when empty); one that is too long is a
    top-level TOO_LONG error."""
    problems = Problems()
    cleaned = search_text(problems, [argument], term)
    if problems.items:
        problem = problems.items[0]
        raise PublicError(problem.message, code=problem.code)
    return cleaned
