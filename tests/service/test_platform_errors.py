"""Domain error categories and the one mapping table, without a server."""

from __future__ import annotations

import ast
from pathlib import Path

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2

from services.platform import errors
from services.platform.error_mapping import (
    STATUS_CODE_BY_CATEGORY,
    error_domain,
    status_code_for,
    to_rpc_status,
)

CATEGORIES = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.Aborted: grpc.StatusCode.ABORTED,
    errors.NotImplementedYet: grpc.StatusCode.UNIMPLEMENTED,
}


class BrokerError(errors.DomainError):
    pass


class AccountNotFound(BrokerError, errors.NotFound):
    reason = "ACCOUNT_NOT_FOUND"


def test_table_maps_every_category_to_its_code() -> None:
    assert dict(STATUS_CODE_BY_CATEGORY) == CATEGORIES


def test_leaf_with_service_base_gets_its_category_code() -> None:
    assert status_code_for(AccountNotFound("account 5WT0001 not found")) is grpc.StatusCode.NOT_FOUND


def test_plain_exceptions_and_uncategorised_domain_errors_are_unmapped() -> None:
    assert status_code_for(ValueError("x")) is None
    assert status_code_for(BrokerError("x")) is None


def test_errors_module_does_not_import_grpc() -> None:
    source = Path(errors.__file__).read_text()
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])
    }
    assert not imported & {"grpc", "google", "grpc_status"}


@pytest.mark.parametrize(
    ("method", "domain"),
    [
        ("/tastyplat.calculator.v1.CalculatorService/ComputeGreeks", "calculator.tastyplat"),
        ("/tastyplat.deltamonitor.v1.DeltaMonitorService/StreamAlerts", "deltamonitor.tastyplat"),
        ("/grpc.health.v1.Health/Check", "tastyplat"),
        ("garbage", "tastyplat"),
    ],
)
def test_error_domain_comes_from_the_method_package(method: str, domain: str) -> None:
    assert error_domain(method) == domain


def test_reason_class_attribute_must_be_upper_snake() -> None:
    with pytest.raises(TypeError, match="UPPER_SNAKE"):

        class Bad(errors.NotFound):
            reason = "accountNotFound"


def test_reason_instance_override_is_validated_and_used() -> None:
    err = AccountNotFound("gone", reason="ACCOUNT_CLOSED")
    assert err.reason == "ACCOUNT_CLOSED" and AccountNotFound.reason == "ACCOUNT_NOT_FOUND"
    with pytest.raises(ValueError, match="UPPER_SNAKE"):
        AccountNotFound("gone", reason="closed")


def test_status_of_invalid_argument_has_error_info_bad_request_and_request_info() -> None:
    err = errors.InvalidArgument(
        "two bad fields",
        reason="LEGS_INVALID",
        metadata={"count": 2},  # type: ignore[dict-item]  # values are stringified
        field_violations=[errors.FieldViolation("legs[0].strike", "must be > 0"), errors.FieldViolation("a", "b")],
    )
    status = to_rpc_status(err, method="/tastyplat.portfolio.v1.PortfolioService/RunScenario", request_id="r1")
    assert (status.code, status.message) == (code_pb2.INVALID_ARGUMENT, "two bad fields")
    info, bad, req = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest(), error_details_pb2.RequestInfo()
    assert status.details[0].Unpack(info) and status.details[1].Unpack(bad) and status.details[2].Unpack(req)
    assert (info.reason, info.domain, dict(info.metadata)) == ("LEGS_INVALID", "portfolio.tastyplat", {"count": "2"})
    assert [v.field for v in bad.field_violations] == ["legs[0].strike", "a"]
    assert req.request_id == "r1"


def test_retry_after_becomes_retry_info() -> None:
    err = errors.ResourceExhausted("rate budget spent", retry_after=2.25)
    status = to_rpc_status(err, method="/tastyplat.broker.v1.BrokerService/ListAccounts", request_id="r")
    retry = error_details_pb2.RetryInfo()
    assert any(d.Unpack(retry) for d in status.details if d.Is(retry.DESCRIPTOR))
    assert retry.retry_delay.ToNanoseconds() == 2_250_000_000


def test_unmapped_status_is_generic() -> None:
    status = to_rpc_status(KeyError("secret_column"), method="/tastyplat.user.v1.UserService/Login", request_id="r9")
    assert (status.code, status.message) == (code_pb2.INTERNAL, "internal error; request id r9")
    assert b"secret_column" not in status.SerializeToString()
    assert b"KeyError" not in status.SerializeToString()


def test_not_implemented_yet_names_the_issue() -> None:
    err = errors.NotImplementedYet(6, "Live data: the Tastytrade integration")
    assert str(err) == "not implemented yet: issue #6 (Live data: the Tastytrade integration)"
    assert err.metadata == {"issue": "6"}


def test_negative_retry_after_is_refused() -> None:
    with pytest.raises(ValueError, match="retry_after"):
        errors.Unavailable("down", retry_after=-1)
