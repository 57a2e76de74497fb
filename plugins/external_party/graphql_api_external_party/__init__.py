"""The role 'Is externe partij' (Is external party) for graphql-api:
`externalParties` on Query, `isExternalParty` on Contact.
"""

from graphql_api.plugin import RolePlugin

__version__ = "0.1.0"

plugin = RolePlugin(
    key="external_party",
    labels={"nl": "Is externe partij", "en": "Is external party"},
    description="An outside party (installer, municipality) working in the neighbourhood approach.",
    holders_field="externalParties",
    flag_field="isExternalParty",
)
