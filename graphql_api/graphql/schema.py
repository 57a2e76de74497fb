"""The schema: every feature's queries and mutations, with the request limits."""

from __future__ import annotations

from typing import Annotated

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from graphql_api.contacts.models import Contact as ContactModel
from graphql_api.contacts.schema import ContactMutations, ContactQueries
from graphql_api.db import Base
from graphql_api.email_templates.models import EmailTemplate as EmailTemplateModel
from graphql_api.email_templates.schema import EmailTemplateMutations, EmailTemplateQueries
from graphql_api.graphql.context import Info
from graphql_api.graphql.errors import MaskInternalErrors, log_internal_errors
from graphql_api.graphql.relay import Node, parse_global_id
from graphql_api.groups.models import Group as GroupModel
from graphql_api.groups.models import MembershipEvent as MembershipEventModel
from graphql_api.groups.schema import GroupMutations, GroupQueries
from graphql_api.repository import load_by_id
from graphql_api.roles.schema import RoleQueries
from graphql_api.settings import Settings
from graphql_api.users.models import User as UserModel
from graphql_api.users.schema import UserQueries

NODE_MODELS: dict[str, type[Base]] = {
    "Group": GroupModel,
    "Contact": ContactModel,
    "User": UserModel,
    "EmailTemplate": EmailTemplateModel,
    "MembershipEvent": MembershipEventModel,
}


@strawberry.type(description="Everything that can be read.")
class Query(GroupQueries, ContactQueries, UserQueries, EmailTemplateQueries, RoleQueries):
    @strawberry.field(description="Any object by its global id; null when it does not exist.")
    async def node(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="A global id.")],
    ) -> Node | None:
        parsed = parse_global_id(id)
        if parsed is None or parsed[0] not in NODE_MODELS:
            return None
        type_name, pk = parsed
        return await info.context.loader(load_by_id(NODE_MODELS[type_name])).load(pk)


@strawberry.type(description="Every change; each mutation is one transaction.")
class Mutation(GroupMutations, ContactMutations, EmailTemplateMutations):
    pass


class Schema(strawberry.Schema):
    """Strawberry's schema, logging only server faults (it would log every client error)."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        log_internal_errors(errors)


def build_schema(settings: Settings) -> strawberry.Schema:
    """The schema with limits on query depth, aliases and tokens from ``settings``."""
    # The rules are made once: the validation cache is keyed by them, so rules made
    # afresh for every request would make every request miss it.
    limits = [
        *QueryDepthLimiter(max_depth=settings.max_query_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=settings.max_aliases).validation_rules,
    ]
    return Schema(
        query=Query,
        mutation=Mutation,
        config=StrawberryConfig(auto_camel_case=True),
        extensions=[
            lambda: AddValidationRules(limits),
            lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
            MaskInternalErrors,
            # Clients send the same documents again and again; parse and check each once.
            lambda: ParserCache(maxsize=1000),
            lambda: ValidationCache(maxsize=1000),
        ],
    )
