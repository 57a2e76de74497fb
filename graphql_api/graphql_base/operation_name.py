"""A document with several operations runs the one ``operationName`` names; without a
name the request is refused with ``OPERATION_NAME_REQUIRED`` (the GraphQL specification's
GetOperation), where Strawberry would quietly run the first."""

from __future__ import annotations

from collections.abc import Iterator

from graphql import OperationDefinitionNode
from strawberry.extensions import SchemaExtension

from graphql_api.graphql_base.errors import PublicError

OPERATION_NAME_REQUIRED = "OPERATION_NAME_REQUIRED"


class OperationNameRequired(SchemaExtension):
    """Refuses, before validation, a document of several operations without a name."""

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        # Strawberry answers ``operation_name`` with the first operation's when none was
        # sent; what the client sent is kept apart.
        sent = context._provided_operation_name
        if document is not None and sent is None:
            operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
            if len(operations) > 1:
                raise PublicError(
                    f"The document has {len(operations)} operations: name the one to run "
                    "with operationName.",
                    code=OPERATION_NAME_REQUIRED,
                )
        yield
