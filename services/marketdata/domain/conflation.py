"""A subscriber's pending updates: every update while it keeps up, the latest per symbol once it falls behind.

Theory of operation. The feed offers updates to each subscriber's buffer and never waits for it. While the
buffer holds fewer than `capacity` updates it keeps them all, in order (a fast subscriber sees every tick).
An offer that would exceed the capacity switches the buffer to conflation: from then until the next drain it
keeps one update per symbol, the newest, and counts every update it overwrote. Memory is therefore bounded
by `capacity` plus the number of symbols the subscriber follows, however slow it is.

    state       offer, room left      offer, full            drain
    LOSSLESS    append                -> CONFLATING (fold)   -> LOSSLESS
    CONFLATING  fold (overwrite)      fold (overwrite)       -> LOSSLESS
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["ConflatingBuffer"]

T = TypeVar("T")


class ConflatingBuffer(Generic[T]):
    """Bounded pending updates of one subscriber (see the module docstring)."""

    __slots__ = ("_capacity", "_conflated", "_latest", "_pending", "offered")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._pending: list[tuple[str, T]] = []
        self._latest: dict[str, T] | None = None
        self._conflated = 0
        self.offered = 0

    @property
    def conflating(self) -> bool:
        """True while the subscriber is behind and gets the latest value per symbol."""
        return self._latest is not None

    def __len__(self) -> int:
        return len(self._latest) if self._latest is not None else len(self._pending)

    def offer(self, symbol: str, update: T) -> None:
        """Add an update; never blocks, never grows past the bound."""
        self.offered += 1
        latest = self._latest
        if latest is None:
            if len(self._pending) < self._capacity:
                self._pending.append((symbol, update))
                return
            latest = {}
            for pending_symbol, pending_update in self._pending:
                if pending_symbol in latest:
                    self._conflated += 1
                latest[pending_symbol] = pending_update
            self._pending = []
            self._latest = latest
        if symbol in latest:
            self._conflated += 1
            # Re-insert so the dict keeps symbols in the order of their newest update.
            del latest[symbol]
        latest[symbol] = update

    def drain(self) -> tuple[list[T], int]:
        """Take every pending update and the number of updates dropped by conflation since the last drain."""
        if self._latest is not None:
            updates = list(self._latest.values())
            self._latest = None
        else:
            updates = [update for _, update in self._pending]
            self._pending = []
        conflated, self._conflated = self._conflated, 0
        return updates, conflated
