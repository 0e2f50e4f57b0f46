"""Every Tastytrade REST shape the broker reads, parsed from the documented examples (reference §1.7)."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

import pytest

from services.broker.adapters.tastytrade import wire
from services.broker.domain.errors import BrokerBadResponse
from services.broker.domain.model import ExerciseStyle, InstrumentType, OptionKind, QuantityDirection


def _json(text: str) -> Any:
    return json.loads(text, parse_float=Decimal)


ACCOUNTS = _json("""{"data": {"items": [{"account": {
  "account-number": "5WW55555", "external-id": "A0002465882", "opened-at": "2021-03-26T18:31:41.070+00:00",
  "nickname": "Margin acct", "account-type-name": "Individual", "day-trader-status": false, "is-closed": false,
  "is-firm-error": false, "is-firm-proprietary": false, "is-futures-approved": false, "is-test-drive": false,
  "margin-or-cash": "Margin", "is-foreign": false, "funding-date": "2021-04-07", "investment-objective": "GROWTH",
  "suitable-options-level": "No Restrictions", "created-at": "2021-03-26T18:31:41.078+00:00"},
  "authority-level": "trade-only"}]}, "context": "/customers/me/accounts"}""")

BALANCES = _json("""{"data": {"account-number": "5YZ55555", "cash-balance": "51600.762",
  "long-equity-value": "281983.415", "short-equity-value": "0.0", "long-derivative-value": "0.0",
  "short-derivative-value": "82680.5", "margin-equity": "452284.177", "equity-buying-power": "20078.762",
  "derivative-buying-power": "20078.762", "day-trading-buying-power": "0.0", "maintenance-requirement": "432279.234",
  "net-liquidating-value": "543557.677", "cash-available-to-withdraw": "20078.76", "pending-cash": "125.5",
  "pending-cash-effect": "Debit", "maintenance-excess": "20078.762", "used-derivative-buying-power": "0.0",
  "snapshot-date": "2023-06-08", "updated-at": "2023-06-08T16:30:18.889+00:00"},
  "context": "/accounts/5YZ55555/balances"}""")

POSITION = _json("""{"account-number": "5YZ55555", "symbol": "RIVN  230609P00014000", "instrument-type": "Equity Option",
  "underlying-symbol": "RIVN", "quantity": 40, "quantity-direction": "Short", "close-price": "0.41",
  "average-open-price": "0.79", "average-yearly-market-close-price": "0.79", "average-daily-market-close-price": "0.41",
  "multiplier": 100, "cost-effect": "Debit", "is-suppressed": false, "is-frozen": false, "restricted-quantity": 0,
  "expires-at": "2023-06-09T20:00:00.000+00:00", "realized-day-gain": "12.5", "realized-day-gain-effect": "Debit",
  "realized-day-gain-date": "2023-05-24", "realized-today": "0.0", "realized-today-effect": "None",
  "realized-today-date": "2023-05-24", "created-at": "2023-05-24T17:17:57.615+00:00",
  "updated-at": "2023-05-24T17:17:58.632+00:00"}""")

TRANSACTIONS = _json("""{"data": {"items": [
 {"id": 2455333333, "account-number": "5YZ55555", "symbol": "RIVN  230623C00015000", "instrument-type": "Equity Option",
  "underlying-symbol": "RIVN", "transaction-type": "Trade", "transaction-sub-type": "Sell to Open",
  "description": "Sold 40 RIVN 06/23/23 Call 15.00 @ 0.47", "action": "Sell to Open", "quantity": "40.0", "price": "0.47",
  "executed-at": "2023-06-12T13:53:08.199+00:00", "transaction-date": "2023-06-12", "value": "1880.0",
  "value-effect": "Credit", "regulatory-fees": "0.042", "regulatory-fees-effect": "Debit", "clearing-fees": "0.40",
  "clearing-fees-effect": "Debit", "net-value": "1878.858", "net-value-effect": "Credit", "commission": "40.0",
  "commission-effect": "Debit", "proprietary-index-option-fees": "0.0", "proprietary-index-option-fees-effect": "None",
  "is-estimated-fee": true, "order-id": 272610989, "leg-count": 1, "destination-venue": "WOLVERINE_OPTIONS_A"},
 {"id": 2454865989, "account-number": "5YZ55555", "symbol": "RIVN  230609P00014000", "instrument-type": "Equity Option",
  "underlying-symbol": "RIVN", "transaction-type": "Receive Deliver", "transaction-sub-type": "Assignment",
  "description": "Removal of option due to assignment", "quantity": "40.0", "executed-at": "2023-06-09T21:00:00.000+00:00",
  "transaction-date": "2023-06-09", "value": "0.0", "value-effect": "None", "net-value": "0.0",
  "net-value-effect": "None", "is-estimated-fee": true},
 {"id": 252634233, "account-number": "5WX00042", "symbol": "KBWD", "instrument-type": "Equity",
  "underlying-symbol": "KBWD", "transaction-type": "Money Movement", "transaction-sub-type": "Dividend",
  "description": "INVESCO EXCHANGE TRADED FD TR", "executed-at": "2023-07-28T21:00:00.000+00:00",
  "transaction-date": "2023-07-28", "value": "27.74", "value-effect": "Credit", "net-value": "27.74",
  "net-value-effect": "Credit", "is-estimated-fee": true}]},
 "context": "/accounts/5YZ55555/transactions",
 "pagination": {"per-page": 3, "page-offset": 0, "item-offset": 0, "total-items": 71, "total-pages": 24,
  "current-item-count": 3, "previous-link": null, "next-link": null, "paging-link-template": null}}""")

NESTED = _json("""{"data": {"items": [{"underlying-symbol": "SPY", "root-symbol": "SPY", "option-chain-type": "Standard",
  "shares-per-contract": 100, "tick-sizes": [{"value": "0.01"}],
  "deliverables": [{"id": 313656, "root-symbol": "SPY", "deliverable-type": "Shares", "description": "100 shares of SPY",
    "amount": "100.0", "symbol": "SPY", "instrument-type": "Equity", "percent": "100"}],
  "expirations": [{"expiration-type": "Weekly", "expiration-date": "2026-08-04", "days-to-expiration": 0,
    "settlement-type": "PM", "strikes": [{"strike-price": "500.0", "call": "SPY   260804C00500000",
      "call-streamer-symbol": ".SPY260804C500", "put": "SPY   260804P00500000", "put-streamer-symbol": ".SPY260804P500"}]}]}]},
 "context": "/option-chains/SPY/nested"}""")

METRICS = _json("""{"data": {"items": [{"symbol": "AAPL", "implied-volatility-index": "0.224186663",
  "implied-volatility-index-rank": "0.02231313", "implied-volatility-percentile": "0.031249801",
  "liquidity-rating": 4, "updated-at": "2023-06-07T19:55:23.376Z", "beta": "1.265634436",
  "beta-updated-at": "2023-06-04T17:00:35.805Z", "dividend-yield": "0.006396146", "market-cap": 2846108626900,
  "implied-volatility-30-day": "21.87", "historical-volatility-30-day": "20.02"}]}}""")


def test_accounts_list_parses_inner_account_and_authority() -> None:
    [account] = wire.parse_accounts(ACCOUNTS)
    assert account.account_number == "5WW55555"
    assert account.authority_level == "trade-only"
    assert account.margin_or_cash == "Margin"
    assert account.opened_at == datetime(2021, 3, 26, 18, 31, 41, 70000, tzinfo=timezone.utc)


def test_balances_parse_as_decimals_with_pending_cash_signed() -> None:
    balances = wire.parse_balances(BALANCES, "USD")
    assert balances.cash_balance == Decimal("51600.762")
    assert balances.net_liquidating_value == Decimal("543557.677")
    assert balances.pending_cash == Decimal("-125.5")
    assert balances.maintenance_excess == Decimal("20078.762")


def test_short_position_quantity_is_negative_and_expiry_kept() -> None:
    position = wire.parse_position(POSITION)
    assert position.quantity == Decimal(-40)
    assert position.broker_quantity == Decimal(40)
    assert position.direction is QuantityDirection.SHORT
    assert position.realized_day_gain == Decimal("-12.5")
    assert position.option is not None and position.option.kind is OptionKind.PUT
    assert position.streamer_symbol == ".RIVN230609P14"
    assert position.expires_at == datetime(2023, 6, 9, 20, 0, tzinfo=timezone.utc)


def test_position_marks_are_read_when_included() -> None:
    position = wire.parse_position({**POSITION, "mark": "0.52", "mark-price": "0.52"})
    assert position.mark == Decimal("0.52")


def test_negative_position_quantity_is_a_bad_response() -> None:
    with pytest.raises(BrokerBadResponse, match="unsigned"):
        wire.parse_position({**POSITION, "quantity": -40})


def test_transactions_apply_every_effect_sign() -> None:
    trade, assignment, dividend = wire.parse_transactions(wire.items_of(TRANSACTIONS))
    assert trade.value == Decimal("1880.0") and trade.net_value == Decimal("1878.858")
    assert trade.commission == Decimal("-40.0")
    assert trade.clearing_fees == Decimal("-0.40") and trade.regulatory_fees == Decimal("-0.042")
    assert trade.order_id == 272610989 and trade.is_estimated_fee
    assert trade.option is not None and trade.option.strike == Decimal(15)
    assert assignment.value == 0 and assignment.transaction_sub_type == "Assignment"
    assert dividend.instrument_type is InstrumentType.EQUITY and dividend.net_value == Decimal("27.74")
    assert dividend.commission == 0


def test_pagination_block_is_read() -> None:
    page = wire.page_of(TRANSACTIONS)
    assert page is not None and (page.page_offset, page.total_pages) == (0, 24)


def test_nested_chain_parses_expirations_and_strikes() -> None:
    [chain] = wire.parse_nested_chains(NESTED)
    [expiration] = chain.expirations
    assert chain.exercise_style is ExerciseStyle.AMERICAN and chain.shares_per_contract == 100
    assert expiration.expiration_date == date(2026, 8, 4)
    assert expiration.expires_at == datetime(2026, 8, 4, 20, 0, tzinfo=timezone.utc)
    assert expiration.strikes[0].call_streamer_symbol == ".SPY260804C500"


def test_cash_settled_index_chain_is_european() -> None:
    body = json.loads(json.dumps(NESTED, default=str), parse_float=Decimal)
    body["data"]["items"][0]["deliverables"][0].update({"deliverable-type": "Cash", "instrument-type": "Index"})
    [chain] = wire.parse_nested_chains(body)
    assert chain.exercise_style is ExerciseStyle.EUROPEAN


def test_market_metrics_turn_percent_volatility_into_fractions() -> None:
    [metrics] = wire.parse_market_metrics(METRICS)
    assert metrics.beta == Decimal("1.265634436")
    assert metrics.dividend_yield == Decimal("0.006396146")
    assert metrics.historical_volatility_30_day == Decimal("0.2002")
    assert metrics.implied_volatility_rank == Decimal("0.02231313")
    assert metrics.liquidity_rating == 4


def test_risk_free_rate_is_read_from_public_configuration() -> None:
    assert wire.parse_risk_free_rate({"data": {"risk-free-rate": "0.055"}}) == Decimal("0.055")


def test_implausible_risk_free_rate_is_refused() -> None:
    with pytest.raises(BrokerBadResponse):
        wire.parse_risk_free_rate({"data": {"risk-free-rate": "5.5"}})


def test_token_defaults_to_fifteen_minutes() -> None:
    token = wire.parse_token({"access_token": "at", "token_type": "Bearer"})
    assert token.expires_in == 900
    assert "at" not in repr(token)


def test_empty_list_envelope_is_an_empty_list() -> None:
    assert wire.items_of({"data": {"items": []}}) == []


def test_missing_data_is_a_bad_response() -> None:
    with pytest.raises(BrokerBadResponse, match="data"):
        wire.items_of({"context": "/customers/me/accounts"})


def test_missing_required_field_names_it() -> None:
    body = {"data": {k: v for k, v in BALANCES["data"].items() if k != "net-liquidating-value"}}
    with pytest.raises(BrokerBadResponse, match="net-liquidating-value"):
        wire.parse_balances(body, "USD")


def test_both_error_shapes_are_understood() -> None:
    assert wire.error_of({"error": {"code": "invalid_grant", "message": "Grant revoked"}}) == ("invalid_grant", "Grant revoked")
    assert wire.error_of({"error": "invalid_grant", "error_description": "Grant revoked"}) == ("invalid_grant", "Grant revoked")
    code, message = wire.error_of(
        {"error": {"code": "validation_error", "message": "Request validation failed",
                   "errors": [{"domain": "account-numbers", "reason": "is missing"}]}}
    )
    assert code == "validation_error" and "account-numbers: is missing" in message
