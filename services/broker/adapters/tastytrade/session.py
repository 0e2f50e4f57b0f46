"""A user's Tastytrade session: OAuth2 refresh-token grant, bearer calls, pagination, endpoint mapping.

Access tokens live 15 minutes. The session renews its token ``refresh_margin`` seconds before it runs out
and, should Tastytrade still answer 401 (revoked early, clock skew), renews it once and repeats the call.
Concurrent calls share one renewal: a lock plus a check that the token is still the one that failed.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from services.broker.adapters.tastytrade import wire
from services.broker.adapters.tastytrade.http import AccessTokenRejected, BrokerResourceMissing, TastytradeHttp
from services.broker.domain.errors import (
    AccountNotFound,
    BrokerBadResponse,
    BrokerUnauthorized,
    FieldInvalid,
    FieldRequired,
    SymbolNotFound,
)
from services.broker.domain.model import (
    Account,
    Balances,
    Credential,
    MarketMetrics,
    OptionChain,
    Position,
    Transaction,
)

_ACCOUNT_NUMBER = re.compile(r"^[A-Za-z0-9-]{1,32}$")
_SYMBOL = re.compile(r"^[A-Za-z0-9./ ]{1,32}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


class MetricsCache:
    """Market metrics and the risk-free rate are the same for every user: one TTL cache per host."""

    def __init__(self, *, monotonic: Callable[[], float], metrics_ttl: float, rate_ttl: float) -> None:
        self._monotonic = monotonic
        self._metrics_ttl = metrics_ttl
        self._rate_ttl = rate_ttl
        self._metrics: dict[str, tuple[float, MarketMetrics]] = {}
        self._rate: tuple[float, Decimal] | None = None

    def get_metrics(self, symbol: str) -> MarketMetrics | None:
        """A fresh cached entry, or None."""
        entry = self._metrics.get(symbol)
        if entry is None or entry[0] <= self._monotonic():
            return None
        return entry[1]

    def put_metrics(self, metrics: MarketMetrics) -> None:
        """Cache one symbol's metrics."""
        self._metrics[metrics.symbol] = (self._monotonic() + self._metrics_ttl, metrics)

    def get_rate(self) -> Decimal | None:
        """The cached risk-free rate while fresh."""
        if self._rate is None or self._rate[0] <= self._monotonic():
            return None
        return self._rate[1]

    def put_rate(self, rate: Decimal) -> None:
        """Cache the risk-free rate."""
        self._rate = (self._monotonic() + self._rate_ttl, rate)


def check_account_number(account_number: str) -> str:
    """Validate an account number before it goes into a URL path."""
    if not _ACCOUNT_NUMBER.match(account_number):
        raise FieldInvalid("account_number", f"{account_number[:40]!r} is not an account number")
    return account_number


def check_symbol(symbol: str) -> str:
    """Validate a symbol before it goes into a URL path."""
    if not _SYMBOL.match(symbol) or symbol.strip() != symbol:
        raise FieldInvalid("symbol", f"{symbol[:40]!r} is not a symbol")
    return symbol


class TastytradeSession:
    """The BrokerSession for one refresh token.

    Args:
        http: The host's shared HTTP layer.
        credential: The user's refresh token, and the grant's own client secret when it has one.
        client_secret: The platform's OAuth client secret, used when the credential brings none.
        client_id: The OAuth client id; sent when set ("if sent, it must match your client").
        monotonic: Seconds from a monotonic clock (token expiry).
        cache: The host's metrics cache.
        refresh_margin: Renew this many seconds before the access token expires.
        per_page: Page size asked of paginated endpoints.
        max_pages: Refuse to follow more pages than this (a broken pagination block must not loop forever).
        include_marks: Ask for ``include-marks`` on positions (Tastytrade warns it can be slower).
    """

    def __init__(
        self,
        http: TastytradeHttp,
        *,
        credential: Credential,
        client_secret: str,
        client_id: str | None,
        monotonic: Callable[[], float],
        cache: MetricsCache,
        refresh_margin: float = 60.0,
        per_page: int = 250,
        max_pages: int = 400,
        include_marks: bool = False,
    ) -> None:
        if not credential.refresh_token:
            raise FieldRequired("refresh_token")
        self._http = http
        # A grant made under the user's own OAuth application carries that application's secret; the
        # platform's client id does not belong to it, so it is not sent then.
        self._client_secret = credential.client_secret or client_secret
        self._client_id = None if credential.client_secret else client_id
        self._refresh_token = credential.refresh_token
        self._monotonic = monotonic
        self._cache = cache
        self._refresh_margin = refresh_margin
        self._per_page = per_page
        self._max_pages = max_pages
        self._include_marks = include_marks
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self.refresh_count = 0

    def __repr__(self) -> str:
        return f"TastytradeSession(refresh_token=<redacted>, has_access_token={self._token is not None})"

    async def _access_token(self, rejected: str | None = None) -> str:
        if self._fresh(rejected):
            assert self._token is not None
            return self._token
        async with self._lock:
            if self._fresh(rejected):
                assert self._token is not None
                return self._token
            body: dict[str, Any] = {
                "grant_type": "refresh_token",
                "refresh_token": self._refresh_token,
                "client_secret": self._client_secret,
            }
            if self._client_id:
                body["client_id"] = self._client_id
            started = self._monotonic()
            token = wire.parse_token(await self._http.call("POST", "/oauth/token", json_body=body))
            self._token = token.value
            self._expires_at = started + token.expires_in
            self.refresh_count += 1
            return token.value

    def _fresh(self, rejected: str | None) -> bool:
        if self._token is None or (rejected is not None and self._token == rejected):
            return False
        return self._monotonic() < self._expires_at - self._refresh_margin

    async def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        token = await self._access_token()
        try:
            return await self._http.call("GET", path, params=params, bearer=token)
        except AccessTokenRejected:
            token = await self._access_token(rejected=token)
            try:
                return await self._http.call("GET", path, params=params, bearer=token)
            except AccessTokenRejected as exc:
                raise BrokerUnauthorized(
                    "Tastytrade refused a freshly issued access token", metadata=exc.metadata
                ) from exc

    async def _paginate(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        offset = 0
        while True:
            body = await self._get(path, {**params, "per-page": self._per_page, "page-offset": offset})
            items.extend(wire.items_of(body))
            page = wire.page_of(body)
            if page is None or page.page_offset >= page.total_pages - 1:
                return items
            if page.page_offset != offset:
                raise BrokerBadResponse(f"{path}: asked for page {offset}, got page {page.page_offset}")
            offset += 1
            if offset >= self._max_pages:
                raise BrokerBadResponse(f"{path}: more than {self._max_pages} pages")

    async def list_accounts(self) -> list[Account]:
        """``GET /customers/me/accounts``."""
        return wire.parse_accounts(await self._get("/customers/me/accounts"))

    async def get_balances(self, account_number: str, currency: str = "USD") -> Balances:
        """``GET /accounts/{n}/balances/{currency}``."""
        check_account_number(account_number)
        if not _CURRENCY.match(currency):
            raise FieldInvalid("currency", f"{currency[:8]!r} is not an ISO 4217 code")
        try:
            body = await self._get(f"/accounts/{account_number}/balances/{currency}")
        except BrokerResourceMissing as exc:
            raise AccountNotFound(account_number) from exc
        return wire.parse_balances(body, currency)

    async def list_positions(self, account_number: str) -> list[Position]:
        """``GET /accounts/{n}/positions``."""
        check_account_number(account_number)
        params = {"include-marks": "true"} if self._include_marks else None
        try:
            body = await self._get(f"/accounts/{account_number}/positions", params)
        except BrokerResourceMissing as exc:
            raise AccountNotFound(account_number) from exc
        return wire.parse_positions(body)

    async def list_transactions(
        self, account_number: str, *, start_date: date | None = None, end_date: date | None = None
    ) -> list[Transaction]:
        """``GET /accounts/{n}/transactions``, every page, newest first.

        A transaction that lands while we page shifts the later pages by one, so the same item can show
        up at the end of one page and the start of the next; it is kept once.
        """
        check_account_number(account_number)
        params: dict[str, Any] = {"sort": "Desc"}
        if start_date is not None:
            params["start-date"] = start_date.isoformat()
        if end_date is not None:
            params["end-date"] = end_date.isoformat()
        try:
            items = await self._paginate(f"/accounts/{account_number}/transactions", params)
        except BrokerResourceMissing as exc:
            raise AccountNotFound(account_number) from exc
        seen: set[int] = set()
        unique = []
        for transaction in wire.parse_transactions(items):
            if transaction.id not in seen:
                seen.add(transaction.id)
                unique.append(transaction)
        return unique

    async def get_option_chain(self, underlying_symbol: str) -> list[OptionChain]:
        """``GET /option-chains/{symbol}/nested`` (``/`` in futures symbols sent as ``%2F``)."""
        check_symbol(underlying_symbol)
        try:
            body = await self._get(f"/option-chains/{quote(underlying_symbol, safe='')}/nested")
        except BrokerResourceMissing as exc:
            raise SymbolNotFound(f"Tastytrade has no option chain for {underlying_symbol}") from exc
        chains = wire.parse_nested_chains(body)
        if not chains:
            raise SymbolNotFound(f"Tastytrade has no option chain for {underlying_symbol}")
        return chains

    async def get_market_metrics(self, symbols: Sequence[str]) -> list[MarketMetrics]:
        """``GET /market-metrics?symbols=A,B`` (a comma list, not ``symbols[]``), cached per host."""
        wanted = list(dict.fromkeys(check_symbol(s) for s in symbols))
        found = {s: m for s in wanted if (m := self._cache.get_metrics(s)) is not None}
        missing = [s for s in wanted if s not in found]
        if missing:
            body = await self._get("/market-metrics", {"symbols": ",".join(missing)})
            for metrics in wire.parse_market_metrics(body):
                self._cache.put_metrics(metrics)
                found[metrics.symbol] = metrics
        return [found[s] for s in wanted if s in found]

    async def get_risk_free_rate(self) -> Decimal:
        """``GET /margin-requirements-public-configuration`` (public: sent without a bearer token)."""
        cached = self._cache.get_rate()
        if cached is not None:
            return cached
        rate = wire.parse_risk_free_rate(await self._http.call("GET", "/margin-requirements-public-configuration"))
        self._cache.put_rate(rate)
        return rate

    async def aclose(self) -> None:
        """Forget the access token; the pool belongs to the connector."""
        self._token = None
