"""The paper broker's demo account: deterministic, realistic, self-consistent, and marks that can move."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import math

import pytest

from services.broker.adapters.paper import PaperConnector, ReferenceMarks, reference_option_price
from services.broker.domain.errors import AccountNotFound, SymbolNotFound
from services.broker.domain.model import Credential, InstrumentType
from services.broker.domain.paper import paper_account_number
from services.platform.clock import FakeClock

NOW = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)


def _session(clock: FakeClock | None = None, marks: ReferenceMarks | None = None):
    clock = clock or FakeClock(NOW)
    marks = marks or ReferenceMarks(clock)
    connector = PaperConnector(clock=clock, marks=marks)
    return connector.open_session(Credential(paper_account_number("user-1"))), marks


async def test_demo_account_is_deterministic() -> None:
    first, _ = _session()
    second, _ = _session()
    number = paper_account_number("user-1")
    assert await first.list_positions(number) == await second.list_positions(number)
    assert await first.list_transactions(number) == await second.list_transactions(number)


def test_each_user_gets_their_own_demo_account_number() -> None:
    assert paper_account_number("user-1") != paper_account_number("user-2")
    assert paper_account_number("user-1").startswith("PAPER")


async def test_demo_holds_long_and_short_options_on_four_underlyings_at_several_expiries() -> None:
    session, _ = _session()
    positions = await session.list_positions(paper_account_number("user-1"))
    options = [p for p in positions if p.instrument_type is InstrumentType.EQUITY_OPTION]
    shares = [p for p in positions if p.instrument_type is InstrumentType.EQUITY]
    assert {p.underlying_symbol for p in options} == {"SPY", "QQQ", "AAPL", "TSLA"}
    assert any(p.quantity > 0 for p in options) and any(p.quantity < 0 for p in options)
    assert len({p.option.expiration_date for p in options if p.option}) >= 3
    assert all(p.expires_at and p.expires_at > NOW for p in options)
    assert shares and all(p.quantity > 0 for p in shares)


async def test_cash_is_the_sum_of_the_history_net_values() -> None:
    session, _ = _session()
    number = paper_account_number("user-1")
    history = await session.list_transactions(number)
    balances = await session.get_balances(number)
    assert balances.cash_balance == sum((t.net_value for t in history), Decimal(0))
    assert {"Trade", "Money Movement", "Receive Deliver"} <= {t.transaction_type for t in history}


async def test_net_liquidating_value_adds_longs_and_subtracts_shorts() -> None:
    session, _ = _session()
    b = await session.get_balances(paper_account_number("user-1"))
    expected = b.cash_balance + b.long_equity_value + b.long_derivative_value - b.short_equity_value - b.short_derivative_value
    assert b.net_liquidating_value == pytest.approx(expected, abs=Decimal("0.01"))
    assert b.maintenance_requirement > 0


async def test_history_is_newest_first() -> None:
    session, _ = _session()
    history = await session.list_transactions(paper_account_number("user-1"))
    assert [t.executed_at for t in history] == sorted((t.executed_at for t in history), reverse=True)


async def test_marks_follow_the_price_source() -> None:
    session, marks = _session()
    number = paper_account_number("user-1")
    before = {p.symbol: p.mark for p in await session.list_positions(number)}
    marks.set_underlying_price("SPY", Decimal("600.00"))
    after = {p.symbol: p.mark for p in await session.list_positions(number)}
    assert after["SPY"] == Decimal("600.00") != before["SPY"]
    spy_calls = [s for s in after if s.startswith("SPY ") and "C" in s[12:13]]
    assert all(after[s] > before[s] for s in spy_calls)


async def test_book_rolls_forward_with_the_calendar() -> None:
    clock = FakeClock(NOW)
    session, _ = _session(clock)
    number = paper_account_number("user-1")
    clock.advance(timedelta(days=45).total_seconds())
    positions = await session.list_positions(number)
    assert all(p.expires_at is None or p.expires_at > clock.now() for p in positions)


async def test_another_account_number_is_not_found() -> None:
    session, _ = _session()
    with pytest.raises(AccountNotFound):
        await session.get_balances("PAPER000000")


async def test_chain_lists_ascending_expirations_for_demo_underlyings_only() -> None:
    session, _ = _session()
    [chain] = await session.get_option_chain("AAPL")
    dates = [e.expiration_date for e in chain.expirations]
    assert dates == sorted(dates) and len(dates) >= 5
    assert len(chain.expirations[0].strikes) == 13
    with pytest.raises(SymbolNotFound):
        await session.get_option_chain("GME")


def test_reference_price_satisfies_put_call_parity() -> None:
    s, k, t, r, q = 100.0, 95.0, 0.5, 0.04, 0.01
    call = reference_option_price(spot=s, strike=k, years=t, volatility=0.3, rate=r, dividend_yield=q, call=True)
    put = reference_option_price(spot=s, strike=k, years=t, volatility=0.3, rate=r, dividend_yield=q, call=False)
    assert call - put == pytest.approx(s * math.exp(-q * t) - k * math.exp(-r * t), rel=1e-12)
