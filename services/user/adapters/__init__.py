"""Adapters of the user service: PostgreSQL and in-memory storage, argon2id, PyJWT, secrets, code delivery."""
