"""Reporting adapters: peers, report writers, archive, identity."""
