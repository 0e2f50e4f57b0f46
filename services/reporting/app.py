"""Reporting use cases: build a report (read the peers, lay out tables, write the file off the event loop) and
analyse the transactions of a period.

A report is written to a scratch file on disk (openpyxl's write-only mode keeps only the current row in
memory; CSV is written row by row), then streamed in chunks from disk. A report made with a request id is
kept an hour; a retry with that id streams the same file, and a retry that arrives while the first build is
still running waits for it instead of building a second one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.platform.clock import Clock
from services.reporting.domain.analysis import Analysis, analyze
from services.reporting.domain.errors import FieldRequired, TooManyReports
from services.reporting.domain.model import AlertRow, ReportFormat, ReportSpec, Section
from services.reporting.domain.requests import file_name, validate_period
from services.reporting.domain.tables import (
    Table,
    alerts_table,
    daily_pnl_table,
    pnl_table,
    positions_table,
    scenario_table,
    snapshots_table,
    transactions_table,
)
from services.reporting.ports import AlertsPort, BrokerPort, Caller, PortfolioPort, ReportArchive, ReportFile, ReportWriter

__all__ = ["CONTENT_TYPES", "ReportInfo", "ReportingApp", "ReportingSettings"]

log = logging.getLogger("tastyplat.reporting")

CONTENT_TYPES = {
    ReportFormat.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ReportFormat.CSV: "text/csv; charset=utf-8",
}


@dataclass(frozen=True)
class ReportingSettings:
    """Behaviour of the application.

    Attributes:
        reports_per_user: Reports one user may have in progress.
        scenario_moves, scenario_shifts, scenario_days: The grid of the scenarios section.
    """

    reports_per_user: int = 2
    scenario_moves: tuple[float, ...] = tuple(round(-0.20 + 0.01 * i, 2) for i in range(41))
    scenario_shifts: tuple[float, ...] = (-0.05, 0.0, 0.05)
    scenario_days: tuple[float, ...] = (0.0, 7.0, 30.0)


@dataclass(frozen=True)
class ReportInfo:
    """What ReportMetadata says about a report."""

    report_id: str
    file_name: str
    format: ReportFormat
    sections: tuple[Section, ...]
    create_time: datetime


class ReportingApp:
    """The reporting service's use cases."""

    def __init__(
        self,
        *,
        portfolio: PortfolioPort,
        broker: BrokerPort,
        alerts: AlertsPort,
        archive: ReportArchive,
        writer: ReportWriter,
        clock: Clock,
        encode_metadata: Callable[[ReportInfo], bytes],
        settings: ReportingSettings | None = None,
    ) -> None:
        """Wire the use cases to their ports."""
        self.portfolio = portfolio
        self.broker = broker
        self.alerts = alerts
        self.archive = archive
        self.writer = writer
        self.clock = clock
        self._encode_metadata = encode_metadata
        self.settings = settings or ReportingSettings()
        self._active: dict[str, int] = {}
        self._building: dict[tuple[str, str], asyncio.Future[ReportFile]] = {}

    async def create_report(self, caller: Caller, spec: ReportSpec) -> ReportFile:
        """Build (or find) the report and return its file; the caller streams it, then calls ``discard()``.

        Raises:
            TooManyReports: The caller already has ``reports_per_user`` reports in progress.
            AccountNotFound, HistoryIncomplete, BrokerUnavailable, PortfolioUnavailable: From the peers.
        """
        key = (caller.user_id, spec.request_id)
        if spec.request_id:
            found = await asyncio.to_thread(self.archive.find, *key)
            if found is not None:
                return found
            pending = self._building.get(key)
            if pending is not None:
                return await asyncio.shield(pending)
        if self._active.get(caller.user_id, 0) >= self.settings.reports_per_user:
            raise TooManyReports(
                f"{self.settings.reports_per_user} reports are already in progress; retry when one has finished",
                retry_after=5.0,
            )
        self._active[caller.user_id] = self._active.get(caller.user_id, 0) + 1
        future: asyncio.Future[ReportFile] | None = None
        if spec.request_id:
            future = asyncio.get_running_loop().create_future()
            self._building[key] = future
        try:
            report = await self._build(caller, spec)
            if spec.request_id:
                report = await asyncio.to_thread(self.archive.keep, caller.user_id, spec.request_id, report)
            if future is not None:
                future.set_result(report)
            return report
        except BaseException as error:
            if future is not None:
                future.set_exception(error)
                future.exception()  # retrieved here, so a build nobody else awaited logs no warning
            raise
        finally:
            self._active[caller.user_id] -= 1
            if self._active[caller.user_id] == 0:
                del self._active[caller.user_id]
            self._building.pop(key, None)

    async def _tables(self, caller: Caller, spec: ReportSpec) -> list[Table]:
        account, start, end = spec.account_number, spec.start, spec.end
        s = self.settings
        fetch = {
            Section.POSITIONS: lambda: self.portfolio.positions(account, caller),
            Section.PROFIT_AND_LOSS: lambda: asyncio.gather(
                self.portfolio.pnl(account, caller), self.portfolio.history(account, caller, start, end)
            ),
            Section.TRANSACTIONS: lambda: self.broker.transactions(account, caller, start, end),
            Section.ALERTS: lambda: asyncio.gather(
                self.alerts.alerts(account, caller, start, end), self.portfolio.risk_alerts(account, caller, start, end)
            ),
            Section.SCENARIOS: lambda: self.portfolio.scenario(
                account, caller, s.scenario_moves, s.scenario_shifts, s.scenario_days
            ),
        }
        results: list[Any] = list(await asyncio.gather(*(fetch[section]() for section in spec.sections)))
        tables: list[Table] = []
        for section, data in zip(spec.sections, results):
            if section is Section.POSITIONS:
                tables.append(positions_table(data))
            elif section is Section.PROFIT_AND_LOSS:
                pnl, (daily, snapshots) = data
                tables.append(pnl_table(pnl))
                if spec.format is ReportFormat.XLSX:
                    tables += [daily_pnl_table(daily), snapshots_table(snapshots)]
            elif section is Section.TRANSACTIONS:
                tables.append(transactions_table(data))
            elif section is Section.ALERTS:
                delta_alerts, risk_alerts = data
                merged: list[AlertRow] = sorted([*delta_alerts, *risk_alerts], key=lambda a: (a.raise_time, a.alert_id))
                tables.append(alerts_table(merged))
            else:
                tables.append(scenario_table(data))
        return tables

    async def _build(self, caller: Caller, spec: ReportSpec) -> ReportFile:
        now = self.clock.now()
        tables = await self._tables(caller, spec)
        info = ReportInfo(uuid.uuid4().hex, file_name(spec), spec.format, spec.sections, now)
        suffix = ".xlsx" if spec.format is ReportFormat.XLSX else ".csv"
        path = await asyncio.to_thread(self.archive.scratch, suffix)

        def write() -> tuple[int, int, str]:
            if spec.format is ReportFormat.XLSX:
                with path.open("wb") as handle:
                    rows = self.writer.write_xlsx(tables, handle)
            else:
                with path.open("w", encoding="utf-8", newline="") as text:
                    rows = self.writer.write_csv(tables[0], text)
            size, sha = self.archive.digest(path)
            return rows, size, sha

        try:
            rows, size, sha = await asyncio.to_thread(write)
        except BaseException:
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        log.info("report built", extra={"report_id": info.report_id, "bytes": size, "rows": rows})
        return ReportFile(path, self._encode_metadata(info), size, sha, rows, CONTENT_TYPES[spec.format], info.file_name, False)

    async def analyze(self, caller: Caller, account_number: str, start: datetime | None, end: datetime | None) -> Analysis:
        """Trading statistics of the period."""
        if not account_number:
            raise FieldRequired("account_number")
        start, end = validate_period(start, end, self.clock.now())
        trades, transactions = await asyncio.gather(
            self.portfolio.closed_trades(account_number, caller, start, end),
            self.broker.transactions(account_number, caller, start, end),
        )
        return await asyncio.to_thread(analyze, trades, transactions)

    async def sweep(self) -> None:
        """Delete expired archived reports."""
        await asyncio.to_thread(self.archive.sweep)
