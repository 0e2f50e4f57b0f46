"""Fixtures of the broker service tests."""

from tests.service.broker.broker_harness import harness

__all__ = ["harness"]
