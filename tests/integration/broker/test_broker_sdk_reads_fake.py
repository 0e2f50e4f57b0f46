"""Faithfulness of the fake: the PyPI ``tastytrade`` SDK (13.2.3) reads every shape from it without error."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import tastytrade.session as sdk_session
from tastytrade import Account, Session
from tastytrade.instruments import Equity, NestedOptionChain, Option, get_option_chain
from tastytrade.metrics import get_market_metrics, get_risk_free_rate

from tests.fakes.tastytrade_api import FakeTastytrade


@pytest.fixture
async def session(fake: FakeTastytrade, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Session]:
    # The SDK has no base-URL argument; tests point its module constant at the fake.
    monkeypatch.setattr(sdk_session, "API_URL", fake.url)
    async with Session(fake.client_secret, "refresh-alice") as sdk:
        yield sdk


@pytest.fixture
async def account(session: Session) -> Account:
    return await Account.get(session, "5WT00001")


async def test_sdk_reads_customer_and_accounts(session: Session) -> None:
    customer = await session.get_customer()
    accounts = await Account.get(session)
    assert customer.email == "alice@example.com"
    assert [a.account_number for a in accounts] == ["5WT00001", "5WT00002"]  # the closed one is filtered
    assert len(await Account.get(session, include_closed=True)) == 3


async def test_sdk_reads_balances(session: Session, account: Account) -> None:
    balances = await account.get_balances(session)
    assert balances.pending_cash == Decimal("-125.5")
    assert balances.net_liquidating_value > balances.cash_balance


async def test_sdk_reads_positions_with_marks(session: Session, account: Account) -> None:
    positions = await account.get_positions(session, include_marks=True)
    assert {p.quantity_direction for p in positions} == {"Long", "Short"}
    assert all(p.mark is not None for p in positions)


async def test_sdk_reads_every_transaction_page(session: Session, account: Account) -> None:
    history = await account.get_history(session, page_offset=None)
    assert len(history) == 620
    debits = [t for t in history if t.commission is not None and t.commission < 0]
    assert debits, "commission -effect Debit must come out negative"


async def test_sdk_reads_an_empty_history(session: Session) -> None:
    closed = await Account.get(session, "5WT00003")
    assert await closed.get_history(session, page_offset=None) == []


async def test_sdk_reads_total_fees(session: Session, account: Account) -> None:
    [latest] = await account.get_history(session, per_page=1)
    fees = await account.get_total_fees(session, latest.transaction_date)
    assert fees.total_fees < 0


async def test_sdk_reads_nested_and_flat_chains(session: Session) -> None:
    [spy] = await NestedOptionChain.get(session, "SPY")
    spx = await NestedOptionChain.get(session, "SPX")
    flat = await get_option_chain(session, "AAPL")
    assert len(spy.expirations) >= 5 and spy.expirations[0].strikes[0].call_streamer_symbol.startswith(".SPY")
    assert {c.root_symbol for c in spx} == {"SPX", "SPXW"}
    assert sum(len(options) for options in flat.values()) == 2 * 13 * len(flat)


async def test_sdk_reads_instruments(session: Session, account: Account) -> None:
    option_position = next(p for p in await account.get_positions(session) if p.instrument_type == "Equity Option")
    option = await Option.get(session, option_position.symbol)
    equity = await Equity.get(session, "AAPL")
    assert option.streamer_symbol == Option.occ_to_streamer_symbol(option_position.symbol)
    assert equity.symbol == "AAPL" and not equity.is_etf


async def test_sdk_reads_market_metrics_and_risk_free_rate(session: Session) -> None:
    metrics = await get_market_metrics(session, ["AAPL", "SPY"])
    assert [m.symbol for m in metrics] == ["AAPL", "SPY"] and metrics[0].beta == Decimal("1.265634436")
    assert await get_risk_free_rate(session) == Decimal("0.0425")


async def test_sdk_sandbox_session_reads_the_sandbox_host(
    sandbox_fake: FakeTastytrade, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sdk_session, "CERT_URL", sandbox_fake.url)
    async with Session(sandbox_fake.client_secret, "refresh-alice", is_test=True) as sdk:
        accounts = await Account.get(sdk)
    assert accounts and all("Accept-Version" not in r.headers for r in sandbox_fake.requests)
