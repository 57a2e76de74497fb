"""A short-lived, bounded memory of checked API tokens: the hot path of every request.

Why a time bound and not invalidation messages: a token whose check is at most
``ttl`` seconds old is trusted, so a revocation, a deactivation or a role change reaches
every process within ``ttl`` (one second by default) with nothing more to run or to fail:
no listener connection per process that could drop unnoticed, and the same rule on SQLite
and PostgreSQL. Under load nearly every request hits the cache; idle, a request costs one
look-up, as before. The process that makes such a change clears its cache at once.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from graphql_api.kernel.access import Principal
from graphql_api.users.tokens import TokenRefused

Outcome = Principal | TokenRefused


class TokenCache:
    """Outcomes of token checks by token hash, each trusted for ``ttl`` seconds."""

    def __init__(
        self, ttl: float, size: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.size = size
        self.clock = clock
        self._entries: OrderedDict[str, tuple[float, Outcome]] = OrderedDict()

    def get(self, token_hash: str) -> Outcome | None:
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        checked_at, outcome = entry
        if self.clock() - checked_at >= self.ttl:
            del self._entries[token_hash]
            return None
        return outcome

    def put(self, token_hash: str, outcome: Outcome) -> None:
        if self.ttl <= 0:
            return
        self._entries[token_hash] = (self.clock(), outcome)
        self._entries.move_to_end(token_hash)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every outcome: after this process changed who may do what."""
        self._entries.clear()
