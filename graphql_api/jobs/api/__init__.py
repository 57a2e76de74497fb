"""The GraphQL layer of jobs: the Job type, its queries, cancelJob and jobChanged."""
