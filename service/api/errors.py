"""The one table from domain errors to gRPC status codes, with google.rpc details.

Handlers raise service.errors.DomainError; `status_for` turns any exception into a status.
Nothing but DomainError text reaches a caller: other exceptions become INTERNAL (or
UNAVAILABLE for a database that cannot be reached) with a fixed message.
"""

from __future__ import annotations

import logging

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from service import errors
from service.deadline import remaining_seconds
from service.limits import MESSAGE, shorten

log = logging.getLogger(__name__)

DOMAIN = "loyalty.v1"

STATUS_TABLE: dict[type[errors.DomainError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.TooManyRequests: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def _code_of(error: errors.DomainError) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        code = STATUS_TABLE.get(cls)
        if code is not None:
            return code
    return grpc.StatusCode.INTERNAL


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def domain_status(error: errors.DomainError) -> grpc.Status:
    """The status of a domain error. Its texts are cut to MESSAGE characters: the status
    travels in the trailer, and one past its limit turns into RESOURCE_EXHAUSTED."""
    code = _code_of(error)
    message = shorten(error.message, MESSAGE)
    metadata: dict[str, str] = {}
    if isinstance(error, errors.FailedPrecondition) and error.next_allowed is not None:
        metadata["next_allowed"] = error.next_allowed.isoformat()
    details = [
        _pack(error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=metadata))
    ]
    if isinstance(error, errors.InvalidArgument):
        bad_request = error_details_pb2.BadRequest()
        violation = bad_request.field_violations.add()
        violation.field = error.field
        violation.description = shorten(error.description, MESSAGE)
        details.append(_pack(bad_request))
    if isinstance(error, errors.FailedPrecondition):
        failure = error_details_pb2.PreconditionFailure()
        entry = failure.violations.add()
        entry.type = error.reason
        entry.description = message
        if error.next_allowed is not None:
            entry.subject = f"next_allowed={error.next_allowed.isoformat()}"
        details.append(_pack(failure))
    if isinstance(error, errors.Unavailable):
        details.append(_pack(error_details_pb2.RetryInfo()))
    if isinstance(error, errors.TooManyRequests):
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromMilliseconds(max(1, round(error.retry_after_s * 1000)))
        details.append(_pack(retry))
    return rpc_status.to_status(
        status_pb2.Status(code=code.value[0], message=message, details=details)
    )


def _plain_status(code: grpc.StatusCode, message: str, reason: str) -> grpc.Status:
    info = error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN)
    return rpc_status.to_status(
        status_pb2.Status(code=code.value[0], message=message, details=[_pack(info)])
    )


def streams_exhausted_status(total: int, per_connection: int) -> grpc.Status:
    """A stream beyond the server's stream budget (service/api/interceptors.py)."""
    info = error_details_pb2.ErrorInfo(reason="TOO_MANY_STREAMS", domain=DOMAIN)
    message = (
        f"too many open streams (at most {total}, {per_connection} per connection);"
        " close one or retry later"
    )
    details = [_pack(info), _pack(error_details_pb2.RetryInfo())]
    return rpc_status.to_status(
        status_pb2.Status(
            code=grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], message=message, details=details
        )
    )


def store_busy_status(budget: int) -> grpc.Status:
    """A store-bound call beyond its budget: the store is slow; retry with the same id."""
    info = error_details_pb2.ErrorInfo(reason="STORE_BUSY", domain=DOMAIN)
    retry = error_details_pb2.RetryInfo()
    retry.retry_delay.FromMilliseconds(200)
    message = f"the store is busy ({budget} calls waiting on it); retry with the same id"
    return rpc_status.to_status(
        status_pb2.Status(
            code=grpc.StatusCode.UNAVAILABLE.value[0],
            message=message,
            details=[_pack(info), _pack(retry)],
        )
    )


def _deadline_passed() -> bool:
    left = remaining_seconds()
    return left is not None and left <= 0


def status_for(exc: BaseException, method: str) -> grpc.Status:
    """The status a caller gets for an exception raised by a handler."""
    if isinstance(exc, errors.DomainError):
        return domain_status(exc)
    if isinstance(exc, DataError):  # a value the store cannot hold: too long, out of range
        return domain_status(
            errors.InvalidArgument("request", "a value is too long or out of range")
        )
    if isinstance(exc, OperationalError) and _deadline_passed():
        return domain_status(errors.DeadlineExceeded("the call's deadline passed; rolled back"))
    if isinstance(exc, OperationalError | PoolTimeout) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    ):
        log.warning("store unavailable in %s: %s", method, type(exc).__name__)
        return _plain_status(
            grpc.StatusCode.UNAVAILABLE,
            "the store is unavailable; retry with the same id",
            errors.Unavailable.reason,
        )
    log.exception("unexpected error in %s", method)
    return _plain_status(grpc.StatusCode.INTERNAL, "internal error", "INTERNAL")
