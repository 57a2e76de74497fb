"""The notification outbox: events written with each change, delivered by a worker."""
