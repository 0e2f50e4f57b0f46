"""Ports of the reporting service: peers it reads from, the report archive, identity."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Protocol

from services.reporting.domain.model import (
    AlertRow,
    ClosedTrade,
    DailyPnl,
    PnlRow,
    PositionRow,
    ScenarioGrid,
    SnapshotRow,
    TransactionRow,
)
from services.reporting.domain.tables import Table
from services.platform.identity import Authenticator, Caller

__all__ = ["AlertsPort", "Authenticator", "BrokerPort", "Caller", "PortfolioPort", "ReportArchive", "ReportFile", "ReportWriter"]


class PortfolioPort(Protocol):
    """The portfolio service, read on behalf of the caller.

    Methods raise ``AccountNotFound``, ``HistoryIncomplete`` (where the peer says so) or ``PortfolioUnavailable``.
    """

    async def positions(self, account_number: str, caller: Caller) -> list[PositionRow]:
        """Positions with valuations and Greeks."""
        ...

    async def pnl(self, account_number: str, caller: Caller) -> list[PnlRow]:
        """P&L rows: positions, underlyings, strategies, then the account."""
        ...

    async def history(
        self, account_number: str, caller: Caller, start: datetime | None, end: datetime | None
    ) -> tuple[list[DailyPnl], list[SnapshotRow]]:
        """Realized P&L per day and recorded valuations."""
        ...

    async def scenario(
        self, account_number: str, caller: Caller, moves: Sequence[float], shifts: Sequence[float], days: Sequence[float]
    ) -> ScenarioGrid:
        """The scenario grid."""
        ...

    async def closed_trades(
        self, account_number: str, caller: Caller, start: datetime | None, end: datetime | None
    ) -> list[ClosedTrade]:
        """Trades closed in the period (every page)."""
        ...

    async def risk_alerts(
        self, account_number: str, caller: Caller, start: datetime | None, end: datetime | None
    ) -> list[AlertRow]:
        """Risk limit alerts raised in the period (every page)."""
        ...


class BrokerPort(Protocol):
    """The broker service. Methods raise ``AccountNotFound`` or ``BrokerUnavailable``."""

    async def transactions(
        self, account_number: str, caller: Caller, start: datetime | None, end: datetime | None
    ) -> list[TransactionRow]:
        """The period's transactions, oldest first (every page)."""
        ...


class AlertsPort(Protocol):
    """The delta monitor's alerts. Methods raise ``PortfolioUnavailable`` when it cannot answer."""

    async def alerts(
        self, account_number: str, caller: Caller, start: datetime | None, end: datetime | None
    ) -> list[AlertRow]:
        """Delta and stale-data alerts of the account raised in the period."""
        ...


@dataclass(frozen=True)
class ReportFile:
    """A finished report on disk.

    Attributes:
        path: The file.
        metadata: Serialized ReportMetadata.
        size_bytes: File size.
        sha256: Lowercase hex digest.
        row_count: Data rows written.
        content_type: MIME type.
        file_name: Download name.
        keep: Whether the archive owns the file (False: delete it after streaming).
    """

    path: pathlib.Path
    metadata: bytes
    size_bytes: int
    sha256: str
    row_count: int
    content_type: str
    file_name: str
    keep: bool


class ReportArchive(Protocol):
    """Where reports are built and kept for retries (blocking: call from a thread)."""

    def scratch(self, suffix: str) -> pathlib.Path:
        """A new file path to build a report into."""
        ...

    def digest(self, path: pathlib.Path) -> tuple[int, str]:
        """(size, SHA-256 hex) of a built file."""
        ...

    def find(self, user_id: str, request_id: str) -> ReportFile | None:
        """The report this user built with this request id within the retention time, or None."""
        ...

    def keep(self, user_id: str, request_id: str, report: ReportFile) -> ReportFile:
        """Keep a finished report under (user, request id)."""
        ...

    def chunks(self, report: ReportFile) -> Iterator[bytes]:
        """The file's bytes in chunks."""
        ...

    def discard(self, report: ReportFile) -> None:
        """Delete a report the archive does not keep."""
        ...

    def sweep(self) -> None:
        """Delete expired reports."""
        ...


class ReportWriter(Protocol):
    """File formats."""

    def write_xlsx(self, tables: Sequence[Table], out: IO[bytes]) -> int:
        """Write the tables as one workbook; return the data rows written."""
        ...

    def write_csv(self, table: Table, out: IO[str]) -> int:
        """Write one table as CSV; return the data rows written."""
        ...
