"""Translation between market data domain values and tastyplat.marketdata.v1 messages (only here)."""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.timestamp_pb2 import Timestamp
from tastyplat.marketdata.v1 import marketdata_service_pb2 as pb

from services.marketdata.domain.events import FeedKind, GreeksUpdate, QuoteUpdate
from services.marketdata.domain.history import Candle, CandleInterval

__all__ = [
    "candle_to_proto",
    "greeks_batch",
    "interval_from_proto",
    "quote_batch",
    "quote_to_proto",
    "source_to_proto",
    "timestamp_from_nanos",
    "timestamp_to_nanos",
]

_SOURCES: dict[FeedKind, int] = {FeedKind.DXFEED: pb.QUOTE_SOURCE_DXFEED, FeedKind.SIMULATOR: pb.QUOTE_SOURCE_SIMULATOR}
_INTERVALS: dict[int, CandleInterval] = {
    pb.CANDLE_INTERVAL_ONE_MINUTE: CandleInterval.ONE_MINUTE,
    pb.CANDLE_INTERVAL_FIVE_MINUTES: CandleInterval.FIVE_MINUTES,
    pb.CANDLE_INTERVAL_ONE_HOUR: CandleInterval.ONE_HOUR,
    pb.CANDLE_INTERVAL_ONE_DAY: CandleInterval.ONE_DAY,
}


def source_to_proto(kind: FeedKind) -> int:
    """The QuoteSource of a feed kind."""
    return _SOURCES[kind]


def interval_from_proto(value: int) -> CandleInterval | None:
    """The domain interval of a CandleInterval value; None for UNSPECIFIED or an unknown number."""
    return _INTERVALS.get(value)


def timestamp_from_nanos(time_ns: int) -> Timestamp:
    """A Timestamp of nanoseconds since the epoch."""
    return Timestamp(seconds=time_ns // 1_000_000_000, nanos=time_ns % 1_000_000_000)


def timestamp_to_nanos(stamp: Timestamp) -> int:
    """Nanoseconds since the epoch of a Timestamp."""
    return stamp.seconds * 1_000_000_000 + stamp.nanos


def quote_to_proto(quote: QuoteUpdate, symbol: str, kind: FeedKind) -> pb.Quote:
    """A Quote message (`symbol` as the caller asked for it)."""
    return pb.Quote(
        symbol=symbol,
        bid_price=quote.bid_price,
        ask_price=quote.ask_price,
        last_price=quote.last_price,
        mark_price=quote.mark_price,
        bid_size=quote.bid_size,
        ask_size=quote.ask_size,
        day_volume=quote.day_volume,
        quote_time=timestamp_from_nanos(quote.time_ns),
        source=_SOURCES[kind],  # type: ignore[arg-type]  # enum values are ints at runtime
    )


def quote_batch(
    updates: Sequence[QuoteUpdate],
    symbols: Sequence[str],
    *,
    snapshot: bool,
    conflated: int,
    source: int,
) -> pb.QuoteBatch:
    """Packed columns of quote updates; `symbols` are the requested forms, index-aligned with `updates`."""
    batch = pb.QuoteBatch(snapshot=snapshot, conflated_count=conflated, source=source)  # type: ignore[arg-type]
    batch.symbols.extend(symbols)
    batch.bid_prices.extend([u.bid_price for u in updates])
    batch.ask_prices.extend([u.ask_price for u in updates])
    batch.last_prices.extend([u.last_price for u in updates])
    batch.mark_prices.extend([u.mark_price for u in updates])
    batch.bid_sizes.extend([u.bid_size for u in updates])
    batch.ask_sizes.extend([u.ask_size for u in updates])
    batch.quote_times_unix_nanos.extend([u.time_ns for u in updates])
    return batch


def greeks_batch(
    updates: Sequence[GreeksUpdate],
    symbols: Sequence[str],
    *,
    snapshot: bool,
    conflated: int,
    source: int,
) -> pb.GreeksBatch:
    """Packed columns of Greeks updates; `symbols` are the requested forms, index-aligned with `updates`."""
    batch = pb.GreeksBatch(snapshot=snapshot, conflated_count=conflated, source=source)  # type: ignore[arg-type]
    batch.symbols.extend(symbols)
    batch.underlying_prices.extend([u.underlying_price for u in updates])
    batch.option_prices.extend([u.option_price for u in updates])
    batch.broker_volatilities.extend([u.broker_volatility for u in updates])
    batch.broker_deltas.extend([u.broker_delta for u in updates])
    batch.broker_gammas.extend([u.broker_gamma for u in updates])
    batch.broker_thetas.extend([u.broker_theta for u in updates])
    batch.broker_vegas.extend([u.broker_vega for u in updates])
    batch.broker_rhos.extend([u.broker_rho for u in updates])
    batch.model_volatilities.extend([u.model_volatility for u in updates])
    batch.model_prices.extend([u.model_price for u in updates])
    batch.model_deltas.extend([u.model_delta for u in updates])
    batch.model_gammas.extend([u.model_gamma for u in updates])
    batch.model_thetas.extend([u.model_theta for u in updates])
    batch.model_vegas.extend([u.model_vega for u in updates])
    batch.model_rhos.extend([u.model_rho for u in updates])
    batch.model_vannas.extend([u.model_vanna for u in updates])
    batch.model_charms.extend([u.model_charm for u in updates])
    batch.event_times_unix_nanos.extend([u.time_ns for u in updates])
    return batch


def candle_to_proto(candle: Candle) -> pb.Candle:
    """A Candle message."""
    return pb.Candle(
        start_time=timestamp_from_nanos(candle.start_ns),
        open_price=candle.open_price,
        high_price=candle.high_price,
        low_price=candle.low_price,
        close_price=candle.close_price,
        volume=candle.volume,
        tick_count=candle.tick_count,
    )
