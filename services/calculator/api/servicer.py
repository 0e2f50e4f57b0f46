"""gRPC servicer of ``tastyplat.calculator.v1.CalculatorService``.

The batch RPCs and ``AggregatePortfolioGreeks`` are registered on raw bytes (no protobuf (de)serializer):
``convert`` reads the packed columns of a batch request as NumPy views of the received bytes and writes the
response straight from the result arrays, and a large portfolio is parsed and built in a worker thread. The
wire format is unchanged: clients use the generated stubs, grpcurl or the gateway as usual.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
import grpc.aio
from google.protobuf.message import DecodeError

from services.calculator.api import convert
from services.calculator.app import CalculatorApp
from services.calculator.domain.errors import MalformedRequest
from tastyplat.calculator.v1 import calculator_service_pb2 as pb
from tastyplat.calculator.v1 import calculator_service_pb2_grpc as pb_grpc

__all__ = ["SERVICE_NAME", "CalculatorServicer", "add_to_server"]

SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["CalculatorService"].full_name

Context = grpc.aio.ServicerContext[Any, Any]
T = TypeVar("T")

# Portfolios whose request is at least this large are parsed and answered in a worker thread (about
# 1,000 positions); smaller ones take less time than the thread hop.
_PORTFOLIO_OFFLOAD_BYTES = 64 * 1024


async def _maybe_off_loop(work: Callable[[], T], off_loop: bool) -> T:
    return await asyncio.to_thread(work) if off_loop else work()


class CalculatorServicer(pb_grpc.CalculatorServiceServicer):
    """Translates calls to the use cases of ``CalculatorApp``; register it with ``add_to_server``."""

    def __init__(self, app: CalculatorApp) -> None:
        """Serve ``app``."""
        self._app = app

    async def ComputeGreeks(  # noqa: N802  # gRPC method name
        self, request: pb.ComputeGreeksRequest, context: Context
    ) -> pb.ComputeGreeksResponse:
        """Price one option."""
        greeks = await self._app.greeks(convert.greeks_inputs_from_proto(request))
        return convert.greeks_to_proto(greeks)

    async def ComputeImpliedVolatility(  # noqa: N802
        self, request: pb.ComputeImpliedVolatilityRequest, context: Context
    ) -> pb.ComputeImpliedVolatilityResponse:
        """Solve one implied volatility."""
        volatility = await self._app.implied_volatility(convert.implied_volatility_inputs_from_proto(request))
        return convert.implied_volatility_to_proto(volatility)

    async def ComputeGreeksBatch(self, request: bytes, context: Context) -> bytes:  # noqa: N802
        """Price a batch: serialized ``ComputeGreeksBatchRequest`` in, serialized response out."""
        result = await self._app.greeks_batch(convert.greeks_batch_from_wire(request))
        return convert.greeks_batch_result_to_wire(result)

    async def ComputeImpliedVolatilityBatch(self, request: bytes, context: Context) -> bytes:  # noqa: N802
        """Solve a batch of implied volatilities, bytes in and out."""
        result = await self._app.implied_volatility_batch(convert.implied_volatility_batch_from_wire(request))
        return convert.implied_volatility_batch_result_to_wire(result)

    async def AggregatePortfolioGreeks(self, request: bytes, context: Context) -> bytes:  # noqa: N802
        """Aggregate a portfolio, bytes in and out (large ones parsed and built in a worker thread)."""
        large = len(request) >= _PORTFOLIO_OFFLOAD_BYTES
        portfolio = await _maybe_off_loop(lambda: convert.portfolio_from_proto(_parse_portfolio(request)), large)
        result = await self._app.aggregate_portfolio_greeks(portfolio)
        return await _maybe_off_loop(lambda: convert.portfolio_to_proto(result).SerializeToString(), large)


def _parse_portfolio(data: bytes) -> pb.AggregatePortfolioGreeksRequest:
    try:
        return pb.AggregatePortfolioGreeksRequest.FromString(data)
    except DecodeError as exc:
        raise MalformedRequest(f"the request is not a valid AggregatePortfolioGreeksRequest: {exc}") from None


def add_to_server(servicer: CalculatorServicer, server: grpc.aio.Server) -> None:
    """Register ``servicer`` on ``server``; use in place of the generated ``add_..._to_server``.

    The single-option RPCs keep the generated protobuf (de)serializers; the batch RPCs and the portfolio
    aggregation take and return bytes, which their handlers parse and build themselves.
    """
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "ComputeGreeks": grpc.unary_unary_rpc_method_handler(
            servicer.ComputeGreeks,
            request_deserializer=pb.ComputeGreeksRequest.FromString,
            response_serializer=pb.ComputeGreeksResponse.SerializeToString,
        ),
        "ComputeImpliedVolatility": grpc.unary_unary_rpc_method_handler(
            servicer.ComputeImpliedVolatility,
            request_deserializer=pb.ComputeImpliedVolatilityRequest.FromString,
            response_serializer=pb.ComputeImpliedVolatilityResponse.SerializeToString,
        ),
        "ComputeGreeksBatch": grpc.unary_unary_rpc_method_handler(servicer.ComputeGreeksBatch),
        "ComputeImpliedVolatilityBatch": grpc.unary_unary_rpc_method_handler(servicer.ComputeImpliedVolatilityBatch),
        "AggregatePortfolioGreeks": grpc.unary_unary_rpc_method_handler(servicer.AggregatePortfolioGreeks),
    }
    missing = {m.name for m in pb.DESCRIPTOR.services_by_name["CalculatorService"].methods} - set(handlers)
    if missing:
        raise RuntimeError(f"CalculatorService methods without a handler: {sorted(missing)}")
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)
