"""Value types of the delta monitor: watches, bands, held positions and alerts.

Enum values carry the numbers of the contract's enums, so arrays of them need no translation table.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = [
    "ALERT_ID_DIGITS",
    "ALERT_ID_PREFIX",
    "alert_id_for",
    "sequence_of",
    "AccountTarget",
    "AdaptiveBand",
    "Alert",
    "AlertKind",
    "AlertState",
    "BandMethod",
    "BreachDirection",
    "DEFAULT_BENCHMARK",
    "DeltaBreach",
    "ExposureGreeks",
    "HeldPosition",
    "Metric",
    "PositionTarget",
    "Severity",
    "StaleData",
    "StaticBand",
    "Target",
    "UnderlyingTarget",
    "Watch",
    "WatchLive",
    "WatchState",
]

DEFAULT_BENCHMARK = "SPY"


class Metric(enum.IntEnum):
    """The measure a watch's band is expressed in."""

    SHARES = 1
    DOLLARS = 2
    BETA_WEIGHTED = 3


class WatchState(enum.IntEnum):
    """Where a watch is in its alert state machine (see ``domain.alerting``)."""

    UNEVALUATED = 0
    ARMED = 1
    BREACHED = 2


class BandMethod(enum.IntEnum):
    """How an adaptive band's half-width is computed."""

    EXPECTED_MOVE = 1
    WHALLEY_WILMOTT = 2


class Severity(enum.IntEnum):
    """How urgent an alert is."""

    INFO = 1
    WARNING = 2
    CRITICAL = 3


class AlertKind(enum.IntEnum):
    """What raised an alert."""

    DELTA_BREACH = 1
    STALE_DATA = 2


class AlertState(enum.IntEnum):
    """Open or acknowledged."""

    OPEN = 1
    ACKNOWLEDGED = 2


class BreachDirection(enum.IntEnum):
    """Which side of its band a delta left by."""

    ABOVE_UPPER = 1
    BELOW_LOWER = 2


@dataclass(frozen=True, slots=True)
class PositionTarget:
    """One position, by symbol (OCC form for options)."""

    symbol: str

    def describe(self) -> str:
        """The target as users read it."""
        return self.symbol.strip()


@dataclass(frozen=True, slots=True)
class UnderlyingTarget:
    """Every position on one underlying."""

    underlying_symbol: str

    def describe(self) -> str:
        """The target as users read it."""
        return self.underlying_symbol


@dataclass(frozen=True, slots=True)
class AccountTarget:
    """The whole account."""

    def describe(self) -> str:
        """The target as users read it."""
        return "account"


Target = PositionTarget | UnderlyingTarget | AccountTarget


@dataclass(frozen=True, slots=True)
class StaticBand:
    """A fixed band in metric units."""

    lower: float
    upper: float

    @property
    def center(self) -> float:
        """The middle of the band."""
        return (self.lower + self.upper) / 2.0


@dataclass(frozen=True, slots=True)
class AdaptiveBand:
    """A band around ``center`` whose half-width follows gamma, volatility and price (see README)."""

    method: BandMethod
    center: float
    multiplier: float
    min_half_width: float = 0.0
    max_half_width: float = 0.0
    transaction_cost_ratio: float = 0.0
    risk_aversion: float = 0.0


Band = StaticBand | AdaptiveBand


@dataclass(frozen=True, slots=True)
class Watch:
    """A user's instruction to be told when a delta leaves a band (the configuration, not the live state).

    Attributes:
        watch_id: Server-assigned id.
        user_id: The owner.
        account_number: The watched account.
        display_name: A name the user recognises.
        target: What is watched.
        metric: The band's unit.
        benchmark_symbol: Benchmark of a beta-weighted watch.
        band: The band.
        hysteresis_ratio: Fraction of the half-width the delta must come back inside before re-arming.
        cooldown: Minimum time between two alerts.
        stale_after: Staleness limit while the market is open; zero disables stale alerts, None takes the
            server default.
        severity: Severity of the alerts raised.
        create_time: When it was created.
        update_time: When it last changed.
        generation: Bumped by every change of the band, metric or target; a new generation re-arms.
    """

    watch_id: str
    user_id: str
    account_number: str
    display_name: str
    target: Target
    metric: Metric
    benchmark_symbol: str
    band: Band
    hysteresis_ratio: float
    cooldown: timedelta
    stale_after: timedelta | None
    severity: Severity
    create_time: datetime
    update_time: datetime
    generation: int = 0


@dataclass(frozen=True, slots=True)
class WatchLive:
    """The live state of a watch, as the monitor last evaluated it.

    ``current_delta`` and the band bounds are NaN until the first evaluation; ``time_to_breach`` is None when
    breached or when no breach is forecast.
    """

    state: WatchState = WatchState.UNEVALUATED
    current_delta: float = math.nan
    band_lower: float = math.nan
    band_upper: float = math.nan
    time_to_breach: timedelta | None = None
    evaluate_time: datetime | None = None
    last_alert_time: datetime | None = None
    stale: bool = False


@dataclass(frozen=True, slots=True)
class HeldPosition:
    """A position as the broker reports it, reduced to what re-pricing needs.

    Attributes:
        account_number: The account.
        symbol: Instrument symbol (OCC form for options).
        underlying_symbol: The underlying (the symbol itself for shares).
        quantity: Signed quantity: contracts for options, shares for equities.
        multiplier: Shares per unit of quantity.
        is_option: Whether it is an equity option.
        is_call: Call (True) or put (False); meaningless for shares.
        strike: Strike per share (options).
        expiration_time: When the option expires (options).
        american: American exercise (options).
        streamer_symbol: The dxFeed symbol its quotes and Greeks come under.
    """

    account_number: str
    symbol: str
    underlying_symbol: str
    quantity: float
    multiplier: float
    is_option: bool = False
    is_call: bool = True
    strike: float = math.nan
    expiration_time: datetime | None = None
    american: bool = True
    streamer_symbol: str = ""

    @property
    def units(self) -> float:
        """Signed share-equivalent units: quantity x multiplier."""
        return self.quantity * self.multiplier


@dataclass(frozen=True, slots=True)
class ExposureGreeks:
    """Greeks of the watched positions, scaled by signed quantity x multiplier (see alert.proto)."""

    delta_shares: float
    gamma: float
    theta: float
    vega: float
    vanna: float
    charm: float


@dataclass(frozen=True, slots=True)
class DeltaBreach:
    """Market context of a delta alert."""

    metric: Metric
    delta_before: float
    delta_after: float
    band_lower: float
    band_upper: float
    direction: BreachDirection
    underlying_symbol: str
    underlying_price: float
    implied_volatility: float
    exposure: ExposureGreeks
    benchmark_symbol: str
    benchmark_price: float
    beta: float
    hedge_symbol: str
    suggested_hedge_quantity: float
    tick_time: datetime


@dataclass(frozen=True, slots=True)
class StaleData:
    """Context of a stale-data alert."""

    symbol: str
    last_update_time: datetime | None
    stale_after: timedelta


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert; immutable apart from its state.

    ``alert_id`` is empty on a draft; the store assigns ids in the order alerts are raised, and ``sequence``
    is that order as a number.
    """

    alert_id: str
    user_id: str
    account_number: str
    watch_id: str
    kind: AlertKind
    severity: Severity
    state: AlertState
    title: str
    message: str
    raise_time: datetime
    detail: DeltaBreach | StaleData
    acknowledge_time: datetime | None = None
    sequence: int = 0


ALERT_ID_PREFIX = "alrt_"
ALERT_ID_DIGITS = 15


def alert_id_for(sequence: int) -> str:
    """The alert id of the ``sequence``-th alert: fixed width, so ids sort in the order raised."""
    return f"{ALERT_ID_PREFIX}{sequence:0{ALERT_ID_DIGITS}d}"


def sequence_of(alert_id: str) -> int | None:
    """The sequence number encoded in an alert id, or None when it is not one."""
    if not alert_id.startswith(ALERT_ID_PREFIX):
        return None
    digits = alert_id[len(ALERT_ID_PREFIX):]
    if len(digits) != ALERT_ID_DIGITS or not digits.isdigit():
        return None
    return int(digits)
