"""The calculator's raw-bytes codec: requests read as NumPy views agree with protobuf's parse, responses written
from ndarray bytes are byte for byte protobuf's own serialization, and odd but valid encodings still parse."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from services.calculator.api import convert, wire
from services.calculator.domain.errors import MalformedRequest
from services.calculator.domain.model import GreeksBatchResult, ImpliedVolatilityBatchResult
from tastyplat.calculator.v1 import calculator_service_pb2 as pb

SPECIAL = np.array([math.nan, -0.0, 0.0, math.inf, -math.inf, 5e-324, np.finfo(np.float64).max, 1e-300, -1.5])


def column(n: int, seed: int) -> np.ndarray:
    return np.concatenate([SPECIAL, np.random.default_rng(seed).normal(scale=100.0, size=n)])


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.array_equal(a.view(np.uint64), b.view(np.uint64)))


def greeks_result(n: int) -> GreeksBatchResult:
    names = ("price", "delta", "gamma", "vega", "theta", "rho", "vanna", "charm")
    columns = {name: column(n, seed) for seed, name in enumerate(names)}
    status = np.random.default_rng(9).integers(0, 5, size=n + len(SPECIAL)).astype(np.uint8)
    return GreeksBatchResult(status=status, **columns)


def test_greeks_response_from_arrays_is_protobufs_own_serialization() -> None:
    result = greeks_result(5000)
    raw = convert.greeks_batch_result_to_wire(result)
    parsed = pb.ComputeGreeksBatchResponse.FromString(raw)
    for name, column_name in convert.GREEKS_BATCH_RESPONSE_COLUMNS.items():
        assert same_bits(np.array(getattr(parsed, column_name)), getattr(result, name)), name
    assert list(parsed.statuses) == (result.status.astype(int) + 1).tolist()
    rebuilt = pb.ComputeGreeksBatchResponse(statuses=(result.status.astype(int) + 1).tolist())
    for name, column_name in convert.GREEKS_BATCH_RESPONSE_COLUMNS.items():
        getattr(rebuilt, column_name).extend(getattr(result, name).tolist())
    assert rebuilt.SerializeToString() == raw


def test_greeks_response_round_trips_through_the_client_reader() -> None:
    result = greeks_result(100)
    columns = convert.greeks_batch_response_from_wire(convert.greeks_batch_result_to_wire(result))
    for name, column_name in convert.GREEKS_BATCH_RESPONSE_COLUMNS.items():
        assert same_bits(columns[column_name], getattr(result, name)), name
    assert np.array_equal(columns["statuses"], result.status + 1)


def test_iv_response_from_arrays_is_protobufs_own_serialization() -> None:
    vols = column(300, 4)
    status = np.arange(len(vols), dtype=np.uint8) % 5
    raw = convert.implied_volatility_batch_result_to_wire(ImpliedVolatilityBatchResult(vols, status))
    expected = pb.ComputeImpliedVolatilityBatchResponse(implied_volatilities=vols.tolist(),
                                                        statuses=(status.astype(int) + 1).tolist())
    assert raw == expected.SerializeToString()
    assert pb.ElementStatus.Name(pb.ComputeImpliedVolatilityBatchResponse.FromString(raw).statuses[4]) == \
        "ELEMENT_STATUS_NO_CONVERGENCE"


def test_empty_result_is_the_empty_message() -> None:
    empty = np.empty(0)
    result = GreeksBatchResult(*([empty] * 8), status=np.empty(0, dtype=np.uint8))
    assert convert.greeks_batch_result_to_wire(result) == b""


def protobuf_request(n: int, **extra: Any) -> pb.ComputeGreeksBatchRequest:
    rng = np.random.default_rng(n)
    return pb.ComputeGreeksBatchRequest(
        is_call=(rng.random(n) < 0.5).tolist(),
        spot_prices=column(n, 1).tolist(),
        strike_prices=column(n, 2).tolist(),
        expiry_years=column(n, 3).tolist(),
        volatilities=column(n, 4).tolist(),
        rates=[0.05],
        style=2,
        **extra,
    )


def assert_batch_matches(batch: Any, message: pb.ComputeGreeksBatchRequest) -> None:
    assert batch.is_call.tolist() == list(message.is_call)
    for name in ("spot_prices", "strike_prices", "expiry_years", "volatilities", "rates", "dividend_yields"):
        assert same_bits(getattr(batch, name), np.array(getattr(message, name), dtype=np.float64)), name
    assert batch.style == message.style
    assert batch.mark_invalid_elements == message.mark_invalid_elements


def test_request_columns_read_from_bytes_equal_protobufs_parse() -> None:
    message = protobuf_request(1000, mark_invalid_elements=True)
    data = message.SerializeToString()
    assert wire.scan(data, range(1, 8), (8, 9)) is not None, "protobuf's encoding takes the fast path"
    assert_batch_matches(convert.greeks_batch_from_wire(data), message)


def test_request_encoded_by_the_client_helper_is_protobufs_encoding() -> None:
    message = protobuf_request(64)
    data = convert.greeks_batch_request_to_wire(
        is_call=np.array(message.is_call), spot_prices=np.array(message.spot_prices),
        strike_prices=np.array(message.strike_prices), expiry_years=np.array(message.expiry_years),
        volatilities=np.array(message.volatilities), rates=np.array(message.rates), style=2,
    )
    assert data == message.SerializeToString()


def test_packed_field_split_in_two_records_concatenates() -> None:
    first = pb.ComputeGreeksBatchRequest(spot_prices=[1.0, 2.0], is_call=[True], style=1)
    second = pb.ComputeGreeksBatchRequest(spot_prices=[3.0], is_call=[False, True])
    data = first.SerializeToString() + second.SerializeToString()
    batch = convert.greeks_batch_from_wire(data)
    assert batch.spot_prices.tolist() == [1.0, 2.0, 3.0]
    assert batch.is_call.tolist() == [True, False, True]
    assert_batch_matches(batch, pb.ComputeGreeksBatchRequest.FromString(data))


def test_unpacked_elements_fall_back_to_protobuf() -> None:
    # Field 2 (spot_prices) as two unpacked fixed64 elements: legal, and not the fast path's shape.
    data = bytes([0x11]) + np.float64(7.5).tobytes() + bytes([0x11]) + np.float64(8.5).tobytes() + b"\x40\x01"
    assert wire.scan(data, range(1, 8), (8, 9)) is None
    batch = convert.greeks_batch_from_wire(data)
    assert batch.spot_prices.tolist() == [7.5, 8.5]
    assert batch.style == 1


def test_non_canonical_bool_varint_falls_back_and_reads_true() -> None:
    data = b"\x0a\x03\x01\x82\x00"  # is_call: [true, 2 written in two bytes]
    batch = convert.greeks_batch_from_wire(data)
    assert batch.is_call.tolist() == [True, True]


def test_negative_enum_value_reads_as_negative() -> None:
    batch = convert.greeks_batch_from_wire(b"\x40" + wire.encode_varint(-3))
    assert batch.style == -3


def test_unknown_fields_are_skipped() -> None:
    data = protobuf_request(3).SerializeToString()
    noisy = b"\xf8\x01\x05" + data + b"\xfd\x01\x00\x00\x00\x00" + b"\xfa\x01\x02hi"  # fields 31 (varint, fixed32, bytes)
    assert_batch_matches(convert.greeks_batch_from_wire(noisy), protobuf_request(3))


@pytest.mark.parametrize(
    "data",
    [b"\x12\x10" + b"\x00" * 8, b"\x12\x07" + b"\x00" * 7, b"\x0b", b"\x40\xff\xff", b"\x00\x01"],
    ids=["truncated", "not-a-multiple-of-8", "group", "truncated-varint", "field-zero"],
)
def test_malformed_request_is_malformed_request(data: bytes) -> None:
    with pytest.raises(MalformedRequest):
        convert.greeks_batch_from_wire(data)


def test_iv_request_round_trip_through_client_helper() -> None:
    data = convert.implied_volatility_batch_request_to_wire(
        is_call=np.array([True, False]), option_prices=np.array([1.0, 2.0]), spot_prices=np.array([100.0]),
        strike_prices=np.array([95.0, 105.0]), expiry_years=np.array([0.5]), style=2, mark_invalid_elements=True,
    )
    batch = convert.implied_volatility_batch_from_wire(data)
    assert batch.option_prices.tolist() == [1.0, 2.0] and batch.spot_prices.tolist() == [100.0]
    assert batch.rates.tolist() == [] and batch.style == 2 and batch.mark_invalid_elements
    message = pb.ComputeImpliedVolatilityBatchRequest.FromString(data)
    assert list(message.strike_prices) == [95.0, 105.0]


def test_small_varint_column_refuses_values_that_take_two_bytes() -> None:
    with pytest.raises(ValueError, match="128"):
        wire.encode_columns(small_varints={9: np.array([1, 200])})


def test_element_status_is_core_ext_status_plus_one() -> None:
    core_ext = pytest.importorskip("core_ext")
    status = np.array([int(s) for s in core_ext.Status], dtype=np.uint8)
    raw = convert.implied_volatility_batch_result_to_wire(
        ImpliedVolatilityBatchResult(np.full(len(status), math.nan), status)
    )
    names = [pb.ElementStatus.Name(v) for v in pb.ComputeImpliedVolatilityBatchResponse.FromString(raw).statuses]
    assert names == [f"ELEMENT_STATUS_{s.name}" for s in core_ext.Status]
