"""Risk limits, the measures they are checked against, and which breaches are new (one alert per breach).

Theory of operation. Each limit that is set is checked on every valuation. A breach is identified by its
key (the limit, plus the underlying for concentration). The set of active breach keys is persisted; a
valuation's breaches that are not already active are *new* and raise one alert each; active keys that no
longer breach are cleared, so a later breach of the same limit alerts again.

| previous \\ now | within          | breached                   |
|----------------|-----------------|----------------------------|
| within         | -               | alert, becomes active      |
| active         | cleared         | - (no second alert)        |
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from services.portfolio.domain.errors import FieldInvalid
from services.portfolio.domain.greeks import PortfolioGreeks, PricingBook
from services.portfolio.domain.scenario import Grid, validate_grid

__all__ = [
    "Breach",
    "LimitKind",
    "RiskLimits",
    "RiskMeasures",
    "Severity",
    "check_limits",
    "compute_measures",
    "diff_breaches",
    "validate_limits",
]


class LimitKind(enum.IntEnum):
    """A risk limit (values mirror tastyplat.type.v1.RiskLimitKind)."""

    MAX_BETA_WEIGHTED_DELTA = 1
    MAX_DELTA_DOLLARS = 2
    MAX_VEGA = 3
    MAX_THETA_DECAY = 4
    MAX_SCENARIO_LOSS = 5
    MAX_CONCENTRATION = 6


class Severity(enum.IntEnum):
    """Alert severity (values mirror tastyplat.type.v1.Severity)."""

    INFO = 1
    WARNING = 2
    CRITICAL = 3


@dataclass(frozen=True)
class RiskLimits:
    """An account's limits; None means "not checked"."""

    max_abs_beta_weighted_delta: float | None = None
    max_abs_delta_dollars: float | None = None
    max_abs_vega: float | None = None
    max_theta_decay: float | None = None
    max_scenario_loss: Decimal | None = None
    scenario: Grid | None = None
    max_concentration: float | None = None
    benchmark_symbol: str = "SPY"
    breach_severity: Severity = Severity.CRITICAL


@dataclass(frozen=True)
class RiskMeasures:
    """Current values of the limited measures."""

    beta_weighted_delta: float
    delta_dollars: float
    vega: float
    theta: float
    worst_scenario_pnl: float | None
    max_concentration: float
    max_concentration_underlying: str
    compute_time: datetime
    concentrations: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Breach:
    """One limit observed beyond its value."""

    kind: LimitKind
    limit_value: float
    observed_value: float
    underlying_symbol: str = ""

    @property
    def key(self) -> str:
        """Identity of the breach across valuations."""
        return f"{self.kind.name}:{self.underlying_symbol}"


def validate_limits(limits: RiskLimits, book: PricingBook | None) -> RiskLimits:
    """Check limits the way SetRiskLimits promises.

    Raises:
        FieldInvalid: A limit is negative or NaN, ``max_concentration`` is not in (0, 1], the scenario loss is
            set without a scenario, or the scenario is invalid.
    """
    for name in ("max_abs_beta_weighted_delta", "max_abs_delta_dollars", "max_abs_vega", "max_theta_decay"):
        value = getattr(limits, name)
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise FieldInvalid(f"risk_limits.{name}", f"must be a number >= 0, got {value!r}")
    if limits.max_concentration is not None and not (
        math.isfinite(limits.max_concentration) and 0 < limits.max_concentration <= 1
    ):
        raise FieldInvalid("risk_limits.max_concentration", f"must be in (0, 1], got {limits.max_concentration!r}")
    if limits.max_scenario_loss is not None:
        if limits.max_scenario_loss < 0:
            raise FieldInvalid("risk_limits.max_scenario_loss", "must be a positive amount")
        if limits.scenario is None:
            raise FieldInvalid("risk_limits.scenario", "is required when max_scenario_loss is set")
    if limits.scenario is not None:
        g = limits.scenario
        validate_grid(g.moves, g.shifts, g.days, book, prefix="risk_limits.scenario.")
    return limits


def compute_measures(
    greeks: PortfolioGreeks,
    market_values: Sequence[float],
    net_liquidating_value: float,
    worst_scenario_pnl: float | None,
    now: datetime,
) -> RiskMeasures:
    """The measures: totals from the Greeks, the worst scenario P&L, and concentration by underlying.

    Concentration is the sum of absolute market values on an underlying over the net liquidating value; with
    no positive net liquidating value every held underlying counts as fully concentrated (1.0 or more).
    """
    exposure: dict[str, float] = {}
    for underlying, value in zip(greeks.book.underlyings, market_values):
        exposure[underlying] = exposure.get(underlying, 0.0) + abs(value)
    concentrations: dict[str, float] = {}
    for underlying, amount in exposure.items():
        if net_liquidating_value > 0:
            concentrations[underlying] = amount / net_liquidating_value
        else:
            concentrations[underlying] = math.inf if amount > 0 else 0.0
    top = max(sorted(concentrations), key=lambda u: concentrations[u], default="")
    return RiskMeasures(
        beta_weighted_delta=greeks.total_beta_weighted_delta,
        delta_dollars=greeks.total_delta_dollars,
        vega=greeks.total_vega,
        theta=greeks.total_theta,
        worst_scenario_pnl=worst_scenario_pnl,
        max_concentration=concentrations.get(top, 0.0),
        max_concentration_underlying=top,
        compute_time=now,
        concentrations=concentrations,
    )


def check_limits(limits: RiskLimits, measures: RiskMeasures) -> list[Breach]:
    """Every limit the measures exceed (strictly), in LimitKind order."""
    out: list[Breach] = []
    if limits.max_abs_beta_weighted_delta is not None and abs(measures.beta_weighted_delta) > limits.max_abs_beta_weighted_delta:
        out.append(Breach(LimitKind.MAX_BETA_WEIGHTED_DELTA, limits.max_abs_beta_weighted_delta, measures.beta_weighted_delta))
    if limits.max_abs_delta_dollars is not None and abs(measures.delta_dollars) > limits.max_abs_delta_dollars:
        out.append(Breach(LimitKind.MAX_DELTA_DOLLARS, limits.max_abs_delta_dollars, measures.delta_dollars))
    if limits.max_abs_vega is not None and abs(measures.vega) > limits.max_abs_vega:
        out.append(Breach(LimitKind.MAX_VEGA, limits.max_abs_vega, measures.vega))
    if limits.max_theta_decay is not None and -measures.theta > limits.max_theta_decay:
        out.append(Breach(LimitKind.MAX_THETA_DECAY, limits.max_theta_decay, -measures.theta))
    if (
        limits.max_scenario_loss is not None
        and measures.worst_scenario_pnl is not None
        and -measures.worst_scenario_pnl > float(limits.max_scenario_loss)
    ):
        out.append(Breach(LimitKind.MAX_SCENARIO_LOSS, float(limits.max_scenario_loss), -measures.worst_scenario_pnl))
    if limits.max_concentration is not None:
        for underlying in sorted(measures.concentrations):
            share = measures.concentrations[underlying]
            if share > limits.max_concentration:
                out.append(Breach(LimitKind.MAX_CONCENTRATION, limits.max_concentration, share, underlying))
    return out


def diff_breaches(active: Iterable[str], breaches: Sequence[Breach]) -> tuple[list[Breach], set[str]]:
    """Split a valuation's breaches against the active set: (new breaches, keys still or newly active)."""
    previous = set(active)
    new = [b for b in breaches if b.key not in previous]
    return new, {b.key for b in breaches}
