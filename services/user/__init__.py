"""User service: sign-up, login, JWT access and rotating refresh tokens, roles, notification preferences."""
