"""The outbox (spec §10): events by position, in commit order, and consumers' acknowledgements."""

from __future__ import annotations

import threading
import time

import pytest

from service.errors import InvalidArgument, PermissionDenied
from service.store.outbox import (
    EventType,
    ack_events,
    acked_position,
    add_event,
    events_after,
    last_event_position,
)


def write(db, member_id: str, event_type: EventType = EventType.FAVORITES_CHANGED) -> None:
    with db() as session:
        add_event(session, member_id, event_type, {"offer_id": "F-1"})
        session.commit()


def test_events_come_back_oldest_first_after_a_position_and_per_member(db):
    for member in ("M1", "M2", "M1", "M3"):
        write(db, member)
    with db() as session:
        everything = events_after(session, 0)
        positions = [e.position for e in everything]
        assert positions == sorted(positions)
        assert [e.member_id for e in everything] == ["M1", "M2", "M1", "M3"]
        assert [e.member_id for e in events_after(session, positions[1])] == ["M1", "M3"]
        assert [e.position for e in events_after(session, 0, member_id="M1")] == [
            positions[0],
            positions[2],
        ]
        assert events_after(session, 0, limit=2) == everything[:2]
        assert everything[0].offer_id == "F-1"
        assert last_event_position(session) == positions[-1]


def test_an_event_rolled_back_with_its_change_is_never_seen(db):
    with db() as session:
        add_event(session, "M1", EventType.FAVORITES_CHANGED)
        session.rollback()
    write(db, "M2")
    with db() as session:
        assert [e.member_id for e in events_after(session, 0)] == ["M2"]


def test_a_slow_transaction_never_lets_a_later_event_be_seen_before_its_own(db):
    """Positions are handed out at insert; the outbox lock makes a second writer wait until the
    first commits, so a reader that saw position p can never later find one below p."""
    slow = db()
    add_event(slow, "M-SLOW", EventType.FAVORITES_CHANGED)
    second_done = threading.Event()

    def second() -> None:
        write(db, "M-FAST")
        second_done.set()

    thread = threading.Thread(target=second)
    thread.start()
    time.sleep(0.5)
    with db() as reader:
        seen_while_slow = events_after(reader, 0)
    assert not second_done.is_set()
    slow.commit()
    slow.close()
    thread.join(timeout=30)
    with db() as reader:
        events = events_after(reader, 0)
    assert seen_while_slow == []
    assert [e.member_id for e in events] == ["M-SLOW", "M-FAST"]


def test_a_consumers_acknowledged_position_never_moves_back(db):
    for member in ("M1", "M2", "M3"):
        write(db, member)
    with db() as session:
        first, second, third = (e.position for e in events_after(session, 0))
        assert acked_position(session, "push") == 0
        assert ack_events(session, "push", second) == second
        assert ack_events(session, "push", first) == second  # late or repeated ack
        assert ack_events(session, "sms", third) == third  # consumers are independent
        session.commit()
        assert acked_position(session, "push") == second


@pytest.mark.parametrize(
    ("consumer", "position", "field"),
    [
        ("", 1, "consumer"),
        ("job:sneaky", 1, "consumer"),
        ("push", -1, "position"),
        ("push", 99, "position"),
    ],
)
def test_a_bad_acknowledgement_is_invalid(db, consumer, position, field):
    write(db, "M1")
    with db() as session, pytest.raises(InvalidArgument) as caught:
        ack_events(session, consumer, position)
    assert caught.value.field == field


def test_a_consumer_belongs_to_the_credential_that_created_it(db):
    for member in ("M1", "M2", "M3"):
        write(db, member)
    with db() as session:
        first, second, third = (e.position for e in events_after(session, 0))
        assert ack_events(session, "push", second, owner="app-a") == second
        session.commit()
    with db() as session, pytest.raises(PermissionDenied, match="another credential"):
        ack_events(session, "push", third, owner="app-b")  # cannot move it on
    with db() as session, pytest.raises(PermissionDenied):
        acked_position(session, "push", "app-b")  # nor read where it is
    with db() as session:
        assert acked_position(session, "push", "app-a") == second  # nothing moved
        assert ack_events(session, "push", third, owner="app-a") == third
        session.commit()
