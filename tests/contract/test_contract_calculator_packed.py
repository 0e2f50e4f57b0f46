"""Calculator batch messages on the wire: packed columns that round-trip through NumPy byte for byte."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np
import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.message import Message

from tastyplat.calculator.v1 import calculator_service_pb2 as calc

if TYPE_CHECKING:
    from conftest import Contracts

BATCH_MESSAGES = [
    calc.ComputeGreeksBatchRequest,
    calc.ComputeGreeksBatchResponse,
    calc.ComputeImpliedVolatilityBatchRequest,
    calc.ComputeImpliedVolatilityBatchResponse,
]
DOUBLE_COLUMNS = [
    (cls, field.name)
    for cls in BATCH_MESSAGES
    for field in cls.DESCRIPTOR.fields
    if field.type == field.TYPE_DOUBLE and field.is_repeated
]
MAX_BATCH = 100_000


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _length_delimited_fields(data: bytes) -> dict[int, list[bytes]]:
    """Split a serialized message into its length-delimited (wire type 2) payloads by field number."""
    fields: dict[int, list[bytes]] = {}
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 2:
            length, pos = _read_varint(data, pos)
            fields.setdefault(number, []).append(data[pos : pos + length])
            pos += length
        elif wire_type == 0:
            _, pos = _read_varint(data, pos)
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        else:
            raise AssertionError(f"unexpected wire type {wire_type}")
    return fields


def _column(n: int, seed: int) -> np.ndarray:
    """Random doubles plus the values that must survive bit for bit (NaN marks a non-OK element)."""
    special = np.array([np.nan, -0.0, 0.0, np.inf, -np.inf, 5e-324, np.finfo(np.float64).max, 1e-300, -1.5])
    rng = np.random.default_rng(seed)
    return np.concatenate([special, rng.normal(scale=100.0, size=n)]).astype("<f8")


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a.view(np.uint64), b.view(np.uint64)))


def test_every_batch_message_has_packed_double_columns() -> None:
    names = {(cls.__name__, name) for cls, name in DOUBLE_COLUMNS}
    assert ("ComputeGreeksBatchRequest", "spot_prices") in names
    assert ("ComputeGreeksBatchResponse", "charms") in names
    assert ("ComputeImpliedVolatilityBatchRequest", "option_prices") in names
    assert ("ComputeImpliedVolatilityBatchResponse", "implied_volatilities") in names
    assert len(DOUBLE_COLUMNS) == 6 + 8 + 6 + 1


@pytest.mark.parametrize(("cls", "name"), DOUBLE_COLUMNS, ids=lambda v: getattr(v, "__name__", v))
def test_serialized_column_is_the_numpy_bytes(cls: type[Message], name: str) -> None:
    values = _column(1000, seed=len(name))
    message = cls()
    getattr(message, name).extend(values.tolist())
    payloads = _length_delimited_fields(message.SerializeToString())
    number = cls.DESCRIPTOR.fields_by_name[name].number
    assert len(payloads[number]) == 1, "a packed column is one length-delimited record"
    assert _same_bits(np.frombuffer(payloads[number][0], dtype="<f8"), values)


@pytest.mark.parametrize(("cls", "name"), DOUBLE_COLUMNS, ids=lambda v: getattr(v, "__name__", v))
def test_column_written_from_tobytes_parses_back_unchanged(cls: type[Message], name: str) -> None:
    values = _column(1000, seed=7 + len(name))
    number = cls.DESCRIPTOR.fields_by_name[name].number
    raw = _varint((number << 3) | 2) + _varint(values.nbytes) + values.tobytes()
    parsed = cls.FromString(raw)
    assert _same_bits(np.asarray(getattr(parsed, name), dtype=np.float64), values)
    assert parsed.SerializeToString() == raw, "protobuf's own encoding is identical to the direct one"


def test_whole_greeks_response_encoded_from_arrays_matches_protobuf() -> None:
    n = 5000
    columns = {name: _column(n, seed=i) for i, name in enumerate(
        ["prices", "deltas", "gammas", "vegas", "thetas", "rhos", "vannas", "charms"])}
    status = np.random.default_rng(3).integers(0, 5, size=n + 9).astype(np.int64)  # core_ext.Status values
    raw = b"".join(
        _varint((calc.ComputeGreeksBatchResponse.DESCRIPTOR.fields_by_name[name].number << 3) | 2)
        + _varint(arr.nbytes) + arr.tobytes()
        for name, arr in columns.items()
    )
    status_bytes = (status + 1).astype(np.uint8).tobytes()
    raw += _varint((9 << 3) | 2) + _varint(len(status_bytes)) + status_bytes
    parsed = calc.ComputeGreeksBatchResponse.FromString(raw)
    for name, arr in columns.items():
        assert _same_bits(np.asarray(getattr(parsed, name), dtype=np.float64), arr), name
    assert list(parsed.statuses) == (status + 1).tolist()
    built = calc.ComputeGreeksBatchResponse()
    for name, arr in columns.items():
        getattr(built, name).extend(arr.tolist())
    built.statuses.extend((status + 1).tolist())
    assert built.SerializeToString() == raw


def test_is_call_column_is_numpy_bool_bytes() -> None:
    is_call = np.random.default_rng(11).random(777) < 0.5
    request = calc.ComputeGreeksBatchRequest(is_call=is_call.tolist())
    payload = _length_delimited_fields(request.SerializeToString())[1][0]
    assert np.array_equal(np.frombuffer(payload, dtype=np.bool_), is_call)
    raw = _varint((1 << 3) | 2) + _varint(is_call.nbytes) + is_call.tobytes()
    assert list(calc.ComputeGreeksBatchRequest.FromString(raw).is_call) == is_call.tolist()


def test_status_column_is_uint8_bytes_when_values_are_small() -> None:
    values = [v.number for v in calc.ElementStatus.DESCRIPTOR.values]
    assert max(values) < 128, "one byte per packed varint is what lets a server write uint8 bytes"
    statuses = np.array(values[1:] * 50, dtype=np.uint8)
    response = calc.ComputeImpliedVolatilityBatchResponse(statuses=statuses.tolist())
    payload = _length_delimited_fields(response.SerializeToString())[2][0]
    assert np.array_equal(np.frombuffer(payload, dtype=np.uint8), statuses)


def test_element_status_is_core_ext_status_plus_one() -> None:
    core_ext = pytest.importorskip("core_ext")
    status = getattr(core_ext, "Status", None)
    if status is None:
        pytest.skip("core_ext.Status is not built yet (issue 4)")
    for name in ("OK", "INVALID_INPUT", "BELOW_INTRINSIC", "ABOVE_MAXIMUM", "NO_CONVERGENCE"):
        assert calc.ElementStatus.Value(f"ELEMENT_STATUS_{name}") == int(status[name]) + 1


def test_documented_tag_bytes_match_the_field_numbers(contracts: Contracts) -> None:
    for message in ("ComputeGreeksBatchResponse", "ComputeImpliedVolatilityBatchResponse"):
        file_name, path = contracts.message_paths[f"tastyplat.calculator.v1.{message}"]
        comment = contracts.comments[(file_name, path)]
        documented = re.findall(r"`?(\w+)`? (?:0x)([0-9A-F]{2})", comment)
        assert documented, f"{message}: no tag bytes documented"
        fields = {f.name: f.number for f in contracts.messages[f"tastyplat.calculator.v1.{message}"].field}
        for name, tag in documented:
            assert (fields[name] << 3) | 2 == int(tag, 16), f"{message}.{name}"
        assert {name for name, _ in documented} == set(fields)


def test_full_batch_exceeds_grpc_default_message_size_as_documented() -> None:
    n = MAX_BATCH
    column = np.random.default_rng(5).random(n).tolist()
    request = calc.ComputeGreeksBatchRequest(
        is_call=[True] * n, spot_prices=column, strike_prices=column, expiry_years=column,
        volatilities=column, rates=column, dividend_yields=column,
    )
    response = calc.ComputeGreeksBatchResponse(
        prices=column, deltas=column, gammas=column, vegas=column, thetas=column, rhos=column,
        vannas=column, charms=column, statuses=[1] * n,
    )
    four_mib, eight_mib = 4 * 1024 * 1024, 8 * 1024 * 1024
    assert four_mib < request.ByteSize() < eight_mib
    assert four_mib < response.ByteSize() < eight_mib


def test_batch_limit_and_broadcast_rule_are_documented(contracts: Contracts) -> None:
    file_name, path = contracts.message_paths["tastyplat.calculator.v1.ComputeGreeksBatchRequest"]
    comment = contracts.comments[(file_name, path)]
    assert "100,000" in comment and "length 1" in comment
    service_comment = contracts.method_comment("tastyplat.calculator.v1.CalculatorService", "ComputeGreeksBatch")
    assert "BATCH_TOO_LARGE" in service_comment and "100,000" in service_comment


def test_batch_request_columns_are_parallel(contracts: Contracts) -> None:
    for message, columns in {
        "ComputeGreeksBatchRequest": ["is_call", "spot_prices", "strike_prices", "expiry_years", "volatilities",
                                      "rates", "dividend_yields"],
        "ComputeImpliedVolatilityBatchRequest": ["is_call", "option_prices", "spot_prices", "strike_prices",
                                                 "expiry_years", "rates", "dividend_yields"],
    }.items():
        fields = {f.name: f for f in contracts.messages[f"tastyplat.calculator.v1.{message}"].field}
        for name in columns:
            assert fields[name].label == descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED, f"{message}.{name}"
        assert fields["style"].type_name == ".tastyplat.type.v1.ExerciseStyle"
