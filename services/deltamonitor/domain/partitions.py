"""Partitions of the watched accounts, and each live replica's fair share of them.

Theory of operation. Accounts hash to one of ``PARTITION_COUNT`` partitions (CRC-32 of the account number);
a monitor replica evaluates the watches of the partitions it holds a lease on. Every replica computes the same
targets from the same set of live replicas: sorted by id, the first ``PARTITION_COUNT % n`` take one partition
more than the others, so the targets add up to ``PARTITION_COUNT`` and a replica that holds more than its
target releases the surplus for the one that holds less.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

__all__ = ["PARTITION_COUNT", "fair_share", "partition_of"]

PARTITION_COUNT = 64


def partition_of(account_number: str, count: int = PARTITION_COUNT) -> int:
    """The partition of an account: CRC-32 of its number modulo ``count``."""
    return zlib.crc32(account_number.encode()) % count


def fair_share(live_replicas: Sequence[str], replica_id: str, count: int = PARTITION_COUNT) -> int:
    """How many partitions ``replica_id`` should hold among ``live_replicas`` (it counts itself if absent)."""
    replicas = sorted(set(live_replicas) | {replica_id})
    base, extra = divmod(count, len(replicas))
    return base + (1 if replicas.index(replica_id) < extra else 0)
