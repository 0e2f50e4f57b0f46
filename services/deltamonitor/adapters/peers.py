"""Peer adapters: the broker's positions and market metrics over gRPC, and in-memory stand-ins with the same contract."""

from __future__ import annotations

import logging
from datetime import UTC
from collections.abc import Sequence
from typing import Any

import grpc
import grpc.aio

from services.deltamonitor.domain.errors import AccountNotFound, AuthenticationRequired
from services.deltamonitor.domain.model import HeldPosition
from services.deltamonitor.ports import Caller, MarketInputs
from services.platform.errors import Unavailable
from services.platform.peers import translate_peer_error

__all__ = ["GrpcBrokerClient", "InMemoryBroker"]

log = logging.getLogger("tastyplat.deltamonitor.peers")

_PAGE = 2000


class GrpcBrokerClient:
    """``BrokerService.ListPositions`` and ``GetMarketMetrics``, called with the caller's access token."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        """Use ``channel``, a platform peer channel to the broker service."""
        from tastyplat.broker.v1 import broker_service_pb2, broker_service_pb2_grpc
        from tastyplat.type.v1 import option_pb2

        self._pb = broker_service_pb2
        self._option = option_pb2
        self._stub = broker_service_pb2_grpc.BrokerServiceStub(channel)

    @staticmethod
    def _metadata(caller: Caller) -> tuple[tuple[str, str], ...]:
        return (("authorization", caller.authorization),)

    def _error(self, error: grpc.aio.AioRpcError, account_number: str = "") -> Exception:
        translated = translate_peer_error(error, "broker")
        if translated is not None:
            return translated
        code = error.code()
        if code == grpc.StatusCode.NOT_FOUND and account_number:
            return AccountNotFound(account_number)
        if code == grpc.StatusCode.UNAUTHENTICATED:
            return AuthenticationRequired("the broker service refused the access token")
        if code == grpc.StatusCode.UNIMPLEMENTED:
            return Unavailable("the broker service is not available", reason="PEER_UNAVAILABLE", metadata={"peer": "broker"})
        return Unavailable(
            f"the broker service failed: {code.name}", reason="PEER_UNAVAILABLE", metadata={"peer": "broker"}
        )

    def _position(self, p: Any) -> HeldPosition | None:
        pb, opt = self._pb, self._option
        quantity = p.quantity.units + p.quantity.nanos / 1e9
        if p.quantity_direction == pb.QUANTITY_DIRECTION_SHORT:
            quantity = -abs(quantity)
        elif p.quantity_direction == pb.QUANTITY_DIRECTION_ZERO:
            quantity = 0.0
        if p.instrument_type == opt.INSTRUMENT_TYPE_EQUITY:
            return HeldPosition(
                account_number=p.account_number,
                symbol=p.symbol,
                underlying_symbol=p.underlying_symbol or p.symbol,
                quantity=quantity,
                multiplier=p.multiplier or 1.0,
                streamer_symbol=p.streamer_symbol,
            )
        if p.instrument_type == opt.INSTRUMENT_TYPE_EQUITY_OPTION and p.HasField("option"):
            o = p.option
            return HeldPosition(
                account_number=p.account_number,
                symbol=p.symbol,
                underlying_symbol=o.underlying_symbol or p.underlying_symbol,
                quantity=quantity,
                multiplier=o.multiplier or p.multiplier or 100.0,
                is_option=True,
                is_call=o.kind == opt.OPTION_KIND_CALL,
                strike=o.strike_price,
                expiration_time=o.expiration_time.ToDatetime(tzinfo=UTC),
                american=o.style != opt.EXERCISE_STYLE_EUROPEAN,
                streamer_symbol=o.streamer_symbol or p.streamer_symbol,
            )
        # Futures, crypto and the rest are not priced by this monitor.
        return None

    async def positions(self, account_number: str, caller: Caller) -> list[HeldPosition]:
        """Every open position of the account (all pages)."""
        out: list[HeldPosition] = []
        token = ""
        while True:
            try:
                response = await self._stub.ListPositions(
                    self._pb.ListPositionsRequest(account_number=account_number, page_size=_PAGE, page_token=token),
                    metadata=self._metadata(caller),
                )
            except grpc.aio.AioRpcError as error:
                raise self._error(error, account_number) from None
            for p in response.positions:
                held = self._position(p)
                if held is not None:
                    out.append(held)
            token = response.next_page_token
            if not token:
                return out

    async def inputs(self, symbols: Sequence[str], caller: Caller) -> MarketInputs:
        """Betas, dividend yields and the rate of ``symbols`` (at most 500 per call)."""
        betas: dict[str, float] = {}
        yields: dict[str, float] = {}
        rate: float | None = None
        unique = sorted(set(symbols))
        for start in range(0, len(unique), 500):
            try:
                response = await self._stub.GetMarketMetrics(
                    self._pb.GetMarketMetricsRequest(symbols=unique[start : start + 500]),
                    metadata=self._metadata(caller),
                )
            except grpc.aio.AioRpcError as error:
                raise self._error(error) from None
            for m in response.metrics:
                if m.HasField("beta"):
                    betas[m.symbol] = m.beta
                yields[m.symbol] = m.dividend_yield
            rate = response.risk_free_rate
        return MarketInputs(betas=betas, dividend_yields=yields, rate=rate)


class InMemoryBroker:
    """Positions and market inputs held in memory, by account and owner (embedded tests and benchmarks)."""

    def __init__(self) -> None:
        """Start with no accounts."""
        self._owners: dict[str, str] = {}
        self._positions: dict[str, list[HeldPosition]] = {}
        self.betas: dict[str, float] = {}
        self.dividend_yields: dict[str, float] = {}
        self.rate: float | None = None
        self.calls = 0

    def set_account(self, account_number: str, user_id: str, positions: Sequence[HeldPosition]) -> None:
        """Give ``user_id`` the account with these positions."""
        self._owners[account_number] = user_id
        self._positions[account_number] = list(positions)

    async def positions(self, account_number: str, caller: Caller) -> list[HeldPosition]:
        """The account's positions, if it is the caller's."""
        self.calls += 1
        if self._owners.get(account_number) != caller.user_id:
            raise AccountNotFound(account_number)
        return list(self._positions[account_number])

    async def inputs(self, symbols: Sequence[str], caller: Caller) -> MarketInputs:
        """The configured inputs of ``symbols``."""
        wanted = set(symbols)
        return MarketInputs(
            betas={s: b for s, b in self.betas.items() if s in wanted},
            dividend_yields={s: y for s, y in self.dividend_yields.items() if s in wanted},
            rate=self.rate,
        )
