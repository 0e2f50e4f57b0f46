"""The delivery state table, the delivery plan (escalation, quiet hours, verification) and address handling."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.notification.domain.delivery import TRANSITIONS, DeliveryEvent, next_status, plan, sources_of
from services.notification.domain.errors import EmailInvalid, PhoneNumberInvalid
from services.notification.domain.model import (
    ChannelKind,
    ChannelState,
    DeliveryStatus,
    QuietHours,
    Severity,
    mask_address,
    normalize_email,
    normalize_phone,
)
from tests.unit.notification.conftest import EMAIL, PHONE, PUSH_TOKEN, channel, notice, preferences

FINAL = {DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.SUPPRESSED}


def test_final_statuses_have_no_way_out() -> None:
    assert not [key for key in TRANSITIONS if key[0] in FINAL]


def test_the_provider_is_only_ever_called_from_attempting() -> None:
    # ACCEPTED and RECONCILED (the outcomes of a provider call) start only from ATTEMPTING.
    assert sources_of(DeliveryEvent.ACCEPTED) == {DeliveryStatus.ATTEMPTING}
    assert sources_of(DeliveryEvent.RECONCILED) == {DeliveryStatus.ATTEMPTING}


def test_each_event_leads_to_one_status() -> None:
    for event in DeliveryEvent:
        assert len({TRANSITIONS[(s, event)] for s in sources_of(event)}) == 1


def test_disallowed_transition_raises() -> None:
    with pytest.raises(ValueError, match="not allowed"):
        next_status(DeliveryStatus.SENT, DeliveryEvent.CLAIM)


def test_plan_escalates_one_kind_per_level() -> None:
    alert = notice()
    channels = [channel(ChannelKind.PUSH, PUSH_TOKEN), channel(ChannelKind.SMS, PHONE)]
    planned = plan(alert, preferences(ChannelKind.PUSH, ChannelKind.SMS, escalation_seconds=300), channels, alert.raise_time)
    by_kind = {p.channel.kind: p for p in planned}
    assert by_kind[ChannelKind.PUSH].escalation_level == 0
    assert by_kind[ChannelKind.PUSH].due_time == alert.raise_time
    assert by_kind[ChannelKind.SMS].escalation_level == 1
    assert by_kind[ChannelKind.SMS].due_time == alert.raise_time + timedelta(seconds=300)


def test_plan_with_zero_escalation_delay_sends_every_level_now() -> None:
    alert = notice()
    channels = [channel(ChannelKind.EMAIL, EMAIL), channel(ChannelKind.SMS, PHONE)]
    planned = plan(alert, preferences(ChannelKind.EMAIL, ChannelKind.SMS), channels, alert.raise_time)
    assert {p.due_time for p in planned} == {alert.raise_time}


def test_plan_suppresses_a_contact_no_longer_verified() -> None:
    alert = notice()
    prefs = preferences(ChannelKind.SMS)
    planned = plan(alert, prefs, [channel(ChannelKind.SMS, "+14155550199")], alert.raise_time)
    assert planned[0].suppressed_reason == "contact not verified"


def test_plan_skips_disabled_channels() -> None:
    alert = notice()
    disabled = channel(ChannelKind.SMS, PHONE)
    disabled = type(disabled)(**{**{f: getattr(disabled, f) for f in disabled.__slots__}, "state": ChannelState.DISABLED})
    assert plan(alert, preferences(ChannelKind.SMS), [disabled], alert.raise_time) == []


def test_plan_holds_non_stream_channels_until_quiet_hours_end() -> None:
    # 23:00 New York, quiet 22:00-07:00: e-mail waits for 07:00 local, the stream does not.
    now = datetime(2024, 1, 3, 4, 0, tzinfo=UTC)
    alert = notice()
    alert = type(alert)(alert.alert_id, alert.user_id, Severity.WARNING, alert.title, alert.message, now)
    prefs = preferences(ChannelKind.STREAM, ChannelKind.EMAIL)
    prefs = type(prefs)(**{**{f: getattr(prefs, f) for f in prefs.__slots__},
                           "quiet_hours": QuietHours(True, "America/New_York", 22 * 60, 7 * 60, True)})
    planned = plan(alert, prefs, [channel(ChannelKind.EMAIL, EMAIL), channel(ChannelKind.STREAM, "")], now)
    due = {p.channel.kind: p.due_time for p in planned}
    assert due[ChannelKind.STREAM] == now
    assert due[ChannelKind.EMAIL] == datetime(2024, 1, 3, 12, 0, tzinfo=UTC)


def test_plan_lets_critical_alerts_through_quiet_hours_when_allowed() -> None:
    now = datetime(2024, 1, 3, 4, 0, tzinfo=UTC)
    alert = notice(severity=Severity.CRITICAL)
    alert = type(alert)(alert.alert_id, alert.user_id, Severity.CRITICAL, alert.title, alert.message, now)
    prefs = preferences(ChannelKind.SMS)
    prefs = type(prefs)(**{**{f: getattr(prefs, f) for f in prefs.__slots__},
                           "quiet_hours": QuietHours(True, "America/New_York", 22 * 60, 7 * 60, True)})
    planned = plan(alert, prefs, [channel(ChannelKind.SMS, PHONE)], now)
    assert planned[0].due_time == now


def test_plan_without_preferences_uses_every_active_channel_now() -> None:
    alert = notice()
    planned = plan(alert, None, [channel(ChannelKind.EMAIL, EMAIL), channel(ChannelKind.SMS, PHONE)], alert.raise_time)
    assert [(p.escalation_level, p.due_time) for p in planned] == [(0, alert.raise_time)] * 2


def test_quiet_hours_wrapping_midnight() -> None:
    quiet = QuietHours(True, "UTC", 22 * 60, 7 * 60, False)
    assert quiet.contains(datetime(2024, 1, 2, 23, 30, tzinfo=UTC))
    assert quiet.contains(datetime(2024, 1, 3, 6, 59, tzinfo=UTC))
    assert not quiet.contains(datetime(2024, 1, 3, 7, 0, tzinfo=UTC))
    assert quiet.end_after(datetime(2024, 1, 2, 23, 30, tzinfo=UTC)) == datetime(2024, 1, 3, 7, 0, tzinfo=UTC)


def test_phone_numbers_are_normalised_to_e164() -> None:
    assert normalize_phone("+1 (415) 555-0100") == "+14155550100"
    with pytest.raises(PhoneNumberInvalid):
        normalize_phone("415-555-0100")


def test_email_addresses_are_lower_cased_and_checked() -> None:
    assert normalize_email(" Trader@Example.COM ") == "trader@example.com"
    with pytest.raises(EmailInvalid):
        normalize_email("not-an-address")


def test_addresses_are_masked() -> None:
    assert mask_address(ChannelKind.SMS, "+14155550100") == "+1******0100"
    assert mask_address(ChannelKind.EMAIL, "trader@example.com") == "t***@example.com"
    assert mask_address(ChannelKind.PUSH, PUSH_TOKEN).endswith(PUSH_TOKEN[-4:])
