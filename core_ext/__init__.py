"""Compiled option pricing core (issue 4)."""
