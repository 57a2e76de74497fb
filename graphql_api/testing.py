"""The testing kit's public names, for ``from graphql_api.testing import ...``.

The fixtures come with installing graphql-api (pytest entry point ``pytest11``); they
and these helpers live in ``graphql_api.plugins.testing``. See docs/plugins.md.
"""

from graphql_api.plugins.testing import (
    GraphQLClient,
    StatementCounter,
    check_role_plugin,
    empty_tables,
    make_user,
    new_contact_ids,
    new_group_id,
)

__all__ = [
    "GraphQLClient",
    "StatementCounter",
    "check_role_plugin",
    "empty_tables",
    "make_user",
    "new_contact_ids",
    "new_group_id",
]
