"""The role 'Is coach' for graphql-api, and the coaches' Hoomdossier links.

The seed: energy coaches must be in a group whose "Rol in buurtaanpak" is 'Is coach'
before they can be linked to Hoomdossier. So only a coach can be linked, and a contact
who stops being a coach keeps no link.
"""

from graphql_api_coach.plugin import CoachPlugin

__version__ = "0.1.0"

plugin = CoachPlugin()
