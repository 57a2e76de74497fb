"""Service settings, read from ``GRAPHQL_API_*`` environment variables."""

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, PositiveFloat, PositiveInt, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError


def _split_commas(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


CommaSeparated = Annotated[list[str], NoDecode, BeforeValidator(_split_commas)]
"""A list setting written as ``a,b,c`` in the environment (plugins use it too)."""

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/graphql_api.sqlite3"
DATABASE_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")
"""The databases the service runs on, each with its async driver."""
ENV_PREFIX = "GRAPHQL_API_"


class Settings(BaseSettings):
    """Everything an operator can configure; every field maps to ``GRAPHQL_API_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    database_direct_url: str | None = None
    """PostgreSQL itself, when ``database_url`` is a transaction-mode pooler (PgBouncer) in
    front of it: the event feed's ``LISTEN`` and ``migrate`` go here, as a pooler that
    hands each transaction another server connection cannot carry them; and the service
    then keeps no prepared statement or scratch table beyond a transaction."""
    host: str = "127.0.0.1"
    port: int = 8000
    forwarded_allow_ips: CommaSeparated = ["127.0.0.1"]
    """Addresses of the reverse proxies whose ``X-Forwarded-For`` and ``X-Forwarded-Proto``
    ``serve`` believes (``*`` for any: only where nothing else can reach the port). The
    portal's login throttle is keyed on the client address this yields; behind a proxy on
    another host, list that host here, or every client shares the proxy's address."""
    dev_mode: bool = False
    """Requests without a token act as the first active admin. Only ``make run`` sets it."""
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"
    """``json``: one JSON object a line, for log collectors (docs/operations.md)."""
    token_cache_seconds: float = 1.0
    """How long a process trusts a checked API token before asking the database again;
    a revocation or deactivation reaches every process within this time (0 = never cache)."""
    timezone: str = "Europe/Amsterdam"
    """Where "today" is decided, for the start and end dates of groups on the portal."""
    portal_session_minutes: int = 30
    """A portal session lapses after this many minutes without a request (sliding)."""
    cors_origins: CommaSeparated = []
    """Browser origins (``https://crm.example.coop``) allowed to call the API; none by default."""
    max_query_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 5000
    max_body_bytes: int = 1_048_576
    """Largest request body; a larger one is refused with 413 before it is read whole."""
    max_upload_bytes: PositiveInt = 52_428_800
    """Largest file an import reads (50 MiB: about 500,000 contacts as CSV)."""
    database_pool_size: PositiveInt = 20
    """Database connections a process keeps open. Fewer than the requests it serves at once
    and it opens and closes a connection for the others, on each of their requests."""
    compiled_reads: Literal["on", "off", "check"] = "on"
    """``on``: a query that ran cleanly once is planned, and answered from then on by one
    SQL statement per level (docs/performance.md); ``off``: every query runs through the
    resolvers; ``check``: both run and must agree (the test suite's mode)."""
    max_query_cost: int = 50_000
    """Queries priced higher are refused before they run (docs/reliability.md, "Query cost")."""
    request_timeout_seconds: PositiveFloat = 30.0
    """A GraphQL request over HTTP still running after this long is stopped and answered
    with ``TIMEOUT``; on PostgreSQL no statement of the service runs longer either."""
    body_read_timeout_seconds: PositiveFloat = 10.0
    """A request body not received whole this long after the request began (nor within
    ``request_timeout_seconds``, which counts the reading too) is answered with 408
    ``BODY_READ_TIMEOUT`` and its connection closed: a client that stalls holds nothing."""
    transaction_attempts: PositiveInt = 3
    """Tries of a mutation that PostgreSQL aborted to break a deadlock or a serialization
    conflict, before it is answered with ``CONFLICT``."""
    max_page_size: int = 100
    default_page_size: int = 20
    plugins: CommaSeparated = []
    """Entry-point names of the plugins to load; empty loads every installed plugin."""
    disable_plugin_autoload: bool = False
    """Load no installed plugins (tests pass theirs to ``create_app``)."""
    strict_plugins: bool = False
    """Refuse to start when a plugin fails to import or register, instead of leaving it out;
    and refuse a plugin hook's write to a core table (core rows are read-only to plugins:
    they change core data through the plugin API's services). The testing kit then also
    compares stored membership with a fresh computation after each test."""
    outbox_retry_base_seconds: float = 5.0
    """First retry after about this long; each next one waits twice as long, with jitter."""
    outbox_max_attempts: int = 8
    """Attempts before a delivery is DEAD (admins can retry it)."""
    outbox_handler_timeout_seconds: float = 30.0
    outbox_lease_seconds: float = 120.0
    """How long a worker holds a delivery; a crashed worker's deliveries are taken over after."""
    outbox_poll_seconds: float = 1.0
    feed_poll_seconds: float = 2.0
    """How often a subscription looks for events when nothing told it of any: commits of
    other processes on SQLite, or while PostgreSQL's notifications are being reconnected."""
    max_subscriptions_per_connection: PositiveInt = 20
    """Subscriptions one WebSocket connection runs at once; another ``subscribe`` is
    answered with an ``error`` message, code ``LIMIT_EXCEEDED``, and the connection stays."""
    max_subscriptions_per_principal: PositiveInt = 100
    """Subscriptions one user runs at once on all their connections to one process; another
    is refused the same way."""
    shutdown_seconds: PositiveFloat = 10.0
    """After SIGTERM (or SIGINT), ``serve`` closes its WebSocket connections with 1001, lets
    running requests finish, and has ended within this time, whatever is still running."""
    outbox_batch_size: int = 50
    outbox_retention_days: int = 30
    """Delivered and skipped deliveries older than this are purged."""
    outbox_in_process_worker: bool = True
    """``graphql-api serve`` delivers and runs bulk jobs too; turn off when ``graphql-api
    worker`` runs apart."""
    max_ids_per_call: int = 10_000
    """Upper bound on the ids one mutation call may name (bulk adds and removes); a longer
    list is named instead (``from: {groupId}`` or ``from: {filter}``), of any length."""
    job_lease_seconds: PositiveFloat = 60.0
    """How long a worker holds a job between two chunks; a job whose worker died is taken
    up by another this long after its last chunk."""
    bulk_inline_limit: PositiveInt = 10_000
    """Contacts a bulk add or remove changes inside the request; a longer list becomes a
    job. 10,000 under 50 composites take 8 to 9 s on M and L (``bench/RESULTS-writes.md``),
    well inside the request's 30 s."""
    job_chunk_size: PositiveInt = 10_000
    """Items a bulk job handles in one transaction (a chunk), progress included: as many as
    one request changes at most, so a chunk costs what such a request does. Larger chunks
    take fewer transactions (100,000 contacts on L: 106 s in chunks of 10,000, 190 s in
    chunks of 2,000); smaller ones show progress sooner and lock for less."""
    trusted_documents: Annotated[Path | None, BeforeValidator(lambda value: value or None)] = None
    """A manifest of trusted documents (``{"<id>": "<document>"}``, as Relay and GraphQL Code
    Generator write it): requests may name one by ``documentId`` (docs/http.md)."""
    trusted_documents_only: bool = False
    """Run the manifest's documents only: any other ``query`` is refused before it is parsed."""

    @field_validator("database_url")
    @classmethod
    def _usable(cls, url: str) -> str:
        try:
            driver = make_url(url).drivername
        except ArgumentError:
            driver = None
        if driver not in DATABASE_DRIVERS:
            raise ValueError(
                "not a database URL the service can use; write e.g. "
                "sqlite+aiosqlite:///./data/graphql_api.sqlite3 or "
                "postgresql+asyncpg://user@host/database"
            )
        return url

    @field_validator("database_direct_url")
    @classmethod
    def _postgresql_behind_a_pooler(cls, url: str | None, info: ValidationInfo) -> str | None:
        if url is None:
            return None
        pooled = info.data.get("database_url", "")
        if not (url.startswith("postgresql+asyncpg") and pooled.startswith("postgresql+asyncpg")):
            raise ValueError(
                "only for PostgreSQL behind a pooler: both it and "
                f"{ENV_PREFIX}DATABASE_URL must be postgresql+asyncpg://... URLs"
            )
        return url

    @property
    def transaction_pooled(self) -> bool:
        """Whether ``database_url`` is a transaction-mode pooler (``database_direct_url``)."""
        return self.database_direct_url is not None

    @property
    def direct_url(self) -> str:
        """The database itself: for ``LISTEN`` and migrations."""
        return self.database_direct_url or self.database_url

    @field_validator("trusted_documents_only")
    @classmethod
    def _with_a_manifest(cls, only: bool, info: ValidationInfo) -> bool:
        if only and info.data.get("trusted_documents") is None:
            raise ValueError(
                f"true needs {ENV_PREFIX}TRUSTED_DOCUMENTS, the manifest of the documents to run"
            )
        return only
