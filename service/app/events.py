"""Member events for channel adapters (spec §10): reading the outbox by position, and a
consumer's acknowledgements. The servicer (service/api/notifications.py) translates and
streams; this is what it asks of the store.

An acknowledgement is monotonic and owned: the first credential to acknowledge for a
consumer owns it, and another's acknowledgement or read of it is refused
(service.store.outbox.ack_events). Each is its own unit of work.
"""

from __future__ import annotations

from service.app.sessions import Sessions
from service.app.unit_of_work import UnitOfWork
from service.clock import Clock, utc_now
from service.store import outbox
from service.store.outbox import Event

__all__ = ["Event", "MemberEvents"]


class MemberEvents:
    def __init__(self, sessions: Sessions, *, clock: Clock = utc_now) -> None:
        self._sessions = sessions
        self._clock = clock

    @staticmethod
    def check_consumer(consumer: str) -> None:
        """A consumer name a subscriber may use: not empty, short, not one of the jobs'."""
        outbox.check_consumer(consumer)

    def acked_position(self, consumer: str, owner: str) -> int:
        """Where `consumer` (owned by `owner`, or by nobody yet) acknowledged up to; 0 if
        it never did."""
        with self._sessions() as session:
            return outbox.acked_position(session, consumer, owner)

    def after(self, position: int, *, member_id: str | None, limit: int) -> list[Event]:
        """At most `limit` events after `position`, oldest first; optionally of one member."""
        with self._sessions() as session:
            return outbox.events_after(session, position, member_id=member_id, limit=limit)

    def ack(self, consumer: str, position: int, owner: str) -> int:
        """`consumer` handled every event up to `position`; its position now."""
        with UnitOfWork(self._sessions, now=self._clock()) as uow:
            acked = outbox.ack_events(uow.session, consumer, position, uow.now, owner=owner)
            uow.commit()
        return acked
