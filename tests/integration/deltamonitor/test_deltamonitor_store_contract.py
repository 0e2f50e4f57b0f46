"""One contract suite for the delta monitor's stores: in memory and on the real PostgreSQL (unique schema per run)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.deltamonitor.domain.errors import WatchLimitExceeded
from services.deltamonitor.domain.model import (
    Alert,
    AlertKind,
    AlertState,
    BreachDirection,
    DeltaBreach,
    ExposureGreeks,
    Metric,
    Severity,
    StaleData,
    StaticBand,
    UnderlyingTarget,
    Watch,
    WatchLive,
    WatchState,
    sequence_of,
)
from services.deltamonitor.ports import ACKNOWLEDGED_TOPIC, RAISED_TOPIC, AlertQuery, WatchCursor

NOW = datetime(2024, 1, 2, 15, 0, tzinfo=UTC)

pytestmark = pytest.mark.integration


def _watch(i: int = 0, user: str = "u1") -> Watch:
    t = NOW + timedelta(seconds=i)
    return Watch(f"w{i}-{user}", user, "5WW1", f"watch {i}", UnderlyingTarget("SPY"), Metric.SHARES, "",
                 StaticBand(-100.0, 300.0), 0.2, timedelta(minutes=1), None, Severity.WARNING, t, t)


def _alert(user: str = "u1", watch_id: str = "w0-u1", when: datetime = NOW, stale: bool = False) -> Alert:
    detail: DeltaBreach | StaleData
    if stale:
        detail = StaleData("SPY", None, timedelta(minutes=2))
    else:
        detail = DeltaBreach(Metric.SHARES, 280.0, 312.5, -100.0, 300.0, BreachDirection.ABOVE_UPPER, "SPY", 476.0, 0.15,
                             ExposureGreeks(312.5, 21.0, -55.0, 800.0, 3.0, -1.5), "", 0.0, 1.0, "SPY", -212.5, when)
    return Alert("", user, "5WW1", watch_id, AlertKind.STALE_DATA if stale else AlertKind.DELTA_BREACH,
                 Severity.WARNING, AlertState.OPEN, "t", "m", when, detail)


async def test_create_watch_is_idempotent_per_request_id(store) -> None:  # type: ignore[no-untyped-def]
    first = await store.create_watch(_watch(0), "req", 10)
    again = await store.create_watch(replace(_watch(1), watch_id="other"), "req", 10)
    assert again.watch_id == first.watch_id
    assert await store.get_watch("u1", first.watch_id) == first


async def test_watch_limit_is_per_user(store) -> None:  # type: ignore[no-untyped-def]
    await store.create_watch(_watch(0), "", 1)
    with pytest.raises(WatchLimitExceeded):
        await store.create_watch(_watch(1), "", 1)
    await store.create_watch(_watch(2, user="u2"), "", 1)


async def test_watches_list_in_creation_order_with_a_cursor(store) -> None:  # type: ignore[no-untyped-def]
    for i in range(3):
        await store.create_watch(_watch(i), "", 10)
    page = await store.list_watches("u1", "", None, 2)
    rest = await store.list_watches("u1", "", WatchCursor(page[-1].create_time, page[-1].watch_id), 2)
    assert [w.watch_id for w in page + rest] == ["w0-u1", "w1-u1", "w2-u1"]
    assert await store.list_watches("u1", "OTHER", None, 10) == []


async def test_update_and_delete_watch(store) -> None:  # type: ignore[no-untyped-def]
    w = await store.create_watch(_watch(0), "", 10)
    changed = replace(w, band=StaticBand(-1.0, 1.0), generation=1)
    assert await store.update_watch(changed)
    assert (await store.get_watch("u1", w.watch_id)).band == StaticBand(-1.0, 1.0)  # type: ignore[union-attr]
    assert not await store.delete_watch("u2", w.watch_id)
    assert await store.delete_watch("u1", w.watch_id)
    assert await store.get_watch("u1", w.watch_id) is None


async def test_alerts_get_ordered_ids_and_outbox_entries_with_the_live_state(store) -> None:  # type: ignore[no-untyped-def]
    await store.create_watch(_watch(0), "", 10)
    live = WatchLive(WatchState.BREACHED, 312.5, -100.0, 300.0, None, NOW, NOW, False)
    stored = await store.record_alerts([_alert(), _alert(stale=True)], {"w0-u1": (0, live)})
    assert [sequence_of(a.alert_id) for a in stored] == [a.sequence for a in stored]
    assert stored[0].sequence < stored[1].sequence and stored[0].alert_id < stored[1].alert_id
    assert await store.get_alert("u1", stored[0].alert_id) == stored[0]
    assert await store.get_alert("u2", stored[0].alert_id) is None
    outbox = await store.pending_outbox(10)
    assert [(e.topic, e.message_id) for e in outbox] == [(RAISED_TOPIC, a.alert_id) for a in stored]
    await store.mark_published([outbox[0].entry_id])
    assert [e.message_id for e in await store.pending_outbox(10)] == [stored[1].alert_id]
    assert (await store.load_live())["w0-u1"] == (0, live)


async def test_a_storm_of_alerts_in_one_write_keeps_its_order_everywhere(store) -> None:  # type: ignore[no-untyped-def]
    # A market gap can raise thousands of alerts on one tick: one write stores them all, ids and outbox in order.
    drafts = [_alert(watch_id=f"w{i}", when=NOW + timedelta(microseconds=i), stale=i % 3 == 0) for i in range(500)]
    stored = await store.record_alerts(drafts, {}, {"traceparent": "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"})
    assert [a.watch_id for a in stored] == [d.watch_id for d in drafts]
    assert [a.sequence for a in stored] == sorted(a.sequence for a in stored) and len({a.sequence for a in stored}) == 500
    assert [await store.get_alert("u1", a.alert_id) for a in (stored[0], stored[250], stored[-1])] == [
        stored[0], stored[250], stored[-1]
    ]
    outbox = await store.pending_outbox(1000)
    assert [e.message_id for e in outbox] == [a.alert_id for a in stored]
    assert all(e.headers == {"traceparent": "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"} for e in outbox)


async def test_acknowledge_once_queues_one_event(store) -> None:  # type: ignore[no-untyped-def]
    (alert,) = await store.record_alerts([_alert()], {})
    await store.mark_published([e.entry_id for e in await store.pending_outbox(10)])
    first = await store.acknowledge("u1", alert.alert_id, NOW + timedelta(minutes=1))
    second = await store.acknowledge("u1", alert.alert_id, NOW + timedelta(minutes=2))
    assert first.state is AlertState.ACKNOWLEDGED and first.acknowledge_time == NOW + timedelta(minutes=1)  # type: ignore[union-attr]
    assert second == first
    assert [(e.topic, e.message_id) for e in await store.pending_outbox(10)] == [(ACKNOWLEDGED_TOPIC, f"{alert.alert_id}.ack")]
    assert await store.acknowledge("u2", alert.alert_id, NOW) is None


async def test_outbox_entries_keep_the_headers_they_were_queued_with(store) -> None:  # type: ignore[no-untyped-def]
    traceparent = {"traceparent": "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01", "tracestate": "k=v"}
    (alert,) = await store.record_alerts([_alert()], {}, traceparent)
    await store.record_alerts([_alert()], {})
    await store.acknowledge("u1", alert.alert_id, NOW, {"traceparent": traceparent["traceparent"]})
    assert [dict(e.headers) for e in await store.pending_outbox(10)] == [
        traceparent, {}, {"traceparent": traceparent["traceparent"]}]


async def test_alerts_after_and_list_filters(store) -> None:  # type: ignore[no-untyped-def]
    stored = await store.record_alerts(
        [_alert(when=NOW + timedelta(minutes=i), user="u1" if i % 2 == 0 else "u2") for i in range(6)], {}
    )
    mine = [a for a in stored if a.user_id == "u1"]
    assert [a.alert_id for a in await store.alerts_after("u1", mine[0].sequence, 10)] == [a.alert_id for a in mine[1:]]
    newest_first = await store.list_alerts("u1", AlertQuery(limit=10))
    assert [a.alert_id for a in newest_first] == [a.alert_id for a in reversed(mine)]
    page = await store.list_alerts("u1", AlertQuery(limit=10, before_sequence=mine[-1].sequence))
    assert [a.alert_id for a in page] == [a.alert_id for a in reversed(mine[:-1])]
    windowed = await store.list_alerts("u1", AlertQuery(limit=10, start_time=NOW + timedelta(minutes=1), end_time=NOW + timedelta(minutes=4)))
    assert [a.raise_time for a in windowed] == [NOW + timedelta(minutes=2)]
    await store.acknowledge("u1", mine[0].alert_id, NOW)
    open_only = await store.list_alerts("u1", AlertQuery(limit=10, state=AlertState.OPEN))
    assert mine[0].alert_id not in {a.alert_id for a in open_only}


async def test_account_snapshots_round_trip(store) -> None:  # type: ignore[no-untyped-def]
    from services.deltamonitor.domain.model import HeldPosition
    from services.deltamonitor.ports import MarketInputs

    positions = [
        HeldPosition("5WW1", "SPY   300118C00480000", "SPY", -3.0, 100.0, True, False, 480.0, NOW, True, ".SPY300118P480"),
        HeldPosition("5WW1", "SPY", "SPY", 250.0, 1.0),
    ]
    inputs = MarketInputs({"SPY": 1.0, "AAPL": 1.2}, {"SPY": 0.013}, 0.045)
    await store.save_account("5WW1", positions, inputs)
    await store.save_account("5WW1", positions, inputs)
    assert await store.load_accounts() == {"5WW1": (positions, inputs)}
