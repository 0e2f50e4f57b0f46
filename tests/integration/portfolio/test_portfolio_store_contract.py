"""One contract suite for the portfolio store, run on memory and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.portfolio.domain.risk import Breach, LimitKind, RiskLimits, Severity
from services.portfolio.domain.scenario import Grid
from services.portfolio.ports import RiskAlert, Snapshot

pytestmark = pytest.mark.integration
T0 = datetime(2024, 3, 6, 15, tzinfo=UTC)


def draft(kind: LimitKind = LimitKind.MAX_VEGA, at: datetime = T0) -> RiskAlert:
    return RiskAlert("", "alice", "A1", Severity.CRITICAL, "Vega 900 beyond limit 500", "msg", at, Breach(kind, 500.0, 900.0))


async def test_limits_round_trip_with_money_and_grid(store) -> None:
    limits = RiskLimits(
        max_abs_vega=500.0,
        max_scenario_loss=Decimal("2500.125"),
        scenario=Grid((-0.1, 0.0, 0.1), (0.0,), (0.0, 7.0)),
        max_concentration=0.4,
        benchmark_symbol="QQQ",
        breach_severity=Severity.WARNING,
    )
    await store.put_limits("A1", "alice", limits)
    assert await store.get_limits("A1") == ("alice", limits)
    assert await store.accounts_with_limits() == [("A1", "alice")]
    assert await store.get_limits("nope") is None


async def test_breaches_are_recorded_once_and_alert_ids_increase(store) -> None:
    await store.put_limits("A1", "alice", RiskLimits(max_abs_vega=500.0))
    first = await store.record_breaches("A1", [draft()], {"MAX_VEGA:"}, set())
    assert len(first) == 1 and first[0].alert_id.startswith("risk_")
    # A second valuation that diffed against the old (empty) active set loses the race: nothing stored.
    assert await store.record_breaches("A1", [draft()], {"MAX_VEGA:"}, set()) == []
    assert await store.active_breaches("A1") == {"MAX_VEGA:"}
    second = await store.record_breaches("A1", [draft(LimitKind.MAX_THETA_DECAY)], {"MAX_VEGA:", "MAX_THETA_DECAY:"}, {"MAX_VEGA:"})
    assert second[0].alert_id > first[0].alert_id


async def test_outbox_holds_alerts_until_published(store) -> None:
    await store.put_limits("A1", "alice", RiskLimits(max_abs_vega=500.0))
    [alert] = await store.record_breaches("A1", [draft()], {"MAX_VEGA:"}, set())
    pending = await store.pending_outbox(10)
    assert [a.alert_id for a in pending] == [alert.alert_id]
    assert pending[0].breach == Breach(LimitKind.MAX_VEGA, 500.0, 900.0)
    await store.mark_published([alert.alert_id])
    assert await store.pending_outbox(10) == []


async def test_new_limits_forget_active_breaches(store) -> None:
    await store.put_limits("A1", "alice", RiskLimits(max_abs_vega=500.0))
    await store.record_breaches("A1", [draft()], {"MAX_VEGA:"}, set())
    await store.put_limits("A1", "alice", RiskLimits(max_abs_vega=400.0))
    assert await store.active_breaches("A1") == set()


async def test_alerts_list_newest_first_within_the_range(store) -> None:
    await store.put_limits("A1", "alice", RiskLimits(max_abs_vega=500.0))
    stored = []
    active: set[str] = set()
    for i, kind in enumerate((LimitKind.MAX_VEGA, LimitKind.MAX_THETA_DECAY, LimitKind.MAX_DELTA_DOLLARS)):
        new_active = active | {f"{kind.name}:"}
        stored += await store.record_breaches("A1", [draft(kind, T0 + timedelta(hours=i))], new_active, active)
        active = new_active
    listed = await store.list_alerts("A1", None, None, None, 10)
    assert [a.alert_id for a in listed] == [a.alert_id for a in reversed(stored)]
    ranged = await store.list_alerts("A1", T0 + timedelta(minutes=30), T0 + timedelta(hours=2), None, 10)
    assert [a.breach.kind for a in ranged] == [LimitKind.MAX_THETA_DECAY]
    before = await store.list_alerts("A1", None, None, stored[1].alert_id, 10)
    assert [a.alert_id for a in before] == [stored[0].alert_id]


async def test_snapshots_keep_decimal_money_in_time_order(store) -> None:
    for i in (2, 0, 1):
        await store.add_snapshot(
            "A1", Snapshot(T0 + timedelta(days=i), Decimal("100000.12"), Decimal("-12.5"), 1.5 * i, 2.0, -3.0, 4.0, "SPY")
        )
    snapshots = await store.list_snapshots("A1", T0, T0 + timedelta(days=2))
    assert [s.record_time for s in snapshots] == [T0, T0 + timedelta(days=1)]
    assert snapshots[0].net_liquidating_value == Decimal("100000.12")
    assert snapshots[1].delta_dollars == 1.5
