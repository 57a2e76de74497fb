"""Everything a plugin uses, from one import: ``from graphql_api.plugin import ...``.

This module is the plugin API (version ``API_VERSION``); docs/plugins.md has a reference
entry for each name below. Plugins import nothing else from graphql_api (tests import
the testing kit, ``graphql_api.testing``), so the core can move its insides freely.
"""

from graphql_api.contacts.api.types import Contact as ContactType
from graphql_api.contacts.models import Contact
from graphql_api.email_templates.merging import (
    MergeField,
    check_template,
    merge_sample,
    merge_values,
)
from graphql_api.email_templates.models import EmailTemplate, MailOptOut, OptOutSource
from graphql_api.email_templates.opt_outs import (
    opted_out,
    record_opt_out,
    record_opt_outs,
    withdraw_opt_out,
    withdraw_opt_outs,
)
from graphql_api.email_templates.rendering import Rendered, TemplateProblem, render, render_many
from graphql_api.graphql_base.access import guarded_field, needing, needs
from graphql_api.graphql_base.compiled import PluginColumn, SqlValue, compiled
from graphql_api.graphql_base.context import Info
from graphql_api.graphql_base.errors import PublicError, UserError
from graphql_api.graphql_base.mutations import ErrorPaths, given_fields, run_mutation
from graphql_api.graphql_base.relay import (
    After,
    Connection,
    First,
    Node,
    decode_id,
    decode_ids,
    global_id_field,
    paginate,
    query_id,
    rows_of,
    to_global_id,
)
from graphql_api.groups.api.types import Group as GroupType
from graphql_api.groups.changes import (
    Change,
    ContactErased,
    ContactsUpdated,
    GroupCreated,
    GroupDeleted,
    GroupSnapshot,
    GroupUpdated,
    MailOptOutChanged,
    MembersAdded,
    MembersRemoved,
)
from graphql_api.groups.derived import contacts_changed as _contacts_changed
from graphql_api.groups.filters import OPERATORS, FieldType, FilterField, FilterOp
from graphql_api.groups.membership_reads import groups_containing, member_ids
from graphql_api.groups.models import Group, GroupKind, Membership, MembershipSource
from graphql_api.jobs.api.types import Job as JobType
from graphql_api.jobs.kinds import JobKind
from graphql_api.jobs.models import Job, JobItem, JobState
from graphql_api.jobs.schedules import ScheduledJob
from graphql_api.jobs.service import start_job
from graphql_api.kernel.access import SYSTEM, Forbidden, Principal, requires
from graphql_api.kernel.db import NAMING_CONVENTION, UtcDateTime, utcnow
from graphql_api.kernel.errors import ErrorCode, Problem, Problems, UserInputError
from graphql_api.kernel.hooks import hookimpl
from graphql_api.kernel.pagination import Ordering
from graphql_api.kernel.repository import load_by_id
from graphql_api.kernel.sql import SqlText
from graphql_api.kernel.validation import clean_email, clean_text, name_key
from graphql_api.notifications.outbox import Event, SkipDelivery
from graphql_api.plugin_host.hookspecs import API_VERSION, EVENT_TYPES
from graphql_api.plugin_host.routes import plugin_transaction
from graphql_api.plugin_host.strict import CoreWriteRefused, core_service
from graphql_api.roles.api.kit import RolePlugin, holder_ids
from graphql_api.roles.registry import RoleDefinition
from graphql_api.settings import CommaSeparated
from graphql_api.users.models import User

contacts_changed = core_service(_contacts_changed)
"""``groups.derived.contacts_changed``, which writes core rows on the plugin's behalf: in
strict mode it may be called from a watched hook (``apply_change``, ``deliver``)."""

__all__ = [
    "API_VERSION",
    "EVENT_TYPES",
    "NAMING_CONVENTION",
    "OPERATORS",
    "SYSTEM",
    "After",
    "Change",
    "CommaSeparated",
    "Connection",
    "Contact",
    "ContactErased",
    "ContactType",
    "ContactsUpdated",
    "CoreWriteRefused",
    "EmailTemplate",
    "ErrorCode",
    "ErrorPaths",
    "Event",
    "FieldType",
    "FilterField",
    "FilterOp",
    "First",
    "Forbidden",
    "Group",
    "GroupCreated",
    "GroupDeleted",
    "GroupKind",
    "GroupSnapshot",
    "GroupType",
    "GroupUpdated",
    "Info",
    "Job",
    "JobItem",
    "JobKind",
    "JobState",
    "JobType",
    "MailOptOut",
    "MailOptOutChanged",
    "MembersAdded",
    "MembersRemoved",
    "Membership",
    "MembershipSource",
    "MergeField",
    "Node",
    "OptOutSource",
    "Ordering",
    "PluginColumn",
    "Principal",
    "Problem",
    "Problems",
    "PublicError",
    "Rendered",
    "RoleDefinition",
    "RolePlugin",
    "ScheduledJob",
    "SkipDelivery",
    "SqlText",
    "SqlValue",
    "TemplateProblem",
    "User",
    "UserError",
    "UserInputError",
    "UtcDateTime",
    "check_template",
    "clean_email",
    "clean_text",
    "compiled",
    "contacts_changed",
    "decode_id",
    "decode_ids",
    "given_fields",
    "global_id_field",
    "groups_containing",
    "guarded_field",
    "holder_ids",
    "hookimpl",
    "load_by_id",
    "member_ids",
    "merge_sample",
    "merge_values",
    "name_key",
    "needing",
    "needs",
    "opted_out",
    "paginate",
    "plugin_transaction",
    "query_id",
    "record_opt_out",
    "record_opt_outs",
    "render",
    "render_many",
    "requires",
    "rows_of",
    "run_mutation",
    "start_job",
    "to_global_id",
    "utcnow",
    "withdraw_opt_out",
    "withdraw_opt_outs",
]
