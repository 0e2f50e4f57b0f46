"""Peer adapters over gRPC: the broker (positions, balances, history, metrics) and market data (prices, Greeks, history)."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import grpc
import grpc.aio

from services.portfolio.domain.errors import (
    AccountNotFound,
    AuthenticationRequired,
    BrokerUnavailable,
    MarketDataUnavailable,
)
from services.portfolio.domain.model import (
    Action,
    HeldPosition,
    InstrumentKind,
    OptionTerms,
    Transaction,
    TransactionType,
)
from services.portfolio.ports import AccountBalances, Caller, FeedGreeks, Metrics

__all__ = ["GrpcBroker", "GrpcMarketData", "decimal_of", "option_terms", "transaction_from_proto"]

log = logging.getLogger("tastyplat.portfolio.peers")

_PAGE = 2000
_SNAPSHOT_TIMEOUT = 5.0
# How long to wait after the snapshot for symbols it lacked (the feed starts following them on subscribe).
_FIRST_QUOTE_WAIT = 2.0
_FIRST_GREEKS_WAIT = 0.5


def decimal_of(message: Any) -> Decimal:
    """A tastyplat.type.v1.Money or Decimal as an exact Decimal."""
    return Decimal(message.units) + Decimal(message.nanos).scaleb(-9)


def option_terms(o: Any, underlying: str) -> OptionTerms:
    """A tastyplat.type.v1.OptionContract as OptionTerms (European only when the contract says so)."""
    from tastyplat.type.v1 import option_pb2

    return OptionTerms(
        symbol=o.symbol,
        underlying_symbol=o.underlying_symbol or underlying,
        is_call=o.kind == option_pb2.OPTION_KIND_CALL,
        strike=o.strike_price,
        expiration_time=o.expiration_time.ToDatetime(tzinfo=UTC),
        american=o.style != option_pb2.EXERCISE_STYLE_EUROPEAN,
        multiplier=o.multiplier or 100.0,
        streamer_symbol=o.streamer_symbol,
    )


def _instrument(value: int) -> InstrumentKind | None:
    return InstrumentKind(value) if value in InstrumentKind._value2member_map_ else None


def transaction_from_proto(t: Any) -> Transaction:
    """A tastyplat.broker.v1.Transaction as a domain Transaction."""
    fees = decimal_of(t.clearing_fees) + decimal_of(t.regulatory_fees) + decimal_of(t.proprietary_index_option_fees)
    return Transaction(
        transaction_id=t.transaction_id,
        executed_at=t.execute_time.ToDatetime(tzinfo=UTC),
        transaction_type=TransactionType(t.transaction_type) if t.transaction_type in (1, 2, 3, 4) else TransactionType.OTHER,
        sub_type=t.transaction_sub_type,
        action=Action(t.action) if t.action in Action._value2member_map_ else None,
        symbol=t.symbol,
        underlying_symbol=t.underlying_symbol,
        instrument=_instrument(t.instrument_type),
        quantity=decimal_of(t.quantity),
        price=decimal_of(t.price) if t.HasField("price") else None,
        value=decimal_of(t.value),
        commission=decimal_of(t.commission),
        fees=fees,
        net_value=decimal_of(t.net_value),
        order_id=t.order_id,
        description=t.description,
        option=option_terms(t.option, t.underlying_symbol) if t.HasField("option") else None,
    )


class GrpcBroker:
    """``BrokerService`` called with the caller's access token."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        """Use ``channel``, a platform peer channel to the broker service."""
        from tastyplat.broker.v1 import broker_service_pb2, broker_service_pb2_grpc

        self._pb = broker_service_pb2
        self._stub = broker_service_pb2_grpc.BrokerServiceStub(channel)

    @staticmethod
    def _metadata(caller: Caller) -> tuple[tuple[str, str], ...]:
        return (("authorization", caller.authorization),)

    @staticmethod
    def _error(error: grpc.aio.AioRpcError, account_number: str = "") -> Exception:
        code = error.code()
        if code == grpc.StatusCode.NOT_FOUND and account_number:
            return AccountNotFound(account_number)
        if code == grpc.StatusCode.UNAUTHENTICATED:
            return AuthenticationRequired("the broker service refused the access token")
        return BrokerUnavailable(f"the broker service failed: {code.name}", metadata={"peer": "broker", "code": code.name})

    async def positions(self, account_number: str, caller: Caller) -> list[HeldPosition]:
        """Every open position (all pages); futures and other unpriced kinds are kept with their marks."""
        pb = self._pb
        out: list[HeldPosition] = []
        token = ""
        while True:
            try:
                response = await self._stub.ListPositions(
                    pb.ListPositionsRequest(account_number=account_number, page_size=_PAGE, page_token=token),
                    metadata=self._metadata(caller),
                )
            except grpc.aio.AioRpcError as error:
                raise self._error(error, account_number) from None
            for p in response.positions:
                quantity = decimal_of(p.quantity)
                if p.quantity_direction == pb.QUANTITY_DIRECTION_SHORT:
                    quantity = -abs(quantity)
                elif p.quantity_direction == pb.QUANTITY_DIRECTION_ZERO or quantity == 0:
                    continue
                kind = _instrument(p.instrument_type) or InstrumentKind.OTHER
                option = option_terms(p.option, p.underlying_symbol) if p.HasField("option") else None
                out.append(
                    HeldPosition(
                        symbol=p.symbol,
                        underlying_symbol=(option.underlying_symbol if option else p.underlying_symbol) or p.symbol,
                        instrument=kind,
                        quantity=quantity,
                        multiplier=Decimal(str(p.multiplier or (option.multiplier if option else 1))).normalize(),
                        mark_price=decimal_of(p.mark_price) if p.HasField("mark_price") else None,
                        close_price=decimal_of(p.close_price) if p.HasField("close_price") else None,
                        average_open_price=decimal_of(p.average_open_price) if p.HasField("average_open_price") else None,
                        open_time=p.open_time.ToDatetime(tzinfo=UTC) if p.HasField("open_time") else None,
                        option=option,
                        streamer_symbol=p.streamer_symbol,
                    )
                )
            token = response.next_page_token
            if not token:
                return out

    async def balances(self, account_number: str, caller: Caller) -> AccountBalances:
        """Cash and net liquidating value."""
        try:
            response = await self._stub.GetBalances(
                self._pb.GetBalancesRequest(account_number=account_number), metadata=self._metadata(caller)
            )
        except grpc.aio.AioRpcError as error:
            raise self._error(error, account_number) from None
        b = response.balances
        return AccountBalances(decimal_of(b.cash_balance), decimal_of(b.net_liquidating_value))

    async def transactions(self, account_number: str, caller: Caller, end: datetime | None = None) -> list[Transaction]:
        """The whole history (every page) up to ``end``."""
        request = self._pb.ListTransactionsRequest(account_number=account_number, page_size=_PAGE)
        if end is not None:
            request.end_time.FromDatetime(end.astimezone(UTC))
        out: list[Transaction] = []
        while True:
            try:
                response = await self._stub.ListTransactions(request, metadata=self._metadata(caller))
            except grpc.aio.AioRpcError as error:
                raise self._error(error, account_number) from None
            out.extend(transaction_from_proto(t) for t in response.transactions)
            if not response.next_page_token:
                return out
            request.page_token = response.next_page_token

    async def metrics(self, symbols: Sequence[str], caller: Caller) -> Metrics:
        """Betas, yields, IV indices and the rate (500 symbols per call)."""
        betas: dict[str, float] = {}
        yields: dict[str, float] = {}
        ivx: dict[str, float] = {}
        rate = 0.0
        unique = sorted(set(symbols))
        for start in range(0, len(unique), 500):
            try:
                response = await self._stub.GetMarketMetrics(
                    self._pb.GetMarketMetricsRequest(symbols=unique[start : start + 500]), metadata=self._metadata(caller)
                )
            except grpc.aio.AioRpcError as error:
                raise self._error(error) from None
            for m in response.metrics:
                if m.HasField("beta") and math.isfinite(m.beta):
                    betas[m.symbol] = m.beta
                yields[m.symbol] = m.dividend_yield
                if m.implied_volatility_index > 0:
                    ivx[m.symbol] = m.implied_volatility_index
            rate = response.risk_free_rate
        return Metrics(betas, yields, ivx, rate)


class GrpcMarketData:
    """``MarketDataService``: snapshots of the quote and Greeks streams, and daily candles."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        """Use ``channel``, a platform peer channel to the market data service."""
        from tastyplat.marketdata.v1 import marketdata_service_pb2, marketdata_service_pb2_grpc

        self._pb = marketdata_service_pb2
        self._stub = marketdata_service_pb2_grpc.MarketDataServiceStub(channel)

    @staticmethod
    def _metadata(caller: Caller) -> tuple[tuple[str, str], ...]:
        return (("authorization", caller.authorization),)

    async def _collect(self, call: Any, wanted: set[str], seen: set[str], absorb: Any, wait: float) -> None:
        # The first message is the snapshot of latest values; a symbol the feed had not seen yet (it starts
        # following it now) usually arrives within moments, so updates are read until every wanted symbol has
        # a value or ``wait`` seconds have passed.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _SNAPSHOT_TIMEOUT
        first = True
        try:
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    if first:
                        raise MarketDataUnavailable("the market data service sent no snapshot in time")
                    return
                try:
                    message = await asyncio.wait_for(call.read(), remaining)
                except TimeoutError:
                    continue
                if message is grpc.aio.EOF:
                    return
                absorb(message)
                if first:
                    first = False
                    deadline = min(deadline, loop.time() + wait)
                if wanted <= seen:
                    return
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.UNAUTHENTICATED:
                raise AuthenticationRequired("the market data service refused the access token") from None
            raise MarketDataUnavailable(f"the market data service failed: {error.code().name}") from None
        finally:
            call.cancel()

    async def prices(self, symbols: Sequence[str], caller: Caller) -> dict[str, float]:
        """Latest marks (falling back to last, then mid) per symbol."""
        out: dict[str, float] = {}
        unique = sorted(set(symbols))
        for start in range(0, len(unique), 1000):
            part = unique[start : start + 1000]
            seen: set[str] = set()

            def absorb(message: Any) -> None:
                if message.WhichOneof("event") != "quotes":
                    return
                q = message.quotes
                for i, symbol in enumerate(q.symbols):
                    for candidate in (q.mark_prices[i], q.last_prices[i], (q.bid_prices[i] + q.ask_prices[i]) / 2):
                        if math.isfinite(candidate) and candidate > 0:
                            out[symbol] = candidate
                            seen.add(symbol)
                            break

            call = self._stub.StreamQuotes(self._pb.StreamQuotesRequest(symbols=part), metadata=self._metadata(caller))
            await self._collect(call, set(part), seen, absorb, _FIRST_QUOTE_WAIT)
        return out

    async def option_greeks(self, symbols: Sequence[str], caller: Caller) -> dict[str, FeedGreeks]:
        """dxFeed Greeks and the feed's solved vol per option symbol."""
        out: dict[str, FeedGreeks] = {}
        unique = sorted(set(symbols))
        for start in range(0, len(unique), 1000):
            part = unique[start : start + 1000]
            seen: set[str] = set()

            def absorb(message: Any) -> None:
                if message.WhichOneof("event") != "greeks":
                    return
                g = message.greeks
                for i, symbol in enumerate(g.symbols):
                    broker = (g.broker_deltas[i], g.broker_gammas[i], g.broker_thetas[i], g.broker_vegas[i],
                              g.broker_rhos[i], g.broker_volatilities[i])
                    model_vol = g.model_volatilities[i] if i < len(g.model_volatilities) else math.nan
                    out[symbol] = FeedGreeks(
                        broker=broker if all(math.isfinite(x) for x in broker[:4]) else None,
                        model_volatility=model_vol if math.isfinite(model_vol) and model_vol > 0 else None,
                    )
                    seen.add(symbol)

            call = self._stub.StreamGreeks(self._pb.StreamGreeksRequest(symbols=part), metadata=self._metadata(caller))
            await self._collect(call, set(part), seen, absorb, _FIRST_GREEKS_WAIT)
        return out

    async def daily_closes(self, symbol: str, start: datetime, end: datetime, caller: Caller) -> dict[date, float]:
        """Daily closes from the stored history (empty when none)."""
        request = self._pb.GetHistoryRequest(
            symbol=symbol, interval=self._pb.CANDLE_INTERVAL_ONE_DAY, page_size=10_000
        )
        request.start_time.FromDatetime(start.astimezone(UTC))
        request.end_time.FromDatetime(end.astimezone(UTC))
        try:
            response = await self._stub.GetHistory(request, metadata=self._metadata(caller))
        except grpc.aio.AioRpcError as error:
            log.info("no history for beta estimation", extra={"symbol": symbol, "code": error.code().name})
            return {}
        return {c.start_time.ToDatetime(tzinfo=UTC).date(): c.close_price for c in response.candles if c.close_price > 0}
