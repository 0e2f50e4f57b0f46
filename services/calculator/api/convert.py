"""Conversions between the calculator's wire messages and domain values (the only module that reads _pb2).

The batch RPCs are served on raw bytes: a request's packed columns become NumPy views of the received bytes,
and a response is written straight from the result arrays, because building or reading a 100,000-element
column through the protobuf API costs tens of nanoseconds per number while the kernel needs about 15 per
option. The field numbers come from the generated descriptors, so a contract change cannot silently
desynchronize the hand-written codec.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
from google.protobuf.message import DecodeError

from services.calculator.api import wire
from services.calculator.domain.aggregation import (
    Instrument,
    PortfolioGreeks,
    PortfolioRequest,
    Positions,
)
from services.calculator.domain.errors import MalformedRequest
from services.calculator.domain.model import (
    Greeks,
    GreeksBatch,
    GreeksBatchResult,
    GreeksInputs,
    ImpliedVolatilityBatch,
    ImpliedVolatilityBatchResult,
    ImpliedVolatilityInputs,
)
from tastyplat.calculator.v1 import calculator_service_pb2 as pb
from tastyplat.type.v1 import greeks_pb2, option_pb2

__all__ = [
    "GREEKS_BATCH_RESPONSE_COLUMNS",
    "greeks_batch_from_wire",
    "greeks_batch_request_to_wire",
    "greeks_batch_response_from_wire",
    "greeks_batch_result_to_wire",
    "greeks_inputs_from_proto",
    "greeks_to_proto",
    "implied_volatility_batch_from_wire",
    "implied_volatility_batch_request_to_wire",
    "implied_volatility_batch_response_from_wire",
    "implied_volatility_batch_result_to_wire",
    "implied_volatility_inputs_from_proto",
    "implied_volatility_to_proto",
    "portfolio_from_proto",
    "portfolio_to_proto",
]


def _numbers(message: Any) -> dict[str, int]:
    return {f.name: f.number for f in message.DESCRIPTOR.fields}


_GREEKS_REQ = _numbers(pb.ComputeGreeksBatchRequest)
_GREEKS_RESP = _numbers(pb.ComputeGreeksBatchResponse)
_IV_REQ = _numbers(pb.ComputeImpliedVolatilityBatchRequest)
_IV_RESP = _numbers(pb.ComputeImpliedVolatilityBatchResponse)

# Domain output name -> response column name (the response columns are the plural of the Greek).
GREEKS_BATCH_RESPONSE_COLUMNS: Mapping[str, str] = {
    "price": "prices",
    "delta": "deltas",
    "gamma": "gammas",
    "vega": "vegas",
    "theta": "thetas",
    "rho": "rhos",
    "vanna": "vannas",
    "charm": "charms",
}
_DOUBLE_REQUEST_COLUMNS = ("spot_prices", "strike_prices", "expiry_years", "volatilities", "rates",
                           "dividend_yields")
_IV_DOUBLE_REQUEST_COLUMNS = ("option_prices", "spot_prices", "strike_prices", "expiry_years", "rates",
                              "dividend_yields")


def _int32(value: int) -> int:
    # A varint enum is an int32 sign-extended to 64 bits; protobuf keeps the low 32 bits.
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _scan_batch(
    data: bytes, numbers: Mapping[str, int], doubles: tuple[str, ...]
) -> dict[str, Any] | None:
    scanned = wire.scan(
        data,
        packed_fields=[numbers[name] for name in ("is_call", *doubles)],
        varint_fields=[numbers["style"], numbers["mark_invalid_elements"]],
    )
    if scanned is None:
        return None
    columns: dict[str, Any] = {}
    is_call = wire.bool_column(scanned, numbers["is_call"])
    if is_call is None:
        return None
    columns["is_call"] = is_call
    for name in doubles:
        column = wire.double_column(scanned, numbers[name])
        if column is None:
            return None
        columns[name] = column
    columns["style"] = _int32(scanned.varints.get(numbers["style"], 0))
    columns["mark_invalid_elements"] = scanned.varints.get(numbers["mark_invalid_elements"], 0) != 0
    return columns


def _parse_batch(data: bytes, message_type: Any, doubles: tuple[str, ...]) -> dict[str, Any]:
    try:
        message = message_type.FromString(data)
    except DecodeError as exc:
        raise MalformedRequest(f"the request is not a valid {message_type.DESCRIPTOR.name}: {exc}") from None
    columns: dict[str, Any] = {"is_call": np.array(message.is_call, dtype=np.bool_)}
    for name in doubles:
        columns[name] = np.array(getattr(message, name), dtype=np.float64)
    columns["style"] = int(message.style)
    columns["mark_invalid_elements"] = bool(message.mark_invalid_elements)
    return columns


def greeks_batch_from_wire(data: bytes) -> GreeksBatch:
    """Read a serialized ``ComputeGreeksBatchRequest`` into a domain batch (columns as NumPy views).

    Raises:
        MalformedRequest: The bytes are not a valid ``ComputeGreeksBatchRequest``.
    """
    columns = _scan_batch(data, _GREEKS_REQ, _DOUBLE_REQUEST_COLUMNS)
    if columns is None:
        columns = _parse_batch(data, pb.ComputeGreeksBatchRequest, _DOUBLE_REQUEST_COLUMNS)
    return GreeksBatch(**columns)


def implied_volatility_batch_from_wire(data: bytes) -> ImpliedVolatilityBatch:
    """Read a serialized ``ComputeImpliedVolatilityBatchRequest`` into a domain batch.

    Raises:
        MalformedRequest: The bytes are not a valid ``ComputeImpliedVolatilityBatchRequest``.
    """
    columns = _scan_batch(data, _IV_REQ, _IV_DOUBLE_REQUEST_COLUMNS)
    if columns is None:
        columns = _parse_batch(data, pb.ComputeImpliedVolatilityBatchRequest, _IV_DOUBLE_REQUEST_COLUMNS)
    return ImpliedVolatilityBatch(**columns)


def _statuses(status: npt.NDArray[np.integer]) -> npt.NDArray[np.uint8]:
    # ElementStatus = core_ext.Status + 1 (the contract's numbering), every value below 128.
    return (status.astype(np.uint8) + np.uint8(1)).astype(np.uint8, copy=False)


def greeks_batch_result_to_wire(result: GreeksBatchResult) -> bytes:
    """Serialize a Greeks batch result as a ``ComputeGreeksBatchResponse``, straight from the arrays."""
    return wire.encode_columns(
        doubles={_GREEKS_RESP[column]: getattr(result, name) for name, column in GREEKS_BATCH_RESPONSE_COLUMNS.items()},
        small_varints={_GREEKS_RESP["statuses"]: _statuses(result.status)},
    )


def implied_volatility_batch_result_to_wire(result: ImpliedVolatilityBatchResult) -> bytes:
    """Serialize an implied-volatility batch result as a ``ComputeImpliedVolatilityBatchResponse``."""
    return wire.encode_columns(
        doubles={_IV_RESP["implied_volatilities"]: result.implied_volatility},
        small_varints={_IV_RESP["statuses"]: _statuses(result.status)},
    )


def _request_to_wire(
    numbers: Mapping[str, int],
    columns: Mapping[str, Any],
    style: int,
    mark_invalid_elements: bool,
) -> bytes:
    doubles = {numbers[name]: np.atleast_1d(np.asarray(v, dtype=np.float64)) for name, v in columns.items()
               if name != "is_call"}
    is_call = np.atleast_1d(np.asarray(columns.get("is_call", ()), dtype=np.bool_))
    return wire.encode_columns(
        doubles=doubles,
        small_varints={numbers["is_call"]: is_call},
        varints={numbers["style"]: int(style), numbers["mark_invalid_elements"]: int(mark_invalid_elements)},
    )


def greeks_batch_request_to_wire(
    *,
    is_call: npt.ArrayLike,
    spot_prices: npt.ArrayLike,
    strike_prices: npt.ArrayLike,
    expiry_years: npt.ArrayLike,
    volatilities: npt.ArrayLike,
    rates: npt.ArrayLike = (),
    dividend_yields: npt.ArrayLike = (),
    style: int = option_pb2.EXERCISE_STYLE_EUROPEAN,
    mark_invalid_elements: bool = False,
) -> bytes:
    """Client side: serialize a ``ComputeGreeksBatchRequest`` from NumPy columns (one copy per column).

    Args:
        is_call: Bool column.
        spot_prices: Float column; the others likewise (length n, 1 to broadcast, or empty for the rates).
        strike_prices: Strikes.
        expiry_years: Times to expiry in years.
        volatilities: Volatilities.
        rates: Risk-free rates.
        dividend_yields: Dividend yields.
        style: ``ExerciseStyle`` value.
        mark_invalid_elements: Ask for per-element INVALID_INPUT instead of a failed call.

    Returns:
        Bytes to send with a raw-bytes stub (or ``ComputeGreeksBatchRequest.FromString`` them).
    """
    columns = {
        "is_call": is_call,
        "spot_prices": spot_prices,
        "strike_prices": strike_prices,
        "expiry_years": expiry_years,
        "volatilities": volatilities,
        "rates": rates,
        "dividend_yields": dividend_yields,
    }
    return _request_to_wire(_GREEKS_REQ, columns, style, mark_invalid_elements)


def implied_volatility_batch_request_to_wire(
    *,
    is_call: npt.ArrayLike,
    option_prices: npt.ArrayLike,
    spot_prices: npt.ArrayLike,
    strike_prices: npt.ArrayLike,
    expiry_years: npt.ArrayLike,
    rates: npt.ArrayLike = (),
    dividend_yields: npt.ArrayLike = (),
    style: int = option_pb2.EXERCISE_STYLE_EUROPEAN,
    mark_invalid_elements: bool = False,
) -> bytes:
    """Client side: serialize a ``ComputeImpliedVolatilityBatchRequest`` from NumPy columns."""
    columns = {
        "is_call": is_call,
        "option_prices": option_prices,
        "spot_prices": spot_prices,
        "strike_prices": strike_prices,
        "expiry_years": expiry_years,
        "rates": rates,
        "dividend_yields": dividend_yields,
    }
    return _request_to_wire(_IV_REQ, columns, style, mark_invalid_elements)


def _response_columns(data: bytes, numbers: Mapping[str, int], message_type: Any) -> dict[str, npt.NDArray[Any]]:
    doubles = [name for name in numbers if name != "statuses"]
    scanned = wire.scan(data, packed_fields=numbers.values(), varint_fields=())
    out: dict[str, npt.NDArray[Any]] = {}
    if scanned is not None:
        for name in doubles:
            column = wire.double_column(scanned, numbers[name])
            if column is None:
                break
            out[name] = column
        statuses = wire.uint8_column(scanned, numbers["statuses"])
        if statuses is not None and len(out) == len(doubles):
            out["statuses"] = statuses
            return out
    message = message_type.FromString(data)
    out = {name: np.array(getattr(message, name), dtype=np.float64) for name in doubles}
    out["statuses"] = np.array(message.statuses, dtype=np.uint8)
    return out


def greeks_batch_response_from_wire(data: bytes) -> dict[str, npt.NDArray[Any]]:
    """Client side: read a serialized ``ComputeGreeksBatchResponse`` into NumPy columns by field name
    (``prices`` ... ``charms`` float64, ``statuses`` uint8 ``ElementStatus`` values)."""
    return _response_columns(data, _GREEKS_RESP, pb.ComputeGreeksBatchResponse)


def implied_volatility_batch_response_from_wire(data: bytes) -> dict[str, npt.NDArray[Any]]:
    """Client side: read a serialized ``ComputeImpliedVolatilityBatchResponse`` into NumPy columns."""
    return _response_columns(data, _IV_RESP, pb.ComputeImpliedVolatilityBatchResponse)


def greeks_inputs_from_proto(request: pb.ComputeGreeksRequest) -> GreeksInputs:
    """Read a ``ComputeGreeksRequest``."""
    return GreeksInputs(
        kind=int(request.kind),
        spot_price=request.spot_price,
        strike_price=request.strike_price,
        expiry_years=request.expiry_years,
        volatility=request.volatility,
        rate=request.rate,
        dividend_yield=request.dividend_yield,
        style=int(request.style),
    )


def greeks_to_proto(greeks: Greeks) -> pb.ComputeGreeksResponse:
    """Build a ``ComputeGreeksResponse``."""
    return pb.ComputeGreeksResponse(
        greeks=greeks_pb2.Greeks(
            price=greeks.price,
            delta=greeks.delta,
            gamma=greeks.gamma,
            vega=greeks.vega,
            theta=greeks.theta,
            rho=greeks.rho,
            vanna=greeks.vanna,
            charm=greeks.charm,
        )
    )


def implied_volatility_inputs_from_proto(request: pb.ComputeImpliedVolatilityRequest) -> ImpliedVolatilityInputs:
    """Read a ``ComputeImpliedVolatilityRequest``."""
    return ImpliedVolatilityInputs(
        kind=int(request.kind),
        option_price=request.option_price,
        spot_price=request.spot_price,
        strike_price=request.strike_price,
        expiry_years=request.expiry_years,
        rate=request.rate,
        dividend_yield=request.dividend_yield,
        style=int(request.style),
    )


def implied_volatility_to_proto(volatility: float) -> pb.ComputeImpliedVolatilityResponse:
    """Build a ``ComputeImpliedVolatilityResponse``."""
    return pb.ComputeImpliedVolatilityResponse(implied_volatility=volatility)


_INSTRUMENT = {"option": int(Instrument.OPTION), "equity": int(Instrument.EQUITY)}


def portfolio_from_proto(request: pb.AggregatePortfolioGreeksRequest) -> PortfolioRequest:
    """Read an ``AggregatePortfolioGreeksRequest`` into parallel position columns (one pass over positions)."""
    rows = request.positions
    n = len(rows)
    f64 = np.float64

    def column(values: Any, dtype: Any = f64) -> Any:
        return np.fromiter(values, dtype=dtype, count=n)

    instruments = [row.WhichOneof("instrument") for row in rows]
    options = [row.option for row in rows]  # the default (all zero) leg for an equity position
    return PortfolioRequest(
        positions=Positions(
            ids=[row.id for row in rows],
            underlying_symbols=[row.underlying_symbol for row in rows],
            instrument=column((_INSTRUMENT.get(kind or "", 0) for kind in instruments), np.int64),
            quantity=column(row.quantity for row in rows),
            multiplier=column(row.multiplier for row in rows),
            underlying_price=column(row.underlying_price for row in rows),
            beta=column(row.beta for row in rows),
            has_beta=column((row.HasField("beta") for row in rows), np.bool_),
            kind=column((int(leg.kind) for leg in options), np.int64),
            style=column((int(leg.style) for leg in options), np.int64),
            strike_price=column(leg.strike_price for leg in options),
            expiry_years=column(leg.expiry_years for leg in options),
            volatility=column(leg.volatility for leg in options),
            rate=column(leg.rate for leg in options),
            dividend_yield=column(leg.dividend_yield for leg in options),
        ),
        benchmark_symbol=request.benchmark_symbol,
        benchmark_price=request.benchmark_price,
    )


def portfolio_to_proto(result: PortfolioGreeks) -> pb.AggregatePortfolioGreeksResponse:
    """Build an ``AggregatePortfolioGreeksResponse``."""
    p = result.positions
    names = ("market_value", "delta_shares", "delta_dollars", "gamma", "theta", "vega", "rho", "vanna", "charm",
             "beta_weighted_delta")
    columns = [getattr(p, name).tolist() for name in names]
    positions = [
        pb.PositionGreeks(id=pid, underlying_symbol=symbol, **dict(zip(names, values, strict=True)))
        for pid, symbol, *values in zip(p.ids, p.underlying_symbols, *columns, strict=True)
    ]
    underlyings = [
        pb.UnderlyingGreeks(
            underlying_symbol=u.underlying_symbol,
            underlying_price=u.underlying_price,
            beta=u.beta,
            position_count=u.position_count,
            market_value=u.market_value,
            delta_shares=u.delta_shares,
            delta_dollars=u.delta_dollars,
            gamma=u.gamma,
            theta=u.theta,
            vega=u.vega,
            rho=u.rho,
            vanna=u.vanna,
            charm=u.charm,
            beta_weighted_delta=u.beta_weighted_delta,
        )
        for u in result.underlyings
    ]
    t = result.total
    return pb.AggregatePortfolioGreeksResponse(
        positions=positions,
        underlyings=underlyings,
        total=pb.PortfolioGreeksTotal(
            position_count=t.position_count,
            market_value=t.market_value,
            delta_dollars=t.delta_dollars,
            theta=t.theta,
            vega=t.vega,
            rho=t.rho,
            beta_weighted_delta=t.beta_weighted_delta,
            beta_weighted_delta_dollars=t.beta_weighted_delta_dollars,
        ),
        benchmark_symbol=result.benchmark_symbol,
        benchmark_price=result.benchmark_price,
    )
