"""Protobuf wire format of packed columns: read request bytes into NumPy, write responses from ndarray bytes.

A packed ``repeated double`` field is its tag, a varint byte length, then the little-endian doubles, so a
column parses with ``numpy.frombuffer`` on the serialized request (no Python float per element) and a
response column is written by copying the array's bytes behind its header. A packed ``repeated bool`` is
one byte per element while every byte is 0 or 1, and so is a packed enum column while every value is below
128. Anything else a conforming encoder may produce (unpacked elements, non-canonical varints, groups)
makes ``scan`` answer None, and the caller parses the message with protobuf instead; the output of
``encode_columns`` is byte for byte what protobuf itself serializes for the same values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = [
    "ScannedMessage",
    "bool_column",
    "double_column",
    "encode_columns",
    "encode_varint",
    "scan",
    "uint8_column",
]

_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5


def encode_varint(value: int) -> bytes:
    """Encode an unsigned or int64 value as a protobuf varint (negative numbers take ten bytes)."""
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class _NotFast(Exception):
    """The bytes are not in the shape the fast path reads; protobuf must parse them."""


def _read_varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _NotFast
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


@dataclass
class ScannedMessage:
    """Where the packed columns and scalar varints of one serialized message are.

    Attributes:
        data: The serialized message.
        packed: Field number -> (start, end) byte ranges of its packed records, in order (a packed field may
            arrive split in several records; they concatenate).
        varints: Field number -> its last value (the proto3 rule for a repeated scalar field).
    """

    data: bytes
    packed: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    varints: dict[int, int] = field(default_factory=dict)


def scan(data: bytes, packed_fields: Iterable[int], varint_fields: Iterable[int]) -> ScannedMessage | None:
    """Locate the packed columns and scalar varint fields of a serialized message.

    Args:
        data: The serialized message.
        packed_fields: Field numbers of the packed repeated columns.
        varint_fields: Field numbers of the singular varint fields (enums, bools).

    Returns:
        The locations, or None when the message is not in the shape this reader handles (truncated,
        unpacked elements, groups, ...): parse it with protobuf then, which also rejects malformed bytes.
    """
    packed_set, varint_set = frozenset(packed_fields), frozenset(varint_fields)
    found = ScannedMessage(data)
    pos, end = 0, len(data)
    try:
        while pos < end:
            key, pos = _read_varint(data, pos, end)
            number, wire_type = key >> 3, key & 7
            if number == 0:
                return None
            if wire_type == _LENGTH_DELIMITED:
                length, pos = _read_varint(data, pos, end)
                stop = pos + length
                if stop > end:
                    return None
                if number in packed_set:
                    found.packed.setdefault(number, []).append((pos, stop))
                elif number in varint_set:
                    return None
                pos = stop
            elif wire_type == _VARINT:
                value, pos = _read_varint(data, pos, end)
                if number in packed_set:
                    return None
                if number in varint_set:
                    found.varints[number] = value
            elif wire_type == _FIXED64 or wire_type == _FIXED32:
                if number in packed_set or number in varint_set:
                    return None
                pos += 8 if wire_type == _FIXED64 else 4
                if pos > end:
                    return None
            else:
                return None
    except _NotFast:
        return None
    return found


def _raw(scanned: ScannedMessage, number: int, dtype: npt.DTypeLike) -> npt.NDArray[np.generic]:
    ranges = scanned.packed.get(number, ())
    itemsize = np.dtype(dtype).itemsize
    parts = []
    for start, stop in ranges:
        if (stop - start) % itemsize:
            raise _NotFast
        parts.append(np.frombuffer(scanned.data, dtype=dtype, count=(stop - start) // itemsize, offset=start))
    if not parts:
        return np.empty(0, dtype=dtype)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def double_column(scanned: ScannedMessage, number: int) -> npt.NDArray[np.float64] | None:
    """The packed doubles of field ``number`` as a read-only float64 view of the request bytes (a copy when
    the field came in several records); None when a record's length is not a multiple of 8."""
    try:
        # On a little-endian host "<f8" is float64 and this is a view; elsewhere a byte-swapped copy.
        return _raw(scanned, number, "<f8").astype(np.float64, copy=False)
    except _NotFast:
        return None


def uint8_column(scanned: ScannedMessage, number: int) -> npt.NDArray[np.uint8] | None:
    """The packed varints of field ``number`` as uint8 values; None when one takes more than a byte."""
    values = _raw(scanned, number, np.uint8)
    if len(values) and int(values.max()) >= 0x80:
        return None
    return values  # type: ignore[return-value]


def bool_column(scanned: ScannedMessage, number: int) -> npt.NDArray[np.bool_] | None:
    """The packed bools of field ``number`` (any non-zero varint is true); None when one is multi-byte."""
    values = uint8_column(scanned, number)
    return None if values is None else values != 0


def _header(number: int, length: int) -> bytes:
    return encode_varint((number << 3) | _LENGTH_DELIMITED) + encode_varint(length)


def encode_columns(
    doubles: Mapping[int, npt.NDArray[np.floating]] = {},  # noqa: B006  # read-only default
    small_varints: Mapping[int, npt.NDArray[np.integer] | npt.NDArray[np.bool_]] = {},  # noqa: B006
    varints: Mapping[int, int] = {},  # noqa: B006
) -> bytes:
    """Serialize a message of packed columns and scalar varints, fields in ascending number as protobuf does.

    Every column is one copy of its array's bytes into the result; empty columns and zero scalars are left
    out, as proto3 does.

    Args:
        doubles: Field number -> float64 column (written as little-endian doubles).
        small_varints: Field number -> column of values in [0, 128) (bools, small enums), one byte each.
        varints: Field number -> scalar varint value (enums, bools as 0/1).

    Returns:
        The serialized message.

    Raises:
        ValueError: A small-varint column has a value outside [0, 128).
    """
    parts: list[tuple[int, list[bytes | memoryview]]] = []
    for number, column in doubles.items():
        if len(column):
            array = np.ascontiguousarray(column, dtype="<f8")
            parts.append((number, [_header(number, array.nbytes), array.data.cast("B")]))
    for number, small in small_varints.items():
        if len(small):
            values = np.ascontiguousarray(small)
            if values.dtype != np.bool_:
                if int(values.min()) < 0 or int(values.max()) >= 0x80:
                    raise ValueError(f"field {number}: values must be in [0, 128) to be written as bytes")
                values = values.astype(np.uint8, copy=False)
            parts.append((number, [_header(number, values.nbytes), values.data.cast("B")]))
    for number, value in varints.items():
        if value:
            parts.append((number, [encode_varint(number << 3) + encode_varint(int(value))]))
    parts.sort(key=lambda part: part[0])
    return b"".join(chunk for _, chunks in parts for chunk in chunks)
