"""What a GraphQL request's JSON may be: UTF-8 text (GraphQL over HTTP allows no other
encoding), an object (or a list of them, for a batch), nested at most ``MAX_DEPTH`` deep.
Anything else is a 400 with a GraphQL error, never a server fault deep inside the parser
or the executor."""

from __future__ import annotations

import json
from typing import Any

from cross_web import HTTPException

MAX_DEPTH = 64
"""Objects and lists inside one another; a filter nested as deep as allowed needs about
half of it."""


def decode_request_json(data: str | bytes) -> Any:
    """The request's JSON (its body, or the variables of a GET), refused with 400 when it
    is not UTF-8, not JSON, not an object or a list, or nests deeper than ``MAX_DEPTH``."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as error:
            at = error.start
            raise HTTPException(
                400, f"The request body is not UTF-8 text (an invalid byte at offset {at})."
            ) from error
    try:
        decoded = json.loads(data)
    except RecursionError as error:
        raise HTTPException(400, f"The JSON nests deeper than {MAX_DEPTH} levels.") from error
    except ValueError as error:
        # Not JSON at all, or a number of more digits than Python converts (4,300).
        raise HTTPException(400, "Unable to parse request body as JSON") from error
    if not isinstance(decoded, dict | list):
        raise HTTPException(400, "The JSON must be an object (a list of them for a batch).")
    if _depth(decoded) > MAX_DEPTH:
        raise HTTPException(400, f"The JSON nests deeper than {MAX_DEPTH} levels.")
    return decoded


def _depth(value: dict[str, Any] | list[Any]) -> int:
    """How deep objects and lists nest in ``value`` (past ``MAX_DEPTH``, a depth beyond
    it), found without recursion."""
    deepest = 0
    waiting = [(value, 1)]
    while waiting and deepest <= MAX_DEPTH:
        item, depth = waiting.pop()
        deepest = max(deepest, depth)
        children = item.values() if isinstance(item, dict) else item
        waiting.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest
