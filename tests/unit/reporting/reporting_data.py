"""A small, hand-made account for the reporting tests (every figure chosen so the expected values are easy)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from services.reporting.adapters.memory_peers import MemoryAccount
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

D = Decimal
T0 = datetime(2024, 3, 1, 15, 0, tzinfo=UTC)


def trade(trade_id: str, underlying: str, strategy: str, opened: datetime, days: float, pnl: str, fees: str = "-1.00") -> ClosedTrade:
    return ClosedTrade(trade_id, underlying, strategy, f"{underlying} {strategy}", (f"{underlying} X",), opened,
                       opened + timedelta(days=days), "CLOSED", D(pnl), D("-1.00"), D(fees) - D("-1.00"), D(0))


def tx(i: int, when: datetime, *, option: bool, value: str, commission: str = "0", clearing: str = "0",
       regulatory: str = "0", kind: str = "TRADE", action: str = "SELL_TO_OPEN") -> TransactionRow:
    v, c, cl, r = D(value), D(commission), D(clearing), D(regulatory)
    return TransactionRow(str(i), when, kind, action.replace("_", " ").title(), action, "SPY   240419P00480000" if option else "SPY",
                          "SPY", "EQUITY_OPTION" if option else "EQUITY", f"row {i}", D(1), D("4.00"), v, c, cl, r, D(0),
                          v + c + cl + r, option)


def scenario_grid(base: Decimal = D("40760.00")) -> ScenarioGrid:
    moves = tuple(round(-0.2 + 0.1 * i, 1) for i in range(5))
    shifts = (-0.05, 0.0, 0.05)
    days = (0.0, 7.0)
    values, pnls = [], []
    for d in days:
        for s in shifts:
            for m in moves:
                pnl = 10_000.0 * m - 300.0 * s * 100 - 20.0 * d
                pnls.append(pnl)
                values.append(float(base) + pnl)
    n = len(values)
    return ScenarioGrid(moves, shifts, days, base, values, pnls, [1000.0] * n, [50.0] * n, [-30.0] * n, [-20.0] * n)


def sample_account(owner: str = "alice") -> MemoryAccount:
    positions = [
        PositionRow("SPY", "SPY", "EQUITY", "", D(100), 1.0, D("500.00"), D("480.00"), D("50000.00"), D("48000.00"),
                    D("2000.00"), D("200.00"), None, 100.0, 50_000.0, 0.0, 0.0, 0.0, 100.0),
        PositionRow("SPY   240419P00480000", "SPY", "EQUITY_OPTION", "SPY 2024-04-19 short put", D(-2), 100.0, D("3.10"),
                    D("4.00"), D("-620.00"), D("-800.00"), D("180.00"), D("40.00"), 0.171, 41.2, 20_600.0, -0.35, 19.5,
                    -64.0, 41.2, datetime(2024, 4, 19, 20, tzinfo=UTC), 480.0, "Put", 0.205),
    ]
    pnl = [
        PnlRow("position", "SPY", D(0), D("200.00"), D("-0.08"), D("2000.00"), D("-0.08"), D(0)),
        PnlRow("account", "A1", D(0), D("240.00"), D("-2.35"), D("2180.00"), D("-2.35"), D(0)),
    ]
    daily = [DailyPnl(T0 + timedelta(days=i), D(str(100 * (i + 1))), D(str(sum(100 * (k + 1) for k in range(i + 1))))) for i in range(5)]
    snapshots = [SnapshotRow(T0 + timedelta(hours=i), D("60000.00"), D("2180.00"), 70_000.0 + 1000 * i, 140.0 + i, -20.0, -64.0) for i in range(4)]
    trades = [
        trade("1", "SPY", "short put", T0, 10, "150.00"),
        trade("2", "SPY", "short put", T0 + timedelta(days=1), 4, "-50.00"),
        trade("3", "QQQ", "iron condor", T0 + timedelta(days=2), 30, "300.00"),
        trade("4", "AAPL", "long call", T0 + timedelta(days=3), 2.5, "-100.00"),
    ]
    transactions = [
        tx(1, T0, option=True, value="400.00", commission="-1.00", clearing="-0.10", regulatory="-0.04"),
        tx(2, T0 + timedelta(days=1), option=True, value="-250.00", clearing="-0.10", regulatory="-0.01", action="BUY_TO_CLOSE"),
        tx(3, T0 + timedelta(days=2), option=True, value="-120.00", commission="-1.00", clearing="-0.10", action="BUY_TO_OPEN"),
        tx(4, T0 + timedelta(days=3), option=False, value="-48000.00", clearing="-0.08", action="BUY_TO_OPEN"),
        tx(5, T0 + timedelta(days=4), option=False, value="48.50", kind="MONEY_MOVEMENT", action=""),
    ]
    alerts = [
        AlertRow("alrt_000000000000001", T0 + timedelta(hours=1), "DELTA_BREACH", "WARNING", "OPEN", "SPY delta 312 above band",
                 "SPY", 501.2, "SHARES", 280.0, 312.0, -100.0, 300.0, 0.17, 1.0, "SPY", -156.0),
    ]
    risk = [
        AlertRow("risk_000000000000001", T0 + timedelta(hours=2), "RISK_LIMIT_BREACH", "CRITICAL", "OPEN",
                 "Dollar delta 70,000.00 beyond limit 10,000.00", limit="MAX_DELTA_DOLLARS", limit_value=10_000.0,
                 observed_value=70_000.0),
    ]
    return MemoryAccount(owner, positions, pnl, daily, snapshots, scenario_grid(), trades, transactions, alerts, risk)
