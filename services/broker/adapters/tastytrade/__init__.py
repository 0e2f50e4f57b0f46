"""Async client for the Tastytrade Open API (OAuth2, envelope, pagination, resilience)."""
