"""Market data domain: symbols, conflation, the quote book, the simulator and model Greeks."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from decimal import Decimal

import numpy as np
import pytest

from services.marketdata.domain.book import QuoteBook
from services.marketdata.domain.conflation import ConflatingBuffer
from services.marketdata.domain.errors import FieldInvalid, FieldRequired, NotAnOptionSymbol, TooManySymbols
from services.marketdata.domain.events import QuoteEvent, QuoteUpdate, TradeEvent
from services.marketdata.domain.model import ModelInputs, model_greeks
from services.marketdata.domain.simulator import MarketSimulator
from services.marketdata.domain.symbols import OptionKind, OptionSymbol, parse_option_symbol, streamer_symbol, validate_symbols

NOW = datetime(2024, 1, 2, 15, 0, tzinfo=UTC)


# ---------------------------------------------------------------------------------------------- symbols


@pytest.mark.parametrize(
    ("occ", "streamer"),
    [
        ("SPY   240419C00500000", ".SPY240419C500"),
        ("SPY   240419P00500500", ".SPY240419P500.5"),
        ("SPXW  240419C05000000", ".SPXW240419C5000"),
    ],
)
def test_occ_symbols_convert_to_streamer_symbols(occ: str, streamer: str) -> None:
    assert streamer_symbol(occ) == streamer
    assert parse_option_symbol(streamer).occ() == occ  # type: ignore[union-attr]


def test_streamer_option_symbol_parses_its_terms() -> None:
    option = parse_option_symbol(".SPY240419P500.5")
    assert option == OptionSymbol("SPY", date(2024, 4, 19), OptionKind.PUT, Decimal("500.5"))


def test_weekly_index_option_underlying_is_the_index() -> None:
    assert parse_option_symbol(".SPXW240419C5000").underlying == "SPX"  # type: ignore[union-attr]


def test_option_expires_at_four_pm_new_york() -> None:
    option = parse_option_symbol(".SPY240419C500")
    assert option.expires_at() == datetime(2024, 4, 19, 20, 0, tzinfo=UTC)  # type: ignore[union-attr]


@pytest.mark.parametrize("symbol", ["SPY", "/ESM23:XCME", ".SPY241332C500", "SPY   240419X00500000", ""])
def test_non_option_symbols_are_not_parsed(symbol: str) -> None:
    assert parse_option_symbol(symbol) is None


def test_validate_symbols_rejects_empty_list() -> None:
    with pytest.raises(FieldRequired):
        validate_symbols([])


def test_validate_symbols_rejects_more_than_a_thousand() -> None:
    with pytest.raises(TooManySymbols):
        validate_symbols([f"S{i}" for i in range(1001)])


@pytest.mark.parametrize("bad", ["", "x" * 65, "SP\x00Y", "A\nB"])
def test_validate_symbols_rejects_malformed_symbol(bad: str) -> None:
    with pytest.raises(FieldInvalid):
        validate_symbols(["SPY", bad])


def test_validate_symbols_for_greeks_requires_options() -> None:
    with pytest.raises(NotAnOptionSymbol):
        validate_symbols([".SPY240419C500", "SPY"], options_only=True)


def test_validate_symbols_drops_duplicates_in_order() -> None:
    assert validate_symbols(["QQQ", "SPY", "QQQ"]) == ["QQQ", "SPY"]


# ---------------------------------------------------------------------------------------------- conflation


def test_buffer_keeps_every_update_below_capacity() -> None:
    buffer: ConflatingBuffer[int] = ConflatingBuffer(10)
    for value in range(5):
        buffer.offer("SPY", value)
    assert buffer.drain() == ([0, 1, 2, 3, 4], 0)


def test_buffer_over_capacity_keeps_latest_per_symbol_and_counts_drops() -> None:
    buffer: ConflatingBuffer[tuple[str, int]] = ConflatingBuffer(3)
    for value in range(10):
        for symbol in ("A", "B"):
            buffer.offer(symbol, (symbol, value))
    updates, conflated = buffer.drain()
    assert sorted(updates) == [("A", 9), ("B", 9)]
    assert conflated == 18
    assert not buffer.conflating


def test_buffer_returns_to_lossless_after_drain() -> None:
    buffer: ConflatingBuffer[int] = ConflatingBuffer(2)
    for value in range(5):
        buffer.offer("A", value)
    buffer.drain()
    buffer.offer("A", 7)
    buffer.offer("A", 8)
    assert buffer.drain() == ([7, 8], 0)


def test_buffer_memory_is_bounded_by_symbols_when_conflating() -> None:
    buffer: ConflatingBuffer[int] = ConflatingBuffer(4)
    for value in range(100_000):
        buffer.offer(f"S{value % 7}", value)
    assert len(buffer) == 7


# ---------------------------------------------------------------------------------------------- book


def test_book_merges_trade_into_quote() -> None:
    book = QuoteBook()
    changes = book.apply([QuoteEvent("SPY", 1.0, 1.2, 5, 6, 10), TradeEvent("SPY", 1.1, 100, 1000, 20)])
    assert changes.quotes[-1] == QuoteUpdate("SPY", 1.0, 1.2, 1.1, 5, 6, 1000, 20)
    assert book.quote("SPY").mark_price == pytest.approx(1.1)  # type: ignore[union-attr]


def test_mark_is_last_price_without_two_sided_market() -> None:
    update = QuoteUpdate("X", math.nan, 2.0, 1.5, 0, 0, 0, 0)
    assert update.mark_price == 1.5


def test_quote_update_json_round_trip_keeps_nan() -> None:
    update = QuoteUpdate("SPY", 1.0, 2.0, math.nan, 3.0, 4.0, math.nan, 123)
    again = QuoteUpdate.decode(update.encode())
    assert again.symbol == "SPY" and math.isnan(again.last_price) and again.time_ns == 123


# ---------------------------------------------------------------------------------------------- simulator


def _path(seed: int, steps: int = 200) -> list[float]:
    simulator = MarketSimulator(seed=seed, time_scale=60.0)
    prices = []
    for _ in range(steps):
        simulator.step(1.0)
        prices.append(simulator.spot("SPY"))
    return prices


def test_simulator_is_deterministic_for_a_seed() -> None:
    assert _path(7) == _path(7)
    assert _path(7) != _path(8)


def test_simulated_underlyings_are_positively_correlated() -> None:
    simulator = MarketSimulator(seed=3, time_scale=600.0)
    log_prices = []
    for _ in range(2000):
        simulator.step(1.0)
        log_prices.append([math.log(simulator.spot(s)) for s in ("SPY", "QQQ", "TSLA")])
    returns = np.diff(np.array(log_prices), axis=0)
    correlation = np.corrcoef(returns.T)
    assert correlation[0, 1] > 0.5  # SPY/QQQ loadings 0.95 x 0.90
    assert 0.1 < correlation[0, 2] < correlation[0, 1]


def test_underlying_quotes_are_two_sided_in_cents() -> None:
    simulator = MarketSimulator(seed=1)
    quotes, _ = simulator.underlying_events(["SPY", "AAPL", "UNKNOWN"], 5)
    assert [q.symbol for q in quotes] == ["SPY", "AAPL"]
    for quote in quotes:
        assert 0 < quote.bid_price < quote.ask_price
        assert round(quote.bid_price, 2) == quote.bid_price


def test_option_quotes_straddle_the_model_price_on_the_tick_grid() -> None:
    simulator = MarketSimulator(seed=1)
    options = [parse_option_symbol(s) for s in (".SPY240216C500", ".SPY240216P480", ".TSLA240119C300")]
    quotes, greeks = simulator.option_events(options, NOW, 5)  # type: ignore[arg-type]
    assert len(quotes) == len(greeks) == 3
    for quote, theo in zip(quotes, greeks, strict=True):
        assert quote.bid_price <= theo.price <= quote.ask_price
        tick = 0.01 if theo.price < 3 else 0.05
        assert abs(quote.ask_price / tick - round(quote.ask_price / tick)) < 1e-6
        assert quote.ask_price - quote.bid_price <= max(0.05, 0.05 * theo.price)
    call, put = greeks[0], greeks[1]
    assert 0 < call.delta < 1 and -1 < put.delta < 0
    assert call.vega > 0 and call.theta < 0


def test_expired_options_are_not_quoted() -> None:
    simulator = MarketSimulator(seed=1)
    quotes, _ = simulator.option_events([parse_option_symbol(".SPY231215C500")], NOW, 5)  # type: ignore[list-item]
    assert quotes == []


# ---------------------------------------------------------------------------------------------- model Greeks


def test_model_greeks_recover_the_broker_vol_from_a_theoretical_mark() -> None:
    simulator = MarketSimulator(seed=1)
    option = parse_option_symbol(".SPY240216C500")
    _, (feed_greeks,) = simulator.option_events([option], NOW, 5)  # type: ignore[list-item]
    book = QuoteBook()
    spot = simulator.spot("SPY")
    book.apply([
        QuoteEvent("SPY", spot, spot, 1, 1, 5),
        QuoteEvent(".SPY240216C500", feed_greeks.price, feed_greeks.price, 1, 1, 5),
        feed_greeks,
    ])  # fmt: skip
    inputs = ModelInputs(rate=simulator.rate, dividend_yields={"SPY": 0.013})
    (update,) = model_greeks([(".SPY240216C500", option)], book, NOW, inputs, 9)  # type: ignore[list-item]
    assert update.model_volatility == pytest.approx(feed_greeks.volatility, rel=1e-6)
    assert update.model_delta == pytest.approx(update.broker_delta, rel=1e-6)
    assert update.delta_difference == pytest.approx(0.0, abs=1e-6)


def test_model_greeks_are_nan_without_an_underlying_quote() -> None:
    book = QuoteBook()
    book.apply([QuoteEvent(".SPY240216C500", 5.0, 5.2, 1, 1, 5)])
    option = parse_option_symbol(".SPY240216C500")
    (update,) = model_greeks([(".SPY240216C500", option)], book, NOW, ModelInputs(), 9)  # type: ignore[list-item]
    assert math.isnan(update.model_delta) and math.isnan(update.model_volatility)
    assert math.isnan(update.broker_delta)


def test_model_greeks_are_nan_for_a_price_below_intrinsic() -> None:
    book = QuoteBook()
    book.apply([QuoteEvent("SPY", 600.0, 600.0, 1, 1, 5), QuoteEvent(".SPY240216C500", 1.0, 1.0, 1, 1, 5)])
    option = parse_option_symbol(".SPY240216C500")
    (update,) = model_greeks([(".SPY240216C500", option)], book, NOW, ModelInputs(), 9)  # type: ignore[list-item]
    assert math.isnan(update.model_volatility)
    assert math.isnan(update.broker_volatility)
