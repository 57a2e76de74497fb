"""Bulk jobs (taken): changes too large for one request, run in chunks by the workers.

The machinery is generic over kinds of jobs; the composition root registers each kind
(``JobKind``) with what it needs and does. Domain: ``models``, ``service`` (start, cancel,
read), ``runner`` (the workers' side); GraphQL: ``api/``.
"""

from graphql_api.jobs.kinds import JobKind, JobKinds

__all__ = ["JobKind", "JobKinds"]
