"""A large history write to PostgreSQL leaves the event loop to the service's other work while it runs.

Market data writes its tick history in batches of thousands of rows on the event loop that also publishes the
ticks; built and encoded in one piece, a 2,500-row batch held the loop up to ~10 ms every half second (the delta
monitor benchmark saw it in its alert latencies). The rows are now produced in slices with the loop's other
tasks run in between, and every row still lands.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from services.marketdata.adapters import postgres_history
from services.marketdata.adapters.postgres_history import PostgresTickStore
from services.marketdata.domain.events import datetime_of
from services.marketdata.domain.history import CandleInterval, HistoryTick

pytestmark = pytest.mark.integration

POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
S = 1_000_000_000
T0 = 1_704_205_800 * S  # 2024-01-02T14:30:00Z


async def test_a_batch_of_thousands_of_ticks_is_written_in_slices_with_the_loop_free_between(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    schema = f"md_test_{uuid.uuid4().hex[:10]}"
    store = await PostgresTickStore.connect(POSTGRES_DSN, schema=schema)
    await store.ensure_schema()
    try:
        ticks = [HistoryTick("SPY", T0 + i * 1_000_000, 100.0 + i * 1e-3, 1.0, True) for i in range(5000)]
        await store.write(ticks[:1])  # the day's partition and the pool's connection exist before the measurement
        # Rows are counted as they are built (each converts its time once); the other task notes the count at
        # every turn it gets.
        built = 0

        def counting_datetime_of(time_ns: int):  # type: ignore[no-untyped-def]
            nonlocal built
            built += 1
            return datetime_of(time_ns)

        monkeypatch.setattr(postgres_history, "datetime_of", counting_datetime_of)
        seen: list[int] = []
        writing = True

        async def other_work() -> None:
            while writing:
                seen.append(built)
                await asyncio.sleep(0)

        ticker = asyncio.create_task(other_work())
        await asyncio.sleep(0)
        await store.write(ticks[1:])
        writing = False
        await ticker
        seen.append(built)
        assert built >= 4999
        # At most one slice of rows (256, plus the batch's first and last times) between two turns of the loop.
        assert max(b - a for a, b in zip(seen, seen[1:])) <= 258
        (candle,) = await store.candles("SPY", CandleInterval.ONE_DAY, None, T0 + 86400 * S, 10)
        assert candle.tick_count == 5000
    finally:
        await store.drop_schema()
        await store.close()
