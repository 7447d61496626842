"""NotificationService: member events from the outbox (spec §10) for channel adapters.

StreamMemberEvents first replays the stored events after a position (after_position, or with
0 the consumer's acknowledged position, or the start), then polls the outbox for new ones
until the client cancels or the server stops. Outbox positions become visible in order
(service/store/outbox.py), so "position > last sent" never skips an event, and a subscriber
that reconnects with the last position it handled misses nothing.

Each stream holds a server thread while it lasts, so a replica serves at most `max_streams`
of them at once; beyond that the call is refused UNAVAILABLE (another replica, or later).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator

import grpc

from loyalty.v1 import notification_pb2, notification_pb2_grpc
from service import limits
from service.api import convert
from service.api.auth import current_principal
from service.app.events import Event, MemberEvents
from service.app.sessions import Sessions
from service.clock import Clock, utc_now
from service.errors import InvalidArgument, Unavailable
from service.limits import check_length

POLL_INTERVAL_S = 0.15
BATCH_SIZE = 500

EVENT_TYPES = {
    name.removeprefix("MEMBER_EVENT_TYPE_"): number
    for name, number in notification_pb2.MemberEventType.items()
    if number != 0
}


def event_message(event: Event) -> notification_pb2.StreamMemberEventsResponse:
    out = notification_pb2.StreamMemberEventsResponse(
        position=event.position,
        member_id=event.member_id or "",
        type=EVENT_TYPES.get(event.event_type, 0),  # type: ignore[arg-type]
        offer_id=event.offer_id,
        payload_json=json.dumps(dict(event.payload), sort_keys=True, ensure_ascii=False),
    )
    convert.set_timestamp(out.created_at, event.created_at)
    return out


class NotificationServicer(notification_pb2_grpc.NotificationServiceServicer):
    def __init__(
        self,
        sessions: Sessions,
        *,
        poll_interval_s: float = POLL_INTERVAL_S,
        batch_size: int = BATCH_SIZE,
        max_streams: int = 8,
        is_stopping: Callable[[], bool] = lambda: False,
        clock: Clock = utc_now,
    ) -> None:
        self._events = MemberEvents(sessions, clock=clock)
        self._poll_interval_s = poll_interval_s
        self._batch_size = batch_size
        self._max_streams = max_streams
        self._is_stopping = is_stopping
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._streams = 0

    def close(self) -> None:
        """End every stream at its next poll (the server is stopping)."""
        self._closed.set()

    @property
    def open_streams(self) -> int:
        return self._streams

    def _stopping(self) -> bool:
        return self._closed.is_set() or self._is_stopping()

    def _enter(self) -> None:
        with self._lock:
            if self._streams >= self._max_streams:
                raise Unavailable(
                    "too many event streams on this server; retry later",
                    reason="TOO_MANY_STREAMS",
                )
            self._streams += 1

    def _leave(self) -> None:
        with self._lock:
            self._streams -= 1

    def StreamMemberEvents(  # noqa: N802 - gRPC method name
        self, request: notification_pb2.StreamMemberEventsRequest, context: grpc.ServicerContext
    ) -> Iterator[notification_pb2.StreamMemberEventsResponse]:
        if request.after_position < 0:
            raise InvalidArgument("after_position", "must not be negative")
        if request.consumer:
            self._events.check_consumer(request.consumer)
        check_length(request.member_id, limits.ID, "member_id")
        position = request.after_position
        if position == 0 and request.consumer:
            owner = current_principal().credential_id
            position = self._events.acked_position(request.consumer, owner)
        self._enter()
        try:
            yield from self._follow(position, request.member_id or None, context)
        finally:
            self._leave()

    def _follow(
        self, position: int, member_id: str | None, context: grpc.ServicerContext
    ) -> Iterator[notification_pb2.StreamMemberEventsResponse]:
        while context.is_active() and not self._stopping():
            events = self._events.after(position, member_id=member_id, limit=self._batch_size)
            for event in events:
                yield event_message(event)
                position = event.position
            if len(events) < self._batch_size:
                self._closed.wait(self._poll_interval_s)

    def AckMemberEvents(  # noqa: N802 - gRPC method name
        self, request: notification_pb2.AckMemberEventsRequest, context: grpc.ServicerContext
    ) -> notification_pb2.AckMemberEventsResponse:
        self._events.check_consumer(request.consumer)
        owner = current_principal().credential_id
        position = self._events.ack(request.consumer, request.position, owner)
        return notification_pb2.AckMemberEventsResponse(acked_position=position)
