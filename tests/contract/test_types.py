"""House rules on the contracts' types: enums, times, money, units and the shared value types."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from google.protobuf.descriptor_pb2 import FieldDescriptorProto as FieldProto

if TYPE_CHECKING:
    from conftest import Contracts


def _own_enums(contracts: Contracts) -> list[str]:
    return sorted(name for name in contracts.enums if name.startswith("tastyplat."))


def _own_fields(contracts: Contracts) -> list[tuple[str, FieldProto]]:
    return [
        (msg_name, field)
        for msg_name, msg in contracts.messages.items()
        if msg_name.startswith("tastyplat.")
        for field in msg.field
    ]


def _upper_snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


def test_contracts_declare_enums(contracts: Contracts) -> None:
    assert len(_own_enums(contracts)) >= 20


@pytest.mark.parametrize("enum_name", [
    "tastyplat.type.v1.OptionKind", "tastyplat.type.v1.ExerciseStyle", "tastyplat.type.v1.Severity",
    "tastyplat.type.v1.ChannelKind", "tastyplat.calculator.v1.ElementStatus", "tastyplat.user.v1.Role",
    "tastyplat.broker.v1.QuantityDirection", "tastyplat.marketdata.v1.CandleInterval",
    "tastyplat.deltamonitor.v1.WatchState", "tastyplat.notification.v1.DeliveryStatus",
    "tastyplat.portfolio.v1.BetaSource", "tastyplat.reporting.v1.ReportFormat",
])
def test_expected_enum_exists(contracts: Contracts, enum_name: str) -> None:
    assert enum_name in contracts.enums


def test_every_enum_starts_with_unspecified_zero(contracts: Contracts) -> None:
    for name in _own_enums(contracts):
        enum = contracts.enums[name]
        prefix = _upper_snake(enum.name)
        zero = [v for v in enum.value if v.number == 0]
        assert [v.name for v in zero] == [f"{prefix}_UNSPECIFIED"], name
        assert enum.value[0].number == 0, f"{name}: the zero value comes first"


def test_every_enum_value_is_prefixed_with_its_type_name(contracts: Contracts) -> None:
    for name in _own_enums(contracts):
        enum = contracts.enums[name]
        prefix = _upper_snake(enum.name) + "_"
        assert all(v.name.startswith(prefix) for v in enum.value), name


def test_option_enums_have_the_contract_values(contracts: Contracts) -> None:
    def values(name: str) -> dict[str, int]:
        return {v.name: v.number for v in contracts.enums[name].value}

    assert values("tastyplat.type.v1.OptionKind") == {
        "OPTION_KIND_UNSPECIFIED": 0, "OPTION_KIND_CALL": 1, "OPTION_KIND_PUT": 2,
    }
    assert values("tastyplat.type.v1.ExerciseStyle") == {
        "EXERCISE_STYLE_UNSPECIFIED": 0, "EXERCISE_STYLE_EUROPEAN": 1, "EXERCISE_STYLE_AMERICAN": 2,
    }


def test_time_fields_are_timestamps_named_time(contracts: Contracts) -> None:
    for msg_name, field in _own_fields(contracts):
        is_timestamp = field.type_name == ".google.protobuf.Timestamp"
        assert is_timestamp == field.name.endswith("_time"), f"{msg_name}.{field.name}"


def test_packed_time_columns_are_fixed_width_nanoseconds(contracts: Contracts) -> None:
    for msg_name, field in _own_fields(contracts):
        if "times" in field.name:
            assert field.label == field.LABEL_REPEATED and field.type == field.TYPE_SFIXED64, f"{msg_name}.{field.name}"
            assert field.name.endswith("_unix_nanos"), f"{msg_name}.{field.name}"


# Cash amounts (balances, cash flows, trade prices, P&L): Money, never double.
MONEY_FIELDS = {
    "tastyplat.broker.v1.Balances": [
        "cash_balance", "net_liquidating_value", "equity_buying_power", "derivative_buying_power",
        "day_trading_buying_power", "maintenance_requirement", "maintenance_excess", "long_equity_value",
        "short_equity_value", "long_derivative_value", "short_derivative_value", "cash_available_to_withdraw",
        "pending_cash", "margin_equity",
    ],
    "tastyplat.broker.v1.Position": ["average_open_price", "close_price", "mark_price", "realized_day_gain"],
    "tastyplat.broker.v1.Transaction": [
        "price", "value", "commission", "clearing_fees", "regulatory_fees", "proprietary_index_option_fees",
        "net_value",
    ],
    "tastyplat.portfolio.v1.PortfolioPosition": [
        "mark_price", "average_open_price", "market_value", "cost_basis", "unrealized_pnl", "day_pnl",
    ],
    "tastyplat.portfolio.v1.Portfolio": ["cash_balance", "net_liquidating_value", "market_value"],
    "tastyplat.portfolio.v1.ProfitAndLoss": [
        "realized_today", "unrealized_today", "realized_since_open", "unrealized_since_open", "fees_since_open",
        "dividends_since_open",
    ],
    "tastyplat.portfolio.v1.RiskLimits": ["max_scenario_loss"],
    "tastyplat.portfolio.v1.RunScenarioResponse": ["base_value"],
    "tastyplat.reporting.v1.PnlBucket": ["realized_pnl", "fees"],
    "tastyplat.reporting.v1.AnalyzeTransactionsResponse": [
        "average_winner", "average_loser", "premium_collected", "premium_paid", "commissions", "fees",
        "realized_pnl",
    ],
}


@pytest.mark.parametrize("message", sorted(MONEY_FIELDS))
def test_cash_amounts_are_money(contracts: Contracts, message: str) -> None:
    fields = {f.name: f for f in contracts.messages[message].field}
    for name in MONEY_FIELDS[message]:
        assert fields[name].type_name == ".tastyplat.type.v1.Money", f"{message}.{name}"


@pytest.mark.parametrize("message", sorted(MONEY_FIELDS))
def test_cash_messages_have_no_double_money(contracts: Contracts, message: str) -> None:
    doubles = {f.name for f in contracts.messages[message].field if f.type == FieldProto.TYPE_DOUBLE}
    assert not doubles & {"value", "price", "pnl", "balance", "fees", "commission"}
    assert not any(n.endswith(("_pnl", "_balance", "_fees", "_value")) for n in doubles), doubles


def test_position_quantities_are_decimal_with_direction(contracts: Contracts) -> None:
    fields = {f.name: f for f in contracts.messages["tastyplat.broker.v1.Position"].field}
    assert fields["quantity"].type_name == ".tastyplat.type.v1.Decimal"
    assert fields["quantity_direction"].type_name == ".tastyplat.broker.v1.QuantityDirection"


def test_money_has_google_type_money_shape(contracts: Contracts) -> None:
    fields = {f.name: (f.number, f.type) for f in contracts.messages["tastyplat.type.v1.Money"].field}
    assert fields == {
        "currency_code": (1, FieldProto.TYPE_STRING),
        "units": (2, FieldProto.TYPE_INT64),
        "nanos": (3, FieldProto.TYPE_INT32),
    }


def test_option_contract_fields(contracts: Contracts) -> None:
    fields = {f.name: f for f in contracts.messages["tastyplat.type.v1.OptionContract"].field}
    assert set(fields) == {
        "symbol", "underlying_symbol", "kind", "strike_price", "expiration_time", "style", "multiplier",
        "streamer_symbol",
    }
    assert fields["strike_price"].type == FieldProto.TYPE_DOUBLE
    assert fields["kind"].type_name == ".tastyplat.type.v1.OptionKind"
    assert fields["style"].type_name == ".tastyplat.type.v1.ExerciseStyle"


GREEKS_UNITS = {
    "vega": "1 volatility point",
    "theta": "calendar day",
    "rho": "1 percentage point",
    "vanna": "per 1 volatility point",
    "charm": "calendar day",
}


def test_greeks_are_doubles_in_order(contracts: Contracts) -> None:
    fields = contracts.messages["tastyplat.type.v1.Greeks"].field
    assert [(f.name, f.number) for f in fields] == [
        ("price", 1), ("delta", 2), ("gamma", 3), ("vega", 4), ("theta", 5), ("rho", 6), ("vanna", 7), ("charm", 8),
    ]
    assert all(f.type == FieldProto.TYPE_DOUBLE for f in fields)


@pytest.mark.parametrize(("field", "unit"), sorted(GREEKS_UNITS.items()))
def test_greeks_comments_state_units(contracts: Contracts, field: str, unit: str) -> None:
    assert unit in contracts.field_comment("tastyplat.type.v1.Greeks", field)


def test_every_message_and_field_has_a_comment(contracts: Contracts) -> None:
    missing = []
    for msg_name, (file_name, path) in contracts.message_paths.items():
        if not msg_name.startswith("tastyplat."):
            continue
        if not contracts.comments.get((file_name, path), "").strip():
            missing.append(msg_name)
        for i, field in enumerate(contracts.messages[msg_name].field):
            if not contracts.comments.get((file_name, (*path, 2, i)), "").strip():
                missing.append(f"{msg_name}.{field.name}")
    assert not missing


def test_every_file_is_in_its_versioned_package_directory(contracts: Contracts) -> None:
    for f in contracts.own_files():
        directory = f.name.rsplit("/", 1)[0]
        assert directory == f.package.replace(".", "/"), f.name
        assert re.fullmatch(r"tastyplat\.[a-z]+\.v1", f.package), f.package
        if f.service:
            svc = f.package.split(".")[1]
            assert f.name == f"tastyplat/{svc}/v1/{svc}_service.proto"
