"""The public contract of issue 3: services, RPC names, REST mappings and per-RPC conventions."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from google.api import annotations_pb2, http_pb2

if TYPE_CHECKING:
    from conftest import Contracts

# Issue 3's table: the RPC names and REST mappings that are the public contract. (verb, path); streams
# marked with a third element True.
ISSUE_TABLE: dict[str, dict[str, tuple[str, str] | tuple[str, str, bool]]] = {
    "tastyplat.calculator.v1.CalculatorService": {
        "ComputeGreeks": ("post", "/v1/greeks:compute"),
        "ComputeGreeksBatch": ("post", "/v1/greeks:batchCompute"),
        "ComputeImpliedVolatility": ("post", "/v1/impliedVolatility:compute"),
        "ComputeImpliedVolatilityBatch": ("post", "/v1/impliedVolatility:batchCompute"),
        "AggregatePortfolioGreeks": ("post", "/v1/portfolioGreeks:aggregate"),
    },
    "tastyplat.user.v1.UserService": {
        "CreateUser": ("post", "/v1/users"),
        "Login": ("post", "/v1/auth:login"),
        "RefreshToken": ("post", "/v1/auth:refresh"),
        "Logout": ("post", "/v1/auth:logout"),
        "GetUser": ("get", "/v1/users/{user_id}"),
        "UpdateNotificationPreferences": ("patch", "/v1/users/{user_id}/notificationPreferences"),
    },
    "tastyplat.broker.v1.BrokerService": {
        "LinkAccount": ("post", "/v1/brokerLinks"),
        "ListAccounts": ("get", "/v1/accounts"),
        "GetBalances": ("get", "/v1/accounts/{account_number}/balances"),
        "ListPositions": ("get", "/v1/accounts/{account_number}/positions"),
        "ListTransactions": ("get", "/v1/accounts/{account_number}/transactions"),
        "GetOptionChain": ("get", "/v1/optionChains/{underlying_symbol}"),
    },
    "tastyplat.marketdata.v1.MarketDataService": {
        "GetQuote": ("get", "/v1/quotes/{symbol}"),
        "GetHistory": ("get", "/v1/history/{symbol}"),
        "StreamQuotes": ("get", "/v1/quotes:stream", True),
        "StreamGreeks": ("get", "/v1/greeks:stream", True),
    },
    "tastyplat.deltamonitor.v1.DeltaMonitorService": {
        "CreateWatch": ("post", "/v1/watches"),
        "ListWatches": ("get", "/v1/watches"),
        "UpdateWatch": ("patch", "/v1/watches/{watch_id}"),
        "DeleteWatch": ("delete", "/v1/watches/{watch_id}"),
        "ListAlerts": ("get", "/v1/alerts"),
        "AcknowledgeAlert": ("post", "/v1/alerts/{alert_id}:acknowledge"),
        "StreamAlerts": ("get", "/v1/alerts:stream", True),
    },
    "tastyplat.notification.v1.NotificationService": {
        "RegisterChannel": ("post", "/v1/channels"),
        "SendTestNotification": ("post", "/v1/channels/{channel_id}:test"),
        "ListDeliveries": ("get", "/v1/deliveries"),
    },
    "tastyplat.portfolio.v1.PortfolioService": {
        "GetPortfolio": ("get", "/v1/portfolios/{account_number}"),
        "GetPortfolioGreeks": ("get", "/v1/portfolios/{account_number}/greeks"),
        "GetProfitAndLoss": ("get", "/v1/portfolios/{account_number}/pnl"),
        "SetRiskLimits": ("put", "/v1/portfolios/{account_number}/riskLimits"),
        "RunScenario": ("post", "/v1/portfolios/{account_number}:runScenario"),
    },
    "tastyplat.reporting.v1.ReportingService": {
        "CreateReport": ("post", "/v1/reports", True),
        "AnalyzeTransactions": ("post", "/v1/accounts/{account_number}/transactions:analyze"),
    },
}

# RPCs the later issues (5-8) ask for beyond the table, declared now. Adding an RPC is not breaking, but it
# is a contract change, so it is listed here too.
LATER_ISSUES: dict[str, dict[str, tuple[str, str] | tuple[str, str, bool]]] = {
    "tastyplat.user.v1.UserService": {
        "ListUsers": ("get", "/v1/users"),
        "DeleteUser": ("delete", "/v1/users/{user_id}"),
        "UpdateUserRoles": ("put", "/v1/users/{user_id}/roles"),
        "SendVerificationCode": ("post", "/v1/users/{user_id}/contacts:sendCode"),
        "VerifyContact": ("post", "/v1/users/{user_id}/contacts:verify"),
        "RequestPasswordReset": ("post", "/v1/auth:requestPasswordReset"),
        "ResetPassword": ("post", "/v1/auth:resetPassword"),
        "GetJwks": ("get", "/.well-known/jwks.json"),
    },
    "tastyplat.broker.v1.BrokerService": {
        "GetMarketMetrics": ("get", "/v1/marketMetrics"),
        "DeleteBrokerLink": ("delete", "/v1/brokerLinks/{broker_link_id}"),
    },
    "tastyplat.deltamonitor.v1.DeltaMonitorService": {
        "GetWatch": ("get", "/v1/watches/{watch_id}"),
    },
    "tastyplat.notification.v1.NotificationService": {
        "ListChannels": ("get", "/v1/channels"),
        "DeleteChannel": ("delete", "/v1/channels/{channel_id}"),
    },
    "tastyplat.portfolio.v1.PortfolioService": {
        "GetRiskLimits": ("get", "/v1/portfolios/{account_number}/riskLimits"),
        "ListClosedTrades": ("get", "/v1/portfolios/{account_number}/closedTrades"),
        "ListRiskAlerts": ("get", "/v1/portfolios/{account_number}/riskAlerts"),
        "GetPortfolioHistory": ("get", "/v1/portfolios/{account_number}/history"),
    },
}


def _full_contract() -> dict[str, dict[str, tuple[str, str] | tuple[str, str, bool]]]:
    merged = {svc: dict(rpcs) for svc, rpcs in ISSUE_TABLE.items()}
    for svc, rpcs in LATER_ISSUES.items():
        merged[svc].update(rpcs)
    return merged


FULL_CONTRACT = _full_contract()
ALL_RPCS = [(svc, rpc) for svc, rpcs in FULL_CONTRACT.items() for rpc in rpcs]
TABLE_RPCS = [(svc, rpc) for svc, rpcs in ISSUE_TABLE.items() for rpc in rpcs]
# The one RPC whose response is not <Rpc>Response: a file download through the REST gateway, which needs
# google.api.HttpBody (its buf lint exception is on the RPC).
HTTP_BODY_RPCS = {("tastyplat.reporting.v1.ReportingService", "CreateReport")}
# RPCs that create something and so take an idempotency key.
CREATE_RPCS = [(svc, rpc) for svc, rpc in ALL_RPCS if rpc.startswith("Create")] + [
    ("tastyplat.broker.v1.BrokerService", "LinkAccount"),
    ("tastyplat.notification.v1.NotificationService", "RegisterChannel"),
]
GRPC_CODES = {
    "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
    "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
}


def _method(contracts: Contracts, service: str, rpc: str):
    return next(m for m in contracts.services[service].method if m.name == rpc)


def _http_rule(method) -> http_pb2.HttpRule:
    assert method.options.HasExtension(annotations_pb2.http), f"{method.name} has no google.api.http option"
    return method.options.Extensions[annotations_pb2.http]


def _verb_and_path(rule: http_pb2.HttpRule) -> tuple[str, str]:
    verb = rule.WhichOneof("pattern")
    assert verb is not None and verb != "custom", f"unexpected HTTP pattern {rule}"
    return verb, getattr(rule, verb)


@pytest.mark.parametrize("service", sorted(ISSUE_TABLE))
def test_service_is_in_the_build_descriptor_set_with_the_contract_rpcs(build_contracts: Contracts, service: str) -> None:
    assert service in build_contracts.services, f"{service} missing from the build's descriptor set"
    names = {m.name for m in build_contracts.services[service].method}
    assert names == set(FULL_CONTRACT[service])


@pytest.mark.parametrize("service", sorted(ISSUE_TABLE))
def test_service_in_proto_has_exactly_the_contract_rpcs(contracts: Contracts, service: str) -> None:
    names = {m.name for m in contracts.services[service].method}
    assert set(ISSUE_TABLE[service]) <= names, f"missing table RPCs: {set(ISSUE_TABLE[service]) - names}"
    assert names == set(FULL_CONTRACT[service]), f"undeclared RPCs: {names - set(FULL_CONTRACT[service])}"


def test_no_service_outside_the_table(contracts: Contracts) -> None:
    assert {s for s in contracts.services if s.startswith("tastyplat.")} == set(ISSUE_TABLE)


def test_build_descriptor_set_is_up_to_date_with_proto(contracts: Contracts, build_contracts: Contracts) -> None:
    for name, source in contracts.files.items():
        if not name.startswith("tastyplat/"):
            continue
        built = build_contracts.files.get(name)
        assert built is not None, f"{name} missing from the build's descriptor set; regenerate"
        source_copy, built_copy = type(source)(), type(built)()
        source_copy.CopyFrom(source)
        built_copy.CopyFrom(built)
        source_copy.ClearField("source_code_info")
        built_copy.ClearField("source_code_info")
        assert source_copy == built_copy, f"{name} changed since the last build; run python -m build_support.protos"


@pytest.mark.parametrize(("service", "rpc"), ALL_RPCS)
def test_rpc_has_the_contract_http_rule(contracts: Contracts, service: str, rpc: str) -> None:
    expected = FULL_CONTRACT[service][rpc]
    rule = _http_rule(_method(contracts, service, rpc))
    assert _verb_and_path(rule) == (expected[0], expected[1])
    assert not rule.additional_bindings


@pytest.mark.parametrize(("service", "rpc"), ALL_RPCS)
def test_rpc_body_rule_follows_the_verb(contracts: Contracts, service: str, rpc: str) -> None:
    verb, _ = _verb_and_path(_http_rule(_method(contracts, service, rpc)))
    body = _http_rule(_method(contracts, service, rpc)).body
    assert body == ("*" if verb in ("post", "put", "patch") else "")


@pytest.mark.parametrize(("service", "rpc"), ALL_RPCS)
def test_rpc_path_parameters_are_top_level_request_fields(contracts: Contracts, service: str, rpc: str) -> None:
    method = _method(contracts, service, rpc)
    _, path = _verb_and_path(_http_rule(method))
    request = contracts.messages[method.input_type.lstrip(".")]
    fields = {f.name: f for f in request.field}
    for param in re.findall(r"\{([^}=]+)\}", path):
        assert param in fields, f"{rpc}: path parameter {param} is not a field of {request.name}"
        assert fields[param].type == fields[param].TYPE_STRING


@pytest.mark.parametrize(("service", "rpc"), ALL_RPCS)
def test_rpc_streaming_shape_matches_the_contract(contracts: Contracts, service: str, rpc: str) -> None:
    method = _method(contracts, service, rpc)
    is_stream = len(FULL_CONTRACT[service][rpc]) == 3
    assert not method.client_streaming
    assert method.server_streaming == is_stream


@pytest.mark.parametrize(("service", "rpc"), ALL_RPCS)
def test_rpc_has_its_own_request_and_response(contracts: Contracts, service: str, rpc: str) -> None:
    method = _method(contracts, service, rpc)
    package = service.rsplit(".", 1)[0]
    assert method.input_type == f".{package}.{rpc}Request"
    if (service, rpc) in HTTP_BODY_RPCS:
        assert method.output_type == ".google.api.HttpBody"
    else:
        assert method.output_type == f".{package}.{rpc}Response"


def test_no_rpc_uses_empty(contracts: Contracts) -> None:
    for f in contracts.own_files():
        assert "google/protobuf/empty.proto" not in f.dependency, f.name


@pytest.mark.parametrize(("service", "rpc"), ALL_RPCS)
def test_rpc_comment_names_its_codes_and_reasons(contracts: Contracts, service: str, rpc: str) -> None:
    comment = contracts.method_comment(service, rpc)
    assert "Errors:" in comment, f"{rpc}: comment has no Errors section"
    errors = comment.split("Errors:", 1)[1]
    codes = set(re.findall(r"\b([A-Z][A-Z_]+)\b", errors)) & GRPC_CODES
    reasons = re.findall(r"reasons? ([A-Z][A-Z0-9_]*)", errors)
    if rpc == "GetJwks":
        assert "none besides the common ones" in errors
        return
    assert codes, f"{rpc}: no gRPC code named"
    assert reasons, f"{rpc}: no ErrorInfo.reason named"
    assert all(re.fullmatch(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)*", r) for r in reasons)


@pytest.mark.parametrize("service", sorted(ISSUE_TABLE))
def test_service_comment_names_the_error_domain(contracts: Contracts, service: str) -> None:
    file_name, path = contracts.service_paths[service]
    short = service.split(".")[1]
    assert f'domain "{short}.tastyplat"' in contracts.comments[(file_name, path)]


@pytest.mark.parametrize(("service", "rpc"), CREATE_RPCS)
def test_create_rpc_takes_an_idempotency_key(contracts: Contracts, service: str, rpc: str) -> None:
    request = contracts.messages[_method(contracts, service, rpc).input_type.lstrip(".")]
    field = next((f for f in request.field if f.name == "request_id"), None)
    assert field is not None and field.type == field.TYPE_STRING
    assert "idempotency" in contracts.field_comment(f"{service.rsplit('.', 1)[0]}.{rpc}Request", "request_id")


def test_every_create_rpc_of_the_table_is_covered() -> None:
    assert {rpc for _, rpc in TABLE_RPCS if rpc.startswith("Create")} == {"CreateUser", "CreateWatch", "CreateReport"}


@pytest.mark.parametrize(("service", "rpc"), [(s, r) for s, r in ALL_RPCS if r.startswith("List")])
def test_list_rpc_pages_with_tokens(contracts: Contracts, service: str, rpc: str) -> None:
    package = service.rsplit(".", 1)[0]
    request = {f.name: f for f in contracts.messages[f"{package}.{rpc}Request"].field}
    response = {f.name: f for f in contracts.messages[f"{package}.{rpc}Response"].field}
    assert request["page_size"].type == request["page_size"].TYPE_INT32
    assert request["page_token"].type == request["page_token"].TYPE_STRING
    assert response["next_page_token"].type == response["next_page_token"].TYPE_STRING


@pytest.mark.parametrize(
    ("service", "rpc"),
    [(s, r) for s, r in ALL_RPCS if r.startswith("Stream")],
)
def test_stream_response_is_a_oneof_with_a_heartbeat(contracts: Contracts, service: str, rpc: str) -> None:
    response = contracts.messages[_method(contracts, service, rpc).output_type.lstrip(".")]
    assert len(response.oneof_decl) == 1
    in_oneof = [f for f in response.field if f.HasField("oneof_index")]
    assert len(in_oneof) == len(response.field), "every field of a stream response is in its oneof"
    types = {f.type_name for f in in_oneof}
    assert ".tastyplat.type.v1.Heartbeat" in types
    assert ".tastyplat.type.v1.StreamEnd" in types


def test_stream_request_symbols_are_repeated_strings(contracts: Contracts) -> None:
    for name in ("StreamQuotesRequest", "StreamGreeksRequest"):
        field = next(f for f in contracts.messages[f"tastyplat.marketdata.v1.{name}"].field if f.name == "symbols")
        assert field.label == field.LABEL_REPEATED and field.type == field.TYPE_STRING


def test_update_watch_takes_a_field_mask(contracts: Contracts) -> None:
    fields = {f.name: f for f in contracts.messages["tastyplat.deltamonitor.v1.UpdateWatchRequest"].field}
    assert fields["update_mask"].type_name == ".google.protobuf.FieldMask"
    assert fields["watch"].type_name == ".tastyplat.deltamonitor.v1.Watch"
