"""JSON records of watches, live states and alerts, as the stores keep them."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from services.deltamonitor.domain.model import (
    alert_id_for,
    sequence_of,
    AccountTarget,
    AdaptiveBand,
    Alert,
    BandMethod,
    BreachDirection,
    DeltaBreach,
    ExposureGreeks,
    HeldPosition,
    Metric,
    PositionTarget,
    Severity,
    StaleData,
    StaticBand,
    Target,
    UnderlyingTarget,
    Watch,
    WatchLive,
    WatchState,
)

__all__ = [
    "position_from_json",
    "position_to_json",
    "alert_detail_from_json",
    "alert_detail_to_json",
    "alert_id_for",
    "live_from_json",
    "live_to_json",
    "sequence_of",
    "watch_spec_from_json",
    "watch_spec_to_json",
]

def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _float(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _unfloat(value: Any) -> float:
    return math.nan if value is None else float(value)


def _target_to_json(target: Target) -> dict[str, Any]:
    if isinstance(target, PositionTarget):
        return {"kind": "position", "symbol": target.symbol}
    if isinstance(target, UnderlyingTarget):
        return {"kind": "underlying", "symbol": target.underlying_symbol}
    return {"kind": "account"}


def _target_from_json(data: dict[str, Any]) -> Target:
    kind = data["kind"]
    if kind == "position":
        return PositionTarget(data["symbol"])
    if kind == "underlying":
        return UnderlyingTarget(data["symbol"])
    return AccountTarget()


def watch_spec_to_json(watch: Watch) -> dict[str, Any]:
    """The configuration of a watch (everything but ids, owner, account and times)."""
    band = watch.band
    if isinstance(band, StaticBand):
        band_json: dict[str, Any] = {"kind": "static", "lower": band.lower, "upper": band.upper}
    else:
        band_json = {
            "kind": "adaptive",
            "method": int(band.method),
            "center": band.center,
            "multiplier": band.multiplier,
            "min_half_width": band.min_half_width,
            "max_half_width": band.max_half_width,
            "transaction_cost_ratio": band.transaction_cost_ratio,
            "risk_aversion": band.risk_aversion,
        }
    return {
        "display_name": watch.display_name,
        "target": _target_to_json(watch.target),
        "metric": int(watch.metric),
        "benchmark_symbol": watch.benchmark_symbol,
        "band": band_json,
        "hysteresis_ratio": watch.hysteresis_ratio,
        "cooldown_seconds": watch.cooldown.total_seconds(),
        "stale_after_seconds": None if watch.stale_after is None else watch.stale_after.total_seconds(),
        "severity": int(watch.severity),
        "generation": watch.generation,
    }


def watch_spec_from_json(
    spec: dict[str, Any],
    *,
    watch_id: str,
    user_id: str,
    account_number: str,
    create_time: datetime,
    update_time: datetime,
) -> Watch:
    """Inverse of ``watch_spec_to_json``."""
    band_json = spec["band"]
    if band_json["kind"] == "static":
        band: StaticBand | AdaptiveBand = StaticBand(band_json["lower"], band_json["upper"])
    else:
        band = AdaptiveBand(
            method=BandMethod(band_json["method"]),
            center=band_json["center"],
            multiplier=band_json["multiplier"],
            min_half_width=band_json["min_half_width"],
            max_half_width=band_json["max_half_width"],
            transaction_cost_ratio=band_json["transaction_cost_ratio"],
            risk_aversion=band_json["risk_aversion"],
        )
    stale = spec["stale_after_seconds"]
    return Watch(
        watch_id=watch_id,
        user_id=user_id,
        account_number=account_number,
        display_name=spec["display_name"],
        target=_target_from_json(spec["target"]),
        metric=Metric(spec["metric"]),
        benchmark_symbol=spec["benchmark_symbol"],
        band=band,
        hysteresis_ratio=spec["hysteresis_ratio"],
        cooldown=timedelta(seconds=spec["cooldown_seconds"]),
        stale_after=None if stale is None else timedelta(seconds=stale),
        severity=Severity(spec["severity"]),
        create_time=create_time,
        update_time=update_time,
        generation=spec["generation"],
    )


def position_to_json(p: HeldPosition) -> dict[str, Any]:
    """A held position as JSON."""
    return {
        "account_number": p.account_number,
        "symbol": p.symbol,
        "underlying_symbol": p.underlying_symbol,
        "quantity": p.quantity,
        "multiplier": p.multiplier,
        "is_option": p.is_option,
        "is_call": p.is_call,
        "strike": _float(p.strike),
        "expiration_time": _time(p.expiration_time),
        "american": p.american,
        "streamer_symbol": p.streamer_symbol,
    }


def position_from_json(d: dict[str, Any]) -> HeldPosition:
    """Inverse of ``position_to_json``."""
    return HeldPosition(
        account_number=d["account_number"],
        symbol=d["symbol"],
        underlying_symbol=d["underlying_symbol"],
        quantity=d["quantity"],
        multiplier=d["multiplier"],
        is_option=d["is_option"],
        is_call=d["is_call"],
        strike=_unfloat(d["strike"]),
        expiration_time=_parse_time(d["expiration_time"]),
        american=d["american"],
        streamer_symbol=d["streamer_symbol"],
    )


def live_to_json(live: WatchLive) -> dict[str, Any]:
    """A live state as JSON (NaN as null)."""
    return {
        "state": int(live.state),
        "current_delta": _float(live.current_delta),
        "band_lower": _float(live.band_lower),
        "band_upper": _float(live.band_upper),
        "time_to_breach_seconds": None if live.time_to_breach is None else live.time_to_breach.total_seconds(),
        "evaluate_time": _time(live.evaluate_time),
        "last_alert_time": _time(live.last_alert_time),
        "stale": live.stale,
    }


def live_from_json(data: dict[str, Any]) -> WatchLive:
    """Inverse of ``live_to_json``."""
    ttb = data["time_to_breach_seconds"]
    return WatchLive(
        state=WatchState(data["state"]),
        current_delta=_unfloat(data["current_delta"]),
        band_lower=_unfloat(data["band_lower"]),
        band_upper=_unfloat(data["band_upper"]),
        time_to_breach=None if ttb is None else timedelta(seconds=ttb),
        evaluate_time=_parse_time(data["evaluate_time"]),
        last_alert_time=_parse_time(data["last_alert_time"]),
        stale=bool(data["stale"]),
    )


def alert_detail_to_json(alert: Alert) -> dict[str, Any]:
    """The immutable body of an alert (title, message and the kind-specific context)."""
    detail = alert.detail
    if isinstance(detail, DeltaBreach):
        e = detail.exposure
        body: dict[str, Any] = {
            "type": "delta_breach",
            "metric": int(detail.metric),
            "delta_before": detail.delta_before,
            "delta_after": detail.delta_after,
            "band_lower": detail.band_lower,
            "band_upper": detail.band_upper,
            "direction": int(detail.direction),
            "underlying_symbol": detail.underlying_symbol,
            "underlying_price": detail.underlying_price,
            "implied_volatility": detail.implied_volatility,
            "exposure": [e.delta_shares, e.gamma, e.theta, e.vega, e.vanna, e.charm],
            "benchmark_symbol": detail.benchmark_symbol,
            "benchmark_price": detail.benchmark_price,
            "beta": detail.beta,
            "hedge_symbol": detail.hedge_symbol,
            "suggested_hedge_quantity": detail.suggested_hedge_quantity,
            "tick_time": _time(detail.tick_time),
        }
    else:
        body = {
            "type": "stale_data",
            "symbol": detail.symbol,
            "last_update_time": _time(detail.last_update_time),
            "stale_after_seconds": detail.stale_after.total_seconds(),
        }
    return {"title": alert.title, "message": alert.message, "detail": body}


def alert_detail_from_json(data: dict[str, Any]) -> tuple[str, str, DeltaBreach | StaleData]:
    """Inverse of ``alert_detail_to_json``: (title, message, detail)."""
    body = data["detail"]
    if body["type"] == "delta_breach":
        tick_time = _parse_time(body["tick_time"])
        assert tick_time is not None
        detail: DeltaBreach | StaleData = DeltaBreach(
            metric=Metric(body["metric"]),
            delta_before=body["delta_before"],
            delta_after=body["delta_after"],
            band_lower=body["band_lower"],
            band_upper=body["band_upper"],
            direction=BreachDirection(body["direction"]),
            underlying_symbol=body["underlying_symbol"],
            underlying_price=body["underlying_price"],
            implied_volatility=body["implied_volatility"],
            exposure=ExposureGreeks(*body["exposure"]),
            benchmark_symbol=body["benchmark_symbol"],
            benchmark_price=body["benchmark_price"],
            beta=body["beta"],
            hedge_symbol=body["hedge_symbol"],
            suggested_hedge_quantity=body["suggested_hedge_quantity"],
            tick_time=tick_time,
        )
    else:
        detail = StaleData(
            symbol=body["symbol"],
            last_update_time=_parse_time(body["last_update_time"]),
            stale_after=timedelta(seconds=body["stale_after_seconds"]),
        )
    return data["title"], data["message"], detail

