"""Ports of the broker service: what the application needs from brokers, storage, sealing and time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Protocol

from services.broker.domain.model import (
    Account,
    Balances,
    BreakerSnapshot,
    BrokerLink,
    Credential,
    Environment,
    LinkedAccount,
    MarketMetrics,
    OptionChain,
    Position,
    SealedSecret,
    Transaction,
)
from services.platform.clock import Clock

__all__ = [
    "BrokerConnector",
    "BrokerSession",
    "Clock",
    "IdentityVerifier",
    "LinkRepository",
    "MarkSource",
    "SecretBox",
]


class BrokerSession(Protocol):
    """One credential's authenticated conversation with a broker (tokens are the adapter's business)."""

    async def list_accounts(self) -> list[Account]:
        """Every account the credential can see, closed ones included."""
        ...

    async def get_balances(self, account_number: str, currency: str = "USD") -> Balances:
        """The account's current balances in ``currency``."""
        ...

    async def list_positions(self, account_number: str) -> list[Position]:
        """The account's open positions, with marks when the broker supplies them."""
        ...

    async def list_transactions(
        self, account_number: str, *, start_date: date | None = None, end_date: date | None = None
    ) -> list[Transaction]:
        """Every transaction in the range (all of the broker's pages), newest first."""
        ...

    async def get_option_chain(self, underlying_symbol: str) -> list[OptionChain]:
        """The nested option chain(s) of an underlying, one per root."""
        ...

    async def get_market_metrics(self, symbols: Sequence[str]) -> list[MarketMetrics]:
        """Market metrics (dividend yield, beta, IV index) for the symbols the broker knows."""
        ...

    async def get_risk_free_rate(self) -> Decimal:
        """The broker's published risk-free rate as a fraction."""
        ...

    async def aclose(self) -> None:
        """Release what the session holds; the shared connection pool stays with the connector."""
        ...


class BrokerConnector(Protocol):
    """Opens sessions to one broker environment and reports that environment's health."""

    @property
    def environment(self) -> Environment:
        """The environment this connector reaches."""
        ...

    def open_session(self, credential: Credential) -> BrokerSession:
        """A session for a credential; no network I/O until the first call."""
        ...

    def health(self) -> BreakerSnapshot:
        """The circuit breaker and request budget as health reports them."""
        ...

    async def aclose(self) -> None:
        """Close the connection pool."""
        ...


class LinkRepository(Protocol):
    """Stores links (sealed credentials) and the accounts each reaches, per user.

    An account number is linked by at most one user, through at most one of that user's links.
    """

    async def save_link(self, link: BrokerLink, accounts: Sequence[Account]) -> None:
        """Insert or replace a link and set its accounts (they move to this link from the user's others).

        Raises:
            AccountAlreadyLinked: one of the accounts is linked by another user.
        """
        ...

    async def find_by_request(self, user_id: str, request_id: str) -> BrokerLink | None:
        """The user's link created with this LinkAccount idempotency key, or None."""
        ...

    async def list_links(self, user_id: str) -> list[BrokerLink]:
        """The user's links, oldest first."""
        ...

    async def account_owner(self, account_number: str) -> str | None:
        """The user who linked the account, or None."""
        ...

    async def get_link(self, user_id: str, link_id: str) -> BrokerLink | None:
        """The user's link, or None."""
        ...

    async def find_link(self, user_id: str, environment: Environment, account_numbers: Sequence[str]) -> BrokerLink | None:
        """A link of the user's in ``environment`` that already reaches one of the accounts, or None."""
        ...

    async def list_accounts(self, user_id: str) -> list[LinkedAccount]:
        """All accounts linked by the user, ordered by account number."""
        ...

    async def get_account(self, user_id: str, account_number: str) -> LinkedAccount | None:
        """One linked account of the user, or None (also when another user linked it)."""
        ...

    async def mark_needs_relink(self, user_id: str, link_id: str, at: datetime) -> None:
        """Record that the broker refused the link's credential."""
        ...

    async def delete_link(self, user_id: str, link_id: str) -> bool:
        """Remove a link and its accounts; False when there was none."""
        ...


class SecretBox(Protocol):
    """Seals secrets with AES-256-GCM under a versioned key, binding them to associated data."""

    def seal(self, plaintext: bytes, associated_data: bytes) -> SealedSecret:
        """Encrypt with a fresh nonce under the current key version."""
        ...

    def open(self, sealed: SealedSecret, associated_data: bytes) -> bytes:
        """Decrypt; raises SecretUnreadable on a wrong key, version or associated data."""
        ...


class MarkSource(Protocol):
    """Prices the paper broker marks its positions with (a fixed table now, the market simulator later)."""

    def underlying_price(self, symbol: str) -> Decimal | None:
        """The latest price of an underlying, or None when the source does not follow it."""
        ...

    def option_mark(self, occ_symbol: str) -> Decimal | None:
        """The latest mid of an option by OCC symbol, or None when the source does not price it."""
        ...


class IdentityVerifier(Protocol):
    """Turns the caller's bearer access token into a verified user id."""

    async def verify(self, bearer_token: str) -> str:
        """The token's subject (user id) once its signature, issuer, audience and lifetime check out.

        Raises:
            AuthenticationRequired: the token is missing, malformed, expired or not ours.
        """
        ...
