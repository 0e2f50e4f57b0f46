"""Risk alerts on the bus are the delta monitor's Alert payload, which the notification service consumes."""

from __future__ import annotations

from datetime import UTC, datetime

from services.notification.api.convert import decode_alert_event
from services.portfolio.api.convert import encode_alert
from services.portfolio.domain.risk import Breach, LimitKind, Severity
from services.portfolio.ports import RiskAlert


def test_the_notification_service_reads_a_risk_alert() -> None:
    alert = RiskAlert(
        "risk_000000000000007", "alice", "5WW00001", Severity.CRITICAL, "Vega -420.00 beyond limit 400.00",
        "Account 5WW00001: the vega risk limit is breached.", datetime(2024, 3, 6, 15, tzinfo=UTC),
        Breach(LimitKind.MAX_VEGA, 400.0, -420.0),
    )
    notice = decode_alert_event(encode_alert(alert))
    assert (notice.alert_id, notice.user_id, notice.title) == (alert.alert_id, "alice", alert.title)
    assert int(notice.severity) == int(Severity.CRITICAL)
    assert notice.raise_time == alert.raise_time and not notice.acknowledged
