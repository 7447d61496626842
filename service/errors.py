"""Domain errors. Every layer raises these; only service/api/errors.py maps them to gRPC.

Each carries a stable machine-readable `reason` (UPPER_SNAKE, sent as google.rpc.ErrorInfo)
and a human message that never contains SQL, paths or stack traces.
"""

from __future__ import annotations

from datetime import datetime


class DomainError(Exception):
    reason = "DOMAIN_ERROR"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason


class InvalidArgument(DomainError):
    """The request is malformed; `field` is the path of the field at fault: lines[2].quantity."""

    reason = "INVALID_ARGUMENT"

    def __init__(self, field: str, message: str, *, reason: str | None = None) -> None:
        super().__init__(f"{field}: {message}", reason=reason)
        self.field = field
        self.description = message


class NotFound(DomainError):
    reason = "NOT_FOUND"


class FailedPrecondition(DomainError):
    """The request is valid but the state forbids it now (limit used up, change not allowed
    yet, acceptance off). `next_allowed` says when a refused change becomes possible."""

    reason = "FAILED_PRECONDITION"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        next_allowed: datetime | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.next_allowed = next_allowed


class AlreadyExists(DomainError):
    """An idempotency key (receipt id, refund id, import id) reused with other content."""

    reason = "ALREADY_EXISTS"


class Unauthenticated(DomainError):
    reason = "UNAUTHENTICATED"


class PermissionDenied(DomainError):
    reason = "PERMISSION_DENIED"


class TooManyRequests(DomainError):
    """A caller over one of its rate limits; it may retry after `retry_after_s`."""

    reason = "RATE_LIMITED"

    def __init__(self, message: str, *, reason: str | None = None, retry_after_s: float) -> None:
        super().__init__(message, reason=reason)
        self.retry_after_s = retry_after_s


class Unavailable(DomainError):
    """The store cannot be reached for a write; the caller may retry with the same id."""

    reason = "STORE_UNAVAILABLE"


class DeadlineExceeded(DomainError):
    """The caller's deadline passed; what the call was doing was rolled back."""

    reason = "DEADLINE_EXCEEDED"
