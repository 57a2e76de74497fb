"""Relay conventions: opaque global ids, the ``Node`` interface and connections."""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, Generic, TypeVar

import strawberry
from sqlalchemy import Select, func, select

from graphql_api.graphql_base.context import Info
from graphql_api.graphql_base.cost import LOADED_WITH_PARENT, PAGE_OF_CONNECTION, priced
from graphql_api.graphql_base.errors import INVALID_CURSOR, PublicError
from graphql_api.kernel.errors import ErrorCode, Problem, UserInputError
from graphql_api.kernel.pagination import InvalidCursor, Ordering, Page, encode_cursor, fetch_page
from graphql_api.kernel.validation import MAX_ID

NodeT = TypeVar("NodeT")
MAX_REPORTED_PROBLEMS = 20


MAX_ID_LENGTH = 200
GLOBAL_IDS_KEPT = 65_536
"""Encoded global ids a process keeps (some megabytes)."""
GLOBAL_ID = "relay.global_id"
"""Key of ``global_id_field``'s metadata: the type name its id is encoded with."""


@functools.lru_cache(maxsize=GLOBAL_IDS_KEPT)
def to_global_id(type_name: str, pk: int) -> strawberry.ID:
    # Kept: a page of 100 rows encodes 100 ids, and the same rows are asked for again.
    return strawberry.ID(base64.urlsafe_b64encode(f"{type_name}:{pk}".encode()).decode())


def parse_global_id(global_id: str) -> tuple[str, int] | None:
    """``(type name, primary key)``, or None when the id is not exactly as this API writes
    it: the key ASCII digits without leading zeros and within the id columns' range, the
    base64 padded as ``to_global_id`` pads it (so one object has one id)."""
    if len(global_id) > MAX_ID_LENGTH or not global_id.isascii():
        return None
    try:
        plain = base64.urlsafe_b64decode(global_id.encode()).decode("ascii")
    except (binascii.Error, ValueError):
        return None
    type_name, _, digits = plain.partition(":")
    if not digits.isdigit() or len(digits) > len(str(MAX_ID)) or int(digits) > MAX_ID:
        return None
    pk = int(digits)
    if not type_name or to_global_id(type_name, pk) != global_id:
        return None
    return type_name, pk


def _decode(global_id: str, type_name: str, path: tuple[str, ...]) -> int | Problem:
    parsed = parse_global_id(global_id)
    if parsed is None or parsed[0] != type_name:
        return Problem(path, ErrorCode.INVALID_ID, f"This is not a {type_name} id.")
    return parsed[1]


def decode_ids(global_ids: Sequence[str], type_name: str, field: Sequence[str]) -> list[int]:
    """Primary keys of a list of ``type_name`` ids; each malformed one is an INVALID_ID."""
    results = [_decode(gid, type_name, (*field, str(i))) for i, gid in enumerate(global_ids)]
    problems = [result for result in results if isinstance(result, Problem)]
    if problems:
        raise UserInputError(problems[:MAX_REPORTED_PROBLEMS])
    return [result for result in results if isinstance(result, int)]


def decode_id(global_id: str, type_name: str, field: Sequence[str]) -> int:
    """The primary key of one ``type_name`` id, or an INVALID_ID problem at ``field``."""
    result = _decode(global_id, type_name, tuple(field))
    if isinstance(result, Problem):
        raise UserInputError([result])
    return result


def query_id(global_id: str, type_name: str) -> int:
    """For query arguments: a malformed id is a top-level error, not a payload error."""
    parsed = parse_global_id(global_id)
    if parsed is None or parsed[0] != type_name:
        raise PublicError(f"This is not a {type_name} id.", code=ErrorCode.INVALID_ID)
    return parsed[1]


@strawberry.interface(description="An object with a global id, fetchable with `node(id:)`.")
class Node:
    id: strawberry.ID = strawberry.field(description="Opaque global id.")


First = Annotated[int | None, strawberry.argument(description="Page size.")]
"""The ``first`` argument of every connection field."""
After = Annotated[str | None, strawberry.argument(description="Cursor of the row to start after.")]
"""The ``after`` argument of every connection field."""


def global_id_field(type_name: str) -> Any:
    """The ``id`` field of a type whose objects are rows with an integer ``id``."""

    def resolve(root: strawberry.Parent[Any]) -> strawberry.ID:
        return to_global_id(type_name, root.id)

    return strawberry.field(
        resolver=resolve, description="Opaque global id.", metadata={GLOBAL_ID: type_name}
    )


def rows_of(model: type) -> Any:
    """``is_type_of`` for a type whose resolvers return ``model`` rows (for ``node`` and lists)."""

    def is_type_of(cls: type, obj: object, _info: object) -> bool:
        return isinstance(obj, (cls, model))

    return classmethod(is_type_of)


@strawberry.type(description="Where a page sits in its list.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="Whether rows follow this page.")
    has_previous_page: bool = strawberry.field(description="Whether rows precede this page.")
    start_cursor: str | None = strawberry.field(description="Cursor of the first row.")
    end_cursor: str | None = strawberry.field(
        description="Cursor of the last row: pass it as `after` for the next page."
    )


@strawberry.type(description="One row of a page, with its cursor.")
class Edge(Generic[NodeT]):
    node: NodeT = strawberry.field(description="The row.", metadata=LOADED_WITH_PARENT)
    key: strawberry.Private[tuple[Any, ...]]

    @strawberry.field(description="Opaque position of this row.")
    def cursor(self) -> str:
        # Made only when asked for: most clients read the page's endCursor alone.
        return encode_cursor(self.key)


@strawberry.type(description="A page of a list that can be long, with cursor pagination.")
class Connection(Generic[NodeT]):
    edges: list[Edge[NodeT]] = strawberry.field(
        description="The rows with their cursors.", metadata=PAGE_OF_CONNECTION
    )
    page_info: PageInfo = strawberry.field(description="Paging state.", metadata=LOADED_WITH_PARENT)
    count_total: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(
        description="The rows of this page, without cursors.", metadata=PAGE_OF_CONNECTION
    )
    def nodes(self) -> list[NodeT]:
        return [edge.node for edge in self.edges]

    @strawberry.field(
        description="Number of rows in the whole list; costs one count query.", metadata=priced(1)
    )
    async def total_count(self) -> int:
        return await self.count_total()

    @classmethod
    def from_page(cls, page: Page[Any], count_total: Callable[[], Awaitable[int]]) -> Any:
        return cls(
            edges=[Edge(node=row, key=key) for row, key in zip(page.rows, page.keys, strict=True)],
            page_info=PageInfo(
                has_next_page=page.has_next_page,
                has_previous_page=page.has_previous_page,
                start_cursor=encode_cursor(page.keys[0]) if page.keys else None,
                end_cursor=encode_cursor(page.keys[-1]) if page.keys else None,
            ),
            count_total=count_total,
        )


def page_size(first: int | None, default: int, maximum: int) -> int:
    """The number of rows to return; out-of-range values are refused, not clamped."""
    if first is None:
        return default
    if first < 0 or first > maximum:
        raise PublicError(f"first must be between 0 and {maximum}.", code="BAD_USER_INPUT")
    return first


async def paginate(
    info: Info,
    query: Select[Any],
    ordering: Ordering,
    *,
    first: int | None,
    after: str | None,
    key_of: Callable[[Any], Sequence[Any]],
) -> Any:
    """One page of ``query`` as a connection; ``totalCount`` is counted only when asked for."""
    settings = info.context.settings
    size = page_size(first, settings.default_page_size, settings.max_page_size)
    try:
        page = await info.context.db.run(
            lambda session: fetch_page(
                session, query, ordering, first=size, after=after, key_of=key_of
            )
        )
    except InvalidCursor as error:
        raise PublicError(f"Invalid cursor: {error}.", code=INVALID_CURSOR) from error

    async def count_total() -> int:
        counting = select(func.count()).select_from(query.order_by(None).subquery())
        return await info.context.db.run(lambda session: session.scalar(counting))

    return Connection.from_page(page, count_total)
