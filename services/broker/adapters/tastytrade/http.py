"""One Tastytrade host over httpx: headers, retries with backoff and jitter, breaker, budget, error mapping.

An instance is shared by every user of the host: the connection pool, the circuit breaker and the request
budget all belong to the host (and to the platform's IP), not to a user.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from services.broker.adapters.resilience import CircuitBreaker, Outcome, RequestBudget
from services.broker.adapters.tastytrade.wire import error_of
from services.broker.domain.errors import (
    BrokerBadResponse,
    BrokerError,
    BrokerForbidden,
    BrokerRateLimited,
    BrokerRejected,
    BrokerUnauthorized,
    BrokerUnavailable,
)
from services.platform.errors import NotFound

log = logging.getLogger(__name__)

PRODUCTION_URL = "https://api.tastyworks.com"
SANDBOX_URL = "https://api.cert.tastyworks.com"
API_VERSION = "20251101"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries on 429, 5xx, timeouts and connection errors.

    Attributes:
        max_attempts: Attempts in all, the first included.
        initial_backoff: Seconds before the first retry; doubles each time.
        max_backoff: Cap on one wait.
        jitter: Up to this many seconds of random extra wait, so retries from many users spread out.
        max_elapsed: Give up once this many seconds have passed since the first attempt.
    """

    max_attempts: int = 4
    initial_backoff: float = 0.25
    max_backoff: float = 4.0
    jitter: float = 0.25
    max_elapsed: float = 20.0


class AccessTokenRejected(BrokerUnauthorized):
    """A 401 on a bearer-authenticated call: the session refreshes its token and tries once more."""


class BrokerResourceMissing(BrokerError, NotFound):
    """A 404; the session turns it into AccountNotFound or SymbolNotFound, knowing what was asked."""

    reason = "BROKER_RESOURCE_NOT_FOUND"


class _Transient(Exception):
    """An attempt that may succeed if repeated; carries the error to raise when retries run out."""

    def __init__(self, error: BrokerError) -> None:
        super().__init__(error.message)
        self.error = error


def _decode(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BrokerBadResponse(
            f"{response.request.method} {response.request.url.path} answered {response.status_code} with non-JSON"
        ) from exc


class TastytradeHttp:
    """Sends requests to one Tastytrade host with the resilience every caller shares.

    Args:
        base_url: ``https://api.tastyworks.com``, ``https://api.cert.tastyworks.com`` or a test server.
        user_agent: ``<product>/<version>``; Tastytrade answers 401 without it.
        api_version: ``Accept-Version`` date, or None for the sandbox, which does not accept the header.
        timeout: Seconds for connect, read, write and pool waits.
        retry: The retry policy.
        breaker: The host's circuit breaker.
        budget: The host's request budget.
        sleep: Awaitable sleep used between retries.
        transport: An httpx transport (tests); None for the default.
    """

    def __init__(
        self,
        *,
        base_url: str,
        user_agent: str,
        api_version: str | None,
        timeout: float,
        retry: RetryPolicy,
        breaker: CircuitBreaker,
        budget: RequestBudget,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"User-Agent": user_agent, "Accept": "application/json", "Content-Type": "application/json"}
        if api_version:
            headers["Accept-Version"] = api_version
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout),
            transport=transport,
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
        )
        self._retry = retry
        self._sleep = sleep
        self.breaker = breaker
        self.budget = budget
        self._penalty = budget.penalty

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Mapping[str, Any] | None = None,
        bearer: str | None = None,
    ) -> Any:
        """Send one logical request (with retries) and return its decoded JSON body.

        Raises:
            AccessTokenRejected: 401 on a bearer call (the session refreshes and repeats once).
            BrokerUnauthorized: 401 on an unauthenticated call (the token endpoint).
            BrokerForbidden: 403.
            BrokerResourceMissing: 404.
            BrokerRejected: 400, 406 and other 4xx.
            BrokerRateLimited: 429 after the retries, or the budget could not give a slot in time.
            BrokerUnavailable: 5xx, timeouts or connection errors after the retries; CircuitOpen while open.
            BrokerBadResponse: a 2xx body that is not JSON.
        """
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_Transient),
            wait=wait_exponential_jitter(
                multiplier=self._retry.initial_backoff, max=self._retry.max_backoff, jitter=self._retry.jitter
            ),
            stop=stop_after_attempt(self._retry.max_attempts) | stop_after_delay(self._retry.max_elapsed),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(method, path, params, json_body, bearer)
        except _Transient as exc:
            raise exc.error from None
        raise AssertionError("tenacity ended without a result")  # pragma: no cover - reraise=True

    async def _attempt(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        json_body: Mapping[str, Any] | None,
        bearer: str | None,
    ) -> Any:
        self.breaker.acquire()
        outcome = Outcome.NEUTRAL
        try:
            await self.budget.acquire()
            request = self._client.build_request(method, path, params=params, json=json_body)
            if bearer is not None:
                request.headers["Authorization"] = f"Bearer {bearer}"
            try:
                response = await self._client.send(request)
            except httpx.TimeoutException as exc:
                outcome = Outcome.FAILURE
                raise _Transient(BrokerUnavailable(f"Tastytrade timed out on {method} {path}")) from exc
            except httpx.TransportError as exc:
                outcome = Outcome.FAILURE
                raise _Transient(BrokerUnavailable(f"cannot reach Tastytrade: {type(exc).__name__}")) from exc
            status = response.status_code
            if status >= 500:
                outcome = Outcome.FAILURE
                raise _Transient(BrokerUnavailable(f"Tastytrade answered {status} on {method} {path}"))
            if status == 429:
                # The host is up but throttling this IP: slow every caller down, do not trip the breaker.
                self.budget.penalize()
                raise _Transient(
                    BrokerRateLimited("Tastytrade is rate limiting requests; retry later", retry_after=self._penalty)
                )
            outcome = Outcome.SUCCESS
            if status < 300:
                return _decode(response)
            raise self._client_error(response, method, path, bearer is not None)
        finally:
            self.breaker.release(outcome)

    @staticmethod
    def _client_error(response: httpx.Response, method: str, path: str, had_bearer: bool) -> BrokerError:
        try:
            code, message = error_of(json.loads(response.content, parse_float=Decimal))
        except (ValueError, UnicodeDecodeError):
            code, message = "", ""
        status = response.status_code
        detail = message or f"Tastytrade answered {status} on {method} {path}"
        metadata = {"broker_code": code} if code else {}
        log.info("tastytrade %s %s -> %s %s", method, path, status, code)
        if status == 401:
            if had_bearer:
                return AccessTokenRejected(detail, metadata=metadata)
            return BrokerUnauthorized(detail, metadata=metadata)
        if status == 403:
            return BrokerForbidden(detail, metadata=metadata)
        if status == 404:
            return BrokerResourceMissing(detail, metadata=metadata)
        if status == 400 and code in {"invalid_grant", "invalid_client", "unauthorized_client"}:
            return BrokerUnauthorized(detail, metadata=metadata)
        return BrokerRejected(detail, metadata={**metadata, "http_status": str(status)})
