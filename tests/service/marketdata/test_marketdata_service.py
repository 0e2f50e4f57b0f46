"""MarketDataService on a real grpc.aio server (port 0) with the simulator, called through the generated stubs."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import grpc.aio
import pytest
from google.rpc import error_details_pb2, status_pb2
from tastyplat.marketdata.v1 import marketdata_service_pb2 as pb
from tastyplat.marketdata.v1 import marketdata_service_pb2_grpc as pb_grpc
from tastyplat.type.v1 import stream_pb2

from services.marketdata.config import MarketDataSettings
from services.marketdata.wiring import MarketDataComponents, build, registration
from services.platform.clock import SystemClock
from services.platform.testing import client_channel, running_server

EXPIRY = datetime.now(UTC).date() + timedelta(days=45)
OCC_CALL = f"SPY   {EXPIRY:%y%m%d}C00500000"
STREAMER_CALL = f".SPY{EXPIRY:%y%m%d}C500"


@pytest.fixture
async def service() -> AsyncIterator[tuple[pb_grpc.MarketDataServiceStub, MarketDataComponents, Any]]:
    settings = MarketDataSettings.from_env(
        {},
        port=0,
        bus="memory",
        cache="memory",
        history="memory",
        simulator_tick_interval=0.02,
        heartbeat_seconds=0.3,
        pinned_symbols=("SPY", "QQQ"),
    )
    components = build(settings, clock=SystemClock())
    async with running_server([registration(components)]) as server:
        async with client_channel(server) as channel:
            yield pb_grpc.MarketDataServiceStub(channel), components, server
            # Let cancelled stream handlers finish before the server goes: a handler finalized after the
            # server is gone would touch a freed call object in the platform interceptor.
            for _ in range(200):
                if components.app is None or components.app.open_streams() == 0:
                    break
                await asyncio.sleep(0.01)


def error_reason(error: grpc.aio.AioRpcError) -> tuple[grpc.StatusCode, str]:
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.ErrorInfo()
                if detail.Unpack(info):
                    return error.code(), info.reason
    return error.code(), ""


async def _wait_for_quote(stub: pb_grpc.MarketDataServiceStub, symbol: str) -> pb.Quote:
    for _ in range(200):
        try:
            return (await stub.GetQuote(pb.GetQuoteRequest(symbol=symbol))).quote
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND:
                raise
        await asyncio.sleep(0.02)
    raise AssertionError(f"no quote for {symbol}")


async def test_get_quote_returns_a_simulated_two_sided_quote(service) -> None:  # type: ignore[no-untyped-def]
    stub, _, _ = service
    quote = await _wait_for_quote(stub, "SPY")
    assert quote.symbol == "SPY" and quote.source == pb.QUOTE_SOURCE_SIMULATOR
    assert 0 < quote.bid_price < quote.ask_price
    assert quote.mark_price == pytest.approx((quote.bid_price + quote.ask_price) / 2)
    assert quote.quote_time.seconds > 0


async def test_get_quote_without_symbol_is_invalid_argument(service) -> None:  # type: ignore[no-untyped-def]
    stub, _, _ = service
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetQuote(pb.GetQuoteRequest())
    assert error_reason(caught.value) == (grpc.StatusCode.INVALID_ARGUMENT, "FIELD_REQUIRED")


async def test_get_quote_of_unseen_symbol_is_not_found(service) -> None:  # type: ignore[no-untyped-def]
    stub, _, _ = service
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetQuote(pb.GetQuoteRequest(symbol="NEVERSEEN"))
    assert error_reason(caught.value) == (grpc.StatusCode.NOT_FOUND, "QUOTE_NOT_FOUND")


async def test_stream_quotes_sends_snapshot_then_packed_updates(service) -> None:  # type: ignore[no-untyped-def]
    stub, _, _ = service
    await _wait_for_quote(stub, "SPY")
    call = stub.StreamQuotes(pb.StreamQuotesRequest(symbols=["SPY", "QQQ"]))
    first = await call.read()
    assert first.WhichOneof("event") == "quotes" and first.quotes.snapshot
    assert set(first.quotes.symbols) == {"SPY", "QQQ"}
    updates = 0
    while updates < 20:
        message = await asyncio.wait_for(call.read(), 5)
        if message.WhichOneof("event") != "quotes":
            continue
        batch = message.quotes
        assert not batch.snapshot
        n = len(batch.symbols)
        assert n == len(batch.bid_prices) == len(batch.ask_prices) == len(batch.quote_times_unix_nanos)
        assert all(b < a for b, a in zip(batch.bid_prices, batch.ask_prices, strict=True))
        updates += n
    call.cancel()


async def test_cancelled_stream_frees_its_resources(service) -> None:  # type: ignore[no-untyped-def]
    stub, components, _ = service
    call = stub.StreamQuotes(pb.StreamQuotesRequest(symbols=["AAPL"]))
    await call.read()
    assert components.app.open_streams() == 1
    assert "AAPL" in components.feed.subscriptions("Quote")
    call.cancel()
    for _ in range(100):
        if components.app.open_streams() == 0:
            break
        await asyncio.sleep(0.01)
    assert components.app.open_streams() == 0
    assert "AAPL" not in components.feed.subscriptions("Quote")


async def test_idle_stream_gets_heartbeats(service) -> None:  # type: ignore[no-untyped-def]
    stub, _, _ = service
    call = stub.StreamQuotes(pb.StreamQuotesRequest(symbols=["UNKNOWN1"]))
    snapshot = await call.read()
    assert snapshot.quotes.snapshot and list(snapshot.quotes.symbols) == []
    heartbeat = await asyncio.wait_for(call.read(), 3)
    assert heartbeat.WhichOneof("event") == "heartbeat"
    assert heartbeat.heartbeat.server_time.seconds > 0
    call.cancel()


@pytest.mark.parametrize(
    ("symbols", "reason"),
    [([], "FIELD_REQUIRED"), ([f"S{i}" for i in range(1001)], "TOO_MANY_SYMBOLS"), (["SPY", ""], "FIELD_INVALID")],
)
async def test_stream_quotes_rejects_bad_symbol_lists(service, symbols: list[str], reason: str) -> None:  # type: ignore[no-untyped-def]
    stub, _, _ = service
    call = stub.StreamQuotes(pb.StreamQuotesRequest(symbols=symbols))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call.read()
    assert error_reason(caught.value) == (grpc.StatusCode.INVALID_ARGUMENT, reason)


async def test_stream_greeks_has_broker_and_model_columns_in_requested_form(service) -> None:  # type: ignore[no-untyped-def]
    stub, _, _ = service
    call = stub.StreamGreeks(pb.StreamGreeksRequest(symbols=[OCC_CALL]))
    found = None
    for _ in range(100):
        message = await asyncio.wait_for(call.read(), 5)
        if message.WhichOneof("event") != "greeks":
            continue
        batch = message.greeks
        for i, symbol in enumerate(batch.symbols):
            assert symbol == OCC_CALL
            if not math.isnan(batch.broker_deltas[i]) and not math.isnan(batch.model_deltas[i]):
                found = (batch, i)
        if found:
            break
    call.cancel()
    assert found is not None
    batch, i = found
    assert 0 < batch.model_deltas[i] < 1 and 0 < batch.broker_deltas[i] < 1
    assert abs(batch.model_deltas[i] - batch.broker_deltas[i]) < 0.1
    assert 0 < batch.model_volatilities[i] < 2 and batch.model_vegas[i] > 0
    assert batch.underlying_prices[i] > 0 and batch.option_prices[i] > 0


async def test_stream_greeks_rejects_a_non_option_symbol(service) -> None:  # type: ignore[no-untyped-def]
    stub, _, _ = service
    call = stub.StreamGreeks(pb.StreamGreeksRequest(symbols=[STREAMER_CALL, "SPY"]))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call.read()
    assert error_reason(caught.value) == (grpc.StatusCode.INVALID_ARGUMENT, "FIELD_INVALID")


async def test_get_history_returns_one_minute_candles(service) -> None:  # type: ignore[no-untyped-def]
    stub, components, _ = service
    await _wait_for_quote(stub, "SPY")
    await asyncio.sleep(0.2)
    await components.app.history_writer.flush()
    response = await stub.GetHistory(
        pb.GetHistoryRequest(symbol="SPY", interval=pb.CANDLE_INTERVAL_ONE_MINUTE)
    )
    assert response.candles
    candle = response.candles[-1]
    assert candle.low_price <= candle.open_price <= candle.high_price and candle.tick_count > 0


async def test_get_history_needs_an_interval(service) -> None:  # type: ignore[no-untyped-def]
    stub, _, _ = service
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetHistory(pb.GetHistoryRequest(symbol="SPY"))
    assert error_reason(caught.value) == (grpc.StatusCode.INVALID_ARGUMENT, "FIELD_REQUIRED")


async def test_get_history_rejects_an_inverted_range(service) -> None:  # type: ignore[no-untyped-def]
    stub, _, _ = service
    request = pb.GetHistoryRequest(symbol="SPY", interval=pb.CANDLE_INTERVAL_ONE_HOUR)
    request.start_time.FromDatetime(datetime(2024, 1, 2, tzinfo=UTC))
    request.end_time.FromDatetime(datetime(2024, 1, 1, tzinfo=UTC))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetHistory(request)
    assert error_reason(caught.value) == (grpc.StatusCode.INVALID_ARGUMENT, "TIME_RANGE_INVALID")


async def test_shutdown_ends_open_streams_with_stream_end(service) -> None:  # type: ignore[no-untyped-def]
    stub, _, server = service
    call = stub.StreamQuotes(pb.StreamQuotesRequest(symbols=["SPY"]))
    await call.read()
    stopping = asyncio.create_task(server.stop(2.0))
    last = None
    while True:
        message = await asyncio.wait_for(call.read(), 5)
        if message is grpc.aio.EOF:
            break
        last = message
    await stopping
    assert last is not None and last.WhichOneof("event") == "end"
    assert last.end.reason == stream_pb2.STREAM_END_REASON_SERVER_SHUTDOWN
