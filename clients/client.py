"""`LoyaltyClient`: typed calls to the loyalty service over the generated stubs.

    with LoyaltyClient("127.0.0.1:50051", token) as client:
        calculated = client.calculate(receipt)
        paid = client.confirm(receipt, calculated.confirmation_token)

Every call has a deadline: `timeout` is the most a call may take in all, retries and backoff
included (default 5 s, per call or per client). Each attempt gets what is left of it, or
`attempt_timeout` when that is smaller.

Retries (RETRYABLE below) only where repeating a call cannot do harm:

- UNAVAILABLE, for the methods the service config retries (clients/service_config.json):
  previews, reads, Confirm and Refund (idempotent by their ids) and the member's selections
  (sending the current selection again changes nothing, spec §7); not the operator's edit,
  each of which is audited. The server was not reached, or it says "retry with the same id"
  (the store was down for a write).
- DEADLINE_EXCEEDED of one attempt, for Calculate and the reads (previews, they change
  nothing) and for Confirm and Refund (idempotent: the same receipt id / refund id returns the
  stored result with `replayed` set). Never for the member's selections. An attempt only ends
  in DEADLINE_EXCEEDED before the call's own deadline when `attempt_timeout` is set: by
  default an attempt has the whole remaining time, so a slow server is not hit a second time
  with the same work once the caller's time is spent.
- Nothing else: INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION, ALREADY_EXISTS,
  UNAUTHENTICATED and PERMISSION_DENIED answer the same however often they are asked.

Backoff between attempts is exponential and bounded, with jitter (`RetryPolicy.delay`), and
never runs past the call's deadline; a `google.rpc.RetryInfo` delay from the server is honoured
as a minimum.

Two layers, one policy. The channel carries the published service config
(clients/service_config.json, the same file registers in Java, C# or Go load): gRPC itself
repeats an UNAVAILABLE attempt of the idempotent methods a few times within ~0.4 s, throttled
when most calls fail. The loop here sits above it for longer outages (a server restarting),
within the call's deadline, and for attempts cut off by `attempt_timeout`. Which methods are
retried at all comes from that file, so the two cannot disagree.

Credentials: `authorization: Bearer <token>` on every call. TLS: `TlsConfig` (root
certificate, and a client certificate and key for mutual TLS).

Till sessions (docs/till_sessions.md): with `session_target`, `till_session(receipt)` opens
a `TillSession` that streams scans and voids and gets the receipt calculated after each;
`finish()` gives the token for `confirm`.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, cast

import grpc
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from loyalty.v1 import (
    common_pb2,
    coupons_pb2,
    coupons_pb2_grpc,
    member_pb2,
    member_pb2_grpc,
    receipt_pb2,
    receipt_pb2_grpc,
    till_session_pb2,
    till_session_pb2_grpc,
)

DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_TIMEOUT_S = 5.0
TOKEN_ENV = "LOYALTY_TOKEN"
TOKEN_FILE_ENV = "LOYALTY_TOKEN_FILE"

_U = grpc.StatusCode.UNAVAILABLE
_D = grpc.StatusCode.DEADLINE_EXCEEDED

# The retry policy and timeouts of every language's client (docs/clients.md): gRPC's service
# config, which a channel applies by itself. This library puts it on its channels too.
SERVICE_CONFIG_PATH = Path(__file__).with_name("service_config.json")
SERVICE_CONFIG_JSON = SERVICE_CONFIG_PATH.read_text(encoding="utf-8")


def _retried_by_service_config(config: Mapping[str, Any]) -> dict[str, frozenset[grpc.StatusCode]]:
    """Method name -> the status codes the service config's retryPolicy repeats it after."""
    found: dict[str, frozenset[grpc.StatusCode]] = {}
    for method_config in config["methodConfig"]:
        policy = method_config.get("retryPolicy")
        if policy is None:
            continue
        codes = frozenset(grpc.StatusCode[c] for c in policy["retryableStatusCodes"])
        for name in method_config["name"]:
            found[name["method"]] = codes
    return found


# Beyond the service config, which only retries UNAVAILABLE: an attempt cut off by
# `attempt_timeout` is repeated for the previews and the calls idempotent by their id.
_REPEATED_AFTER_ATTEMPT_TIMEOUT = (
    "Calculate", "Confirm", "Refund", "GetMemberOffers", "ListFavoriteProductsAudit", "Check",
)  # fmt: skip

# Method -> status codes after which the same request may be sent again (see the module doc).
RETRYABLE: dict[str, frozenset[grpc.StatusCode]] = {
    name: codes | ({_D} if name in _REPEATED_AFTER_ATTEMPT_TIMEOUT else frozenset())
    for name, codes in _retried_by_service_config(json.loads(SERVICE_CONFIG_JSON)).items()
}

# Reconnect quickly after a server restart (the gRPC default waits a second, then longer).
CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.max_receive_message_length", 4 * 1024 * 1024),
    ("grpc.max_send_message_length", 4 * 1024 * 1024),
)

Response = TypeVar("Response")


# --- retries -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """At most `max_attempts` attempts; before attempt n+1 a pause drawn uniformly from
    [cap/2, cap] where cap = min(max_backoff_s, initial_backoff_s x multiplier^(n-1))
    ("equal jitter": registers that lost the server together do not come back together, and
    no pause is ever zero or above the cap)."""

    max_attempts: int = 4
    initial_backoff_s: float = 0.05
    max_backoff_s: float = 1.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if not 0 < self.initial_backoff_s <= self.max_backoff_s or self.multiplier < 1:
            raise ValueError("need 0 < initial_backoff_s <= max_backoff_s and multiplier >= 1")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """The pause after failed attempt number `attempt` (1-based)."""
        cap = min(self.max_backoff_s, self.initial_backoff_s * self.multiplier ** (attempt - 1))
        return (rng or random).uniform(cap / 2, cap)


NO_RETRY = RetryPolicy(max_attempts=1)


@dataclass(frozen=True)
class RetryEvent:
    """Told to `on_retry` before each pause."""

    method: str
    attempt: int  # the attempt that failed, 1-based
    code: grpc.StatusCode
    delay_s: float


@dataclass
class CallStats:
    """Per method: calls made, attempts sent, retries, and final failures by status."""

    calls: Counter[str] = field(default_factory=Counter)
    attempts: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)


# --- errors --------------------------------------------------------------------------------------


class LoyaltyError(grpc.RpcError):
    """A call that failed for good: its status, the service's reason (google.rpc.ErrorInfo),
    the fields at fault (BadRequest) and how many attempts were made. It is a grpc.RpcError
    with code() and details(), so code written for plain stubs catches it too."""

    def __init__(
        self,
        method: str,
        code: grpc.StatusCode,
        message: str,
        *,
        reason: str = "",
        fields: Sequence[str] = (),
        metadata: Mapping[str, str] | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(f"{method}: {code.name}: {message}")
        self.method = method
        self.status = code
        self.message = message
        self.reason = reason
        self.fields = tuple(fields)
        self.metadata = dict(metadata or {})
        self.attempts = attempts

    def code(self) -> grpc.StatusCode:
        return self.status

    def details(self) -> str:
        return self.message

    def describe(self) -> str:
        """One line for a person: `NOT_FOUND: no member has this card (CARD_NOT_FOUND)`."""
        text = f"{self.status.name}: {self.message}"
        if self.reason and self.reason != self.status.name:
            text += f" ({self.reason})"
        if self.attempts > 1:
            text += f" after {self.attempts} attempts"
        return text

    @classmethod
    def from_rpc_error(cls, method: str, err: grpc.RpcError, attempts: int) -> LoyaltyError:
        call: Any = err
        code = call.code() if hasattr(call, "code") else grpc.StatusCode.UNKNOWN
        message = (call.details() if hasattr(call, "details") else None) or ""
        reason, fields, metadata = "", [], {}
        for detail in _status_details(err):
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason, metadata = info.reason, dict(info.metadata)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                fields += [v.field for v in bad.field_violations]
        return cls(
            method,
            code,
            message,
            reason=reason,
            fields=fields,
            metadata=metadata,
            attempts=attempts,
        )


def _status_details(err: grpc.RpcError) -> list[Any]:
    try:
        status = rpc_status.from_call(err)  # type: ignore[arg-type]
    except (ValueError, AttributeError):
        return []
    return list(status.details) if status is not None else []


def _server_retry_delay(err: grpc.RpcError) -> float:
    for detail in _status_details(err):
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return float(info.retry_delay.ToTimedelta().total_seconds())
    return 0.0


# --- channel -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsConfig:
    """TLS for the channel. `root_certificates` (PEM) verifies the server (None: the system's
    roots); `certificate_chain` and `private_key` (PEM, both or neither) are this client's
    certificate for mutual TLS; `server_name` overrides the name checked in the server's
    certificate (when the target is an IP address or a tunnel)."""

    root_certificates: bytes | None = None
    certificate_chain: bytes | None = None
    private_key: bytes | None = None
    server_name: str | None = None

    def __post_init__(self) -> None:
        if (self.certificate_chain is None) != (self.private_key is None):
            raise ValueError("a client certificate needs its private key, and the other way")

    @classmethod
    def from_files(
        cls,
        ca: Path | str | None = None,
        cert: Path | str | None = None,
        key: Path | str | None = None,
        server_name: str | None = None,
    ) -> TlsConfig:
        def read(path: Path | str | None) -> bytes | None:
            return Path(path).read_bytes() if path else None

        return cls(read(ca), read(cert), read(key), server_name)

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.root_certificates,
            private_key=self.private_key,
            certificate_chain=self.certificate_chain,
        )

    def options(self) -> tuple[tuple[str, Any], ...]:
        if self.server_name:
            return (("grpc.ssl_target_name_override", self.server_name),)
        return ()


def channel_options(
    tls: TlsConfig | None, *, service_config: str | None = SERVICE_CONFIG_JSON
) -> list[tuple[str, Any]]:
    """Options of a channel to the service: reconnect backoff, message limits, the published
    service config (None: gRPC's defaults, no retries by the channel), TLS name override."""
    config = [] if service_config is None else [("grpc.service_config", service_config)]
    return [*CHANNEL_OPTIONS, *config, *(tls.options() if tls else ())]


def open_channel(target: str, tls: TlsConfig | None = None) -> grpc.Channel:
    """A channel to `target`: plaintext without `tls`, else TLS (mutual with a client cert)."""
    options = channel_options(tls)
    if tls is None:
        return grpc.insecure_channel(target, options=options)
    return grpc.secure_channel(target, tls.credentials(), options=options)


def bearer_metadata(token: str) -> tuple[tuple[str, str], ...]:
    """Call metadata carrying the API credential (none for an empty token)."""
    return (("authorization", f"Bearer {token}"),) if token else ()


def by_card(card_number: str) -> common_pb2.MemberIdentity:
    return common_pb2.MemberIdentity(card_number=card_number)


def by_member_id(member_id: str) -> common_pb2.MemberIdentity:
    return common_pb2.MemberIdentity(member_id=member_id)


# --- the client ----------------------------------------------------------------------------------


class LoyaltyClient:
    """Typed calls with deadlines, safe retries, credentials and TLS; one channel, thread-safe.

    `timeout`: the default deadline of a call in seconds, retries included (each method takes
    its own `timeout=` too). `attempt_timeout`: the most one attempt may take (None: what is
    left of the call's deadline). `on_retry`: called before each pause (for logs and tests).
    """

    def __init__(
        self,
        target: str,
        token: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        tls: TlsConfig | None = None,
        retry: RetryPolicy | None = None,
        attempt_timeout: float | None = None,
        on_retry: Callable[[RetryEvent], None] | None = None,
        channel: grpc.Channel | None = None,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
        session_target: str | None = None,
    ) -> None:
        if timeout <= 0 or (attempt_timeout is not None and attempt_timeout <= 0):
            raise ValueError("timeouts must be positive")
        self.target = target
        self.timeout = timeout
        self.attempt_timeout = attempt_timeout
        self.retry = retry or RetryPolicy()
        self.stats = CallStats()
        self._metadata = bearer_metadata(token)
        self._on_retry = on_retry
        self._sleep = sleep
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._own_channel = channel is None
        self.channel = channel if channel is not None else open_channel(target, tls)
        self._receipts = receipt_pb2_grpc.ReceiptServiceStub(self.channel)
        self._members = member_pb2_grpc.MemberServiceStub(self.channel)
        self._coupons = coupons_pb2_grpc.CouponServiceStub(self.channel)
        self._health = health_pb2_grpc.HealthStub(self.channel)
        self.session_target = session_target
        self._session_channel = open_channel(session_target, tls) if session_target else None

    # -- life cycle --

    def close(self) -> None:
        if self._own_channel:
            self.channel.close()
        if self._session_channel is not None:
            self._session_channel.close()

    def __enter__(self) -> LoyaltyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- receipts --

    def calculate(
        self,
        receipt: receipt_pb2.Receipt,
        *,
        explain: bool = False,
        chips_to_spend: int = 0,
        points_to_spend: int = 0,
        spend_max_points: bool = False,
        timeout: float | None = None,
    ) -> receipt_pb2.CalculateResponse:
        """The benefits of a receipt, line by line, and the token to confirm exactly them.
        With `points_to_spend` (or `spend_max_points`: as many as allowed) the member's bonus
        points pay part of it; the result says how many may be spent and where.
        `chips_to_spend`: at most this many of the member's chips unlock rewards."""
        request = receipt_pb2.CalculateRequest(
            receipt=receipt,
            explain=explain,
            chips_to_spend=chips_to_spend,
            points_to_spend=points_to_spend,
            spend_max_points=spend_max_points,
        )
        return self._call(
            receipt_pb2.CalculateResponse, "Calculate", self._receipts.Calculate, request, timeout
        )

    def confirm(
        self,
        receipt: receipt_pb2.Receipt,
        confirmation_token: bytes,
        *,
        timeout: float | None = None,
    ) -> receipt_pb2.ConfirmResponse:
        """Commit the calculated receipt (same id and content) once; safe to repeat. Attempts
        after the first say they are resent (`ConfirmRequest.resent`: a repeat is then cheap
        for the server)."""
        request = receipt_pb2.ConfirmRequest(receipt=receipt, confirmation_token=confirmation_token)

        def again() -> receipt_pb2.ConfirmRequest:  # made only if there is a second attempt
            return receipt_pb2.ConfirmRequest(
                receipt=receipt, confirmation_token=confirmation_token, resent=True
            )

        return self._call(
            receipt_pb2.ConfirmResponse,
            "Confirm",
            self._receipts.Confirm,
            request,
            timeout,
            again=again,
        )

    def refund(
        self,
        refund_id: str,
        receipt_id: str,
        *,
        lines: Mapping[str, int] | Iterable[tuple[str, int]] | None = None,
        full: bool = False,
        store_id: str = "",
        timeout: float | None = None,
    ) -> receipt_pb2.RefundResponse:
        """Refund everything left (`full=True`) or `lines`: line id -> quantity in
        thousandths. Idempotent by `refund_id`: choose it once per refund and reuse it."""
        pairs = list(lines.items() if isinstance(lines, Mapping) else lines or ())
        if full == bool(pairs):
            raise ValueError("refund either full=True or some lines, not both or neither")
        request = receipt_pb2.RefundRequest(
            refund_id=refund_id, receipt_id=receipt_id, full=full, store_id=store_id
        )
        for line_id, quantity in pairs:
            request.lines.add(line_id=line_id, quantity=quantity)
        return self._call(
            receipt_pb2.RefundResponse, "Refund", self._receipts.Refund, request, timeout
        )

    def till_session(
        self,
        receipt: receipt_pb2.Receipt,
        *,
        points_to_spend: int = 0,
        spend_max_points: bool = False,
        chips_to_spend: int = 0,
    ) -> TillSession:
        """A till session for this receipt (its lines so far, if any) and what the member
        spends on it (as Calculate takes it; `TillSession.spend` changes it), opened at the
        first step; needs `session_target`."""
        if self._session_channel is None:
            raise ValueError("till sessions need the client's session_target")
        stub = till_session_pb2_grpc.TillSessionServiceStub(self._session_channel)
        spending = SessionSpend(
            points_to_spend=points_to_spend,
            spend_max_points=spend_max_points,
            chips_to_spend=chips_to_spend,
        )
        return TillSession(stub.Session, self._metadata, receipt, spending)

    # -- coupons (back office) --

    def upsert_coupon_campaign(
        self, campaign: coupons_pb2.CouponCampaign, *, timeout: float | None = None
    ) -> None:
        """Create or replace a coupon campaign; its offer then needs one of its codes."""
        request = coupons_pb2.UpsertCouponCampaignRequest(campaign=campaign)
        self._call(
            coupons_pb2.UpsertCouponCampaignResponse,
            "UpsertCouponCampaign",
            self._coupons.UpsertCouponCampaign,
            request,
            timeout,
        )

    def generate_coupon_codes(
        self, campaign_id: str, count: int, *, member_id: str = "", timeout: float | None = None
    ) -> list[str]:
        """`count` (at most 10,000) new random single-use codes of a UNIQUE campaign."""
        request = coupons_pb2.GenerateCouponCodesRequest(
            campaign_id=campaign_id, count=count, member_id=member_id
        )
        response = self._call(
            coupons_pb2.GenerateCouponCodesResponse,
            "GenerateCouponCodes",
            self._coupons.GenerateCouponCodes,
            request,
            timeout,
        )
        return list(response.codes)

    def import_coupon_codes(
        self,
        campaign_id: str,
        codes: Iterable[tuple[str, str]],
        *,
        batch_size: int = 10_000,
        timeout: float | None = None,
    ) -> Iterator[coupons_pb2.ImportCouponCodesResponse]:
        """Stream (code, member id or "") rows in batches; yields the totals after each
        batch. Not retried: run it again instead (stored codes are skipped)."""
        if not 1 <= batch_size <= 10_000:
            raise ValueError("batch_size must be from 1 to 10000")

        def batches() -> Iterator[coupons_pb2.ImportCouponCodesRequest]:
            batch = coupons_pb2.ImportCouponCodesRequest(campaign_id=campaign_id)
            for code, member_id in codes:
                batch.codes.add(code=code, member_id=member_id)
                if len(batch.codes) == batch_size:
                    yield batch
                    batch = coupons_pb2.ImportCouponCodesRequest(campaign_id=campaign_id)
            if batch.codes:
                yield batch

        stream = self._coupons.ImportCouponCodes(
            batches(), timeout=self.timeout if timeout is None else timeout, metadata=self._metadata
        )
        try:
            yield from stream
        except grpc.RpcError as err:
            raise LoyaltyError.from_rpc_error("ImportCouponCodes", err, 1) from None

    # -- members --

    def get_member_offers(
        self,
        member: common_pb2.MemberIdentity,
        *,
        at: datetime | None = None,
        store_id: str = "",
        channel: common_pb2.Channel = common_pb2.CHANNEL_UNSPECIFIED,
        timeout: float | None = None,
    ) -> member_pb2.GetMemberOffersResponse:
        """Everything that applies to a member now (or `at`)."""
        request = member_pb2.GetMemberOffersRequest(
            member=member, store_id=store_id, channel=channel
        )
        if at is not None:
            request.at.FromDatetime(at)
        return self._call(
            member_pb2.GetMemberOffersResponse,
            "GetMemberOffers",
            self._members.GetMemberOffers,
            request,
            timeout,
        )

    def select_favorite_products(
        self,
        member: common_pb2.MemberIdentity,
        offer_id: str,
        skus: Sequence[str],
        *,
        timeout: float | None = None,
    ) -> member_pb2.SelectFavoriteProductsResponse:
        """The member's slots, one SKU per slot in order ("" leaves a slot empty)."""
        request = member_pb2.SelectFavoriteProductsRequest(
            member=member, offer_id=offer_id, skus=list(skus)
        )
        return self._call(
            member_pb2.SelectFavoriteProductsResponse,
            "SelectFavoriteProducts",
            self._members.SelectFavoriteProducts,
            request,
            timeout,
        )

    def select_favorite_categories(
        self,
        member: common_pb2.MemberIdentity,
        offer_id: str,
        group_ids: Sequence[str],
        *,
        timeout: float | None = None,
    ) -> member_pb2.SelectFavoriteCategoriesResponse:
        request = member_pb2.SelectFavoriteCategoriesRequest(
            member=member, offer_id=offer_id, group_ids=list(group_ids)
        )
        return self._call(
            member_pb2.SelectFavoriteCategoriesResponse,
            "SelectFavoriteCategories",
            self._members.SelectFavoriteCategories,
            request,
            timeout,
        )

    def operator_set_favorite_products(
        self,
        member: common_pb2.MemberIdentity,
        offer_id: str,
        skus: Sequence[str],
        comment: str,
        *,
        timeout: float | None = None,
    ) -> member_pb2.OperatorSetFavoriteProductsResponse:
        request = member_pb2.OperatorSetFavoriteProductsRequest(
            member=member, offer_id=offer_id, skus=list(skus), comment=comment
        )
        return self._call(
            member_pb2.OperatorSetFavoriteProductsResponse,
            "OperatorSetFavoriteProducts",
            self._members.OperatorSetFavoriteProducts,
            request,
            timeout,
        )

    def list_favorite_products_audit(
        self,
        member: common_pb2.MemberIdentity,
        *,
        offer_id: str = "",
        limit: int = 0,
        timeout: float | None = None,
    ) -> member_pb2.ListFavoriteProductsAuditResponse:
        request = member_pb2.ListFavoriteProductsAuditRequest(
            member=member, offer_id=offer_id, limit=limit
        )
        return self._call(
            member_pb2.ListFavoriteProductsAuditResponse,
            "ListFavoriteProductsAudit",
            self._members.ListFavoriteProductsAudit,
            request,
            timeout,
        )

    # -- health --

    def is_serving(self, service: str = "", *, timeout: float | None = None) -> bool:
        """True when the standard health service says SERVING (needs no credential)."""
        request = health_pb2.HealthCheckRequest(service=service)
        answer = self._call(
            health_pb2.HealthCheckResponse,
            "Check",
            self._health.Check,
            request,
            timeout,
            metadata=(),
        )
        return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)

    def wait_until_serving(self, timeout: float = 30.0, poll_s: float = 0.1) -> None:
        """Block until health says SERVING; LoyaltyError(DEADLINE_EXCEEDED) after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                if left > 0 and self.is_serving(timeout=min(left, 1.0)):
                    return
            except LoyaltyError:
                pass
            if time.monotonic() + poll_s >= deadline:
                raise LoyaltyError("Check", _D, f"not serving after {timeout:g} s")
            self._sleep(poll_s)

    # -- the retry loop --

    def _call(
        self,
        answer: type[Response],
        method: str,
        stub_method: Callable[..., Any],
        request: Any,
        timeout: float | None,
        metadata: tuple[tuple[str, str], ...] | None = None,
        again: Callable[[], Any] | None = None,
    ) -> Response:
        """Send `request` until it succeeds, fails for good, or the deadline is spent (`again`:
        makes what later attempts send instead, if not the same). `answer` is the response
        type (the generated stubs are untyped)."""
        budget = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + budget
        retryable = RETRYABLE.get(method, frozenset())
        with self._lock:
            self.stats.calls[method] += 1
        attempt = 0
        while True:
            attempt += 1
            if attempt == 2 and again is not None:
                request = again()
            left = deadline - time.monotonic()
            per_attempt = left if self.attempt_timeout is None else min(left, self.attempt_timeout)
            with self._lock:
                self.stats.attempts[method] += 1
            try:
                response = stub_method(
                    request,
                    timeout=max(per_attempt, 0.001),
                    metadata=self._metadata if metadata is None else metadata,
                )
                return cast(Response, response)
            except grpc.RpcError as err:
                code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
                delay = self._pause(attempt, err)
                out_of_time = time.monotonic() + delay >= deadline
                if code not in retryable or attempt >= self.retry.max_attempts or out_of_time:
                    with self._lock:
                        self.stats.failures[f"{method}:{code.name}"] += 1
                    raise LoyaltyError.from_rpc_error(method, err, attempt) from None
            with self._lock:
                self.stats.retries[method] += 1
            if self._on_retry is not None:
                self._on_retry(RetryEvent(method, attempt, code, delay))
            self._sleep(delay)

    def _pause(self, attempt: int, err: grpc.RpcError) -> float:
        with self._lock:
            jittered = self.retry.delay(attempt, self._rng)
        return max(jittered, _server_retry_delay(err))


# --- till sessions -------------------------------------------------------------------------------

SessionResponse = till_session_pb2.SessionResponse
SessionSpend = till_session_pb2.SessionSpend
_REOPEN = frozenset({"SESSION_IDLE", "SESSION_TOO_LONG"})  # the server ended it: go on anew


class TillSession:
    """One receipt on a till session stream: `scan`, `void`, `identify` and `spend` each
    answer the receipt calculated so far; `finish` adds the confirmation token and the
    receipt to confirm. `receipt` and `spending` are the receipt and the points and chips
    spent on it as the server last answered them.

    A refused step ends the server's stream (nothing of that step is kept); the next step
    opens a new stream with `receipt`, so the session goes on as before the refusal. A stream
    the server ended for idleness or length, or lost (UNAVAILABLE), is reopened the same way
    and the step sent once more. One thread at a time."""

    def __init__(
        self,
        open_stream: Callable[..., Any],
        metadata: tuple[tuple[str, str], ...],
        receipt: receipt_pb2.Receipt,
        spending: SessionSpend | None = None,
    ) -> None:
        self._open_stream = open_stream
        self._metadata = metadata
        self.receipt = receipt_pb2.Receipt()
        self.receipt.CopyFrom(receipt)
        self.spending = SessionSpend()
        if spending is not None:
            self.spending.CopyFrom(spending)
        self._requests: queue.SimpleQueue[Any] | None = None
        self._responses: Any = None

    def scan(self, line: receipt_pb2.ReceiptLine) -> SessionResponse:
        answer = self._step(till_session_pb2.SessionRequest(scan={"line": line}))
        self.receipt.lines.append(line)
        return answer

    def void(self, line_id: str) -> SessionResponse:
        answer = self._step(till_session_pb2.SessionRequest(void={"line_id": line_id}))
        kept = [x for x in self.receipt.lines if x.line_id != line_id]
        del self.receipt.lines[:]
        self.receipt.lines.extend(kept)
        return answer

    def identify(self, member: common_pb2.MemberIdentity | None) -> SessionResponse:
        request = till_session_pb2.SessionRequest(identify={})
        if member is not None:
            request.identify.member.CopyFrom(member)
        answer = self._step(request)
        if member is None:
            self.receipt.ClearField("member")
        else:
            self.receipt.member.CopyFrom(member)
        return answer

    def spend(
        self, *, points_to_spend: int = 0, spend_max_points: bool = False, chips_to_spend: int = 0
    ) -> SessionResponse:
        """From now on (and for `finish`'s token) spend these points (or as many as allowed)
        and chips, as Calculate takes them; replaces the spend before (all 0: none)."""
        wanted = SessionSpend(
            points_to_spend=points_to_spend,
            spend_max_points=spend_max_points,
            chips_to_spend=chips_to_spend,
        )
        return self._spend(wanted)

    def finish(self, *, explain: bool = False) -> SessionResponse:
        """The result with the token for Confirm (of `answer.receipt`); the stream ends."""
        answer = self._step(till_session_pb2.SessionRequest(finish={"explain": explain}))
        self._end()
        return answer

    def sync(
        self, receipt: receipt_pb2.Receipt, spending: SessionSpend | None = None
    ) -> SessionResponse | None:
        """The steps that make the session's receipt `receipt` (and its spend `spending`,
        unless None): voids of lines gone or changed, scans of lines new (a changed line
        moves to the end), identify for another buyer, spend for another spend; a new
        session for another header (id, store, channel, sale time, coupons). The last
        answer; None when nothing changed on the open stream (after `finish`, the receipt
        is calculated again on a new one)."""
        spending = self.spending if spending is None else spending
        if _header(receipt) != _header(self.receipt):  # another receipt: one start says all
            self.close()
            self.receipt = receipt_pb2.Receipt()
            self.receipt.CopyFrom(receipt)
            self.spending = SessionSpend()
            self.spending.CopyFrom(spending)
            return self._step_start()
        answer: SessionResponse | None = None
        wanted = {line.line_id: line for line in receipt.lines}
        for line in list(self.receipt.lines):
            if wanted.get(line.line_id) != line:
                answer = self.void(line.line_id)
        have = {line.line_id for line in self.receipt.lines}
        for line in receipt.lines:
            if line.line_id not in have:
                answer = self.scan(line)
        respend = spending != self.spending
        if respend and spending == SessionSpend():  # spending nothing before the member goes
            answer, respend = self._spend(spending), False
        if receipt.member != self.receipt.member:
            answer = self.identify(receipt.member if receipt.HasField("member") else None)
        if respend:  # spending after the member it needs
            answer = self._spend(spending)
        if answer is None and self._responses is None:  # finished or ended: calculated anew
            answer = self._step_start()
        return answer

    def _spend(self, wanted: SessionSpend) -> SessionResponse:
        answer = self._step(till_session_pb2.SessionRequest(spend=wanted))
        self.spending = SessionSpend()
        self.spending.CopyFrom(wanted)
        return answer

    def close(self) -> None:
        """End the stream (the server forgets the session); the next step opens a new one."""
        if self._responses is not None:
            self._responses.cancel()
        self._end()

    def _step(self, request: Any) -> SessionResponse:
        try:
            return self._exchange(request)
        except LoyaltyError as err:
            if err.reason not in _REOPEN and err.status != _U:
                raise
        return self._exchange(request)  # once more, on a new stream

    def _step_start(self) -> SessionResponse:
        try:
            return self._start()
        except LoyaltyError as err:
            if err.status != _U:
                raise
        return self._start()

    def _exchange(self, request: Any) -> SessionResponse:
        if self._responses is None:
            self._start()
        return self._answer(request)

    def _start(self) -> SessionResponse:
        self._requests = queue.SimpleQueue()
        self._responses = self._open_stream(iter(self._requests.get, None), metadata=self._metadata)
        start = till_session_pb2.SessionStart(receipt=self.receipt, spend=self.spending)
        return self._answer(till_session_pb2.SessionRequest(start=start))

    def _answer(self, request: Any) -> SessionResponse:
        assert self._requests is not None
        self._requests.put(request)
        try:
            return cast(SessionResponse, next(self._responses))
        except grpc.RpcError as err:
            self._end()
            raise LoyaltyError.from_rpc_error("Session", err, 1) from None
        except StopIteration:
            self._end()
            raise LoyaltyError("Session", _U, "the server ended the session") from None

    def _end(self) -> None:
        if self._requests is not None:
            self._requests.put(None)  # the end of the register's side
        self._requests, self._responses = None, None


def _header(receipt: receipt_pb2.Receipt) -> receipt_pb2.Receipt:
    """The receipt without its lines and buyer: what a session cannot change."""
    header = receipt_pb2.Receipt()
    header.CopyFrom(receipt)
    header.ClearField("lines")
    header.ClearField("member")
    return header


# --- command-line helpers shared by the tools ----------------------------------------------------


def add_connection_arguments(parser: argparse.ArgumentParser, *, role: str = "REGISTER") -> None:
    """--target, --token, --timeout and the TLS flags, for every client tool."""
    group = parser.add_argument_group("connection")
    group.add_argument("--target", default=DEFAULT_TARGET, help="host:port of the service")
    add_token_arguments(group, role)
    group.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help="deadline of each call in seconds, retries included",
    )
    group.add_argument("--tls-ca", type=Path, help="PEM root certificate: use TLS")
    group.add_argument("--tls-cert", type=Path, help="PEM client certificate (mutual TLS)")
    group.add_argument("--tls-key", type=Path, help="PEM client private key (mutual TLS)")
    group.add_argument("--tls-server-name", help="name expected in the server's certificate")


def add_token_arguments(group: Any, role: str) -> None:
    """--token and --token-file: a credential need never appear on a command line."""
    group.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV, ""),
        help=f"API credential of a {role} (default: ${TOKEN_ENV})",
    )
    group.add_argument(
        "--token-file",
        type=read_token_file,
        default=os.environ.get(TOKEN_FILE_ENV) or None,
        help=f"read the credential from this file instead (default: ${TOKEN_FILE_ENV})",
    )


def read_token_file(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise argparse.ArgumentTypeError(
            f"cannot read the credential from {path!r}: {exc}"
        ) from None


def token_from_args(args: argparse.Namespace) -> str:
    """The credential from --token-file if given, else --token."""
    return str(args.token_file) if args.token_file else str(args.token)


def tls_from_args(args: argparse.Namespace) -> TlsConfig | None:
    if not (args.tls_ca or args.tls_cert or args.tls_key or args.tls_server_name):
        return None
    return TlsConfig.from_files(args.tls_ca, args.tls_cert, args.tls_key, args.tls_server_name)


def client_from_args(args: argparse.Namespace, **kwargs: Any) -> LoyaltyClient:
    return LoyaltyClient(
        args.target, token_from_args(args), timeout=args.timeout, tls=tls_from_args(args), **kwargs
    )
