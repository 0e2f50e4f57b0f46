"""OCC option symbols (``SPY   240419C00500000``) and dxFeed streamer symbols (``.SPY240419C500``)."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

from services.broker.domain.errors import FieldInvalid
from services.broker.domain.model import OptionKind, OptionSymbol

_OCC = re.compile(r"^(?P<root>[A-Z0-9.]{1,6}) *(?P<date>\d{6})(?P<kind>[CP])(?P<strike>\d{8})$")


def parse_occ(symbol: str) -> OptionSymbol:
    """Parse an OCC symbol: root padded to six characters, YYMMDD, C or P, strike times 1000 in 8 digits.

    Raises:
        FieldInvalid: The text is not an OCC option symbol.
    """
    match = _OCC.match(symbol)
    if match is None:
        raise FieldInvalid("symbol", f"{symbol[:40]!r} is not an OCC option symbol")
    raw = match["date"]
    try:
        expiration = date(2000 + int(raw[:2]), int(raw[2:4]), int(raw[4:]))
    except ValueError as exc:
        raise FieldInvalid("symbol", f"{symbol[:40]!r} has an invalid expiration date") from exc
    strike = Decimal(int(match["strike"])) / 1000
    return OptionSymbol(match["root"], expiration, OptionKind(match["kind"]), strike)


def try_parse_occ(symbol: str) -> OptionSymbol | None:
    """Like parse_occ, but None for text that is not an OCC symbol (futures options, equities)."""
    try:
        return parse_occ(symbol)
    except FieldInvalid:
        return None


def format_occ(root: str, expiration: date, kind: OptionKind, strike: Decimal) -> str:
    """Build the OCC symbol with the root padded to six characters."""
    thousandths = strike * 1000
    if thousandths != thousandths.to_integral_value() or strike <= 0:
        raise FieldInvalid("strike", f"strike {strike} is not a positive multiple of 0.001")
    return f"{root:<6}{expiration:%y%m%d}{kind.value}{int(thousandths):08d}"


def streamer_symbol(option: OptionSymbol) -> str:
    """The dxFeed symbol: dot, root, YYMMDD, C/P, strike without trailing zeros (``500``, ``500.5``)."""
    strike = format(option.strike.normalize(), "f")
    return f".{option.root}{option.expiration_date:%y%m%d}{option.kind.value}{strike}"
