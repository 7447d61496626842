"""Cards in the cache follow the change feed: what an import elsewhere does to a card shows at
the next poll on every replica, with no timer (a card changes only with its member)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from service.cache.state import BenefitCache
from service.cache.sync import ChangeFollower
from service.engine.model import Member
from service.imports.files import AttributeFile
from service.imports.run import AttributeImport
from service.store.member_repo import save_members

ZONE = "Europe/Moscow"


class Replica:
    """A cache and its change follower, as a server has them."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.cache = BenefitCache(sessions, time_zone=ZONE)
        self.cache.reload_snapshot()
        self.follower = ChangeFollower(sessions, self.cache)
        self.follower.poll_once()

    def owner(self, card_number: str) -> str | None:
        found = self.cache.member_for_card(card_number)
        return None if found is None else found[0]


@pytest.fixture
def replica(db: sessionmaker[Session]) -> Replica:
    members = [Member("M1"), Member("M2")]
    with db.begin() as session:
        save_members(session, members, {"M1": ["C1"], "M2": ["C2"]}, now=datetime.now(UTC))
    return Replica(db)


def import_elsewhere(db: sessionmaker[Session], directory: Path, *profiles: dict) -> None:
    """Another replica's import of member profiles (a card list is the member's whole set)."""
    path = directory / f"{len(list(directory.iterdir()))}.jsonl"
    path.write_text("".join(json.dumps({"type": "member_profile", **p}) + "\n" for p in profiles))
    run = AttributeImport(db, path.stem + "-import")
    start = run.begin()
    outcome = run.run(AttributeFile(path, ZONE).rows(start.skip))
    assert outcome.errors == (), outcome.errors


def test_a_card_blocked_elsewhere_stops_resolving_at_the_next_poll(
    db: sessionmaker[Session], replica: Replica, tmp_path: Path
) -> None:
    assert replica.owner("C1") == "M1"
    import_elsewhere(db, tmp_path, {"member_id": "M1", "card_numbers": ["C1-NEW"]})
    replica.follower.poll_once()
    assert replica.owner("C1") is None, "blocked: not found, at once and not a minute later"
    assert replica.owner("C1-NEW") == "M1"
    assert replica.owner("C2") == "M2", "other members' cards stay"


def test_a_card_issued_elsewhere_resolves_at_the_next_poll_though_it_was_unknown(
    db: sessionmaker[Session], replica: Replica, tmp_path: Path
) -> None:
    assert replica.owner("C1") == "M1"
    assert replica.owner("C1-SPARE") is None  # remembered as unknown for a few seconds
    import_elsewhere(db, tmp_path, {"member_id": "M1", "card_numbers": ["C1", "C1-SPARE"]})
    replica.follower.poll_once()
    assert replica.owner("C1-SPARE") == "M1"
    assert replica.owner("C1") == "M1"


def test_a_card_moved_to_another_member_is_read_again(
    db: sessionmaker[Session], replica: Replica
) -> None:
    """Imports refuse a card of another member; save_members (demo data, benchmarks) moves it
    and tells only the new owner, which is enough when this replica knows a card of theirs."""
    assert (replica.owner("C1"), replica.owner("C2")) == ("M1", "M2")
    with db.begin() as session:
        save_members(session, [Member("M2")], {"M2": ["C1"]}, now=datetime.now(UTC))
    replica.follower.poll_once()
    assert replica.owner("C1") == "M2"
