"""Broker domain rules: -effect signs, unsigned quantities, OCC symbols, expiry instants and ACT/365."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from services.broker.domain import occ
from services.broker.domain.errors import BrokerBadResponse, ContractExpired, FieldInvalid
from services.broker.domain.expiry import close_on, fridays_after, monthlies_after, third_friday, time_to_expiry
from services.broker.domain.model import OptionKind, QuantityDirection
from services.broker.domain.money import apply_effect, effect_of, signed_quantity, to_decimal


def test_debit_effect_makes_amount_negative() -> None:
    assert apply_effect(Decimal("40.0"), "Debit", field="commission") == Decimal("-40.0")


def test_credit_effect_keeps_amount_positive() -> None:
    assert apply_effect(Decimal("1880.0"), "Credit", field="value") == Decimal("1880.0")


def test_none_effect_keeps_amount() -> None:
    assert apply_effect(Decimal("0.0"), "None", field="value") == Decimal("0.0")


def test_unknown_effect_is_a_bad_response() -> None:
    with pytest.raises(BrokerBadResponse, match="Credit, Debit or None"):
        apply_effect(Decimal("1"), "Sideways", field="value")


def test_effect_of_inverts_apply_effect() -> None:
    for amount in (Decimal("-12.5"), Decimal("3.25"), Decimal("0")):
        unsigned, effect = effect_of(amount)
        assert apply_effect(unsigned, effect, field="x") == amount


def test_decimal_strings_parse_exactly() -> None:
    assert to_decimal("51600.762", field="cash-balance") == Decimal("51600.762")


@pytest.mark.parametrize("bad", [1.5, "NaN", "Infinity", None, True, "12,5"])
def test_non_decimal_values_are_refused(bad: object) -> None:
    with pytest.raises(BrokerBadResponse):
        to_decimal(bad, field="price")


def test_short_direction_makes_quantity_negative() -> None:
    assert signed_quantity(Decimal(40), QuantityDirection.SHORT) == Decimal(-40)
    assert signed_quantity(Decimal(40), QuantityDirection.LONG) == Decimal(40)
    assert signed_quantity(Decimal(3), QuantityDirection.ZERO) == Decimal(0)


def test_occ_symbol_with_padded_root_parses() -> None:
    option = occ.parse_occ("RIVN  230609P00014000")
    assert (option.root, option.expiration_date, option.kind, option.strike) == (
        "RIVN", date(2023, 6, 9), OptionKind.PUT, Decimal(14)
    )


def test_fractional_strike_round_trips_and_streams_without_trailing_zeros() -> None:
    symbol = occ.format_occ("SPY", date(2024, 4, 19), OptionKind.PUT, Decimal("500.5"))
    assert symbol == "SPY   240419P00500500"
    assert occ.streamer_symbol(occ.parse_occ(symbol)) == ".SPY240419P500.5"


def test_weekly_index_root_streams_like_the_sdk() -> None:
    assert occ.streamer_symbol(occ.parse_occ("SPXW  240419C05000000")) == ".SPXW240419C5000"


@pytest.mark.parametrize("bad", ["SPY", "SPY   241319C00500000", "TOOLONGROOT240419C00500000", "./ESU3 EW4N3 230728C3990"])
def test_non_occ_text_is_refused(bad: str) -> None:
    with pytest.raises(FieldInvalid):
        occ.parse_occ(bad)
    assert occ.try_parse_occ(bad) is None


def test_expiry_is_four_pm_new_york_in_summer_and_winter() -> None:
    assert close_on(date(2023, 6, 9)) == datetime(2023, 6, 9, 20, 0, tzinfo=timezone.utc)
    assert close_on(date(2024, 1, 19)) == datetime(2024, 1, 19, 21, 0, tzinfo=timezone.utc)


def test_time_to_expiry_counts_actual_seconds_over_365_days() -> None:
    now = datetime(2024, 1, 19, 21, 0, tzinfo=timezone.utc)
    assert time_to_expiry(datetime(2025, 1, 18, 21, 0, tzinfo=timezone.utc), now) == pytest.approx(365 / 365)
    assert time_to_expiry(close_on(date(2024, 1, 20)), now) == pytest.approx(1 / 365)


def test_time_to_expiry_at_or_after_expiry_raises() -> None:
    expires = close_on(date(2024, 1, 19))
    with pytest.raises(ContractExpired):
        time_to_expiry(expires, expires)


def test_time_to_expiry_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        time_to_expiry(datetime(2025, 1, 1), datetime(2024, 1, 1, tzinfo=timezone.utc))


def test_monthly_expirations_are_third_fridays_after_the_date() -> None:
    assert third_friday(2024, 4) == date(2024, 4, 19)
    assert monthlies_after(date(2024, 4, 19), 2) == [date(2024, 5, 17), date(2024, 6, 21)]
    assert fridays_after(date(2024, 4, 19), 2) == [date(2024, 4, 26), date(2024, 5, 3)]
