"""Imports every model so ``Base.metadata`` is complete (Alembic, tests)."""

from graphql_api.contacts.imports.models import ImportMapping, ImportRow, Upload, UploadPart
from graphql_api.contacts.models import Contact
from graphql_api.email_templates.models import EmailTemplate
from graphql_api.groups.export import ExportLink
from graphql_api.groups.models import (
    DerivedMembership,
    Group,
    GroupLink,
    Membership,
    MembershipEvent,
)
from graphql_api.jobs.models import Job, JobItem
from graphql_api.kernel.db import Base
from graphql_api.notifications.models import Delivery, OutboxEvent
from graphql_api.portal.models import LoginThrottle, PortalAccount, PortalEvent, PortalToken
from graphql_api.users.models import ApiToken, AuditEntry, StaffRole, User

__all__ = [
    "ApiToken",
    "AuditEntry",
    "Base",
    "Contact",
    "Delivery",
    "DerivedMembership",
    "EmailTemplate",
    "ExportLink",
    "Group",
    "GroupLink",
    "ImportMapping",
    "ImportRow",
    "Job",
    "JobItem",
    "LoginThrottle",
    "Membership",
    "MembershipEvent",
    "OutboxEvent",
    "PortalAccount",
    "PortalEvent",
    "PortalToken",
    "StaffRole",
    "Upload",
    "UploadPart",
    "User",
]
