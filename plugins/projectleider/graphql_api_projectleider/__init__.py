"""The role 'Is projectleider' (Is project leader) for graphql-api:
`projectLeaders` on Query, `isProjectLeader` on Contact.
"""

from graphql_api.plugin import RolePlugin

__version__ = "0.1.0"

plugin = RolePlugin(
    key="projectleider",
    labels={"nl": "Is projectleider", "en": "Is project leader"},
    description="Leads a project in the neighbourhood approach.",
    holders_field="projectLeaders",
    flag_field="isProjectLeader",
)
