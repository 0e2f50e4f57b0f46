"""Broker use cases: link a brokerage login, then read accounts, balances, positions, history, chains, metrics.

Every use case takes the caller's verified user id first; an account is served only to the user who linked
it (anyone else gets ACCOUNT_NOT_FOUND, as for a missing account). Sessions are cached per link so access
tokens are reused across calls; a credential Tastytrade refuses marks the link for re-linking.

Freshness: balances and positions are read from the broker on each call. When the broker is unavailable
(5xx, timeouts, circuit open), the last good answer no older than ``stale_after`` is served instead, so a
Tastytrade outage degrades to slightly old figures rather than errors. Transaction history is cached for
``history_ttl`` per query so paging through it does not refetch every broker page.
"""

from __future__ import annotations

import json
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TypeVar

from services.broker.domain import paging
from services.broker.domain.errors import (
    AccountAlreadyLinked,
    AccountNotFound,
    BrokerLinkNotFound,
    BrokerUnauthorized,
    BrokerUnavailable,
    CredentialUnreadable,
    EnvironmentNotConfigured,
    FieldInvalid,
    FieldRequired,
    NoLinkedAccount,
    TimeRangeInvalid,
    TooManySymbols,
)
from services.broker.domain.expiry import NEW_YORK, time_to_expiry
from services.broker.domain.model import (
    Balances,
    BreakerSnapshot,
    BrokerLink,
    Credential,
    Environment,
    LinkedAccount,
    LinkStatus,
    MarketMetrics,
    ModelInputs,
    OptionChain,
    Position,
    Transaction,
)
from services.broker.domain.paper import paper_account_number
from services.broker.ports import BrokerConnector, BrokerSession, Clock, LinkRepository, SecretBox

T = TypeVar("T")

ACCOUNTS_PAGE = paging.PageSize(default=50, maximum=500)
POSITIONS_PAGE = paging.PageSize(default=250, maximum=2000)
TRANSACTIONS_PAGE = paging.PageSize(default=250, maximum=2000)
MAX_METRICS_SYMBOLS = 500
_SECRET_PURPOSE = b"tastyplat.broker.link.v1"
# When several links could answer a market-wide question (chains, metrics), prefer the real broker.
_ENVIRONMENT_PREFERENCE = (Environment.PRODUCTION, Environment.SANDBOX, Environment.PAPER)


@dataclass(frozen=True, slots=True)
class LinkResult:
    """What LinkAccount returns: the link and the accounts now linked through it."""

    link: BrokerLink
    accounts: list[LinkedAccount]


@dataclass(frozen=True, slots=True)
class TransactionQuery:
    """Filters of ListTransactions.

    Attributes:
        start_time: Only transactions executed at or after this instant.
        end_time: Only transactions executed before this instant.
        underlying_symbol: Only transactions on this underlying ("" for all).
        transaction_types: Only these ``transaction-type`` values (empty for all); "Other" matches any type
            outside Trade, Receive Deliver and Money Movement.
    """

    start_time: datetime | None = None
    end_time: datetime | None = None
    underlying_symbol: str = ""
    transaction_types: tuple[str, ...] = ()


KNOWN_TRANSACTION_TYPES = frozenset({"Trade", "Receive Deliver", "Money Movement"})
OTHER_TRANSACTION_TYPE = "Other"


def associated_data(user_id: str) -> bytes:
    """The AES-GCM associated data binding a sealed credential to its user."""
    return _SECRET_PURPOSE + b":" + user_id.encode()


class BrokerApp:
    """The broker service's use cases.

    Args:
        connectors: One connector per enabled environment.
        links: Where links and linked accounts live.
        secrets: Seals credentials (AES-256-GCM, user id as associated data).
        clock: Wall and monotonic time.
        new_id: Makes link ids.
        session_cache_size: Sessions kept (one per link) so access tokens are reused.
        stale_after: Seconds a last good balance or position list may be served while the broker is down.
        history_ttl: Seconds a fetched transaction history serves further pages of the same query.
        auto_link_paper: Give a user without any link the paper demo account on first use.
    """

    def __init__(
        self,
        *,
        connectors: Mapping[Environment, BrokerConnector],
        links: LinkRepository,
        secrets: SecretBox,
        clock: Clock,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        session_cache_size: int = 1024,
        stale_after: float = 900.0,
        history_ttl: float = 60.0,
        auto_link_paper: bool = False,
    ) -> None:
        self._connectors = dict(connectors)
        self._links = links
        self._secrets = secrets
        self._clock = clock
        self._new_id = new_id
        self._session_cache_size = session_cache_size
        self._stale_after = stale_after
        self._history_ttl = history_ttl
        self._auto_link_paper = auto_link_paper and Environment.PAPER in connectors
        self._sessions: OrderedDict[str, tuple[bytes, BrokerSession]] = OrderedDict()
        self._last_good: dict[tuple[str, str, str], tuple[float, object]] = {}
        self._history: OrderedDict[tuple[str, str, str], tuple[float, list[Transaction]]] = OrderedDict()

    @property
    def environments(self) -> tuple[Environment, ...]:
        """The environments this deployment serves."""
        return tuple(self._connectors)

    def health(self) -> list[BreakerSnapshot]:
        """Breaker and budget state of every connector."""
        return [connector.health() for connector in self._connectors.values()]

    async def aclose(self) -> None:
        """Close every connector's connection pool."""
        for _, session in self._sessions.values():
            await session.aclose()
        self._sessions.clear()
        for connector in self._connectors.values():
            await connector.aclose()

    # ---- links

    async def link_account(
        self,
        user_id: str,
        *,
        environment: Environment,
        refresh_token: str = "",
        client_secret: str | None = None,
        request_id: str | None = None,
    ) -> LinkResult:
        """Store a credential (sealed) and the accounts it reaches; a retry with the same request id is a no-op.

        Raises:
            FieldRequired: Tastytrade without a refresh token.
            EnvironmentNotConfigured: the environment is not enabled here.
            BrokerUnauthorized: Tastytrade refused the refresh token.
            AccountAlreadyLinked: another user linked one of the accounts.
        """
        connector = self._connector(environment)
        if request_id:
            earlier = await self._links.find_by_request(user_id, request_id)
            if earlier is not None:
                return LinkResult(earlier, [a for a in await self._links.list_accounts(user_id) if a.link_id == earlier.link_id])
        if environment is Environment.PAPER:
            credential = Credential(paper_account_number(user_id))
        elif not refresh_token:
            raise FieldRequired("refresh_token", "refresh_token is required to link a Tastytrade login")
        else:
            credential = Credential(refresh_token, client_secret or None)
        session = connector.open_session(credential)
        accounts = await session.list_accounts()
        numbers = [a.account_number for a in accounts]
        for number in numbers:
            owner = await self._links.account_owner(number)
            if owner is not None and owner != user_id:
                raise AccountAlreadyLinked(
                    f"account {number} is already linked by another user", metadata={"account_number": number}
                )
        existing = await self._links.find_link(user_id, environment, numbers)
        now = self._clock.now()
        link = BrokerLink(
            link_id=existing.link_id if existing else self._new_id(),
            user_id=user_id,
            environment=environment,
            secret=self._secrets.seal(_credential_bytes(credential), associated_data(user_id)),
            status=LinkStatus.ACTIVE,
            created_at=existing.created_at if existing else now,
            updated_at=now,
            account_numbers=tuple(sorted(numbers)),
            request_id=request_id or None,
        )
        await self._links.save_link(link, accounts)
        self._remember_session(link, session)
        linked = [LinkedAccount(user_id, link.link_id, environment, a, now) for a in accounts]
        return LinkResult(link, sorted(linked, key=lambda a: a.account.account_number))

    async def delete_link(self, user_id: str, link_id: str) -> None:
        """Forget a link, its sealed credential and its accounts.

        Raises:
            FieldRequired: ``link_id`` is empty.
            BrokerLinkNotFound: the caller has no such link.
        """
        if not link_id:
            raise FieldRequired("broker_link_id")
        if not await self._links.delete_link(user_id, link_id):
            raise BrokerLinkNotFound(link_id)
        cached = self._sessions.pop(link_id, None)
        if cached is not None:
            await cached[1].aclose()

    async def list_links(self, user_id: str) -> list[BrokerLink]:
        """The caller's links."""
        return await self._links.list_links(user_id)

    # ---- accounts

    async def list_accounts(
        self, user_id: str, *, include_closed: bool = False, page_size: int = 0, page_token: str = ""
    ) -> paging.Page[LinkedAccount]:
        """The caller's linked accounts by account number, one page at a time."""
        size = ACCOUNTS_PAGE.resolve(page_size)
        await self._ensure_demo(user_id)
        accounts = [a for a in await self._links.list_accounts(user_id) if include_closed or not a.account.is_closed]
        accounts.sort(key=lambda a: a.account.account_number)
        return paging.paginate(
            accounts,
            sort_key=lambda a: (a.account.account_number,),
            page_size=size,
            page_token=page_token,
            digest=paging.query_digest("accounts", user_id, include_closed),
        )

    async def get_balances(self, user_id: str, account_number: str) -> Balances:
        """An account's balances (the last good ones, if fresh enough, while the broker is down)."""
        link = await self._account_link(user_id, account_number)
        return await self._fresh_or_stale(
            (user_id, account_number, "balances"),
            lambda session: session.get_balances(account_number),
            link,
        )

    async def list_positions(
        self,
        user_id: str,
        account_number: str,
        *,
        underlying_symbols: Sequence[str] = (),
        page_size: int = 0,
        page_token: str = "",
    ) -> paging.Page[Position]:
        """An account's positions by symbol, optionally only on some underlyings."""
        size = POSITIONS_PAGE.resolve(page_size)
        link = await self._account_link(user_id, account_number)
        positions: list[Position] = await self._fresh_or_stale(
            (user_id, account_number, "positions"),
            lambda session: session.list_positions(account_number),
            link,
        )
        wanted = {s.strip().upper() for s in underlying_symbols if s.strip()}
        chosen = sorted(
            (p for p in positions if not wanted or p.underlying_symbol in wanted),
            key=lambda p: (p.symbol, p.created_at.isoformat() if p.created_at else ""),
        )
        return paging.paginate(
            chosen,
            sort_key=lambda p: (p.symbol, p.created_at.isoformat() if p.created_at else ""),
            page_size=size,
            page_token=page_token,
            digest=paging.query_digest("positions", user_id, account_number, sorted(wanted)),
        )

    async def list_transactions(
        self,
        user_id: str,
        account_number: str,
        query: TransactionQuery,
        *,
        page_size: int = 0,
        page_token: str = "",
    ) -> paging.Page[Transaction]:
        """An account's history, newest first, filtered; every broker page is read before paging here.

        Raises:
            TimeRangeInvalid: ``start_time`` is after ``end_time``.
        """
        size = TRANSACTIONS_PAGE.resolve(page_size)
        if query.start_time and query.end_time and query.start_time > query.end_time:
            raise TimeRangeInvalid()
        link = await self._account_link(user_id, account_number)
        # Tastytrade filters by trade date (New York); the exact instants are applied here.
        start_date = query.start_time.astimezone(NEW_YORK).date() if query.start_time else None
        end_date = query.end_time.astimezone(NEW_YORK).date() if query.end_time else None
        history = await self._history_of(link, user_id, account_number, start_date, end_date)
        wanted_types = set(query.transaction_types)
        underlying = query.underlying_symbol.strip().upper()
        chosen = [
            t
            for t in history
            if (query.start_time is None or t.executed_at >= query.start_time)
            and (query.end_time is None or t.executed_at < query.end_time)
            and (not underlying or t.underlying_symbol == underlying)
            and (not wanted_types or _type_bucket(t.transaction_type) in wanted_types)
        ]
        chosen.sort(key=lambda t: (t.executed_at, t.id), reverse=True)
        return paging.paginate(
            chosen,
            sort_key=lambda t: (t.executed_at.isoformat(), t.id),
            page_size=size,
            page_token=page_token,
            digest=paging.query_digest(
                "transactions", user_id, account_number, query.start_time, query.end_time, underlying, sorted(wanted_types)
            ),
            descending=True,
        )

    # ---- market-wide data through any of the caller's links

    async def get_option_chain(self, user_id: str, underlying_symbol: str) -> list[OptionChain]:
        """The nested chain(s) of an underlying, fetched with one of the caller's links.

        Raises:
            FieldRequired: the symbol is empty.
            NoLinkedAccount: the caller has no usable link.
            SymbolNotFound: the broker lists no options on it.
        """
        symbol = underlying_symbol.strip().upper()
        if not symbol:
            raise FieldRequired("underlying_symbol")
        link = await self._any_link(user_id)
        return await self._call(link, lambda session: session.get_option_chain(symbol))

    async def get_market_metrics(self, user_id: str, symbols: Sequence[str]) -> tuple[list[MarketMetrics], Decimal]:
        """Metrics for the symbols the broker knows (request order) and the broker's risk-free rate.

        Raises:
            FieldRequired: no symbols.
            TooManySymbols: more than 500.
            NoLinkedAccount: the caller has no usable link.
        """
        wanted = list(dict.fromkeys(s.strip().upper() for s in symbols if s.strip()))
        if not wanted:
            raise FieldRequired("symbols")
        if len(wanted) > MAX_METRICS_SYMBOLS:
            raise TooManySymbols(len(wanted), MAX_METRICS_SYMBOLS)
        link = await self._any_link(user_id)
        metrics = await self._call(link, lambda session: session.get_market_metrics(wanted))
        rate = await self._call(link, lambda session: session.get_risk_free_rate())
        return metrics, rate

    async def model_inputs(self, user_id: str, underlying_symbol: str, expires_at: datetime) -> ModelInputs:
        """Rate, dividend yield, beta and ACT/365 time to expiry for one contract, all from the broker.

        Raises:
            ContractExpired: ``expires_at`` is not in the future.
        """
        years = time_to_expiry(expires_at, self._clock.now())
        metrics, rate = await self.get_market_metrics(user_id, [underlying_symbol])
        found = metrics[0] if metrics else None
        return ModelInputs(
            underlying_symbol=underlying_symbol.strip().upper(),
            risk_free_rate=float(rate),
            dividend_yield=float(found.dividend_yield) if found and found.dividend_yield is not None else 0.0,
            beta=float(found.beta) if found and found.beta is not None else None,
            time_to_expiry=years,
            expires_at=expires_at,
        )

    # ---- internals

    def _connector(self, environment: Environment) -> BrokerConnector:
        connector = self._connectors.get(environment)
        if connector is None:
            raise EnvironmentNotConfigured(
                f"the {environment.value} broker is not enabled on this deployment",
                metadata={"environment": environment.value},
            )
        return connector

    async def _account_link(self, user_id: str, account_number: str) -> BrokerLink:
        if not account_number:
            raise FieldRequired("account_number")
        linked = await self._links.get_account(user_id, account_number)
        if linked is None and await self._ensure_demo(user_id):
            linked = await self._links.get_account(user_id, account_number)
        if linked is None:
            raise AccountNotFound(account_number)
        link = await self._links.get_link(user_id, linked.link_id)
        if link is None:
            raise AccountNotFound(account_number)
        return link

    async def _ensure_demo(self, user_id: str) -> bool:
        if not self._auto_link_paper or await self._links.list_links(user_id):
            return False
        await self.link_account(user_id, environment=Environment.PAPER)
        return True

    async def _any_link(self, user_id: str) -> BrokerLink:
        await self._ensure_demo(user_id)
        links = [link for link in await self._links.list_links(user_id) if link.environment in self._connectors]
        active = [link for link in links if link.status is LinkStatus.ACTIVE]
        candidates = active or links
        if not candidates:
            raise NoLinkedAccount("link a broker account first: the broker is queried with your own credentials")
        return min(candidates, key=lambda link: (_ENVIRONMENT_PREFERENCE.index(link.environment), link.created_at))

    def _session(self, link: BrokerLink) -> BrokerSession:
        cached = self._sessions.get(link.link_id)
        if cached is not None and cached[0] == link.secret.envelope:
            self._sessions.move_to_end(link.link_id)
            return cached[1]
        try:
            credential = _credential_from(self._secrets.open(link.secret, associated_data(link.user_id)))
        except ValueError as exc:
            raise CredentialUnreadable("the stored broker credential is unreadable; link the account again") from exc
        session = self._connector(link.environment).open_session(credential)
        self._remember_session(link, session)
        return session

    def _remember_session(self, link: BrokerLink, session: BrokerSession) -> None:
        self._sessions[link.link_id] = (link.secret.envelope, session)
        self._sessions.move_to_end(link.link_id)
        while len(self._sessions) > self._session_cache_size:
            self._sessions.popitem(last=False)

    async def _call(self, link: BrokerLink, call: Callable[[BrokerSession], Awaitable[T]]) -> T:
        session = self._session(link)
        try:
            return await call(session)
        except BrokerUnauthorized:
            self._sessions.pop(link.link_id, None)
            await self._links.mark_needs_relink(link.user_id, link.link_id, self._clock.now())
            raise

    async def _fresh_or_stale(
        self, key: tuple[str, str, str], call: Callable[[BrokerSession], Awaitable[T]], link: BrokerLink
    ) -> T:
        try:
            value = await self._call(link, call)
        except BrokerUnavailable:
            remembered = self._last_good.get(key)
            if remembered is not None and self._clock.monotonic() - remembered[0] <= self._stale_after:
                return remembered[1]  # type: ignore[return-value]
            raise
        self._last_good[key] = (self._clock.monotonic(), value)
        return value

    async def _history_of(
        self, link: BrokerLink, user_id: str, account_number: str, start: date | None, end: date | None
    ) -> list[Transaction]:
        key = (user_id, account_number, f"{start}|{end}")
        cached = self._history.get(key)
        now = self._clock.monotonic()
        if cached is not None and now - cached[0] <= self._history_ttl:
            return cached[1]
        history = await self._call(
            link, lambda session: session.list_transactions(account_number, start_date=start, end_date=end)
        )
        self._history[key] = (now, history)
        self._history.move_to_end(key)
        while len(self._history) > 256:
            self._history.popitem(last=False)
        return history


def _type_bucket(transaction_type: str) -> str:
    return transaction_type if transaction_type in KNOWN_TRANSACTION_TYPES else OTHER_TRANSACTION_TYPE


def _credential_bytes(credential: Credential) -> bytes:
    body = {"refresh_token": credential.refresh_token}
    if credential.client_secret:
        body["client_secret"] = credential.client_secret
    return json.dumps(body, separators=(",", ":")).encode()


def _credential_from(plaintext: bytes) -> Credential:
    body = json.loads(plaintext)
    if not isinstance(body, dict) or not isinstance(body.get("refresh_token"), str):
        raise ValueError("sealed credential has no refresh token")
    secret = body.get("client_secret")
    return Credential(body["refresh_token"], secret if isinstance(secret, str) else None)


def validate_transaction_types(types: Sequence[str]) -> tuple[str, ...]:
    """Check ListTransactions type filters ("Trade", "Receive Deliver", "Money Movement", "Other")."""
    allowed = KNOWN_TRANSACTION_TYPES | {OTHER_TRANSACTION_TYPE}
    for value in types:
        if value not in allowed:
            raise FieldInvalid("transaction_types", f"unknown transaction type {value[:32]!r}")
    return tuple(dict.fromkeys(types))


__all__ = [
    "ACCOUNTS_PAGE",
    "POSITIONS_PAGE",
    "TRANSACTIONS_PAGE",
    "BrokerApp",
    "LinkResult",
    "TransactionQuery",
    "associated_data",
    "validate_transaction_types",
]
