"""Fixtures for the broker's integration tests: the fake Tastytrade API and connectors pointed at it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from services.broker.adapters.tastytrade.connector import TastytradeConnector, TastytradeSettings
from services.broker.adapters.tastytrade.http import RetryPolicy
from services.broker.domain.model import Environment
from tests.fakes.tastytrade_api import FakeTastytrade, SharedTime


@pytest.fixture
def shared_time() -> SharedTime:
    return SharedTime()


@pytest.fixture
async def fake(shared_time: SharedTime) -> AsyncIterator[FakeTastytrade]:
    async with FakeTastytrade(clock=shared_time.epoch) as server:
        yield server


@pytest.fixture
async def sandbox_fake(shared_time: SharedTime) -> AsyncIterator[FakeTastytrade]:
    async with FakeTastytrade(clock=shared_time.epoch, sandbox=True) as server:
        yield server


FAST_RETRY = RetryPolicy(max_attempts=4, initial_backoff=0.01, max_backoff=0.05, jitter=0.01, max_elapsed=5.0)


@pytest.fixture
async def make_connector(shared_time: SharedTime) -> AsyncIterator[Callable[..., TastytradeConnector]]:
    made: list[TastytradeConnector] = []

    def make(server: FakeTastytrade, environment: Environment = Environment.PRODUCTION, **overrides: Any) -> TastytradeConnector:
        values: dict[str, Any] = {
            "environment": environment,
            "client_secret": server.client_secret,
            "client_id": server.client_id,
            "base_url": server.url,
            "retry": FAST_RETRY,
            "timeout": 2.0,
            "budget_rate": 1000.0,
            "budget_burst": 1000.0,
            "rate_limit_penalty": 0.0,
        }
        values.update(overrides)
        connector = TastytradeConnector(TastytradeSettings(**values), monotonic=shared_time.monotonic, sleep=asyncio.sleep)
        made.append(connector)
        return connector

    yield make
    for connector in made:
        await connector.aclose()
