"""Translation between the contract's messages and the domain, at the edge (also the bus wire format of alerts)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from google.protobuf import duration_pb2, timestamp_pb2
from google.protobuf.message import DecodeError
from tastyplat.deltamonitor.v1 import deltamonitor_service_pb2 as pb
from tastyplat.type.v1 import alert_pb2, stream_pb2

from services.deltamonitor.app import WatchView
from services.deltamonitor.domain.model import (
    AccountTarget,
    AdaptiveBand,
    Alert,
    AlertKind,
    AlertState,
    BreachDirection,
    DeltaBreach,
    ExposureGreeks,
    Metric,
    PositionTarget,
    Severity,
    StaleData,
    StaticBand,
    Target,
    UnderlyingTarget,
    sequence_of,
)
from services.deltamonitor.domain.validation import AdaptiveBandDraft, WatchDraft

__all__ = [
    "alert_from_proto",
    "alert_to_proto",
    "decode_alert",
    "draft_from_proto",
    "encode_alert",
    "heartbeat",
    "stream_end",
    "timestamp",
    "watch_to_proto",
]


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    """A protobuf Timestamp of an aware datetime."""
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(value.astimezone(UTC))
    return out


def _datetime(value: timestamp_pb2.Timestamp) -> datetime:
    return value.ToDatetime(tzinfo=UTC)


def _duration(value: timedelta) -> duration_pb2.Duration:
    out = duration_pb2.Duration()
    out.FromTimedelta(value)
    return out


def _timedelta(value: duration_pb2.Duration) -> timedelta:
    return timedelta(seconds=value.seconds, microseconds=value.nanos // 1000)


def draft_from_proto(watch: pb.Watch) -> WatchDraft:
    """The request's watch as a draft for the domain to validate."""
    which = watch.WhichOneof("target")
    target: Target | None = None
    if which == "position":
        target = PositionTarget(watch.position.symbol)
    elif which == "underlying":
        target = UnderlyingTarget(watch.underlying.underlying_symbol)
    elif which == "account":
        target = AccountTarget()
    band = watch.WhichOneof("band")
    static = None
    adaptive = None
    if band == "static_band":
        static = (watch.static_band.lower, watch.static_band.upper)
    elif band == "adaptive_band":
        a = watch.adaptive_band
        adaptive = AdaptiveBandDraft(
            method=int(a.method),
            center=a.center,
            multiplier=a.multiplier,
            min_half_width=a.min_half_width,
            max_half_width=a.max_half_width,
            transaction_cost_ratio=a.transaction_cost_ratio,
            risk_aversion=a.risk_aversion,
        )
    return WatchDraft(
        account_number=watch.account_number,
        display_name=watch.display_name,
        target=target,
        metric=int(watch.metric),
        benchmark_symbol=watch.benchmark_symbol,
        static_band=static,
        adaptive_band=adaptive,
        hysteresis_ratio=watch.hysteresis_ratio,
        cooldown=_timedelta(watch.cooldown) if watch.HasField("cooldown") else None,
        stale_after=_timedelta(watch.stale_after) if watch.HasField("stale_after") else None,
        severity=int(watch.severity),
    )


def watch_to_proto(view: WatchView) -> pb.Watch:
    """A watch and its live state as the contract's Watch."""
    w, live = view.watch, view.live
    out = pb.Watch(
        watch_id=w.watch_id,
        user_id=w.user_id,
        account_number=w.account_number,
        display_name=w.display_name,
        metric=int(w.metric),
        benchmark_symbol=w.benchmark_symbol,
        hysteresis_ratio=w.hysteresis_ratio,
        severity=int(w.severity),
        state=int(live.state),
    )
    target = w.target
    if isinstance(target, PositionTarget):
        out.position.symbol = target.symbol
    elif isinstance(target, UnderlyingTarget):
        out.underlying.underlying_symbol = target.underlying_symbol
    else:
        out.account.SetInParent()
    band = w.band
    if isinstance(band, StaticBand):
        out.static_band.lower = band.lower
        out.static_band.upper = band.upper
    elif isinstance(band, AdaptiveBand):
        out.adaptive_band.CopyFrom(
            pb.AdaptiveBand(
                method=int(band.method),
                center=band.center,
                multiplier=band.multiplier,
                min_half_width=band.min_half_width,
                max_half_width=band.max_half_width,
                transaction_cost_ratio=band.transaction_cost_ratio,
                risk_aversion=band.risk_aversion,
            )
        )
    out.cooldown.CopyFrom(_duration(w.cooldown))
    if w.stale_after is not None:
        out.stale_after.CopyFrom(_duration(w.stale_after))
    # Unknown live values stay at their proto default and the state says UNSPECIFIED (not evaluated).
    if math.isfinite(live.current_delta):
        out.current_delta = live.current_delta
    if math.isfinite(live.band_lower):
        out.current_band_lower = live.band_lower
    if math.isfinite(live.band_upper):
        out.current_band_upper = live.band_upper
    if live.time_to_breach is not None:
        out.time_to_breach.CopyFrom(_duration(live.time_to_breach))
    if live.evaluate_time is not None:
        out.evaluate_time.CopyFrom(timestamp(live.evaluate_time))
    if live.last_alert_time is not None:
        out.last_alert_time.CopyFrom(timestamp(live.last_alert_time))
    out.create_time.CopyFrom(timestamp(w.create_time))
    out.update_time.CopyFrom(timestamp(w.update_time))
    return out


def alert_to_proto(alert: Alert) -> alert_pb2.Alert:
    """A domain alert as tastyplat.type.v1.Alert."""
    out = alert_pb2.Alert(
        alert_id=alert.alert_id,
        user_id=alert.user_id,
        account_number=alert.account_number,
        watch_id=alert.watch_id,
        kind=int(alert.kind),
        severity=int(alert.severity),
        state=int(alert.state),
        title=alert.title,
        message=alert.message,
    )
    out.raise_time.CopyFrom(timestamp(alert.raise_time))
    if alert.acknowledge_time is not None:
        out.acknowledge_time.CopyFrom(timestamp(alert.acknowledge_time))
    d = alert.detail
    if isinstance(d, DeltaBreach):
        e = d.exposure
        breach = alert_pb2.DeltaBreach(
            metric=int(d.metric),
            delta_before=d.delta_before,
            delta_after=d.delta_after,
            band_lower=d.band_lower,
            band_upper=d.band_upper,
            direction=int(d.direction),
            underlying_symbol=d.underlying_symbol,
            underlying_price=d.underlying_price,
            implied_volatility=d.implied_volatility,
            exposure=alert_pb2.ExposureGreeks(
                delta_shares=e.delta_shares, gamma=e.gamma, theta=e.theta, vega=e.vega, vanna=e.vanna, charm=e.charm
            ),
            benchmark_symbol=d.benchmark_symbol,
            benchmark_price=d.benchmark_price,
            beta=d.beta,
            hedge_symbol=d.hedge_symbol,
            suggested_hedge_quantity=d.suggested_hedge_quantity,
        )
        breach.tick_time.CopyFrom(timestamp(d.tick_time))
        out.delta_breach.CopyFrom(breach)
    else:
        stale = alert_pb2.StaleData(symbol=d.symbol)
        if d.last_update_time is not None:
            stale.last_update_time.CopyFrom(timestamp(d.last_update_time))
        stale.stale_after.CopyFrom(_duration(d.stale_after))
        out.stale_data.CopyFrom(stale)
    return out


def alert_from_proto(message: alert_pb2.Alert, sequence: int) -> Alert:
    """Inverse of ``alert_to_proto`` (the sequence travels in the id).

    Raises:
        ValueError: the message is not a delta-monitor alert.
    """
    which = message.WhichOneof("detail")
    detail: DeltaBreach | StaleData
    if which == "delta_breach":
        d = message.delta_breach
        e = d.exposure
        detail = DeltaBreach(
            metric=Metric(d.metric),
            delta_before=d.delta_before,
            delta_after=d.delta_after,
            band_lower=d.band_lower,
            band_upper=d.band_upper,
            direction=BreachDirection(d.direction),
            underlying_symbol=d.underlying_symbol,
            underlying_price=d.underlying_price,
            implied_volatility=d.implied_volatility,
            exposure=ExposureGreeks(e.delta_shares, e.gamma, e.theta, e.vega, e.vanna, e.charm),
            benchmark_symbol=d.benchmark_symbol,
            benchmark_price=d.benchmark_price,
            beta=d.beta,
            hedge_symbol=d.hedge_symbol,
            suggested_hedge_quantity=d.suggested_hedge_quantity,
            tick_time=_datetime(d.tick_time),
        )
    elif which == "stale_data":
        s = message.stale_data
        detail = StaleData(
            symbol=s.symbol,
            last_update_time=_datetime(s.last_update_time) if s.HasField("last_update_time") else None,
            stale_after=_timedelta(s.stale_after),
        )
    else:
        raise ValueError("alert has no delta-monitor detail")
    return Alert(
        alert_id=message.alert_id,
        user_id=message.user_id,
        account_number=message.account_number,
        watch_id=message.watch_id,
        kind=AlertKind(message.kind),
        severity=Severity(message.severity),
        state=AlertState(message.state),
        title=message.title,
        message=message.message,
        raise_time=_datetime(message.raise_time),
        detail=detail,
        acknowledge_time=_datetime(message.acknowledge_time) if message.HasField("acknowledge_time") else None,
        sequence=sequence,
    )


def encode_alert(alert: Alert) -> bytes:
    """The bus payload of an alert: serialized tastyplat.type.v1.Alert."""
    return alert_to_proto(alert).SerializeToString()


def decode_alert(payload: bytes) -> Alert:
    """Inverse of ``encode_alert``.

    Raises:
        ValueError: the payload is not such an alert.
    """
    message = alert_pb2.Alert()
    try:
        message.ParseFromString(payload)
    except DecodeError as error:
        raise ValueError(f"not an Alert: {error}") from None
    sequence = sequence_of(message.alert_id)
    if sequence is None:
        raise ValueError(f"not a delta-monitor alert id: {message.alert_id[:64]!r}")
    return alert_from_proto(message, sequence)


def heartbeat(now: datetime) -> pb.StreamAlertsResponse:
    """A heartbeat message of the alert stream."""
    return pb.StreamAlertsResponse(heartbeat=stream_pb2.Heartbeat(server_time=timestamp(now)))


def stream_end(message: str) -> pb.StreamAlertsResponse:
    """The last message of a stream the server ends."""
    return pb.StreamAlertsResponse(
        end=stream_pb2.StreamEnd(reason=stream_pb2.STREAM_END_REASON_SERVER_SHUTDOWN, message=message)
    )
