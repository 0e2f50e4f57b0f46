"""Risk limits: validation, breach checks, one alert per breach, and beta estimation from closes."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

from services.portfolio.domain.beta import estimate_beta
from services.portfolio.domain.errors import FieldInvalid
from services.portfolio.domain.risk import (
    Breach,
    LimitKind,
    RiskLimits,
    RiskMeasures,
    check_limits,
    diff_breaches,
    validate_limits,
)
from services.portfolio.domain.scenario import Grid

NOW = datetime(2024, 3, 6, 15, tzinfo=UTC)


def measures(**overrides) -> RiskMeasures:
    values = dict(beta_weighted_delta=150.0, delta_dollars=-80_000.0, vega=-420.0, theta=35.0, worst_scenario_pnl=-9_000.0,
                  max_concentration=0.6, max_concentration_underlying="SPY", compute_time=NOW,
                  concentrations={"SPY": 0.6, "AAPL": 0.3})
    values.update(overrides)
    return RiskMeasures(**values)  # type: ignore[arg-type]


def test_each_limit_is_checked_against_its_measure() -> None:
    limits = RiskLimits(
        max_abs_beta_weighted_delta=100.0, max_abs_delta_dollars=100_000.0, max_abs_vega=400.0, max_theta_decay=10.0,
        max_scenario_loss=Decimal("5000"), scenario=Grid((0.0,), (0.0,), (0.0,)), max_concentration=0.5,
    )
    breaches = check_limits(limits, measures())
    assert [(b.kind, b.underlying_symbol) for b in breaches] == [
        (LimitKind.MAX_BETA_WEIGHTED_DELTA, ""),
        (LimitKind.MAX_VEGA, ""),
        (LimitKind.MAX_SCENARIO_LOSS, ""),
        (LimitKind.MAX_CONCENTRATION, "SPY"),
    ]
    # Positive theta earns money: no decay breach. A loss of 9,000 is beyond 5,000.
    assert breaches[2].observed_value == 9_000.0


def test_theta_decay_is_the_loss_per_day() -> None:
    [breach] = check_limits(RiskLimits(max_theta_decay=10.0), measures(theta=-12.5))
    assert (breach.kind, breach.observed_value) == (LimitKind.MAX_THETA_DECAY, 12.5)


def test_a_breach_alerts_once_until_it_clears() -> None:
    vega = Breach(LimitKind.MAX_VEGA, 400.0, -420.0)
    new, active = diff_breaches(set(), [vega])
    assert new == [vega]
    new, active = diff_breaches(active, [vega])
    assert new == [] and active == {vega.key}
    new, active = diff_breaches(active, [])
    assert new == [] and active == set()
    new, _ = diff_breaches(active, [vega])
    assert new == [vega]


@pytest.mark.parametrize(
    ("limits", "field"),
    [
        (RiskLimits(max_abs_vega=-1.0), "risk_limits.max_abs_vega"),
        (RiskLimits(max_abs_delta_dollars=math.nan), "risk_limits.max_abs_delta_dollars"),
        (RiskLimits(max_concentration=1.5), "risk_limits.max_concentration"),
        (RiskLimits(max_scenario_loss=Decimal("100")), "risk_limits.scenario"),
        (RiskLimits(max_scenario_loss=Decimal("100"), scenario=Grid((-1.0,), (0.0,), (0.0,))),
         "risk_limits.scenario.underlying_moves[0]"),
    ],
)
def test_invalid_limits_name_the_field(limits: RiskLimits, field: str) -> None:
    with pytest.raises(FieldInvalid) as raised:
        validate_limits(limits, None)
    assert raised.value.field == field


def test_beta_is_estimated_from_daily_log_returns() -> None:
    rng = np.random.default_rng(7)
    bench_returns = rng.normal(0, 0.01, 60)
    stock_returns = 1.5 * bench_returns + rng.normal(0, 0.002, 60)
    days = [date(2024, 1, 1) + timedelta(days=i) for i in range(61)]
    bench = dict(zip(days, 100 * np.exp(np.concatenate([[0], np.cumsum(bench_returns)]))))
    stock = dict(zip(days, 50 * np.exp(np.concatenate([[0], np.cumsum(stock_returns)]))))
    expected = np.cov(stock_returns, bench_returns, ddof=1)[0, 1] / np.var(bench_returns, ddof=1)
    assert estimate_beta(stock, bench) == pytest.approx(expected, rel=1e-9)
    assert estimate_beta(dict(list(stock.items())[:10]), bench) is None
