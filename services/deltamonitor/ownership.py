"""Which monitor replica evaluates which accounts: partition leases kept in the store, renewed by a heartbeat.

Theory of operation. Accounts hash to 64 partitions (``domain/partitions.py``). Every replica runs a
``PartitionKeeper``: every third of the lease it heartbeats (one store transaction: mark itself live, renew its
leases, claim free or expired partitions up to its fair share among the live replicas), then

- drops partitions it thought it held but no longer does (taken over after its lease lapsed);
- acquires the ones it just won: loads their watches, live states and positions from the store and evaluates
  them at the last prices seen (``Monitor.acquire``);
- releases partitions beyond its fair share (a replica joined): writes their pending alerts and live states
  while still holding the leases, stops evaluating them, then gives the leases up for the newcomer to claim.

Safety. A replica that cannot renew stops evaluating everything at ``lease x 3/4`` after the start of its last
successful heartbeat (a timer, independent of the stuck call), before the store's lease (which started later)
can expire and be claimed elsewhere. Whatever a paused or cut-off replica still tries to write is fenced: the
store writes alerts and live states only in a transaction that finds the writer's unexpired lease on every
partition involved and holds those lease rows until it commits, so a claim waits for it and the new owner
loads the state it wrote. Hence no alert is raised twice, and an alert whose write was refused is raised by the
new owner from the stored state.

A killed replica's partitions are claimed by the others once its leases expire: within one lease plus one
heartbeat period. A replica that stops gracefully releases its partitions and leaves at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from typing import TYPE_CHECKING

from services.deltamonitor.domain.partitions import PARTITION_COUNT
from services.deltamonitor.ports import LeaseView, PartitionLeases
from services.platform.clock import Clock

if TYPE_CHECKING:
    from services.deltamonitor.app import Monitor

__all__ = ["PartitionKeeper"]

log = logging.getLogger("tastyplat.deltamonitor.ownership")

# Share of the lease after a heartbeat's start during which its leases are trusted locally.
_TRUSTED = 0.75


class PartitionKeeper:
    """Keeps this replica's partition leases and tells the monitor what to evaluate."""

    def __init__(
        self,
        *,
        leases: PartitionLeases,
        monitor: Monitor,
        replica_id: str,
        lease_seconds: float,
        clock: Clock,
        reconcile_seconds: float = 30.0,
        partitions: int = PARTITION_COUNT,
    ) -> None:
        """Configure the keeper (``start`` runs the first heartbeat and the loop).

        Args:
            leases: Where leases live (the store).
            monitor: The ``Monitor`` (``acquire``, ``release``, ``drop``, ``partitions``, ``reconcile``).
            replica_id: This replica's unique id.
            lease_seconds: Lease length; heartbeats every third of it.
            clock: Monotonic time and sleeps.
            reconcile_seconds: How often owned watches are compared with the store.
            partitions: Number of partitions.
        """
        self._leases = leases
        self._monitor = monitor
        self.replica_id = replica_id
        self._lease = lease_seconds
        self.period = lease_seconds / 3
        self._clock = clock
        self._reconcile = reconcile_seconds
        self._partitions = partitions
        self._expiry: asyncio.TimerHandle | None = None
        self._deadline = -math.inf
        self._beating = False
        self._task: asyncio.Task[None] | None = None
        self.last_view: LeaseView | None = None

    async def start(self) -> None:
        """Heartbeat once (a lone replica owns everything when it reports ready), then keep heartbeating."""
        with contextlib.suppress(Exception):
            await self.beat()
        self._task = asyncio.create_task(self._run(), name="deltamonitor-leases")

    async def stop(self) -> None:
        """Stop heartbeating, hand every partition over (flushed) and leave."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self._expiry is not None:
            self._expiry.cancel()
        monitor = self._monitor
        try:
            await monitor.release(monitor.partitions or ())
            await self._leases.leave(self.replica_id)
        except Exception as error:  # noqa: BLE001  # the leases lapse by themselves
            log.warning("cannot release partitions on stop", extra={"error": repr(error)})

    async def beat(self) -> LeaseView:
        """One heartbeat and what follows from it (see the module docstring)."""
        # While a beat runs the expiry timer defers to it: loading a large partition set can outlast the trusted
        # time, and dropping everything then would only start the load again. The heartbeat itself is bounded
        # by its timeout, writes are fenced, and the deadline is checked when the beat ends.
        self._beating = True
        try:
            view = await self._apply(await self._heartbeat())
            if self._clock.monotonic() - (self._deadline - self._lease * _TRUSTED) > self.period:
                view = await self._apply(await self._heartbeat())  # the hand-over took long: renew before trusting
            return view
        finally:
            self._beating = False
            if self._clock.monotonic() >= self._deadline:
                self._expired()

    async def _heartbeat(self) -> LeaseView:
        started = self._clock.monotonic()
        view = await asyncio.wait_for(
            self._leases.heartbeat(self.replica_id, self._lease, self._partitions), timeout=self.period
        )
        self._trust_until(started + self._lease * _TRUSTED)
        self.last_view = view
        return view

    async def _apply(self, view: LeaseView) -> LeaseView:
        monitor = self._monitor
        owned = monitor.partitions or frozenset()
        lost = owned - view.held
        if lost:
            log.warning("partitions taken over by another replica", extra={"partitions": sorted(lost)})
            monitor.drop(lost)
        surplus = sorted(view.held)[view.target :] if len(view.held) > view.target else []
        keep = view.held - set(surplus)
        gained = keep - owned
        if gained:
            await monitor.acquire(gained)
        if surplus:
            await monitor.release(surplus)
            await self._leases.release(self.replica_id, surplus)
        return view

    def _trust_until(self, deadline: float) -> None:
        self._deadline = deadline
        if self._expiry is not None:
            self._expiry.cancel()
        loop = asyncio.get_running_loop()
        self._expiry = loop.call_later(max(0.0, deadline - self._clock.monotonic()), self._expired)

    def _expired(self) -> None:
        if self._beating:
            return
        monitor = self._monitor
        owned = monitor.partitions
        if owned:
            log.warning("partition leases not renewed in time; evaluation stopped", extra={"partitions": len(owned)})
            monitor.drop(owned)

    async def _run(self) -> None:
        last_reconcile = self._clock.monotonic()
        while True:
            started = self._clock.monotonic()
            try:
                await self.beat()
                if started - last_reconcile >= self._reconcile:
                    last_reconcile = started
                    await self._monitor.reconcile()
            except Exception as error:  # noqa: BLE001  # retried next period; the expiry timer guards safety
                log.warning("partition heartbeat failed", extra={"error": repr(error)})
            await self._clock.sleep(max(0.0, self.period - (self._clock.monotonic() - started)))
