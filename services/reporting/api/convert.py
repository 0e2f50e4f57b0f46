"""Translation between the contract's messages and the domain, at the edge."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal

from google.protobuf import timestamp_pb2
from tastyplat.reporting.v1 import reporting_service_pb2 as pb
from tastyplat.type.v1 import money_pb2

from services.reporting.app import ReportInfo
from services.reporting.domain.analysis import Analysis, Bucket
from services.reporting.ports import ReportFile

__all__ = ["analysis_to_proto", "encode_metadata", "money", "optional_time", "trailer"]

_NANO = Decimal("0.000000001")


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    """A Timestamp of an aware datetime."""
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(value.astimezone(UTC))
    return out


def optional_time(message: timestamp_pb2.Timestamp, present: bool) -> datetime | None:
    """A request's optional Timestamp, or None when unset."""
    return message.ToDatetime(tzinfo=UTC) if present else None


def money(amount: Decimal, currency: str = "USD") -> money_pb2.Money:
    """A Money of an exact Decimal (half-even to the nano)."""
    q = amount.quantize(_NANO, rounding=ROUND_HALF_EVEN)
    units = int(q)
    return money_pb2.Money(currency_code=currency, units=units, nanos=int((q - units) * 1_000_000_000))


def encode_metadata(info: ReportInfo) -> bytes:
    """The serialized ReportMetadata sent as ``x-report-metadata-bin``."""
    return pb.ReportMetadata(
        report_id=info.report_id,
        file_name=info.file_name,
        format=int(info.format),
        sections=[int(s) for s in info.sections],
        create_time=timestamp(info.create_time),
    ).SerializeToString()


def trailer(report: ReportFile) -> bytes:
    """The serialized ReportTrailer sent as ``x-report-trailer-bin``."""
    return pb.ReportTrailer(size_bytes=report.size_bytes, sha256=report.sha256, row_count=report.row_count).SerializeToString()


def _bucket(b: Bucket) -> pb.PnlBucket:
    return pb.PnlBucket(key=b.key, trade_count=b.trade_count, win_rate=b.win_rate, realized_pnl=money(b.realized_pnl), fees=money(b.fees))


def analysis_to_proto(a: Analysis) -> pb.AnalyzeTransactionsResponse:
    """The AnalyzeTransactions answer."""
    return pb.AnalyzeTransactionsResponse(
        trade_count=a.trade_count,
        win_rate=a.win_rate,
        average_winner=money(a.average_winner),
        average_loser=money(a.average_loser),
        premium_collected=money(a.premium_collected),
        premium_paid=money(a.premium_paid),
        commissions=money(a.commissions),
        fees=money(a.fees),
        realized_pnl=money(a.realized_pnl),
        by_underlying=[_bucket(b) for b in a.by_underlying],
        by_strategy=[_bucket(b) for b in a.by_strategy],
        by_month=[_bucket(b) for b in a.by_month],
        average_days_held=a.average_days_held,
        median_days_held=a.median_days_held,
    )
