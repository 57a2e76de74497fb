"""The ``locale`` argument of every ``label`` field, so each reads alike."""

from __future__ import annotations

from typing import Annotated

import strawberry

from graphql_api.kernel.labels import DEFAULT_LOCALE

Locale = Annotated[
    str | None, strawberry.argument(description=f"`{DEFAULT_LOCALE}` (default) or `en`.")
]
"""Pass ``DEFAULT_LOCALE`` as its default."""
