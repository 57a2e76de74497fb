"""Staff users and their API tokens."""
