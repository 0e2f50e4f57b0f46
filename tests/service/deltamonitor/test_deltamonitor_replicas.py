"""Two delta monitor servers sharing one store and bus by partition leases: each watch evaluated by exactly one,
changes reach the owner, a silent replica's accounts are taken over, a paused owner's alerts are fenced off."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc.aio
import pytest
from tastyplat.deltamonitor.v1 import deltamonitor_service_pb2 as pb
from tastyplat.deltamonitor.v1 import deltamonitor_service_pb2_grpc as pb_grpc
from tastyplat.type.v1 import alert_pb2

from services.deltamonitor.adapters.calendar import ExchangeCalendar
from services.deltamonitor.adapters.memory_store import InMemoryStore
from services.deltamonitor.adapters.peers import InMemoryBroker
from services.deltamonitor.adapters.pricing import NumpyBlackScholesPricer
from services.deltamonitor.app import AppSettings
from services.deltamonitor.domain.model import AlertKind, HeldPosition, WatchState
from services.deltamonitor.domain.partitions import PARTITION_COUNT, partition_of
from services.deltamonitor.ports import AlertQuery
from services.deltamonitor.wiring import Assembly, assemble
from services.platform.bus import InProcessBus
from services.platform.clock import SystemClock
from services.platform.identity import JwtAuthenticator, StaticKeySource
from services.platform.testing import client_channel, running_server
from tests.fakes.access_tokens import TokenIssuer

LEASE = 0.6
# The first replica claims every partition, the second joins and gets the upper half: accounts on both sides.
ACCOUNTS = [a for a in (f"ACC{i:04d}" for i in range(400)) if partition_of(a) < 32][:6] + [
    a for a in (f"ACC{i:04d}" for i in range(400)) if partition_of(a) >= 32
][:6]


def _user(account: str) -> str:
    return f"00000000-0000-4000-8000-00000000{account[3:]}"


@dataclass
class Replica:
    assembly: Assembly
    stub: pb_grpc.DeltaMonitorServiceStub

    @property
    def partitions(self) -> frozenset[int]:
        return self.assembly.app.monitor.partitions or frozenset()

    def evaluates(self, watch_id: str) -> bool:
        return self.assembly.app.monitor.live_state(watch_id) is not None

    async def freeze(self, *, keep_ticks: bool) -> None:
        """Stop renewing leases without giving them up (a killed or paused process); optionally go on applying
        ticks, as a paused process that wakes up would."""
        keeper = self.assembly.app.keeper
        assert keeper is not None and keeper._task is not None and keeper._expiry is not None
        keeper._task.cancel()
        keeper._expiry.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper._task
        keeper._task = None
        if not keep_ticks:
            await self.assembly.ticks.stop()


@dataclass
class Rig:
    replicas: list[Replica]
    store: InMemoryStore
    bus: InProcessBus
    tokens: TokenIssuer

    async def tick(self, price: float) -> None:
        item = {"symbol": "SPY", "mark_price": price, "time_unix_nanos": int(datetime.now(UTC).timestamp() * 1e9)}
        await self.bus.publish("marketdata.quotes.SPY", json.dumps({"source": "test", "quotes": [item]}).encode(),
                               f"q-{price}-{datetime.now().timestamp()}")

    async def create_watches(self, via: Replica) -> list[str]:
        ids = []
        for account in ACCOUNTS:
            watch = pb.Watch(account_number=account, metric=alert_pb2.DELTA_METRIC_DOLLARS, hysteresis_ratio=0.2)
            watch.position.symbol = "SPY"
            watch.static_band.lower, watch.static_band.upper = 0.0, 75_000.0  # 100 shares: inside at 500, out at 1000
            reply = await via.stub.CreateWatch(pb.CreateWatchRequest(watch=watch), metadata=self.tokens.metadata(_user(account)))
            ids.append(reply.watch.watch_id)
        return ids

    async def breaches(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for account in ACCOUNTS:
            for alert in await self.store.list_alerts(_user(account), AlertQuery(limit=100)):
                if alert.kind is AlertKind.DELTA_BREACH:
                    counts[alert.watch_id] = counts.get(alert.watch_id, 0) + 1
        return counts


async def _until(predicate: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    tokens, clock, bus, store, broker = TokenIssuer(), SystemClock(), InProcessBus(), InMemoryStore(), InMemoryBroker()
    for account in ACCOUNTS:
        broker.set_account(account, _user(account), [HeldPosition(account, "SPY", "SPY", 100.0, 1.0)])
    async with contextlib.AsyncExitStack() as stack:
        replicas = []
        for _ in range(2):
            assembly = assemble(
                settings=AppSettings(heartbeat_seconds=0.2, stale_check_seconds=3600, live_flush_seconds=0.2,
                                     lease_seconds=LEASE, reconcile_seconds=3600),
                store=store, bus=bus, clock=clock, positions=broker, inputs=broker,
                authenticator=JwtAuthenticator(StaticKeySource(tokens.jwks), issuer=tokens.issuer,
                                               audience=tokens.audience, clock=clock),
                pricer=NumpyBlackScholesPricer(), calendar=ExchangeCalendar(around=datetime.now(UTC)),
                tick_patterns=("marketdata.quotes.*", "marketdata.greeks.*"),
            )
            server = await stack.enter_async_context(running_server([assembly.registration]))
            channel: grpc.aio.Channel = client_channel(server)
            stack.push_async_callback(channel.close)
            replicas.append(Replica(assembly, pb_grpc.DeltaMonitorServiceStub(channel)))
        rig = Rig(replicas, store, bus, tokens)
        await _until(lambda: _async(all(len(r.partitions) == 32 for r in replicas)))
        yield rig
    await bus.close()


async def _async(value: bool) -> bool:
    return value


async def test_the_replicas_split_the_partitions_and_each_watch_has_exactly_one_evaluator(rig: Rig) -> None:
    first, second = rig.replicas
    assert not first.partitions & second.partitions
    assert first.partitions | second.partitions == frozenset(range(PARTITION_COUNT))
    ids = await rig.create_watches(via=first)
    # Watches of the second replica's accounts were created on the first: the change message brought them over.
    await _until(lambda: _async(all(first.evaluates(w) != second.evaluates(w) for w in ids)))
    assert sum(second.evaluates(w) for w in ids) == 6



async def test_any_replica_shows_the_live_state_the_owner_persisted(rig: Rig) -> None:
    first, second = rig.replicas
    ids = await rig.create_watches(via=first)
    await _until(lambda: _async(all(first.evaluates(w) or second.evaluates(w) for w in ids)))
    elsewhere = next(w for w in ids if second.evaluates(w))
    account = ACCOUNTS[ids.index(elsewhere)]
    await rig.tick(500.0)

    async def armed() -> bool:
        reply = await first.stub.GetWatch(pb.GetWatchRequest(watch_id=elsewhere), metadata=rig.tokens.metadata(_user(account)))
        return reply.watch.state == pb.WATCH_STATE_ARMED and reply.watch.current_delta == pytest.approx(50_000.0)

    await _until(armed)


async def test_a_deleted_watch_leaves_its_owners_book(rig: Rig) -> None:
    first, second = rig.replicas
    ids = await rig.create_watches(via=first)
    owned_by_second = [w for w, a in zip(ids, ACCOUNTS) if partition_of(a) in second.partitions]
    await _until(lambda: _async(all(second.evaluates(w) for w in owned_by_second)))
    account = ACCOUNTS[ids.index(owned_by_second[0])]
    await first.stub.DeleteWatch(pb.DeleteWatchRequest(watch_id=owned_by_second[0]), metadata=rig.tokens.metadata(_user(account)))
    await _until(lambda: _async(not second.evaluates(owned_by_second[0])))


async def test_a_silent_replicas_watches_are_taken_over_and_alert_exactly_once(rig: Rig) -> None:
    first, second = rig.replicas
    ids = await rig.create_watches(via=first)
    await _until(lambda: _async(all(first.evaluates(w) or second.evaluates(w) for w in ids)))
    await rig.tick(500.0)
    await asyncio.sleep(0.3)
    await second.freeze(keep_ticks=False)
    await rig.tick(1000.0)  # published once, while the second replica's leases are still live
    await _until(lambda: _async(len(first.partitions) == PARTITION_COUNT))
    await _until(lambda: _has_all(rig, ids))
    await asyncio.sleep(0.5)
    assert await rig.breaches() == {w: 1 for w in ids}


async def _has_all(rig: Rig, ids: list[str]) -> bool:
    return set(await rig.breaches()) == set(ids)


async def test_a_paused_owner_that_wakes_up_cannot_raise_an_alert_twice(rig: Rig) -> None:
    first, second = rig.replicas
    ids = await rig.create_watches(via=first)
    await _until(lambda: _async(all(first.evaluates(w) or second.evaluates(w) for w in ids)))
    await rig.tick(500.0)
    await asyncio.sleep(0.3)
    # Paused: no renewals and no expiry timer, but it still applies ticks as if nothing happened.
    await second.freeze(keep_ticks=True)
    await _until(lambda: _async(len(first.partitions) == PARTITION_COUNT))
    await rig.tick(1000.0)
    await _until(lambda: _has_all(rig, ids))
    await asyncio.sleep(0.5)
    assert await rig.breaches() == {w: 1 for w in ids}
    # Its refused writes made it drop the partitions it wrote for.
    assert not {partition_of(a) for a in ACCOUNTS} & second.partitions


async def test_a_rearmed_watch_is_persisted_before_the_next_tick_so_a_takeover_alerts_on_the_next_crossing(
    rig: Rig,
) -> None:
    first, second = rig.replicas
    ids = await rig.create_watches(via=first)
    await _until(lambda: _async(all(first.evaluates(w) or second.evaluates(w) for w in ids)))
    await rig.tick(500.0)
    await rig.tick(1000.0)
    await _until(lambda: _has_all(rig, ids))
    # No periodic flush from here on: only the re-arm write itself can save the ARMED state.
    for replica in rig.replicas:
        for task in replica.assembly.app._tasks:
            if task.get_name() == "deltamonitor-flush":
                task.cancel()
    await rig.tick(500.0)  # deep inside again: every watch re-arms

    async def persisted_armed() -> bool:
        live = await rig.store.load_live()
        return all(live[w][1].state == WatchState.ARMED for w in ids)

    await _until(persisted_armed, timeout=1.0)
    await second.freeze(keep_ticks=False)
    await _until(lambda: _async(len(first.partitions) == PARTITION_COUNT))
    await rig.tick(1000.0)  # the second crossing, now evaluated by the survivor for the taken-over watches
    await _until(lambda: _async_counts(rig, ids, 2))
    await asyncio.sleep(0.3)
    assert await rig.breaches() == {w: 2 for w in ids}


async def _async_counts(rig: Rig, ids: list[str], count: int) -> bool:
    return await rig.breaches() == {w: count for w in ids}
