"""The composition root of the portal schema: small on purpose, nothing of the staff API."""

from __future__ import annotations

import strawberry
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
)
from strawberry.schema.config import StrawberryConfig

from graphql_api.graphql_base.cost import QueryCostLimiter
from graphql_api.graphql_base.errors import MaskInternalErrors
from graphql_api.graphql_base.operation_name import OperationNameRequired
from graphql_api.graphql_base.text_inputs import CleanStringLiterals, CleanVariables
from graphql_api.portal.api.operations import PortalMutation, PortalQuery
from graphql_api.settings import Settings


@strawberry.type(description="What a contact can read on the portal (klantenportaal).")
class Query(PortalQuery):
    pass


@strawberry.type(description="What a contact can do on the portal; each is one transaction.")
class Mutation(PortalMutation):
    pass


def build_portal_schema(settings: Settings) -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        config=StrawberryConfig(auto_camel_case=True),
        extensions=[
            lambda: QueryDepthLimiter(max_depth=settings.max_query_depth),
            lambda: MaxAliasesLimiter(max_alias_count=settings.max_aliases),
            lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
            lambda: AddValidationRules([CleanStringLiterals]),
            CleanVariables,
            OperationNameRequired,
            lambda: QueryCostLimiter(settings),
            MaskInternalErrors,
        ],
    )
