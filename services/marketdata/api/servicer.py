"""The MarketDataService servicer: validates requests, delegates to the app, streams packed batches."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import grpc.aio
from tastyplat.marketdata.v1 import marketdata_service_pb2 as pb
from tastyplat.marketdata.v1 import marketdata_service_pb2_grpc as pb_grpc
from tastyplat.type.v1 import stream_pb2

from services.marketdata.api import convert
from services.marketdata.app import MarketDataApp, StreamEnded, requested_symbols
from services.marketdata.domain.errors import FieldRequired
from services.marketdata.domain.events import QuoteUpdate, time_ns_of
from services.marketdata.domain.history import HistoryQuery
from services.marketdata.domain.symbols import validate_symbols
from services.platform.errors import FieldViolation

__all__ = ["MarketDataServicer", "caller_of"]

log = logging.getLogger("tastyplat.marketdata")

Context = grpc.aio.ServicerContext


def caller_of(context: Context) -> str:
    """Who a stream counts against: the JWT subject the gateway forwards (`x-jwt-sub`), else the peer."""
    for key, value in context.invocation_metadata() or ():
        if key == "x-jwt-sub" and value:
            return f"sub:{value if isinstance(value, str) else value.decode('latin-1')}"
    return f"peer:{context.peer()}"


def _required(field: str, what: str) -> FieldRequired:
    message = f"{field} is required: {what}"
    return FieldRequired(message, field_violations=[FieldViolation(field, message, "FIELD_REQUIRED")])


class MarketDataServicer(pb_grpc.MarketDataServiceServicer):
    """gRPC face of `MarketDataApp`."""

    def __init__(self, app: MarketDataApp | Callable[[], MarketDataApp]) -> None:
        """Serve `app`, or the app a zero-argument callable returns per call (built after registration)."""
        self._app_source = app
        self._memo = _MessageMemo()

    @property
    def _app(self) -> MarketDataApp:
        source = self._app_source
        return source if isinstance(source, MarketDataApp) else source()

    async def GetQuote(self, request: pb.GetQuoteRequest, context: Context) -> pb.GetQuoteResponse:
        if not request.symbol:
            raise _required("symbol", "name the symbol to quote, e.g. SPY")
        quote = await self._app.get_quote(request.symbol)
        return pb.GetQuoteResponse(quote=convert.quote_to_proto(quote, request.symbol, self._app.feed_kind()))

    async def GetHistory(self, request: pb.GetHistoryRequest, context: Context) -> pb.GetHistoryResponse:
        if not request.symbol:
            raise _required("symbol", "name the symbol whose history to read")
        interval = convert.interval_from_proto(request.interval)
        if interval is None:
            raise _required("interval", "one of ONE_MINUTE, FIVE_MINUTES, ONE_HOUR, ONE_DAY")
        start_ns = convert.timestamp_to_nanos(request.start_time) if request.HasField("start_time") else None
        end_ns = (
            convert.timestamp_to_nanos(request.end_time)
            if request.HasField("end_time")
            else time_ns_of(self._app.clock.now())
        )
        query = HistoryQuery.build(request.symbol, interval, start_ns, end_ns, request.page_size)
        candles, next_token = await self._app.get_history(query, request.page_token)
        return pb.GetHistoryResponse(
            candles=[convert.candle_to_proto(c) for c in candles], next_page_token=next_token
        )

    # Streams write with context.write() from a coroutine rather than yielding from an async generator: a
    # cancelled call then ends inside our own awaits, while the call is alive, instead of leaving a suspended
    # generator to be closed later by the runtime.

    async def StreamQuotes(self, request: pb.StreamQuotesRequest, context: Context) -> None:
        symbols = validate_symbols(list(request.symbols))
        stream = await self._app.open_quote_stream(symbols, caller_of(context))
        source = convert.source_to_proto(self._app.feed_kind())
        heartbeat = self._app.settings.heartbeat_interval
        try:
            await _write(context, 
                pb.StreamQuotesResponse(
                    quotes=convert.quote_batch(
                        stream.snapshot, requested_symbols(stream.snapshot, stream.aliases),
                        snapshot=True, conflated=0, source=source,
                    )  # fmt: skip
                )
            )
            while True:
                try:
                    batch = await stream.next(heartbeat)
                except StreamEnded as ended:
                    await _write(context, pb.StreamQuotesResponse(end=_stream_end(ended)))
                    return
                if batch is None:
                    await _write(context, pb.StreamQuotesResponse(heartbeat=self._heartbeat()))
                    continue
                updates, conflated = batch
                if conflated == 0 and not stream.aliases:
                    await _write(context, self._memo.quotes(updates, source))
                    continue
                await _write(context, 
                    pb.StreamQuotesResponse(
                        quotes=convert.quote_batch(
                            updates, requested_symbols(updates, stream.aliases),
                            snapshot=False, conflated=conflated, source=source,
                        )  # fmt: skip
                    )
                )
        finally:
            await stream.close()

    async def StreamGreeks(self, request: pb.StreamGreeksRequest, context: Context) -> None:
        symbols = validate_symbols(list(request.symbols), options_only=True)
        stream = await self._app.open_greeks_stream(symbols, caller_of(context))
        source = convert.source_to_proto(self._app.feed_kind())
        heartbeat = self._app.settings.heartbeat_interval
        try:
            await _write(context, 
                pb.StreamGreeksResponse(
                    greeks=convert.greeks_batch(
                        stream.snapshot, requested_symbols(stream.snapshot, stream.aliases),
                        snapshot=True, conflated=0, source=source,
                    )  # fmt: skip
                )
            )
            while True:
                try:
                    batch = await stream.next(heartbeat)
                except StreamEnded as ended:
                    await _write(context, pb.StreamGreeksResponse(end=_stream_end(ended)))
                    return
                if batch is None:
                    await _write(context, pb.StreamGreeksResponse(heartbeat=self._heartbeat()))
                    continue
                updates, conflated = batch
                await _write(context, 
                    pb.StreamGreeksResponse(
                        greeks=convert.greeks_batch(
                            updates, requested_symbols(updates, stream.aliases),
                            snapshot=False, conflated=conflated, source=source,
                        )  # fmt: skip
                    )
                )
        finally:
            await stream.close()

    def _heartbeat(self) -> stream_pb2.Heartbeat:
        return stream_pb2.Heartbeat(server_time=convert.timestamp_from_nanos(time_ns_of(self._app.clock.now())))


class _MessageMemo:
    # Streams that follow the same symbols drain the very same update objects after one feed batch; the
    # message built for the first of them is reused by the others (messages are never mutated once built).

    __slots__ = ("_key", "_message", "_updates")

    def __init__(self) -> None:
        self._key: tuple[int, ...] = ()
        self._updates: list[QuoteUpdate] = []  # holds the objects whose ids form the key
        self._message: pb.StreamQuotesResponse | None = None

    def quotes(self, updates: list[QuoteUpdate], source: int) -> pb.StreamQuotesResponse:
        key = (source, *map(id, updates))
        message = self._message
        if message is None or key != self._key:
            message = pb.StreamQuotesResponse(
                quotes=convert.quote_batch(
                    updates, [u.symbol for u in updates], snapshot=False, conflated=0, source=source
                )
            )
            self._key, self._updates, self._message = key, updates, message
        return message


async def _write(context: Context, message: object) -> None:
    try:
        await context.write(message)
    except asyncio.CancelledError:
        raise
    except Exception as error:
        # A failed write means the call is already over (the client cancelled or went away between two
        # messages): nothing can be reported on it, so the stream ends like a cancelled one.
        log.debug("stream write failed, call is over: %r", error)
        raise asyncio.CancelledError from None


def _stream_end(ended: StreamEnded) -> stream_pb2.StreamEnd:
    return stream_pb2.StreamEnd(reason=stream_pb2.STREAM_END_REASON_SERVER_SHUTDOWN, message=ended.message)


