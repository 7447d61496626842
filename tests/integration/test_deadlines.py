"""A call past its deadline writes nothing; its remaining time bounds database waits."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.deadline import set_call_deadline
from service.errors import DeadlineExceeded
from service.store.feed import EntityKind, append_changes
from service.store.models import ChangeFeedRow


def feed_rows(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(ChangeFeedRow)) or 0)


@pytest.fixture(autouse=True)
def no_deadline_after() -> object:
    yield None
    set_call_deadline(None)


def test_a_write_whose_deadline_passed_before_commit_is_rolled_back(
    db: sessionmaker[Session],
) -> None:
    set_call_deadline(5.0)
    with db() as session:
        append_changes(session, EntityKind.MEMBER, ["M1"])
        session.flush()
        set_call_deadline(-0.001)  # the caller gave up while the transaction was open
        with pytest.raises(DeadlineExceeded):
            session.commit()
        session.rollback()
    set_call_deadline(None)
    assert feed_rows(db) == 0


def test_a_write_within_its_deadline_commits(db: sessionmaker[Session]) -> None:
    set_call_deadline(5.0)
    with db.begin() as session:
        append_changes(session, EntityKind.MEMBER, ["M1"])
    set_call_deadline(None)
    assert feed_rows(db) == 1


@pytest.mark.postgres
def test_a_lock_wait_is_cut_short_by_the_remaining_time(pg_url: str) -> None:
    import time

    from sqlalchemy.exc import OperationalError

    from service.store import db as store_db

    store_db.migrate(pg_url)
    engine = store_db.make_engine(pg_url)
    sessions = store_db.make_session_factory(engine)
    try:
        with sessions.begin() as session:
            append_changes(session, EntityKind.MEMBER, ["M1"])
        holder = sessions()
        holder.execute(select(ChangeFeedRow).with_for_update())  # holds the row lock
        set_call_deadline(0.3)
        started = time.monotonic()
        with pytest.raises(OperationalError), sessions() as waiter:
            waiter.execute(select(ChangeFeedRow).with_for_update())
        assert time.monotonic() - started < 2.0
        holder.rollback()
        holder.close()
    finally:
        set_call_deadline(None)
        engine.dispose()
