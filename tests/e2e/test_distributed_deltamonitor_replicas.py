"""Two delta monitor processes share the watched accounts by partition leases; one is SIGKILLed and every watch
still alerts exactly once.

Distributed mode with the user and broker services (paper accounts: each user gets one, holding 100 SPY shares),
two delta monitor replicas behind Envoy, PostgreSQL and RabbitMQ. The test creates one watch per account through
the gateway (so watches land on either replica, owner or not), moves SPY with ticks published on the run's
RabbitMQ vhost in market data's wire format, SIGKILLs the replica that owns the most accounts, publishes one
crossing tick right away (before its leases lapse), and checks through ListAlerts and PostgreSQL that each watch
has exactly one breach alert and that the survivor holds every partition.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator

import asyncpg
import httpx
import pytest
from distributed_proc import POSTGRES_DSN, DistributedPlatform, cleanup, start_distributed
from embedded_proc import sign_up

from services.deltamonitor.domain.partitions import PARTITION_COUNT, partition_of
from services.platform.bus import RabbitMqBus

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(300)]

LEASE_SECONDS = 2.0
INSIDE, OUTSIDE = 500.0, 1000.0  # 100 shares: $50,000 and $100,000 against a band of [0, 75,000]
MIN_USERS, MAX_USERS = 6, 20


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DistributedPlatform]:
    running = start_distributed(
        tmp_path_factory.mktemp("dm-replicas"),
        services=("user", "broker", "deltamonitor"),
        replicas={"deltamonitor": 2},
        extra_env={
            "DELTAMONITOR_LEASE_SECONDS": str(LEASE_SECONDS),
            "DELTAMONITOR_DEFAULT_STALE_AFTER_SECONDS": "0",  # only breaches in this test
        },
    )
    try:
        yield running
    finally:
        if running.process.poll() is None:
            running.stop()
        cleanup(running.run_id, running.vhost)


def _schema(platform: DistributedPlatform) -> str:
    return f"e2e_{platform.run_id}_deltamonitor"


async def _query(platform: DistributedPlatform, sql: str, *args: object) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(POSTGRES_DSN, server_settings={"search_path": _schema(platform)})
    try:
        return list(await connection.fetch(sql, *args))
    finally:
        await connection.close()


async def _owners(platform: DistributedPlatform) -> dict[int, str]:
    """Partition -> pid (as text) of the replica holding an unexpired lease on it."""
    rows = await _query(
        platform, "SELECT partition, owner FROM partition_leases WHERE owner IS NOT NULL AND expires_at > clock_timestamp()"
    )
    return {r["partition"]: r["owner"].split(":")[1] for r in rows}


async def _publish_spy(platform: DistributedPlatform, price: float) -> None:
    bus = await RabbitMqBus.connect(f"amqp://guest:guest@127.0.0.1:5672/{platform.vhost}")
    try:
        item = {"symbol": "SPY", "bid_price": price - 0.01, "ask_price": price + 0.01, "mark_price": price,
                "last_price": None, "time_unix_nanos": time.time_ns()}
        payload = json.dumps({"source": "test", "quotes": [item]}).encode()
        await bus.publish("marketdata.quotes.SPY", payload, f"e2e-spy-{price}-{uuid.uuid4().hex[:8]}")
    finally:
        await bus.close()


async def _wait(what: str, check, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.25)


async def test_killing_a_replica_loses_and_duplicates_no_alert(platform: DistributedPlatform) -> None:
    replicas = {str(platform.instance(name)["pid"]): name for name in ("deltamonitor", "deltamonitor-1")}
    await _wait("the replicas to split the partitions", lambda: _split(platform, replicas), 30)

    # Users (one paper account each) until both replicas own at least two of the accounts.
    users: list[dict] = []
    with httpx.Client(base_url=platform.rest_base, timeout=30) as client:
        while len(users) < MAX_USERS:
            users.append(sign_up(platform.rest_base, with_account=True))
            owners = await _owners(platform)
            per_replica = [sum(owners.get(partition_of(u["account"])) == pid for u in users) for pid in replicas]
            if len(users) >= MIN_USERS and min(per_replica) >= 2:
                break
        assert min(per_replica) >= 2, f"accounts did not spread over both replicas: {per_replica}"

        watch_ids = []
        for user in users:
            watch = {"account_number": user["account"], "display_name": "SPY shares", "position": {"symbol": "SPY"},
                     "metric": "DELTA_METRIC_DOLLARS", "hysteresis_ratio": 0.2,
                     "static_band": {"lower": 0, "upper": 75_000}}
            created = client.post("/v1/watches", json={"watch": watch}, headers=user["headers"])
            assert created.status_code == 200, created.text
            user["watch_id"] = created.json()["watch"]["watch_id"]
            watch_ids.append(user["watch_id"])

        # Every watch evaluated inside its band by its owner (the live state reaches PostgreSQL within a flush).
        async def all_evaluated() -> bool:
            await _publish_spy(platform, INSIDE)
            rows = await _query(platform, "SELECT watch_id FROM watches WHERE live IS NOT NULL AND (live->>'state')::int > 0")
            return {r["watch_id"] for r in rows} >= set(watch_ids)

        await _wait("every watch to be evaluated", all_evaluated, 40)
        assert await _query(platform, "SELECT alert_id FROM alerts") == []

        owners = await _owners(platform)
        by_replica = {pid: sum(owners.get(partition_of(u["account"])) == pid for u in users) for pid in replicas}
        victim = max(by_replica, key=lambda pid: by_replica[pid])
        survivor = next(pid for pid in replicas if pid != victim)
        platform.kill(replicas[victim])
        await _publish_spy(platform, OUTSIDE)  # once, while the victim's leases are still live
        killed_at = time.monotonic()

        async def every_watch_alerted() -> bool:
            rows = await _query(platform, "SELECT DISTINCT watch_id FROM alerts WHERE kind = 1")
            return {r["watch_id"] for r in rows} >= set(watch_ids)

        await _wait("an alert of every watch", every_watch_alerted, 10 * LEASE_SECONDS)
        takeover = time.monotonic() - killed_at
        await asyncio.sleep(2 * LEASE_SECONDS)  # time for a duplicate to show up, if one were coming

        rows = await _query(platform, "SELECT watch_id, count(*) AS n FROM alerts GROUP BY watch_id")
        assert {r["watch_id"]: r["n"] for r in rows} == {w: 1 for w in watch_ids}
        for user in users:
            listed = client.get("/v1/alerts", headers=user["headers"])
            assert listed.status_code == 200, listed.text
            alerts = listed.json().get("alerts", [])
            assert [a["watch_id"] for a in alerts] == [user["watch_id"]]
            assert alerts[0]["kind"] == "ALERT_KIND_DELTA_BREACH"
        owners = await _owners(platform)
        assert owners == {p: survivor for p in range(PARTITION_COUNT)}
        print(f"\nwatches={len(watch_ids)} victim owned {by_replica[victim]}; all alerted {takeover:.1f} s after the kill")


async def _split(platform: DistributedPlatform, replicas: dict[str, str]) -> bool:
    owners = await _owners(platform)
    counts = [list(owners.values()).count(pid) for pid in replicas]
    return len(owners) == PARTITION_COUNT and counts == [32, 32]
