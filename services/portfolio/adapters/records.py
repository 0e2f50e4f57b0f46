"""JSON forms of risk limits and breaches as the stores keep them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from services.portfolio.domain.risk import Breach, LimitKind, RiskLimits, Severity
from services.portfolio.domain.scenario import Grid

__all__ = ["alert_id_for", "breach_from_json", "breach_to_json", "limits_from_json", "limits_to_json"]

ALERT_ID_PREFIX = "risk_"


def alert_id_for(sequence: int) -> str:
    """The id of the ``sequence``-th risk alert: fixed width, so ids sort in the order raised."""
    return f"{ALERT_ID_PREFIX}{sequence:015d}"


def limits_to_json(limits: RiskLimits) -> dict[str, Any]:
    """Limits as JSON (money as a decimal string)."""
    g = limits.scenario
    return {
        "max_abs_beta_weighted_delta": limits.max_abs_beta_weighted_delta,
        "max_abs_delta_dollars": limits.max_abs_delta_dollars,
        "max_abs_vega": limits.max_abs_vega,
        "max_theta_decay": limits.max_theta_decay,
        "max_scenario_loss": None if limits.max_scenario_loss is None else str(limits.max_scenario_loss),
        "scenario": None if g is None else {"moves": list(g.moves), "shifts": list(g.shifts), "days": list(g.days)},
        "max_concentration": limits.max_concentration,
        "benchmark_symbol": limits.benchmark_symbol,
        "breach_severity": int(limits.breach_severity),
    }


def limits_from_json(data: dict[str, Any]) -> RiskLimits:
    """Inverse of ``limits_to_json``."""
    g = data["scenario"]
    loss = data["max_scenario_loss"]
    return RiskLimits(
        max_abs_beta_weighted_delta=data["max_abs_beta_weighted_delta"],
        max_abs_delta_dollars=data["max_abs_delta_dollars"],
        max_abs_vega=data["max_abs_vega"],
        max_theta_decay=data["max_theta_decay"],
        max_scenario_loss=None if loss is None else Decimal(loss),
        scenario=None if g is None else Grid(tuple(g["moves"]), tuple(g["shifts"]), tuple(g["days"])),
        max_concentration=data["max_concentration"],
        benchmark_symbol=data["benchmark_symbol"],
        breach_severity=Severity(data["breach_severity"]),
    )


def breach_to_json(breach: Breach) -> dict[str, Any]:
    """A breach as JSON."""
    return {
        "kind": int(breach.kind),
        "limit_value": breach.limit_value,
        "observed_value": breach.observed_value,
        "underlying_symbol": breach.underlying_symbol,
    }


def breach_from_json(data: dict[str, Any]) -> Breach:
    """Inverse of ``breach_to_json``."""
    return Breach(LimitKind(data["kind"]), data["limit_value"], data["observed_value"], data["underlying_symbol"])
