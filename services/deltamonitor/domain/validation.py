"""Validation of watch requests: every rule of the contract, with the field path of the violation."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from services.deltamonitor.domain.errors import BandInvalid, FieldInvalid, FieldRequired, UpdateMaskInvalid
from services.deltamonitor.domain.model import (
    DEFAULT_BENCHMARK,
    AccountTarget,
    AdaptiveBand,
    Band,
    BandMethod,
    Metric,
    PositionTarget,
    Severity,
    StaticBand,
    Target,
    UnderlyingTarget,
    Watch,
)

__all__ = [
    "IMMUTABLE_PATHS",
    "MUTABLE_PATHS",
    "AdaptiveBandDraft",
    "WatchDraft",
    "apply_update",
    "new_watch",
]

MAX_DISPLAY_NAME = 100
MAX_SYMBOL = 40
MAX_DURATION = timedelta(days=30)

MUTABLE_PATHS = frozenset(
    {
        "display_name",
        "metric",
        "benchmark_symbol",
        "static_band",
        "adaptive_band",
        "hysteresis_ratio",
        "cooldown",
        "stale_after",
        "severity",
    }
)
IMMUTABLE_PATHS = frozenset({"account_number", "target", "position", "underlying", "account"})
OUTPUT_ONLY_PATHS = frozenset(
    {
        "watch_id",
        "user_id",
        "state",
        "current_delta",
        "current_band_lower",
        "current_band_upper",
        "time_to_breach",
        "evaluate_time",
        "last_alert_time",
        "create_time",
        "update_time",
    }
)
# Changing one of these re-arms the watch (a new generation starts unevaluated).
_REARMING = frozenset({"metric", "benchmark_symbol", "static_band", "adaptive_band"})


@dataclass(frozen=True, slots=True)
class AdaptiveBandDraft:
    """An adaptive band as requested (``method`` is the raw enum number)."""

    method: int
    center: float
    multiplier: float
    min_half_width: float
    max_half_width: float
    transaction_cost_ratio: float
    risk_aversion: float


@dataclass(frozen=True, slots=True)
class WatchDraft:
    """A watch as requested, before validation (enums are raw numbers; durations None when unset)."""

    account_number: str = ""
    display_name: str = ""
    target: Target | None = None
    metric: int = 0
    benchmark_symbol: str = ""
    static_band: tuple[float, float] | None = None
    adaptive_band: AdaptiveBandDraft | None = None
    hysteresis_ratio: float = 0.0
    cooldown: timedelta | None = None
    stale_after: timedelta | None = None
    severity: int = 0


def _finite(value: float) -> bool:
    return math.isfinite(value)


def _metric(raw: int, prefix: str) -> Metric:
    if raw == 0:
        raise FieldRequired(f"{prefix}.metric", "must be set (DELTA_METRIC_UNSPECIFIED is not a metric)")
    try:
        return Metric(raw)
    except ValueError:
        raise FieldInvalid(f"{prefix}.metric", f"unknown delta metric {raw}") from None


def _severity(raw: int, prefix: str) -> Severity:
    if raw == 0:
        return Severity.WARNING
    try:
        return Severity(raw)
    except ValueError:
        raise FieldInvalid(f"{prefix}.severity", f"unknown severity {raw}") from None


def _static(bounds: tuple[float, float], prefix: str) -> StaticBand:
    lower, upper = bounds
    path = f"{prefix}.static_band"
    if not (_finite(lower) and _finite(upper)):
        raise BandInvalid(path, "bounds must be finite numbers")
    if lower >= upper:
        raise BandInvalid(path, f"lower ({lower}) must be below upper ({upper})")
    return StaticBand(lower, upper)


def _adaptive(draft: AdaptiveBandDraft, prefix: str, target: Target) -> AdaptiveBand:
    path = f"{prefix}.adaptive_band"
    if draft.method == 0:
        raise FieldRequired(f"{path}.method", "must be set (ADAPTIVE_BAND_METHOD_UNSPECIFIED is not a method)")
    try:
        method = BandMethod(draft.method)
    except ValueError:
        raise BandInvalid(f"{path}.method", f"unknown adaptive band method {draft.method}") from None
    values = (draft.center, draft.multiplier, draft.min_half_width, draft.max_half_width,
              draft.transaction_cost_ratio, draft.risk_aversion)
    if not all(_finite(v) for v in values):
        raise BandInvalid(path, "every value must be a finite number")
    if draft.multiplier <= 0:
        raise BandInvalid(f"{path}.multiplier", f"must be > 0, got {draft.multiplier}")
    if draft.min_half_width < 0:
        raise BandInvalid(f"{path}.min_half_width", f"must be >= 0, got {draft.min_half_width}")
    if draft.max_half_width < 0:
        raise BandInvalid(f"{path}.max_half_width", f"must be >= 0 (0 for no cap), got {draft.max_half_width}")
    if draft.max_half_width > 0 and draft.min_half_width > draft.max_half_width:
        raise BandInvalid(path, "min_half_width must not exceed max_half_width")
    if method is BandMethod.WHALLEY_WILMOTT:
        if draft.transaction_cost_ratio <= 0 or draft.transaction_cost_ratio >= 1:
            raise BandInvalid(f"{path}.transaction_cost_ratio", "must be in (0, 1) for the Whalley-Wilmott band")
        if draft.risk_aversion <= 0:
            raise BandInvalid(f"{path}.risk_aversion", "must be > 0 for the Whalley-Wilmott band")
        if isinstance(target, AccountTarget):
            raise BandInvalid(
                f"{path}.method", "the Whalley-Wilmott band needs a single underlying; watch a position or underlying"
            )
    return AdaptiveBand(
        method=method,
        center=draft.center,
        multiplier=draft.multiplier,
        min_half_width=draft.min_half_width,
        max_half_width=draft.max_half_width,
        transaction_cost_ratio=draft.transaction_cost_ratio,
        risk_aversion=draft.risk_aversion,
    )


def _band(draft: WatchDraft, prefix: str, target: Target) -> Band:
    if draft.static_band is not None:
        return _static(draft.static_band, prefix)
    if draft.adaptive_band is not None:
        return _adaptive(draft.adaptive_band, prefix, target)
    raise FieldRequired(f"{prefix}.band", "set static_band or adaptive_band")


def _target(target: Target | None, prefix: str) -> Target:
    if target is None:
        raise FieldRequired(f"{prefix}.target", "set position, underlying or account")
    if isinstance(target, PositionTarget):
        symbol = target.symbol.strip()
        if not symbol:
            raise FieldRequired(f"{prefix}.position.symbol")
        if len(symbol) > MAX_SYMBOL:
            raise FieldInvalid(f"{prefix}.position.symbol", f"at most {MAX_SYMBOL} characters")
        return PositionTarget(target.symbol.rstrip())
    if isinstance(target, UnderlyingTarget):
        symbol = target.underlying_symbol.strip().upper()
        if not symbol:
            raise FieldRequired(f"{prefix}.underlying.underlying_symbol")
        if len(symbol) > MAX_SYMBOL:
            raise FieldInvalid(f"{prefix}.underlying.underlying_symbol", f"at most {MAX_SYMBOL} characters")
        return UnderlyingTarget(symbol)
    return target


def _duration(value: timedelta | None, path: str) -> timedelta | None:
    if value is None:
        return None
    if value < timedelta(0):
        raise FieldInvalid(path, "must not be negative")
    if value > MAX_DURATION:
        raise FieldInvalid(path, f"must be at most {MAX_DURATION.days} days")
    return value


def _hysteresis(value: float, path: str) -> float:
    if not (_finite(value) and 0.0 <= value < 1.0):
        raise FieldInvalid(path, f"must be in [0, 1), got {value}")
    return value


def _display_name(value: str, path: str) -> str:
    if len(value) > MAX_DISPLAY_NAME:
        raise FieldInvalid(path, f"at most {MAX_DISPLAY_NAME} characters")
    return value.strip()


def _benchmark(value: str, metric: Metric, path: str) -> str:
    symbol = value.strip().upper()
    if len(symbol) > MAX_SYMBOL:
        raise FieldInvalid(path, f"at most {MAX_SYMBOL} characters")
    if metric is Metric.BETA_WEIGHTED:
        return symbol or DEFAULT_BENCHMARK
    return ""


def _check_metric_for_target(metric: Metric, target: Target, prefix: str) -> None:
    if metric is Metric.SHARES and isinstance(target, AccountTarget):
        raise FieldInvalid(
            f"{prefix}.metric",
            "share deltas of different underlyings do not add; use DELTA_METRIC_DOLLARS or DELTA_METRIC_BETA_WEIGHTED",
        )


def new_watch(draft: WatchDraft, *, watch_id: str, user_id: str, now: datetime, prefix: str = "watch") -> Watch:
    """Validate a CreateWatch draft and return the watch.

    Raises:
        FieldRequired: account number, target, metric or band missing.
        FieldInvalid: a value out of range (hysteresis, durations, metric for the target, severity).
        BandInvalid: an inconsistent band.
    """
    account = draft.account_number.strip()
    if not account:
        raise FieldRequired(f"{prefix}.account_number")
    if len(account) > MAX_SYMBOL:
        raise FieldInvalid(f"{prefix}.account_number", f"at most {MAX_SYMBOL} characters")
    target = _target(draft.target, prefix)
    metric = _metric(draft.metric, prefix)
    _check_metric_for_target(metric, target, prefix)
    band = _band(draft, prefix, target)
    return Watch(
        watch_id=watch_id,
        user_id=user_id,
        account_number=account,
        display_name=_display_name(draft.display_name, f"{prefix}.display_name"),
        target=target,
        metric=metric,
        benchmark_symbol=_benchmark(draft.benchmark_symbol, metric, f"{prefix}.benchmark_symbol"),
        band=band,
        hysteresis_ratio=_hysteresis(draft.hysteresis_ratio, f"{prefix}.hysteresis_ratio"),
        cooldown=_duration(draft.cooldown, f"{prefix}.cooldown") or timedelta(0),
        stale_after=_duration(draft.stale_after, f"{prefix}.stale_after"),
        severity=_severity(draft.severity, prefix),
        create_time=now,
        update_time=now,
    )


def apply_update(watch: Watch, draft: WatchDraft, paths: Sequence[str], *, now: datetime, prefix: str = "watch") -> Watch:
    """Validate an UpdateWatch and return the changed watch (a new generation if the band or metric changed).

    Raises:
        FieldRequired: the mask is empty, or a named field is required and empty.
        UpdateMaskInvalid: a path is unknown, output only or immutable.
        FieldInvalid, BandInvalid: as for ``new_watch``.
    """
    if not paths:
        raise FieldRequired("update_mask", "name the fields to change")
    for path in paths:
        if path in MUTABLE_PATHS:
            continue
        if path in IMMUTABLE_PATHS:
            raise UpdateMaskInvalid("update_mask", f"{path!r} is immutable")
        if path in OUTPUT_ONLY_PATHS:
            raise UpdateMaskInvalid("update_mask", f"{path!r} is output only")
        raise UpdateMaskInvalid("update_mask", f"{path[:64]!r} is not a field of Watch")
    mask = set(paths)
    if {"static_band", "adaptive_band"} <= mask:
        raise UpdateMaskInvalid("update_mask", "name static_band or adaptive_band, not both")
    changes: dict[str, object] = {}
    metric = watch.metric
    if "metric" in mask:
        metric = _metric(draft.metric, prefix)
        _check_metric_for_target(metric, watch.target, prefix)
        changes["metric"] = metric
    if "display_name" in mask:
        changes["display_name"] = _display_name(draft.display_name, f"{prefix}.display_name")
    if "benchmark_symbol" in mask or "metric" in mask:
        raw = draft.benchmark_symbol if "benchmark_symbol" in mask else watch.benchmark_symbol
        changes["benchmark_symbol"] = _benchmark(raw, metric, f"{prefix}.benchmark_symbol")
    if "static_band" in mask:
        if draft.static_band is None:
            raise FieldRequired(f"{prefix}.static_band")
        changes["band"] = _static(draft.static_band, prefix)
    if "adaptive_band" in mask:
        if draft.adaptive_band is None:
            raise FieldRequired(f"{prefix}.adaptive_band")
        changes["band"] = _adaptive(draft.adaptive_band, prefix, watch.target)
    if "hysteresis_ratio" in mask:
        changes["hysteresis_ratio"] = _hysteresis(draft.hysteresis_ratio, f"{prefix}.hysteresis_ratio")
    if "cooldown" in mask:
        changes["cooldown"] = _duration(draft.cooldown, f"{prefix}.cooldown") or timedelta(0)
    if "stale_after" in mask:
        changes["stale_after"] = _duration(draft.stale_after, f"{prefix}.stale_after")
    if "severity" in mask:
        changes["severity"] = _severity(draft.severity, prefix)
    generation = watch.generation + (1 if mask & _REARMING else 0)
    return replace(watch, **changes, generation=generation, update_time=now)  # type: ignore[arg-type]
