"""In-memory LinkRepository: the full contract of the PostgreSQL store, for the embedded mode and unit tests."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from services.broker.domain.errors import AccountAlreadyLinked
from services.broker.domain.model import Account, BrokerLink, Environment, LinkedAccount, LinkStatus


class InMemoryLinkRepository:
    """Links and linked accounts in dictionaries, guarded by one lock."""

    def __init__(self) -> None:
        self._links: dict[str, BrokerLink] = {}
        self._accounts: dict[str, LinkedAccount] = {}
        self._lock = asyncio.Lock()

    async def save_link(self, link: BrokerLink, accounts: Sequence[Account]) -> None:
        """Insert or replace a link and set its accounts (moving them from the user's other links)."""
        async with self._lock:
            for account in accounts:
                held = self._accounts.get(account.account_number)
                if held is not None and held.user_id != link.user_id:
                    raise AccountAlreadyLinked(
                        f"account {account.account_number} is already linked by another user",
                        metadata={"account_number": account.account_number},
                    )
            numbers = {a.account_number for a in accounts}
            for number, held in list(self._accounts.items()):
                if held.link_id == link.link_id and number not in numbers:
                    del self._accounts[number]
            for account in accounts:
                held = self._accounts.get(account.account_number)
                if held is not None and held.link_id != link.link_id:
                    self._drop_number(held.link_id, account.account_number)
                linked_at = held.linked_at if held is not None else link.updated_at
                self._accounts[account.account_number] = LinkedAccount(
                    link.user_id, link.link_id, link.environment, account, linked_at
                )
            earlier = self._links.get(link.link_id)
            request_id = link.request_id or (earlier.request_id if earlier is not None else None)
            self._links[link.link_id] = replace(link, account_numbers=tuple(sorted(numbers)), request_id=request_id)

    def _drop_number(self, link_id: str, number: str) -> None:
        other = self._links.get(link_id)
        if other is not None:
            self._links[link_id] = replace(other, account_numbers=tuple(n for n in other.account_numbers if n != number))

    async def get_link(self, user_id: str, link_id: str) -> BrokerLink | None:
        """The user's link, or None."""
        link = self._links.get(link_id)
        return link if link is not None and link.user_id == user_id else None

    async def find_link(
        self, user_id: str, environment: Environment, account_numbers: Sequence[str]
    ) -> BrokerLink | None:
        """A link of the user's in ``environment`` already reaching one of the accounts."""
        for number in account_numbers:
            held = self._accounts.get(number)
            if held is not None and held.user_id == user_id and held.environment is environment:
                return self._links.get(held.link_id)
        return None

    async def find_by_request(self, user_id: str, request_id: str) -> BrokerLink | None:
        """The user's link made with this idempotency key."""
        for link in self._links.values():
            if link.user_id == user_id and link.request_id == request_id:
                return link
        return None

    async def list_links(self, user_id: str) -> list[BrokerLink]:
        """The user's links, oldest first."""
        return sorted((l for l in self._links.values() if l.user_id == user_id), key=lambda l: (l.created_at, l.link_id))

    async def account_owner(self, account_number: str) -> str | None:
        """Who linked the account."""
        held = self._accounts.get(account_number)
        return held.user_id if held is not None else None

    async def list_accounts(self, user_id: str) -> list[LinkedAccount]:
        """The user's linked accounts by account number."""
        return sorted(
            (a for a in self._accounts.values() if a.user_id == user_id), key=lambda a: a.account.account_number
        )

    async def get_account(self, user_id: str, account_number: str) -> LinkedAccount | None:
        """One of the user's linked accounts."""
        held = self._accounts.get(account_number)
        return held if held is not None and held.user_id == user_id else None

    async def mark_needs_relink(self, user_id: str, link_id: str, at: datetime) -> None:
        """Flag the link's credential as refused."""
        async with self._lock:
            link = self._links.get(link_id)
            if link is not None and link.user_id == user_id:
                self._links[link_id] = replace(link, status=LinkStatus.NEEDS_RELINK, updated_at=at)

    async def delete_link(self, user_id: str, link_id: str) -> bool:
        """Remove the link and its accounts."""
        async with self._lock:
            link = self._links.get(link_id)
            if link is None or link.user_id != user_id:
                return False
            del self._links[link_id]
            for number in [n for n, a in self._accounts.items() if a.link_id == link_id]:
                del self._accounts[number]
            return True
