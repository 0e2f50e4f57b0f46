"""DeltaMonitorService through the generated stubs on a real server: CRUD, errors, alerts, streams."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import grpc
import prometheus_client
import pytest
from google.protobuf import field_mask_pb2
from tastyplat.deltamonitor.v1 import deltamonitor_service_pb2 as pb
from tastyplat.type.v1 import alert_pb2

from services.deltamonitor.domain.model import HeldPosition
from services.platform.error_mapping import decode_error
from tests.service.deltamonitor.conftest import DeltaMonitorRig

USER = "2a4a0c0e-0000-4000-8000-000000000001"
OTHER = "2a4a0c0e-0000-4000-8000-000000000002"
ACCOUNT = "5WW00001"
EXPIRY = datetime(2030, 1, 18, 21, 0, tzinfo=UTC)


def _positions() -> list[HeldPosition]:
    return [
        HeldPosition(ACCOUNT, "SPY   300118C00480000", "SPY", 10.0, 100.0, True, True, 480.0, EXPIRY, True, ".SPY300118C480"),
        HeldPosition(ACCOUNT, "SPY", "SPY", -400.0, 1.0),
    ]


def _watch(lower: float = -100.0, upper: float = 300.0) -> pb.Watch:
    w = pb.Watch(account_number=ACCOUNT, metric=1, hysteresis_ratio=0.2, display_name="SPY hedge")
    w.underlying.underlying_symbol = "SPY"
    w.static_band.lower = lower
    w.static_band.upper = upper
    return w


async def _tick(dm: DeltaMonitorRig, symbol: str, price: float) -> None:
    # The market data service's message: a batch of the underlying's latest quotes.
    item = {"symbol": symbol, "bid_price": price - 0.01, "ask_price": price + 0.01, "mark_price": price,
            "last_price": None, "time_unix_nanos": int(datetime.now(UTC).timestamp() * 1e9)}
    payload = {"source": "simulator", "quotes": [item]}
    await dm.bus.publish(f"marketdata.quotes.{symbol}", json.dumps(payload).encode(), f"q-{symbol}-{price}-{datetime.now().timestamp()}")


async def _greeks(dm: DeltaMonitorRig, symbol: str, vol: float) -> None:
    item = {"symbol": symbol, "broker_volatility": vol, "model_volatility": None,
            "time_unix_nanos": int(datetime.now(UTC).timestamp() * 1e9)}
    await dm.bus.publish("marketdata.greeks.SPY", json.dumps({"source": "simulator", "greeks": [item]}).encode(), f"g-{symbol}-{vol}")


async def _create(dm: DeltaMonitorRig, **kwargs) -> pb.Watch:  # type: ignore[no-untyped-def]
    dm.broker.set_account(ACCOUNT, USER, _positions())
    response = await dm.stub.CreateWatch(pb.CreateWatchRequest(watch=_watch(**kwargs)), metadata=dm.auth(USER))
    return response.watch


async def _wait_for(predicate, timeout: float = 3.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def test_calls_without_a_token_are_unauthenticated(dm: DeltaMonitorRig) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await dm.stub.ListWatches(pb.ListWatchesRequest())
    error = decode_error(raised.value)
    assert error.code is grpc.StatusCode.UNAUTHENTICATED and error.reason == "AUTHENTICATION_REQUIRED"
    assert error.domain == "deltamonitor.tastyplat"


async def test_create_get_list_update_delete(dm: DeltaMonitorRig) -> None:
    created = await _create(dm)
    assert created.watch_id and created.user_id == USER and created.state == pb.WATCH_STATE_UNSPECIFIED
    got = (await dm.stub.GetWatch(pb.GetWatchRequest(watch_id=created.watch_id), metadata=dm.auth(USER))).watch
    assert got.static_band.upper == 300.0
    listed = await dm.stub.ListWatches(pb.ListWatchesRequest(), metadata=dm.auth(USER))
    assert [w.watch_id for w in listed.watches] == [created.watch_id]
    changed = (await dm.stub.UpdateWatch(
        pb.UpdateWatchRequest(watch_id=created.watch_id, watch=_watch(upper=500.0),
                              update_mask=field_mask_pb2.FieldMask(paths=["static_band"])),
        metadata=dm.auth(USER),
    )).watch
    assert changed.static_band.upper == 500.0
    await dm.stub.DeleteWatch(pb.DeleteWatchRequest(watch_id=created.watch_id), metadata=dm.auth(USER))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await dm.stub.GetWatch(pb.GetWatchRequest(watch_id=created.watch_id), metadata=dm.auth(USER))
    assert decode_error(raised.value).reason == "WATCH_NOT_FOUND"


async def test_create_is_idempotent_by_request_id(dm: DeltaMonitorRig) -> None:
    dm.broker.set_account(ACCOUNT, USER, _positions())
    request = pb.CreateWatchRequest(request_id="req-1", watch=_watch())
    first = await dm.stub.CreateWatch(request, metadata=dm.auth(USER))
    second = await dm.stub.CreateWatch(request, metadata=dm.auth(USER))
    assert first.watch.watch_id == second.watch.watch_id


async def test_another_users_watch_is_not_found(dm: DeltaMonitorRig) -> None:
    created = await _create(dm)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await dm.stub.GetWatch(pb.GetWatchRequest(watch_id=created.watch_id), metadata=dm.auth(OTHER))
    assert decode_error(raised.value).reason == "WATCH_NOT_FOUND"


@pytest.mark.parametrize(
    ("mutate", "code", "reason", "field"),
    [
        (lambda w: w.ClearField("metric"), grpc.StatusCode.INVALID_ARGUMENT, "FIELD_REQUIRED", "watch.metric"),
        (lambda w: setattr(w.static_band, "lower", 400.0), grpc.StatusCode.INVALID_ARGUMENT, "BAND_INVALID", "watch.static_band"),
        (lambda w: setattr(w, "hysteresis_ratio", 1.5), grpc.StatusCode.INVALID_ARGUMENT, "FIELD_INVALID", "watch.hysteresis_ratio"),
    ],
)
async def test_bad_watches_are_rejected_with_field_violations(dm, mutate, code, reason, field) -> None:  # type: ignore[no-untyped-def]
    dm.broker.set_account(ACCOUNT, USER, _positions())
    w = _watch()
    mutate(w)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await dm.stub.CreateWatch(pb.CreateWatchRequest(watch=w), metadata=dm.auth(USER))
    error = decode_error(raised.value)
    assert (error.code, error.reason) == (code, reason)
    assert error.field_violations[0][0] == field


async def test_account_of_someone_else_and_target_not_held(dm: DeltaMonitorRig) -> None:
    dm.broker.set_account(ACCOUNT, OTHER, _positions())
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await dm.stub.CreateWatch(pb.CreateWatchRequest(watch=_watch()), metadata=dm.auth(USER))
    assert decode_error(raised.value).reason == "ACCOUNT_NOT_FOUND"
    dm.broker.set_account(ACCOUNT, USER, _positions())
    w = _watch()
    w.underlying.underlying_symbol = "QQQ"
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await dm.stub.CreateWatch(pb.CreateWatchRequest(watch=w), metadata=dm.auth(USER))
    error = decode_error(raised.value)
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "TARGET_NOT_HELD")


async def test_watch_limit(dm: DeltaMonitorRig) -> None:
    for _ in range(3):
        await _create(dm)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _create(dm)
    assert decode_error(raised.value).reason == "WATCH_LIMIT_EXCEEDED"


async def test_tick_crossing_the_band_raises_one_listed_streamed_alert(dm: DeltaMonitorRig) -> None:
    created = await _create(dm)
    stream = dm.stub.StreamAlerts(pb.StreamAlertsRequest(), metadata=dm.auth(USER))
    first = await stream.read()
    assert first.WhichOneof("event") == "heartbeat"
    lag_count = prometheus_client.REGISTRY.get_sample_value("tastyplat_deltamonitor_tick_lag_seconds_count") or 0.0
    await _greeks(dm, ".SPY300118C480", 0.15)
    await _tick(dm, "SPY", 430.0)
    for price in (520.0, 519.5, 520.5, 519.8, 521.0):
        await _tick(dm, "SPY", price)
    alert = None
    while alert is None:
        message = await asyncio.wait_for(stream.read(), 3)
        if message.WhichOneof("event") == "alert":
            alert = message.alert
    assert alert.watch_id == created.watch_id
    assert alert.kind == alert_pb2.ALERT_KIND_DELTA_BREACH
    assert alert.delta_breach.direction == alert_pb2.BREACH_DIRECTION_ABOVE_UPPER
    assert alert.delta_breach.underlying_price == 520.0
    assert alert.delta_breach.hedge_symbol == "SPY" and alert.delta_breach.suggested_hedge_quantity < 0
    stream.cancel()
    # Every quote message applied was timed from its source time (the Greeks message has no quote).
    assert prometheus_client.REGISTRY.get_sample_value("tastyplat_deltamonitor_tick_lag_seconds_count") >= lag_count + 6

    async def listed() -> bool:
        page = await dm.stub.ListAlerts(pb.ListAlertsRequest(), metadata=dm.auth(USER))
        return len(page.alerts) >= 1

    await _wait_for(listed)
    await asyncio.sleep(0.2)
    page = await dm.stub.ListAlerts(pb.ListAlertsRequest(), metadata=dm.auth(USER))
    assert [a.alert_id for a in page.alerts] == [alert.alert_id]
    watch = (await dm.stub.GetWatch(pb.GetWatchRequest(watch_id=created.watch_id), metadata=dm.auth(USER))).watch
    assert watch.state == pb.WATCH_STATE_BREACHED and watch.last_alert_time.seconds > 0


async def test_reconnecting_subscriber_gets_what_it_missed_in_order(dm: DeltaMonitorRig) -> None:
    await _create(dm)
    await _greeks(dm, ".SPY300118C480", 0.15)
    for price in (430.0, 520.0, 430.0, 520.0, 430.0, 520.0):
        await _tick(dm, "SPY", price)

    async def three() -> bool:
        page = await dm.stub.ListAlerts(pb.ListAlertsRequest(), metadata=dm.auth(USER))
        return len(page.alerts) == 3

    await _wait_for(three)
    ids = [a.alert_id for a in reversed((await dm.stub.ListAlerts(pb.ListAlertsRequest(), metadata=dm.auth(USER))).alerts)]
    stream = dm.stub.StreamAlerts(pb.StreamAlertsRequest(after_alert_id=ids[0]), metadata=dm.auth(USER))
    received = []
    while len(received) < 2:
        message = await asyncio.wait_for(stream.read(), 3)
        if message.WhichOneof("event") == "alert":
            received.append(message.alert.alert_id)
    assert received == ids[1:]
    await _tick(dm, "SPY", 430.0)
    await _tick(dm, "SPY", 520.0)
    while True:
        message = await asyncio.wait_for(stream.read(), 3)
        if message.WhichOneof("event") == "alert":
            assert message.alert.alert_id not in ids
            break
    stream.cancel()


async def test_resume_from_an_unknown_alert_is_not_found(dm: DeltaMonitorRig) -> None:
    stream = dm.stub.StreamAlerts(pb.StreamAlertsRequest(after_alert_id="alrt_000000000000999"), metadata=dm.auth(USER))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stream.read()
    assert decode_error(raised.value).reason == "ALERT_NOT_FOUND"


async def test_acknowledge_is_idempotent_and_announced_on_the_bus(dm: DeltaMonitorRig) -> None:
    subscription = await dm.bus.subscribe("deltamonitor.alert.acknowledged")
    await _create(dm)
    await _greeks(dm, ".SPY300118C480", 0.15)
    await _tick(dm, "SPY", 430.0)
    await _tick(dm, "SPY", 520.0)

    async def one() -> bool:
        return len((await dm.stub.ListAlerts(pb.ListAlertsRequest(), metadata=dm.auth(USER))).alerts) == 1

    await _wait_for(one)
    alert_id = (await dm.stub.ListAlerts(pb.ListAlertsRequest(), metadata=dm.auth(USER))).alerts[0].alert_id
    first = await dm.stub.AcknowledgeAlert(pb.AcknowledgeAlertRequest(alert_id=alert_id), metadata=dm.auth(USER))
    second = await dm.stub.AcknowledgeAlert(pb.AcknowledgeAlertRequest(alert_id=alert_id), metadata=dm.auth(USER))
    assert first.alert.state == second.alert.state == alert_pb2.ALERT_STATE_ACKNOWLEDGED
    assert first.alert.acknowledge_time == second.alert.acknowledge_time
    event = await asyncio.wait_for(subscription.__anext__(), 3)
    assert event.message_id == f"{alert_id}.ack"
    await subscription.close()
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await dm.stub.AcknowledgeAlert(pb.AcknowledgeAlertRequest(alert_id=alert_id), metadata=dm.auth(OTHER))
    assert decode_error(raised.value).reason == "ALERT_NOT_FOUND"


async def test_list_alerts_rejects_inverted_time_range(dm: DeltaMonitorRig) -> None:
    request = pb.ListAlertsRequest()
    request.start_time.FromDatetime(datetime(2024, 2, 1))
    request.end_time.FromDatetime(datetime(2024, 1, 1))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await dm.stub.ListAlerts(request, metadata=dm.auth(USER))
    assert decode_error(raised.value).reason == "TIME_RANGE_INVALID"


async def test_interest_leases_are_published_for_the_watched_symbols(dm: DeltaMonitorRig) -> None:
    interest = await dm.bus.subscribe("marketdata.interest")
    await _create(dm)
    message = await asyncio.wait_for(interest.__anext__(), 3)
    body = json.loads(message.payload)
    assert set(body["symbols"]) == {"SPY", ".SPY300118C480"} and body["greeks"] is True and body["lease_seconds"] > 0
    await interest.close()


async def test_list_watches_pages(dm: DeltaMonitorRig) -> None:
    for _ in range(3):
        await _create(dm)
    first = await dm.stub.ListWatches(pb.ListWatchesRequest(page_size=2), metadata=dm.auth(USER))
    assert len(first.watches) == 2 and first.next_page_token
    second = await dm.stub.ListWatches(pb.ListWatchesRequest(page_size=2, page_token=first.next_page_token), metadata=dm.auth(USER))
    assert len(second.watches) == 1 and not second.next_page_token
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await dm.stub.ListWatches(pb.ListWatchesRequest(page_token=first.next_page_token, account_number="X"), metadata=dm.auth(USER))
    assert decode_error(raised.value).reason == "PAGE_TOKEN_INVALID"


async def test_a_restarted_monitor_watches_the_kept_positions(dm: DeltaMonitorRig) -> None:
    from services.deltamonitor.app import Monitor

    await _create(dm)
    app = dm.assembly.app
    restarted = Monitor(store=app.store, pricer=app.monitor._pricer, calendar=app.monitor._calendar, clock=app._clock,
                        settings=app.settings, on_alerts=lambda alerts: None)
    await restarted.load()
    restarted.on_greeks(".SPY300118C480", 0.15, datetime.now(UTC))
    await restarted.on_quote("SPY", 430.0, datetime.now(UTC))
    alerts = await restarted.on_quote("SPY", 520.0, datetime.now(UTC))
    assert len(alerts) == 1 and alerts[0].user_id == USER
