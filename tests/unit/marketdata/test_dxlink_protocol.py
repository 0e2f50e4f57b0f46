"""DXLink FEED_DATA decoding: every event type, COMPACT and FULL, the quirks of the wire format."""

from __future__ import annotations

import math

import pytest

from services.marketdata.adapters.dxlink.protocol import EVENT_FIELDS, ProtocolError, decode_feed_data
from services.marketdata.domain.events import GreeksEvent, ProfileEvent, QuoteEvent, SummaryEvent, TradeEvent

FIELDS = {name: list(fields) for name, fields in EVENT_FIELDS.items()}


def compact(event_type: str, *records: dict[str, object]) -> list[object]:
    values: list[object] = []
    for record in records:
        values.extend(record.get(name, "NaN") for name in FIELDS[event_type])
    return [event_type, values]


def test_trade_is_decoded_with_time_in_milliseconds() -> None:
    data = compact("Trade", {"eventSymbol": "SPY", "time": 1_700_000_000_500, "price": 500.1, "size": 300,
                             "dayVolume": 12345, "tickDirection": "UP", "extendedTradingHours": False})  # fmt: skip
    assert decode_feed_data(data, FIELDS, received_ns=1) == [
        TradeEvent("SPY", 500.1, 300.0, 12345.0, 1_700_000_000_500_000_000)
    ]


def test_summary_with_missing_prices_decodes_them_as_nan() -> None:
    data = compact("Summary", {"eventSymbol": "SPY", "dayOpenPrice": 499.0, "dayClosePrice": "NaN",
                               "prevDayClosePrice": 498.5, "openInterest": 0, "dayClosePriceType": "REGULAR"})  # fmt: skip
    (event,) = decode_feed_data(data, FIELDS, received_ns=42)
    assert isinstance(event, SummaryEvent)
    assert (event.day_open_price, event.prev_day_close_price, event.time_ns) == (499.0, 498.5, 42)
    assert math.isnan(event.day_close_price) and math.isnan(event.day_high_price)


def test_profile_carries_status_and_text() -> None:
    data = compact("Profile", {"eventSymbol": "AAPL", "description": "Apple Inc.", "tradingStatus": "HALTED",
                               "high52WeekPrice": 199.6, "beta": "Infinity"})  # fmt: skip
    (event,) = decode_feed_data(data, FIELDS, received_ns=7)
    assert isinstance(event, ProfileEvent)
    assert (event.description, event.trading_status, event.high_52_week_price) == ("Apple Inc.", "HALTED", 199.6)
    assert event.beta == math.inf


def test_greeks_index_above_two_to_the_53_does_not_disturb_decoding() -> None:
    data = ["Greeks", [".SPY240419C500", 0, 0, 7235129486797176832, 1684559855338, 0, 26.33, 0.3969, 0.52,
                       0.031, -0.045, 0.018, 0.12]]  # fmt: skip
    (event,) = decode_feed_data(data, FIELDS, received_ns=1)
    assert event == GreeksEvent(".SPY240419C500", 26.33, 0.3969, 0.52, 0.031, -0.045, 0.018, 0.12,
                                1684559855338 * 1_000_000)  # fmt: skip


def test_values_follow_the_channel_field_order_not_a_fixed_one() -> None:
    fields = {"Quote": ["askPrice", "eventSymbol", "bidPrice"]}
    (event,) = decode_feed_data(["Quote", [2.0, "SPY", 1.0]], fields, received_ns=5)
    assert (event.symbol, event.bid_price, event.ask_price) == ("SPY", 1.0, 2.0)


def test_event_type_inside_values_is_accepted_when_requested() -> None:
    fields = {"Greeks": ["eventType", "eventSymbol", "delta"]}
    events = decode_feed_data(["Greeks", ["Greeks", ".A", 0.1, "Greeks", ".B", 0.2]], fields, received_ns=5)
    assert [(e.symbol, e.delta) for e in events] == [(".A", 0.1), (".B", 0.2)]


def test_full_format_objects_are_decoded() -> None:
    data = [{"eventType": "Quote", "eventSymbol": "SPY", "bidPrice": 1.0, "askPrice": 1.1, "bidSize": 5,
             "askSize": 6, "bidTime": 1000}]  # fmt: skip
    assert decode_feed_data(data, {}, received_ns=9) == [QuoteEvent("SPY", 1.0, 1.1, 5.0, 6.0, 1_000_000_000)]


def test_alternating_type_value_pairs_are_decoded() -> None:
    data = [*compact("Quote", {"eventSymbol": "A", "bidPrice": 1, "askPrice": 2}),
            *compact("Trade", {"eventSymbol": "A", "price": 1.5})]  # fmt: skip
    events = decode_feed_data(data, FIELDS, received_ns=3)
    assert [type(e).__name__ for e in events] == ["QuoteEvent", "TradeEvent"]


@pytest.mark.parametrize(
    "data",
    [
        [],
        ["Quote"],
        ["Quote", ["SPY", 1, 2]],  # not a multiple of the field count
        ["Quote", "not a list"],
        compact("Quote", {"eventSymbol": "", "bidPrice": 1}),
        compact("Quote", {"eventSymbol": "SPY", "bidPrice": "abc"}),
    ],
)
def test_malformed_data_raises_protocol_error(data: list[object]) -> None:
    with pytest.raises(ProtocolError):
        decode_feed_data(data, FIELDS, received_ns=1)


def test_data_for_an_event_type_the_channel_did_not_set_up_is_an_error() -> None:
    with pytest.raises(ProtocolError):
        decode_feed_data(compact("Trade", {"eventSymbol": "A"}), {"Quote": FIELDS["Quote"]}, received_ns=1)
