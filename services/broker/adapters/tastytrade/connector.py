"""The Tastytrade connector: one per environment, owning the host's pool, breaker, budget and caches."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from services.broker.adapters.resilience import CircuitBreaker, RequestBudget
from services.broker.adapters.tastytrade.http import (
    API_VERSION,
    PRODUCTION_URL,
    SANDBOX_URL,
    RetryPolicy,
    TastytradeHttp,
)
from services.broker.adapters.tastytrade.session import MetricsCache, TastytradeSession
from services.broker.domain.model import BreakerSnapshot, Credential, Environment


@dataclass(frozen=True)
class TastytradeSettings:
    """How to reach one Tastytrade environment.

    Attributes:
        environment: PRODUCTION or SANDBOX.
        client_secret: The OAuth client (provider) secret; redacted in repr.
        client_id: The OAuth client id, sent with refreshes when set.
        base_url: Override of the environment's host (tests point it at the fake).
        user_agent: ``<product>/<version>``.
        timeout: Seconds per HTTP attempt.
        retry: Retry policy for 429, 5xx and timeouts.
        failure_threshold: Consecutive failures that open the circuit.
        reset_timeout: Seconds the circuit stays open before a probe.
        budget_rate: Sustained requests per second to the host, all users together.
        budget_burst: Requests allowed in a burst.
        budget_max_wait: Longest a request waits for budget before failing with BROKER_RATE_LIMITED.
        rate_limit_penalty: Seconds every request pauses after a 429.
        refresh_margin: Renew access tokens this many seconds before they expire.
        per_page: Page size for paginated endpoints.
        include_marks: Ask for marks on positions.
        metrics_ttl: Seconds market metrics are cached.
        rate_ttl: Seconds the risk-free rate is cached.
    """

    environment: Environment
    client_secret: str = field(repr=False)
    client_id: str | None = None
    base_url: str | None = None
    user_agent: str = "tastyplat/0.1.0"
    timeout: float = 10.0
    retry: RetryPolicy = RetryPolicy()
    failure_threshold: int = 5
    reset_timeout: float = 30.0
    budget_rate: float = 10.0
    budget_burst: float = 20.0
    budget_max_wait: float = 2.0
    rate_limit_penalty: float = 2.0
    refresh_margin: float = 60.0
    per_page: int = 250
    include_marks: bool = False
    metrics_ttl: float = 300.0
    rate_ttl: float = 3600.0

    def __post_init__(self) -> None:
        if self.environment not in (Environment.PRODUCTION, Environment.SANDBOX):
            raise ValueError("a Tastytrade connector reaches production or sandbox only")
        if not self.client_secret:
            raise ValueError("the Tastytrade client secret is required")

    @property
    def url(self) -> str:
        """The base URL in use."""
        if self.base_url:
            return self.base_url
        return PRODUCTION_URL if self.environment is Environment.PRODUCTION else SANDBOX_URL

    @property
    def api_version(self) -> str | None:
        """``Accept-Version`` for production; the sandbox does not accept the header."""
        return API_VERSION if self.environment is Environment.PRODUCTION else None


class TastytradeConnector:
    """BrokerConnector for a Tastytrade environment.

    Args:
        settings: The environment's settings.
        monotonic: Monotonic clock (breaker, budget, token expiry, caches).
        sleep: Awaitable sleep (retry backoff and budget waits).
        transport: An httpx transport for tests.
    """

    def __init__(
        self,
        settings: TastytradeSettings,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = settings
        self._monotonic = monotonic
        self.breaker = CircuitBreaker(
            failure_threshold=settings.failure_threshold,
            reset_timeout=settings.reset_timeout,
            monotonic=monotonic,
            name=f"Tastytrade {settings.environment.value}",
        )
        self.budget = RequestBudget(
            rate=settings.budget_rate,
            capacity=settings.budget_burst,
            max_wait=settings.budget_max_wait,
            penalty=settings.rate_limit_penalty,
            monotonic=monotonic,
            sleep=sleep,
        )
        self.http = TastytradeHttp(
            base_url=settings.url,
            user_agent=settings.user_agent,
            api_version=settings.api_version,
            timeout=settings.timeout,
            retry=settings.retry,
            breaker=self.breaker,
            budget=self.budget,
            sleep=sleep,
            transport=transport,
        )
        self._cache = MetricsCache(monotonic=monotonic, metrics_ttl=settings.metrics_ttl, rate_ttl=settings.rate_ttl)

    @property
    def environment(self) -> Environment:
        """PRODUCTION or SANDBOX."""
        return self._settings.environment

    def open_session(self, credential: Credential) -> TastytradeSession:
        """A session for one user's credential (no I/O until the first call)."""
        return TastytradeSession(
            self.http,
            credential=credential,
            client_secret=self._settings.client_secret,
            client_id=self._settings.client_id,
            monotonic=self._monotonic,
            cache=self._cache,
            refresh_margin=self._settings.refresh_margin,
            per_page=self._settings.per_page,
            include_marks=self._settings.include_marks,
        )

    def health(self) -> BreakerSnapshot:
        """Breaker state and budget level for health reporting."""
        return BreakerSnapshot(
            environment=self._settings.environment,
            state=self.breaker.state.value,
            consecutive_failures=self.breaker.consecutive_failures,
            opened_for_seconds=self.breaker.open_for(),
            budget_tokens=self.budget.available(),
            detail=self._settings.url,
        )

    async def aclose(self) -> None:
        """Close the host's connection pool."""
        await self.http.aclose()
