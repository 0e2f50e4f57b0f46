"""The one table from domain error categories to gRPC codes, and the conversion to ``google.rpc.Status``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn, cast

import grpc
import grpc.aio
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2  # type: ignore[import-untyped]
from grpc_status import rpc_status

from services.platform import errors

__all__ = [
    "REQUEST_ID_METADATA_KEY",
    "STATUS_CODE_BY_CATEGORY",
    "RichError",
    "abort_with_error",
    "decode_error",
    "error_domain",
    "internal_message",
    "status_code_for",
    "to_grpc_status",
    "to_rpc_status",
]

REQUEST_ID_METADATA_KEY = "x-request-id"

# The one table. Lookup walks the exception's MRO, so a leaf like AccountNotFound(BrokerError, NotFound)
# gets NOT_FOUND; a DomainError with no category here is a programming error and becomes INTERNAL.
STATUS_CODE_BY_CATEGORY: Mapping[type[errors.DomainError], grpc.StatusCode] = {
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

_INTERNAL_REASON = "INTERNAL"
_FALLBACK_DOMAIN = "tastyplat"
_METHOD = re.compile(r"^/tastyplat\.([a-z][a-z0-9_]*)\.v[0-9]+[a-z0-9]*\.[A-Za-z0-9_]+/[A-Za-z0-9_]+$")


def status_code_for(exc: BaseException) -> grpc.StatusCode | None:
    """Return the gRPC code the table gives ``exc``, or None when it is not a mapped domain error."""
    if not isinstance(exc, errors.DomainError):
        return None
    for klass in type(exc).__mro__:
        code = STATUS_CODE_BY_CATEGORY.get(klass)
        if code is not None:
            return code
    return None


def error_domain(method: str) -> str:
    """Return the ``ErrorInfo.domain`` for a full method name.

    Args:
        method: ``/tastyplat.<svc>.v1.<Service>/<Rpc>``.

    Returns:
        ``"<svc>.tastyplat"``, or ``"tastyplat"`` for a method outside the ``tastyplat.*`` packages.
    """
    match = _METHOD.match(method)
    return f"{match.group(1)}.tastyplat" if match else _FALLBACK_DOMAIN


def internal_message(request_id: str) -> str:
    """Return the generic message an unmapped exception is answered with."""
    return f"internal error; request id {request_id}"


def _pack(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def to_rpc_status(exc: BaseException, *, method: str, request_id: str) -> status_pb2.Status:
    """Convert an exception raised by a handler into the ``google.rpc.Status`` sent to the client.

    A mapped domain error keeps its message and gets ``ErrorInfo`` (its reason, the method's domain, its
    metadata), ``BadRequest`` for INVALID_ARGUMENT with field violations, ``RetryInfo`` when it says when to
    retry, and ``RequestInfo``. Anything else becomes INTERNAL with a generic message naming only the request
    id: no exception text, class or traceback reaches the client.

    Args:
        exc: What the handler raised.
        method: Full method name, for the ``ErrorInfo.domain``.
        request_id: The call's request id, sent back in ``RequestInfo``.

    Returns:
        The status; its ``code`` is a ``google.rpc.Code`` value.
    """
    domain = error_domain(method)
    request_info = _pack(error_details_pb2.RequestInfo(request_id=request_id))
    code = status_code_for(exc)
    if code is None or not isinstance(exc, errors.DomainError):
        info = error_details_pb2.ErrorInfo(reason=_INTERNAL_REASON, domain=domain)
        return status_pb2.Status(
            code=code_pb2.INTERNAL,
            message=internal_message(request_id),
            details=[_pack(info), request_info],
        )
    details = [
        _pack(error_details_pb2.ErrorInfo(reason=exc.reason, domain=domain, metadata=exc.metadata)),
    ]
    if code is grpc.StatusCode.INVALID_ARGUMENT and exc.field_violations:
        details.append(
            _pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=v.field, description=v.description, reason=v.reason
                        )
                        for v in exc.field_violations
                    ]
                )
            )
        )
    if exc.retry_after is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(round(exc.retry_after * 1e9))
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    details.append(request_info)
    return status_pb2.Status(code=code.value[0], message=exc.message, details=details)


class _Status(grpc.Status):
    def __init__(
        self, code: grpc.StatusCode, details: str, trailing_metadata: tuple[tuple[str, str | bytes], ...]
    ) -> None:
        self.code = code
        self.details = details
        self.trailing_metadata = trailing_metadata


def to_grpc_status(
    status: status_pb2.Status, *, extra_trailing_metadata: tuple[tuple[str, str], ...] = ()
) -> grpc.Status:
    """Wrap a ``google.rpc.Status`` as the ``grpc.Status`` that ``abort_with_status`` takes.

    Args:
        status: The rich status (``grpc-status-details-bin`` in the trailers).
        extra_trailing_metadata: More trailers to send with it (abort replaces any set earlier).
    """
    base = rpc_status.to_status(status)
    return _Status(base.code, base.details, tuple(base.trailing_metadata) + extra_trailing_metadata)


async def abort_with_error(
    context: grpc.aio.ServicerContext[Any, Any],
    exc: BaseException,
    *,
    method: str,
    request_id: str,
    extra_trailing_metadata: tuple[tuple[str, str], ...] = (),
) -> NoReturn:
    """End the call with the status ``exc`` maps to.

    Raises:
        grpc.aio.AbortError: Always (that is how an aio handler ends a call with a status).
    """
    status = to_rpc_status(exc, method=method, request_id=request_id)
    await context.abort_with_status(to_grpc_status(status, extra_trailing_metadata=extra_trailing_metadata))
    raise AssertionError("abort_with_status returned")  # pragma: no cover  # aio always raises


@dataclass(frozen=True)
class RichError:
    """A failed call's status as a client sees it, with the ``google.rpc`` details unpacked.

    Attributes:
        code: The gRPC status code.
        message: The status message.
        reason: ``ErrorInfo.reason`` ("" when the status carries no ErrorInfo).
        domain: ``ErrorInfo.domain``.
        metadata: ``ErrorInfo.metadata``.
        field_violations: ``BadRequest.field_violations`` as (field, description) pairs.
        retry_after: ``RetryInfo.retry_delay`` in seconds, None when absent.
        request_id: ``RequestInfo.request_id``.
    """

    code: grpc.StatusCode
    message: str
    reason: str = ""
    domain: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    field_violations: list[tuple[str, str]] = field(default_factory=list)
    retry_after: float | None = None
    request_id: str = ""


def decode_error(err: grpc.aio.AioRpcError) -> RichError:
    """Unpack a failed call's ``google.rpc.Status`` (via ``grpc_status.rpc_status.from_call``).

    Args:
        err: The error a stub call raised.

    Returns:
        The code, message and unpacked details; only code and message when the server sent no details.
    """
    code = err.code()
    message = err.details() or ""
    # AioRpcError answers code(), details() and trailing_metadata() synchronously, as from_call expects.
    status = rpc_status.from_call(cast(grpc.Call, err))
    if status is None:
        return RichError(code=code, message=message)
    values: dict[str, Any] = {}
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            values.update(reason=info.reason, domain=info.domain, metadata=dict(info.metadata))
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            values["field_violations"] = [(v.field, v.description) for v in bad.field_violations]
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            values["retry_after"] = retry.retry_delay.ToNanoseconds() / 1e9
        elif detail.Is(error_details_pb2.RequestInfo.DESCRIPTOR):
            req = error_details_pb2.RequestInfo()
            detail.Unpack(req)
            values["request_id"] = req.request_id
    return RichError(code=code, message=message, **values)
