"""One contract suite for the link store, run against the in-memory adapter and real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from services.broker.adapters.memory import InMemoryLinkRepository
from services.broker.adapters.postgres import PostgresDatabase, PostgresLinkRepository, migrate
from services.broker.domain.errors import AccountAlreadyLinked
from services.broker.domain.model import Account, BrokerLink, Environment, LinkStatus, SealedSecret
from services.broker.ports import LinkRepository

DSN = "postgresql://postgres@127.0.0.1:5432/test"
T0 = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.integration)])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[LinkRepository]:
    if request.param == "memory":
        yield InMemoryLinkRepository()
        return
    schema = f"broker_test_{uuid.uuid4().hex[:10]}"
    database = PostgresDatabase(DSN, schema, max_size=3)
    try:
        await database.connect()
    except (OSError, asyncpg.PostgresError) as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"PostgreSQL at {DSN} is not reachable: {exc}")
    try:
        yield PostgresLinkRepository(database)
    finally:
        await database.pool.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await database.close()


def link(link_id: str, user: str, *, env: Environment = Environment.PRODUCTION, request_id: str | None = None) -> BrokerLink:
    return BrokerLink(
        link_id=link_id, user_id=user, environment=env, secret=SealedSecret(1, b"\x01envelope-" + link_id.encode()),
        status=LinkStatus.ACTIVE, created_at=T0, updated_at=T0, request_id=request_id,
    )


def account(number: str, *, closed: bool = False) -> Account:
    return Account(number, f"nick {number}", "Individual", "Margin", closed, T0 - timedelta(days=400), "owner", True)


async def test_saved_link_and_accounts_read_back(store: LinkRepository) -> None:
    await store.save_link(link("l1", "alice", request_id="r1"), [account("5WT2"), account("5WT1")])
    saved = await store.get_link("alice", "l1")
    assert saved is not None and saved.secret.envelope == b"\x01envelope-l1" and saved.account_numbers == ("5WT1", "5WT2")
    accounts = await store.list_accounts("alice")
    assert [a.account.account_number for a in accounts] == ["5WT1", "5WT2"]
    assert accounts[0].account == account("5WT1") and accounts[0].link_id == "l1"
    assert (await store.find_by_request("alice", "r1")) == saved


async def test_links_are_private_to_their_user(store: LinkRepository) -> None:
    await store.save_link(link("l1", "alice"), [account("5WT1")])
    assert await store.get_link("bob", "l1") is None
    assert await store.get_account("bob", "5WT1") is None
    assert await store.list_accounts("bob") == []
    assert await store.account_owner("5WT1") == "alice"


async def test_an_account_cannot_be_linked_by_two_users(store: LinkRepository) -> None:
    await store.save_link(link("l1", "alice"), [account("5WT1")])
    with pytest.raises(AccountAlreadyLinked):
        await store.save_link(link("l2", "bob"), [account("5WT1"), account("5WT9")])
    assert await store.get_link("bob", "l2") is None
    assert await store.account_owner("5WT9") is None


async def test_relinking_replaces_the_accounts_of_the_link(store: LinkRepository) -> None:
    await store.save_link(link("l1", "alice"), [account("5WT1"), account("5WT2")])
    await store.save_link(link("l1", "alice"), [account("5WT2", closed=True), account("5WT3")])
    numbers = [a.account.account_number for a in await store.list_accounts("alice")]
    assert numbers == ["5WT2", "5WT3"]
    assert (await store.get_account("alice", "5WT2")).account.is_closed  # type: ignore[union-attr]


async def test_an_account_moves_between_the_same_users_links(store: LinkRepository) -> None:
    await store.save_link(link("l1", "alice"), [account("5WT1")])
    await store.save_link(link("l2", "alice", env=Environment.SANDBOX), [account("5WT1")])
    assert (await store.get_account("alice", "5WT1")).link_id == "l2"  # type: ignore[union-attr]


async def test_find_link_matches_environment_and_accounts(store: LinkRepository) -> None:
    await store.save_link(link("l1", "alice"), [account("5WT1")])
    assert (await store.find_link("alice", Environment.PRODUCTION, ["5WT0", "5WT1"])).link_id == "l1"  # type: ignore[union-attr]
    assert await store.find_link("alice", Environment.SANDBOX, ["5WT1"]) is None


async def test_needs_relink_is_recorded(store: LinkRepository) -> None:
    await store.save_link(link("l1", "alice"), [account("5WT1")])
    await store.mark_needs_relink("alice", "l1", T0 + timedelta(minutes=5))
    saved = await store.get_link("alice", "l1")
    assert saved is not None and saved.status is LinkStatus.NEEDS_RELINK and saved.updated_at == T0 + timedelta(minutes=5)


async def test_delete_removes_link_and_accounts(store: LinkRepository) -> None:
    await store.save_link(link("l1", "alice"), [account("5WT1")])
    assert not await store.delete_link("bob", "l1")
    assert await store.delete_link("alice", "l1")
    assert await store.list_accounts("alice") == [] and await store.list_links("alice") == []
    assert not await store.delete_link("alice", "l1")


@pytest.mark.integration
async def test_migrations_apply_once() -> None:
    schema = f"broker_test_{uuid.uuid4().hex[:10]}"
    database = PostgresDatabase(DSN, schema, max_size=2)
    try:
        applied = await database.connect()
    except (OSError, asyncpg.PostgresError) as exc:  # pragma: no cover
        pytest.skip(f"PostgreSQL at {DSN} is not reachable: {exc}")
    try:
        assert applied == [1]
        assert await migrate(database.pool, schema) == []
    finally:
        await database.pool.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await database.close()
