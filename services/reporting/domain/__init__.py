"""Reporting domain: transaction analysis and report tables (no I/O)."""
