"""The user service's domain: users, roles, credentials, sessions and notification preferences (no I/O)."""
