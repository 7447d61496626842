"""Every domain error maps to one status with an ErrorInfo reason; nothing else leaks."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import pytest
from google.rpc import error_details_pb2
from sqlalchemy.exc import DataError, OperationalError

from service import errors
from service.api.errors import STATUS_TABLE, status_for


def _details(status: grpc.Status) -> list[object]:
    from google.rpc import status_pb2

    raw = dict(status.trailing_metadata)["grpc-status-details-bin"]
    parsed = status_pb2.Status.FromString(raw)
    found: list[object] = []
    for detail in parsed.details:
        for cls in (
            error_details_pb2.ErrorInfo,
            error_details_pb2.BadRequest,
            error_details_pb2.PreconditionFailure,
            error_details_pb2.RetryInfo,
        ):
            if detail.Is(cls.DESCRIPTOR):
                message = cls()
                detail.Unpack(message)
                found.append(message)
    return found


@pytest.mark.parametrize(
    "error",
    [
        errors.InvalidArgument("lines[0].quantity", "must be positive"),
        errors.NotFound("no member has this card", reason="CARD_NOT_FOUND"),
        errors.FailedPrecondition(
            "change not allowed yet",
            reason="CHANGE_NOT_ALLOWED",
            next_allowed=datetime(2026, 12, 1, tzinfo=UTC),
        ),
        errors.AlreadyExists("receipt id used with other content"),
        errors.Unauthenticated("missing credential"),
        errors.PermissionDenied("role REGISTER may not call this"),
        errors.Unavailable("store down"),
    ],
)
def test_each_domain_error_gets_its_code_and_an_error_info_reason(
    error: errors.DomainError,
) -> None:
    status = status_for(error, "/loyalty.v1.X/Y")
    assert status.code == STATUS_TABLE[type(error)]
    infos = [d for d in _details(status) if isinstance(d, error_details_pb2.ErrorInfo)]
    assert [i.reason for i in infos] == [error.reason]


def test_invalid_argument_names_the_field_in_bad_request_details() -> None:
    status = status_for(errors.InvalidArgument("lines[2].sku", "must not be empty"), "/m")
    (bad,) = [d for d in _details(status) if isinstance(d, error_details_pb2.BadRequest)]
    assert bad.field_violations[0].field == "lines[2].sku"


def test_a_refused_change_says_when_the_next_change_is_allowed() -> None:
    when = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    status = status_for(errors.FailedPrecondition("not yet", next_allowed=when), "/m")
    (info,) = [d for d in _details(status) if isinstance(d, error_details_pb2.ErrorInfo)]
    assert info.metadata["next_allowed"] == when.isoformat()


def test_a_database_that_cannot_be_reached_is_unavailable_without_sql_in_the_message() -> None:
    exc = OperationalError("SELECT secret FROM credentials", {}, Exception("connection refused"))
    status = status_for(exc, "/m")
    assert status.code == grpc.StatusCode.UNAVAILABLE
    assert "SELECT" not in status.details


def test_an_unexpected_error_is_internal_and_says_nothing_of_its_cause() -> None:
    status = status_for(ValueError("/etc/passwd line 3"), "/m")
    assert status.code == grpc.StatusCode.INTERNAL
    assert status.details == "internal error"


def test_a_value_the_store_cannot_hold_is_invalid_argument_without_sql() -> None:
    exc = DataError("INSERT INTO products (name) VALUES (%s)", {}, Exception("value too long"))
    status = status_for(exc, "/m")
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "INSERT" not in status.details
