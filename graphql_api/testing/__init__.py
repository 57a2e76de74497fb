"""The testing kit for plugin authors (and the core's own tests), loaded by pytest itself
through the ``pytest11`` entry point once graphql-api is installed. Every helper the tests
share lives here, so that the core's tests and the plugins' tests set up data one way.
Import everything from ``graphql_api.testing``; its modules are where each part is written.

Fixtures (``fixtures``; ``server`` and ``server_env`` in ``servers``):

- ``database_url``: a migrated, empty database for the session, on SQLite and, when
  ``GRAPHQL_API_TEST_DATABASE_URL`` is set, on PostgreSQL too (its own fresh database);
- ``app``: the application with the installed plugins; ``app_factory(plugins=[...])`` one
  with exactly the given plugins; every test starts from empty tables; in strict mode
  (below) they check stored membership after each test;
- ``admin``, ``client``: a user with a token, and a GraphQL client acting as that user;
  ``make_user(app, name, email)`` and ``GraphQLClient(http, token)`` for other users,
  ``portal_client(client, contact_id)`` for a contact's portal session (``clients``);
- ``statements``: counts the SQL statements the app sends (a ``StatementCounter``);
- ``engine``, ``sessions``: the test database without an application, for domain tests;
- ``server``: a real ``graphql-api serve`` on the test database, with the demo data and a
  user's token, one per test module; ``server_env`` the environment its commands run with,
  for more of them (``cli(server_env, "create-user", ...)``). ``serving(env)`` serves any
  environment (``log=`` a file for its log); ``subscribed(url, token, query, variables)``
  a WebSocket that has sent a subscription to one; ``debian_program(program, package)`` a
  Debian program a test drives (skipped without it, failed in CI). For TLS,
  ``graphql_api.testing.certificates.make_certificates(folder)`` makes a CA and a server
  certificate it signed (imported on its own: it needs ``cryptography``).

Documents, for the tests that look at the answer themselves (``factories``):
``CREATE_GROUP``, ``UPDATE_GROUP`` and ``DELETE_GROUP`` (groups answered with
``GROUP_FIELDS``), ``GROUP_COUNT``, ``GROUP_MEMBERS``, ``GROUP_USED_BY``, ``MEMBERSHIP_PATH``,
``ADD_MEMBERS``, ``REMOVE_MEMBERS``, ``CREATE_CONTACT``, ``UPDATE_CONTACT``,
``CREATE_EMAIL_TEMPLATE``.

Setting up data through the API, each call required to succeed (``factories``):
``new_group``, ``new_group_id``, ``new_static_group_id``, ``new_contact_id``,
``new_contact_ids``, ``new_template_id``, ``add_members``, ``remove_members``,
``member_names``; ``first_user_id`` for a ``responsibleId``. Checking (``checks``):
``database_rows(app)`` (every committed row of every table, to compare), ``unchanged(app)``
(a block that must change no row), ``refused(app, client, mutation, variables)`` (a mutation
refused, no row changed), ``check_role_plugin``, ``undescribed(app.state.schema)`` (schema
parts without a description), ``membership_differences(app)`` (stored membership against
a fresh computation, as ``check-membership``). ``deliver_all(app)`` delivers what the
outbox holds; ``make_worker(app)`` gives a worker to run by hand. ``run_jobs(app)`` runs
every due bulk job to its end; ``make_job_runner(app, job_chunk_size=2)`` gives a job
runner to run by hand (``claim``, then ``step`` for one chunk at a time);
``run_schedules(app, at)`` starts the plugins' scheduled jobs due at ``at``;
``wait_for_job(app, job_id, done, seconds)`` waits for a job another process runs.

Strict mode, in the pytest configuration: ``graphql_api_strict_plugins = true`` makes the
applications ``app_factory`` builds strict (a plugin's write to a core table is refused);
``graphql_api_check_membership = true``, or a strict application, fails a test that
passed but left stored membership different from a fresh computation (at its teardown,
the differences listed). ``@pytest.mark.unchecked_membership`` exempts a test that leaves
it stale on purpose.

The fixtures are async: set ``asyncio_mode = "auto"`` in your pytest configuration.
``GRAPHQL_API_TEST_DATABASE_PREFIX`` names the PostgreSQL test databases. ``BACKENDS``
parametrizes a fixture of your own over the same databases; ``create_postgresql_database``
and ``drop_postgresql_database`` make and drop more of them."""

# pytest finds the fixtures as attributes of this module, the plugin.
from graphql_api.testing.checks import (
    check_role_plugin,
    database_rows,
    deliver_all,
    job_row,
    make_job_runner,
    make_worker,
    membership_differences,
    refused,
    run_jobs,
    run_schedules,
    unchanged,
    undescribed,
    wait_for_job,
)
from graphql_api.testing.clients import (
    PORTAL_PASSWORD,
    GraphQLClient,
    StatementCounter,
    admin_client,
    make_user,
    portal_client,
)
from graphql_api.testing.factories import (
    ADD_MEMBERS,
    CREATE_CONTACT,
    CREATE_EMAIL_TEMPLATE,
    CREATE_GROUP,
    DELETE_GROUP,
    GROUP_COUNT,
    GROUP_FIELDS,
    GROUP_MEMBERS,
    GROUP_USED_BY,
    MEMBERSHIP_PATH,
    REMOVE_MEMBERS,
    UPDATE_CONTACT,
    UPDATE_GROUP,
    add_members,
    first_user_id,
    member_names,
    new_contact_id,
    new_contact_ids,
    new_group,
    new_group_id,
    new_static_group_id,
    new_template_id,
    remove_members,
)
from graphql_api.testing.fixtures import (
    BACKENDS,
    CHECK_MEMBERSHIP,
    DATABASE_PREFIX,
    POSTGRES_URL,
    STRICT_PLUGINS,
    UNCHECKED_MEMBERSHIP,
    admin,
    app,
    app_factory,
    client,
    create_postgresql_database,
    database_url,
    drop_postgresql_database,
    empty_tables,
    engine,
    http,
    sessions,
    statements,
)

# The kit's pytest hooks (its ini options, its marker, the membership check after a test)
# and a fixture ``server`` needs (last): pytest finds them here too; not part of the kit.
from graphql_api.testing.fixtures import pytest_addoption as pytest_addoption
from graphql_api.testing.fixtures import pytest_configure as pytest_configure
from graphql_api.testing.fixtures import pytest_runtest_makereport as pytest_runtest_makereport
from graphql_api.testing.fixtures import pytest_runtest_teardown as pytest_runtest_teardown
from graphql_api.testing.servers import (
    CLI,
    cli,
    debian_program,
    free_port,
    new_token,
    server,
    server_env,
    serving,
    subscribed,
)
from graphql_api.testing.servers import _emptied_after_module as _emptied_after_module

__all__ = [
    "ADD_MEMBERS",
    "BACKENDS",
    "CHECK_MEMBERSHIP",
    "CLI",
    "CREATE_CONTACT",
    "CREATE_EMAIL_TEMPLATE",
    "CREATE_GROUP",
    "DATABASE_PREFIX",
    "DELETE_GROUP",
    "GROUP_COUNT",
    "GROUP_FIELDS",
    "GROUP_MEMBERS",
    "GROUP_USED_BY",
    "MEMBERSHIP_PATH",
    "PORTAL_PASSWORD",
    "POSTGRES_URL",
    "REMOVE_MEMBERS",
    "STRICT_PLUGINS",
    "UNCHECKED_MEMBERSHIP",
    "UPDATE_CONTACT",
    "UPDATE_GROUP",
    "GraphQLClient",
    "StatementCounter",
    "add_members",
    "admin",
    "admin_client",
    "app",
    "app_factory",
    "check_role_plugin",
    "cli",
    "client",
    "create_postgresql_database",
    "database_rows",
    "database_url",
    "debian_program",
    "deliver_all",
    "drop_postgresql_database",
    "empty_tables",
    "engine",
    "first_user_id",
    "free_port",
    "http",
    "job_row",
    "make_job_runner",
    "make_user",
    "make_worker",
    "member_names",
    "membership_differences",
    "new_contact_id",
    "new_contact_ids",
    "new_group",
    "new_group_id",
    "new_static_group_id",
    "new_template_id",
    "new_token",
    "portal_client",
    "refused",
    "remove_members",
    "run_jobs",
    "run_schedules",
    "server",
    "server_env",
    "serving",
    "sessions",
    "statements",
    "subscribed",
    "unchanged",
    "undescribed",
    "wait_for_job",
]
