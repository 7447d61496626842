"""TillSessionService: the register streams a receipt line by line and gets it calculated
again after each message (spec §16, docs/till_sessions.md).

Why a server of its own: the unary server is grpc's sync server, where an open stream holds
a thread. A chain keeps thousands of sessions open, mostly idle between scans, so they are
served by a grpc.aio server on its own port, in one thread running its event loop
(`TillSessionServer`). An open session costs a coroutine, not a thread. The calculation of
each message runs on a small pool of its own (`--till-session-workers`): a member missing
from the cache is read from the store, which must not block the event loop, and the unary
server's `max_workers` are never used by a session.

Each message is calculated by ReceiptServicer.calculate, the one path of Calculate, on the
receipt so far and the points and chips the session spends (said in `start`, changed by
`spend`), so every answer is what one Calculate asking the same would answer. Only the
answer to `finish` is signed. A refused message ends the stream with its status; the session
was the receipt so far, which the register sends again in `start` to go on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from time import perf_counter
from typing import Any, TypeVar

import grpc

from loyalty.v1 import receipt_pb2, till_session_pb2
from service import limits
from service.api.auth import (
    CredentialBook,
    Principal,
    authorize,
    roles_for,
    set_current_principal,
)
from service.api.errors import status_for
from service.api.interceptors import checked, tolerant
from service.api.lookup import check_identity
from service.api.metrics import CallMetrics, grpc_type, log_call
from service.api.receipts import ReceiptServicer, check_receipt_lines
from service.config import Settings
from service.deadline import set_call_deadline
from service.errors import FailedPrecondition, InvalidArgument, TooManyRequests
from service.limits import check_length, quote
from service.logs import log_overrun
from service.port import CannotListen

log = logging.getLogger(__name__)
# How long past the grace the session server may take to stop; then the process goes on
# without it (its thread is a daemon), and says so with every thread's stack.
STOP_MARGIN_S = 5.0

SERVICE = till_session_pb2.DESCRIPTOR.services_by_name["TillSessionService"].full_name
METHOD = f"/{SERVICE}/Session"
SESSION_IDLE = "SESSION_IDLE"
SESSION_TOO_LONG = "SESSION_TOO_LONG"
TOO_MANY_SESSIONS = "TOO_MANY_SESSIONS"

T = TypeVar("T")
Renames = tuple[tuple[str, str], ...]  # (field of the receipt, field of the message)
# The fields of a SessionSpend, named as in CalculateRequest.
SPEND_FIELDS = ("points_to_spend", "spend_max_points", "chips_to_spend")


@dataclass(frozen=True)
class SessionLimits:
    open_total: int
    per_connection: int
    per_credential: int
    idle_s: float
    max_messages: int
    max_lines: int

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionLimits:
        return cls(
            settings.till_sessions_max,
            settings.till_sessions_per_connection,
            settings.till_sessions_per_credential,
            settings.till_session_idle_s,
            settings.till_session_max_messages,
            settings.max_receipt_lines,
        )


class SessionSlots:
    """The sessions open: in all, per connection (peer) and per credential. Used from the
    event loop's thread only, so it needs no lock."""

    def __init__(self, limits: SessionLimits) -> None:
        self._limits = limits
        self._by_peer: dict[str, int] = {}
        self._by_credential: dict[str, int] = {}
        self.open = 0

    def take(self, peer: str, credential_id: str) -> None:
        """One slot more, or TooManyRequests (RESOURCE_EXHAUSTED) naming the limit hit."""
        lim = self._limits
        full = (
            ("in this process", self.open, lim.open_total),
            ("on this connection", self._by_peer.get(peer, 0), lim.per_connection),
            ("for this credential", self._by_credential.get(credential_id, 0), lim.per_credential),
        )
        for where, count, most in full:
            if count >= most:
                raise TooManyRequests(
                    f"too many open till sessions {where} (at most {most}); finish one first",
                    reason=TOO_MANY_SESSIONS,
                    retry_after_s=1.0,
                )
        self.open += 1
        self._by_peer[peer] = self._by_peer.get(peer, 0) + 1
        self._by_credential[credential_id] = self._by_credential.get(credential_id, 0) + 1

    def give_back(self, peer: str, credential_id: str) -> None:
        self.open -= 1
        _decrement(self._by_peer, peer)
        _decrement(self._by_credential, credential_id)


def _decrement(counts: dict[str, int], key: str) -> None:
    left = counts[key] - 1
    if left:
        counts[key] = left
    else:
        del counts[key]


def _spend_renames(message: str) -> Renames:
    """Calculate's `points_to_spend` is the field of the message that said the spend."""
    return tuple((name, f"{message}.{name}") for name in SPEND_FIELDS)


SPEND_RENAMES = _spend_renames("spend")
START_SPEND_RENAMES = _spend_renames("start.spend")


def _renamed(error: InvalidArgument, renames: Renames) -> InvalidArgument:
    """The error with its field named as in the session's message: `receipt.lines[3].price`
    of the receipt calculated is `scan.line.price` of the scan that added line 3."""
    for prefix, name in renames:
        if error.field == prefix or error.field.startswith((prefix + ".", prefix + "[")):
            return InvalidArgument(name + error.field[len(prefix) :], error.description)
    return error


class ReceiptSoFar:
    """The receipt of one session: what `start` opened and every message since, and what the
    buyer spends on it. Each method checks its message, changes the receipt and returns the
    renames of the fields the calculation may refuse. No gRPC here; a refusal ends the
    session, so a refused message needs no undoing."""

    def __init__(self, limits: SessionLimits) -> None:
        self._limits = limits
        self.receipt: receipt_pb2.Receipt | None = None
        self._line_ids: set[str] = set()
        self.spend = till_session_pb2.SessionSpend()
        self.spend_renames = START_SPEND_RENAMES

    def start(self, start: till_session_pb2.SessionStart) -> Renames:
        if self.receipt is not None:
            raise InvalidArgument("start", "the session is open already: send it once, first")
        receipt = start.receipt
        if len(receipt.lines) > self._limits.max_lines:
            raise InvalidArgument(
                "start.receipt.lines", f"at most {self._limits.max_lines} lines per receipt"
            )
        try:
            check_receipt_lines(receipt)  # lengths before the ids are used
        except InvalidArgument as error:
            raise _renamed(error, (("receipt", "start.receipt"),)) from None
        self.receipt = receipt_pb2.Receipt()
        self.receipt.CopyFrom(receipt)
        self._line_ids = {line.line_id for line in receipt.lines}
        self.spend.CopyFrom(start.spend)
        return (("receipt", "start.receipt"),)

    def scan(self, scan: till_session_pb2.SessionScan) -> Renames:
        receipt = self._open()
        line = scan.line
        if not line.line_id:
            raise InvalidArgument("scan.line.line_id", "must not be empty")
        check_length(line.line_id, limits.ID, "scan.line.line_id")
        check_length(line.sku, limits.ID, "scan.line.sku")
        if line.line_id in self._line_ids:
            raise InvalidArgument(
                "scan.line.line_id", f"the receipt has a line {quote(line.line_id)} already"
            )
        if len(receipt.lines) >= self._limits.max_lines:
            raise InvalidArgument(
                "scan.line", f"at most {self._limits.max_lines} lines per receipt"
            )
        receipt.lines.append(line)
        self._line_ids.add(line.line_id)
        index = len(receipt.lines) - 1
        return ((f"receipt.lines[{index}]", "scan.line"), ("receipt", "start.receipt"))

    def void(self, void: till_session_pb2.SessionVoid) -> Renames:
        receipt = self._open()
        line_id = void.line_id
        if not line_id:
            raise InvalidArgument("void.line_id", "must not be empty")
        check_length(line_id, limits.ID, "void.line_id")
        if line_id not in self._line_ids:
            raise InvalidArgument("void.line_id", f"the receipt has no line {quote(line_id)}")
        position = next(i for i, x in enumerate(receipt.lines) if x.line_id == line_id)
        del receipt.lines[position]
        self._line_ids.discard(line_id)
        return (("receipt", "start.receipt"),)

    def identify(self, identify: till_session_pb2.SessionIdentify) -> Renames:
        receipt = self._open()
        check_identity(identify.member, "identify.member")
        if identify.HasField("member"):
            receipt.member.CopyFrom(identify.member)
        else:
            receipt.ClearField("member")
        return (("receipt.member", "identify.member"), ("receipt", "start.receipt"))

    def change_spend(self, spend: till_session_pb2.SessionSpend) -> Renames:
        """The spend replaced as a whole; the calculation checks it as Calculate does."""
        self._open()
        self.spend.CopyFrom(spend)
        self.spend_renames = SPEND_RENAMES
        return (("receipt", "start.receipt"),)

    def calculate_request(self, *, explain: bool) -> receipt_pb2.CalculateRequest:
        """The receipt so far as one Calculate asks for it, spend included."""
        spend = self.spend
        return receipt_pb2.CalculateRequest(
            receipt=self._open(),
            explain=explain,
            points_to_spend=spend.points_to_spend,
            spend_max_points=spend.spend_max_points,
            chips_to_spend=spend.chips_to_spend,
        )

    def finish(self) -> Renames:
        if not self._open().lines:
            raise InvalidArgument("finish", "the receipt has no lines: scan one first")
        return (("receipt", "start.receipt"),)

    def _open(self) -> receipt_pb2.Receipt:
        if self.receipt is None:
            raise InvalidArgument("start", "the first message of a session must be start")
        return self.receipt


def _authorization(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key == "authorization":
            return str(value)
    return None


class TillSessionServicer:
    """The Session method on the event loop; each message's work on `pool`."""

    def __init__(
        self,
        receipts: ReceiptServicer,
        book: CredentialBook,
        metrics: CallMetrics,
        limits: SessionLimits,
        pool: ThreadPoolExecutor,
        *,
        log_calls: bool,
    ) -> None:
        self._receipts = receipts
        self._book = book
        self._limits = limits
        self._pool = pool
        self._metrics = metrics.method(METHOD, grpc_type(True, True))
        self._log_calls = log_calls
        self._allowed = roles_for(METHOD) or frozenset()
        self.slots = SessionSlots(limits)

    def handler(self) -> grpc.GenericRpcHandler:  # type: ignore[type-arg]
        method = grpc.stream_stream_rpc_method_handler(
            self.session,
            request_deserializer=tolerant(till_session_pb2.SessionRequest.FromString),
            response_serializer=till_session_pb2.SessionResponse.SerializeToString,
        )
        return grpc.method_handlers_generic_handler(SERVICE, {"Session": method})

    async def session(
        self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[till_session_pb2.SessionResponse]:
        started, code, caller, store = perf_counter(), grpc.StatusCode.OK, "-", ""
        peer = context.peer()
        self._metrics.started.inc()
        try:
            authorization = _authorization(context.invocation_metadata())
            principal = await self._run(None, None, self._admit, authorization)
            caller = principal.name
            self.slots.take(peer, principal.credential_id)
            try:
                so_far = ReceiptSoFar(self._limits)
                async for response in self._answers(requests, so_far, principal, context):
                    self._metrics.sent.inc()
                    yield response
                store = so_far.receipt.store_id if so_far.receipt is not None else ""
            finally:
                self.slots.give_back(peer, principal.credential_id)
        except Exception as exc:
            status = status_for(exc, METHOD)
            code = status.code
            await context.abort(status.code, status.details, status.trailing_metadata)
        finally:
            seconds = perf_counter() - started
            self._metrics.handled(code, seconds)
            if self._log_calls:
                log_call(METHOD, code, seconds, caller, store, peer=peer)

    async def _answers(
        self,
        requests: AsyncIterator[Any],
        so_far: ReceiptSoFar,
        principal: Principal,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[till_session_pb2.SessionResponse]:
        """One answer per message, until finish or the register closes its side."""
        messages = 0
        while True:
            request = await self._next(requests)
            if request is None:
                return
            self._metrics.received.inc()
            messages += 1
            if messages > self._limits.max_messages:
                raise FailedPrecondition(
                    f"a session takes at most {self._limits.max_messages} messages: "
                    "start a new one with the receipt so far",
                    reason=SESSION_TOO_LONG,
                )
            remaining = context.time_remaining()
            response = await self._run(principal, remaining, self._answer, so_far, request)
            yield response
            if response.confirmation_token:
                return  # finished

    async def _next(self, requests: AsyncIterator[Any]) -> Any:
        """The next message; None when the register closed its side; SESSION_IDLE when it
        sent nothing for the idle timeout (an abandoned register must not hold a slot)."""
        try:
            async with asyncio.timeout(self._limits.idle_s):
                return await anext(requests)
        except StopAsyncIteration:
            return None
        except TimeoutError:
            raise FailedPrecondition(
                f"the session sent nothing for {self._limits.idle_s:g} s and was ended; "
                "start a new one with the receipt so far",
                reason=SESSION_IDLE,
            ) from None

    def _admit(self, authorization: str | None) -> Principal:
        principal = self._book.authenticate(authorization)  # may reload from the store
        authorize(principal, METHOD, self._allowed)
        return principal

    def _answer(self, so_far: ReceiptSoFar, request: Any) -> till_session_pb2.SessionResponse:
        """One message applied and the receipt so far calculated (on the pool)."""
        request = checked(request)
        action = request.WhichOneof("action")
        finish = action == "finish"
        renames = self._apply(so_far, request, action) + so_far.spend_renames
        ask = so_far.calculate_request(explain=finish and request.finish.explain)
        receipt = so_far.receipt
        assert receipt is not None
        response = till_session_pb2.SessionResponse(line_count=len(receipt.lines))
        try:
            if receipt.lines:
                calculated = self._receipts.calculate(ask, sign=finish)
                response.result.CopyFrom(calculated.result)
                if finish:
                    response.confirmation_token = calculated.confirmation_token
                    response.receipt.CopyFrom(receipt)
            else:
                self._receipts.check_receipt_header(ask)
        except InvalidArgument as error:
            raise _renamed(error, renames) from None
        return response

    @staticmethod
    def _apply(so_far: ReceiptSoFar, request: Any, action: str | None) -> Renames:
        if action == "start":
            return so_far.start(request.start)
        if action == "scan":
            return so_far.scan(request.scan)
        if action == "void":
            return so_far.void(request.void)
        if action == "identify":
            return so_far.identify(request.identify)
        if action == "spend":
            return so_far.change_spend(request.spend)
        if action == "finish":
            return so_far.finish()
        raise InvalidArgument("action", "set one of start, scan, void, identify, spend, finish")

    async def _run(
        self,
        principal: Principal | None,
        remaining: float | None,
        work: Callable[..., T],
        *args: Any,
    ) -> T:
        """`work` on the pool, as the caller `principal` (None: before authentication) with
        the stream's remaining time (None: no deadline); a pool thread keeps neither."""

        def as_caller() -> T:
            set_current_principal(principal)
            set_call_deadline(remaining)
            return work(*args)

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, as_caller)


class TillSessionServer:
    """A grpc.aio server for the till sessions, in a thread of its own running its event
    loop; bound when made, serving from `start` until `stop`."""

    def __init__(
        self,
        settings: Settings,
        servicer_for: Callable[[ThreadPoolExecutor], TillSessionServicer],
        credentials: grpc.ServerCredentials | None,
        options: list[tuple[str, Any]],
    ) -> None:
        self._pool = ThreadPoolExecutor(
            settings.till_session_workers, thread_name_prefix="till-session"
        )
        self.servicer = servicer_for(self._pool)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="till-sessions", daemon=True
        )
        self._thread.start()
        self._server: grpc.aio.Server | None = None
        self._started = False
        address = settings.till_session_address
        try:
            self.port = self._call(self._bind(address, credentials, options))
        except RuntimeError:  # gRPC's "Failed to bind to address"; its log says why
            self.port = 0
        if self.port == 0:
            self.stop(0)
            raise CannotListen(address, "the address cannot be bound")

    async def _bind(
        self, address: str, credentials: grpc.ServerCredentials | None, options: list[Any]
    ) -> int:
        server = grpc.aio.server(options=options)
        server.add_generic_rpc_handlers((self.servicer.handler(),))
        self._server = server
        if credentials is None:
            return server.add_insecure_port(address)
        return server.add_secure_port(address, credentials)

    def _call(self, coroutine: Any, timeout: float | None = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def start(self) -> None:
        assert self._server is not None
        self._call(self._server.start())
        self._started = True

    def stop(self, grace: float) -> None:
        """Sessions open get `grace` seconds to finish, then are cancelled."""
        if self._server is not None:
            if not self._started:  # a server never started keeps its port: start it to stop
                self._call(self._server.start())
            try:
                self._call(self._server.stop(grace), timeout=grace + STOP_MARGIN_S)
            except concurrent.futures.TimeoutError:
                log_overrun(log, "the session server's stop", grace + STOP_MARGIN_S)
            self._server = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=STOP_MARGIN_S)
        if self._thread.is_alive():  # a daemon thread: it does not hold the process
            log_overrun(log, "the session loop", STOP_MARGIN_S)
            return
        self._loop.close()
        self._pool.shutdown(wait=True, cancel_futures=True)

    @property
    def open_sessions(self) -> int:
        return self.servicer.slots.open
