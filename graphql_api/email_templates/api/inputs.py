"""GraphQL inputs of e-mail templates."""

from __future__ import annotations

import strawberry


@strawberry.input(description="A new e-mail template.")
class EmailTemplateInput:
    name: str = strawberry.field(description="Unique name, compared case-insensitively.")
    subject: str = strawberry.field(description="Subject line.")
    body: str = strawberry.field(description="Message body.")


@strawberry.input(description="Changes to a template: absent fields stay unchanged.")
class UpdateEmailTemplateInput:
    name: str | None = strawberry.field(default=strawberry.UNSET, description="New name.")
    subject: str | None = strawberry.field(default=strawberry.UNSET, description="New subject.")
    body: str | None = strawberry.field(default=strawberry.UNSET, description="New body.")
