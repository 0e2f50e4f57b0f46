"""Trading statistics over closed trades and the period's transactions."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from zoneinfo import ZoneInfo

from services.reporting.domain.model import ClosedTrade, TransactionRow

__all__ = ["Analysis", "Bucket", "analyze"]

NEW_YORK = ZoneInfo("America/New_York")
ZERO = Decimal(0)
_NANO = Decimal("0.000000001")


@dataclass(frozen=True)
class Bucket:
    """Closed trades of one group."""

    key: str
    trade_count: int
    win_rate: float
    realized_pnl: Decimal
    fees: Decimal


@dataclass(frozen=True)
class Analysis:
    """The statistics AnalyzeTransactions returns.

    Averages are exact decimal quotients rounded half-even to the nano (the Money resolution).
    """

    trade_count: int
    win_rate: float
    average_winner: Decimal
    average_loser: Decimal
    premium_collected: Decimal
    premium_paid: Decimal
    commissions: Decimal
    fees: Decimal
    realized_pnl: Decimal
    by_underlying: list[Bucket]
    by_strategy: list[Bucket]
    by_month: list[Bucket]
    average_days_held: float
    median_days_held: float


def _mean(values: Sequence[Decimal]) -> Decimal:
    return (sum(values, ZERO) / len(values)).quantize(_NANO, ROUND_HALF_EVEN) if values else ZERO


def _buckets(trades: Iterable[ClosedTrade], key) -> list[Bucket]:  # type: ignore[no-untyped-def]
    groups: dict[str, list[ClosedTrade]] = {}
    for t in trades:
        groups.setdefault(key(t), []).append(t)
    return [
        Bucket(
            key=k,
            trade_count=len(ts),
            win_rate=sum(1 for t in ts if t.realized_pnl > 0) / len(ts),
            realized_pnl=sum((t.realized_pnl for t in ts), ZERO),
            fees=sum((t.commissions + t.fees for t in ts), ZERO),
        )
        for k, ts in sorted(groups.items())
    ]


def analyze(trades: Sequence[ClosedTrade], transactions: Iterable[TransactionRow]) -> Analysis:
    """Statistics of the trades closed in a period and of the period's transactions.

    Args:
        trades: Trades closed in the period (P&L after fees, with dividends).
        transactions: The period's transactions (premium, commissions and fees are summed over them).

    Premium collected is the value of every option sale (to open or to close), premium paid that of every
    option purchase; commissions and fees are those the transactions paid.
    """
    collected = paid = commissions = fees = ZERO
    for tx in transactions:
        commissions += tx.commission
        fees += tx.fees
        if tx.is_option and tx.transaction_type == "TRADE":
            if tx.value > 0:
                collected += tx.value
            else:
                paid += tx.value
    winners = [t.realized_pnl for t in trades if t.realized_pnl > 0]
    losers = [t.realized_pnl for t in trades if t.realized_pnl <= 0]
    held = [t.days_held for t in trades]
    return Analysis(
        trade_count=len(trades),
        win_rate=len(winners) / len(trades) if trades else 0.0,
        average_winner=_mean(winners),
        average_loser=_mean(losers),
        premium_collected=collected,
        premium_paid=paid,
        commissions=commissions,
        fees=fees,
        realized_pnl=sum((t.realized_pnl for t in trades), ZERO),
        by_underlying=_buckets(trades, lambda t: t.underlying_symbol),
        by_strategy=_buckets(trades, lambda t: t.strategy),
        by_month=_buckets(trades, lambda t: t.close_time.astimezone(NEW_YORK).strftime("%Y-%m")),
        average_days_held=statistics.fmean(held) if held else 0.0,
        median_days_held=statistics.median(held) if held else 0.0,
    )
