"""Instrument symbols: OCC and dxFeed option forms, validation and the underlying of an option."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from zoneinfo import ZoneInfo

from services.marketdata.domain.errors import FieldInvalid, FieldRequired, NotAnOptionSymbol, TooManySymbols
from services.platform.errors import FieldViolation

__all__ = [
    "MAX_SYMBOL_LENGTH",
    "MAX_SYMBOLS_PER_REQUEST",
    "OptionKind",
    "OptionSymbol",
    "is_option_symbol",
    "parse_option_symbol",
    "streamer_symbol",
    "validate_symbols",
]

MAX_SYMBOLS_PER_REQUEST = 1000
MAX_SYMBOL_LENGTH = 64
NEW_YORK = ZoneInfo("America/New_York")
# Equity options stop trading at 16:00 New York time on their expiration date.
EXPIRY_CLOCK_TIME = time(16, 0)

# OCC: root left-justified and space-padded to 6, YYMMDD, C/P, strike x 1000 in 8 digits.
_OCC = re.compile(r"^(?P<root>[A-Z0-9./]{1,6}) *(?P<date>\d{6})(?P<kind>[CP])(?P<strike>\d{8})$")
# dxFeed: "." root YYMMDD C/P strike without trailing zeros, e.g. ".SPY240419C500", ".SPY240419P500.5".
_DXFEED = re.compile(r"^\.(?P<root>[A-Z0-9/]{1,6}?)(?P<date>\d{6})(?P<kind>[CP])(?P<strike>\d+(?:\.\d+)?)$")
_PRINTABLE = re.compile(r"^[\x21-\x7e]+(?: +[\x21-\x7e]+)*$")

# Weekly/PM-settled index roots trade on the index itself.
_ROOT_UNDERLYING = {"SPXW": "SPX", "NDXP": "NDX", "RUTW": "RUT", "VIXW": "VIX", "XSP": "XSP"}


class OptionKind(Enum):
    """Call or put."""

    CALL = "C"
    PUT = "P"


@dataclass(frozen=True, slots=True)
class OptionSymbol:
    """A listed equity or index option identified by root, expiration date, kind and strike."""

    root: str
    expiration: date
    kind: OptionKind
    strike: Decimal

    @property
    def underlying(self) -> str:
        """The symbol of the underlying instrument (SPXW options are on SPX)."""
        return _ROOT_UNDERLYING.get(self.root, self.root)

    @property
    def is_call(self) -> bool:
        """True for a call."""
        return self.kind is OptionKind.CALL

    def streamer(self) -> str:
        """The dxFeed streamer symbol, e.g. ".SPY240419C500"."""
        strike = format(self.strike.normalize(), "f")
        return f".{self.root}{self.expiration:%y%m%d}{self.kind.value}{strike}"

    def occ(self) -> str:
        """The OCC symbol with its root padded to 6, e.g. "SPY   240419C00500000"."""
        thousandths = int(self.strike * 1000)
        return f"{self.root:<6}{self.expiration:%y%m%d}{self.kind.value}{thousandths:08d}"

    def expires_at(self) -> datetime:
        """The moment trading stops: 16:00 New York time on the expiration date (timezone-aware)."""
        return datetime.combine(self.expiration, EXPIRY_CLOCK_TIME, NEW_YORK)

    def years_to_expiry(self, now: datetime) -> float:
        """Time to expiry as ACT/365 years from `now` (negative once expired)."""
        return (self.expires_at() - now).total_seconds() / (365.0 * 86400.0)


def _parse_date(text: str) -> date | None:
    try:
        return date(2000 + int(text[0:2]), int(text[2:4]), int(text[4:6]))
    except ValueError:
        return None


def parse_option_symbol(symbol: str) -> OptionSymbol | None:
    """Parse an option symbol in OCC or dxFeed form; None when `symbol` is not an option symbol."""
    match = _DXFEED.match(symbol)
    if match is not None:
        strike = Decimal(match["strike"])
    else:
        match = _OCC.match(symbol)
        if match is None:
            return None
        strike = Decimal(int(match["strike"])) / 1000
    expiration = _parse_date(match["date"])
    if expiration is None or strike <= 0:
        return None
    return OptionSymbol(match["root"], expiration, OptionKind(match["kind"]), strike)


def is_option_symbol(symbol: str) -> bool:
    """Tell whether `symbol` is an option in OCC or dxFeed form."""
    return parse_option_symbol(symbol) is not None


def streamer_symbol(symbol: str) -> str:
    """The dxFeed symbol to subscribe for `symbol`: options in OCC form are converted, others unchanged."""
    option = parse_option_symbol(symbol)
    return option.streamer() if option is not None else symbol


def validate_symbols(symbols: list[str] | tuple[str, ...], *, options_only: bool = False) -> list[str]:
    """Check a request's symbol list and return it without duplicates, in order.

    Raises:
        FieldRequired: the list is empty.
        TooManySymbols: more than MAX_SYMBOLS_PER_REQUEST symbols.
        FieldInvalid: a symbol is empty, too long or has control characters.
        NotAnOptionSymbol: `options_only` and a symbol is not an option symbol.
    """
    if not symbols:
        message = "symbols is required: name at least one symbol"
        raise FieldRequired(message, field_violations=[FieldViolation("symbols", message, "FIELD_REQUIRED")])
    unique = list(dict.fromkeys(symbols))
    if len(unique) > MAX_SYMBOLS_PER_REQUEST:
        message = f"{len(unique)} symbols requested, at most {MAX_SYMBOLS_PER_REQUEST} per request"
        raise TooManySymbols(
            message,
            metadata={"limit": str(MAX_SYMBOLS_PER_REQUEST), "requested": str(len(unique))},
            field_violations=[FieldViolation("symbols", message, "TOO_MANY_SYMBOLS")],
        )
    for index, symbol in enumerate(unique):
        if not symbol or len(symbol) > MAX_SYMBOL_LENGTH or not _PRINTABLE.match(symbol):
            message = f"symbols[{index}] = {symbol[:80]!r} is not a symbol (1 to {MAX_SYMBOL_LENGTH} printable characters)"
            raise FieldInvalid(message, field_violations=[FieldViolation(f"symbols[{index}]", message, "FIELD_INVALID")])
        if options_only and not is_option_symbol(symbol):
            message = (
                f"symbols[{index}] = {symbol!r} is not an option symbol (OCC 'SPY   240419C00500000' "
                "or dxFeed '.SPY240419C500')"
            )
            raise NotAnOptionSymbol(
                message, field_violations=[FieldViolation(f"symbols[{index}]", message, "FIELD_INVALID")]
            )
    return unique
