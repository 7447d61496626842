"""Attribute imports into the store, on SQLite and PostgreSQL: what a row changes, what a bad
row does not, idempotency by import id, resuming after a crash, re-import rules (spec §7.2,
7.3), notifications and the change feed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, event, insert, select, text
from sqlalchemy.orm import Session, sessionmaker

from service.app import unit_of_work
from service.engine.model import Benefit, BenefitKind, Frequency, Stacking
from service.errors import AlreadyExists
from service.imports.files import AttributeFile
from service.imports.run import (
    AttributeImport,
    BatchReport,
    ImportConflict,
    ImportOutcome,
)
from service.store.codec import member_from_document
from service.store.db import make_engine, make_session_factory, migrate
from service.store.import_repo import load_import
from service.store.loader import load_member, load_member_by_card
from service.store.models import (
    CardRow,
    FavoriteCategoryAttributeRow,
    FavoriteCategoryChoiceRow,
    MemberDocumentRow,
    PersonalOfferRow,
)

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
ZONE = "Europe/Moscow"


def profile(member_id: str, *cards: str, **extra: Any) -> dict[str, Any]:
    return {"type": "member_profile", "member_id": member_id, "card_numbers": list(cards), **extra}


def categories(member_id: str, groups: list[str], max_count: int = 2, **extra: Any) -> dict:
    return {
        "type": "favorite_categories",
        "member_id": member_id,
        "offer_id": "C-MONTH",
        "name": "Your categories",
        "group_ids": groups,
        "benefit_kind": "PERCENT",
        "benefit_value": 1000,
        "max_count": max_count,
        "acceptance_required": True,
        "frequency": "MONTHLY",
        **extra,
    }


def personal(member_id: str, offer_id: str = "P-COFFEE", **extra: Any) -> dict[str, Any]:
    return {
        "type": "personal_offer",
        "member_id": member_id,
        "offer_id": offer_id,
        "name": "Coffee -25 %",
        "skus": ["SKU1"],
        "benefit_kind": "PERCENT",
        "benefit_value": 2500,
        **extra,
    }


def revoke(member_id: str, offer_id: str = "P-COFFEE") -> dict[str, Any]:
    return {"type": "personal_offer", "member_id": member_id, "offer_id": offer_id, "revoke": True}


class Importer:
    """Writes rows to a JSON Lines file and imports it, as loyalty-import does."""

    def __init__(self, sessions: sessionmaker[Session], directory: Path) -> None:
        self.sessions = sessions
        self.directory = directory
        self.files = 0

    def file(self, rows: list[dict[str, Any]]) -> Path:
        self.files += 1
        path = self.directory / f"rows{self.files}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path

    def run(
        self,
        import_id: str,
        rows: list[dict[str, Any]] | Path,
        *,
        batch_size: int = 3,
        on_batch=None,
        fingerprint: str | None = None,
    ) -> ImportOutcome:
        path = rows if isinstance(rows, Path) else self.file(rows)
        run = AttributeImport(
            self.sessions,
            import_id,
            batch_size=batch_size,
            clock=lambda: NOW,
            on_batch=on_batch,
            fingerprint=fingerprint,
        )
        start = run.begin()
        if start.replayed:
            return ImportOutcome(start.state, (), True, 0)
        return run.run(AttributeFile(path, ZONE).rows(start.skip))


@pytest.fixture
def importer(db, tmp_path) -> Importer:
    return Importer(db, tmp_path)


def member(db, member_id: str):
    with db() as session:
        return load_member(session, member_id)


def table_rows(db, model, *, drop: tuple[str, ...] = ()) -> list[tuple]:
    table = model.__table__
    columns = [c for c in table.columns if c.name not in drop]
    with db() as session:
        ordered = select(*columns).order_by(*table.primary_key.columns)
        return [tuple(r) for r in session.execute(ordered)]


def outbox(db) -> list[tuple[str, str, dict]]:
    with db() as session:
        rows = session.execute(
            text("SELECT member_id, event_type, payload FROM outbox ORDER BY position")
        )
        return [(m, t, p if isinstance(p, dict) else json.loads(p)) for m, t, p in rows]


def feed_members(db) -> list[str]:
    with db() as session:
        query = "SELECT entity_key FROM change_feed WHERE entity_kind = 'member' ORDER BY position"
        return list(session.scalars(text(query)))


STORE_TABLES = (
    "members",
    "cards",
    "favorite_category_attributes",
    "favorite_category_choices",
    "personal_offers",
    "imports",
)


def dump(sessions: sessionmaker[Session]) -> dict[str, list[tuple]]:
    """Every table an import writes, in key order; outbox and feed in order, no positions."""
    result: dict[str, list[tuple]] = {}
    with sessions() as session:
        for name in STORE_TABLES:
            result[name] = sorted(tuple(r) for r in session.execute(text(f"SELECT * FROM {name}")))
        for name, columns in (
            ("outbox", "member_id, event_type, payload, created_at"),
            ("change_feed", "entity_kind, entity_key, created_at"),
        ):
            query = f"SELECT {columns} FROM {name} ORDER BY position"
            result[name] = [tuple(str(v) for v in r) for r in session.execute(text(query))]
    return result


# --- what an import writes --------------------------------------------------------------------


def test_an_import_creates_members_with_cards_category_terms_and_personal_offers(db, importer):
    outcome = importer.run(
        "I1",
        [
            profile("M1", "2000000000001", "2000000000002", gender="MALE", segment_tags=["vip"]),
            categories("M1", ["G1", "G2", "G3"]),
            personal("M1", valid_to="2026-04-01"),
            profile("M2", birth_date="1950-01-31", active=False),
        ],
    )
    assert (outcome.state.status, outcome.state.rows_applied, outcome.state.rows_rejected) == (
        "DONE",
        4,
        0,
    )
    assert outcome.state.rows_total == 4 and not outcome.replayed
    m1 = member(db, "M1")
    assert m1.segment_tags == frozenset({"vip"}) and m1.active
    (terms,) = m1.favorite_categories
    assert terms.group_ids == ("G1", "G2", "G3") and terms.chosen_group_ids == frozenset()
    assert terms.benefit == Benefit(BenefitKind.PERCENT, 1000)
    assert (terms.max_count, terms.frequency, terms.stacking) == (
        2,
        Frequency.MONTHLY,
        Stacking.EXCLUSIVE,
    )
    (offer,) = m1.personal_offers
    assert offer.offer_id == "P-COFFEE" and offer.skus == frozenset({"SKU1"})
    assert offer.valid_to == datetime(2026, 3, 31, 21, 0, tzinfo=UTC)
    m2 = member(db, "M2")
    assert not m2.active and m2.birth_date.isoformat() == "1950-01-31"
    with db() as session:
        assert load_member_by_card(session, "2000000000002")[0] == "M1"


def test_a_bad_row_is_rejected_alone_and_the_rows_around_it_apply(db, importer):
    outcome = importer.run(
        "I1",
        [
            profile("M1"),
            personal("M1", benefit_kind="PERCENTAGE"),
            personal("M1", offer_id="P-TEA"),
        ],
    )
    assert (outcome.state.rows_applied, outcome.state.rows_rejected) == (2, 1)
    (error,) = outcome.errors
    assert (error.line_number, error.field) == (2, "benefit_kind")
    assert [o.offer_id for o in member(db, "M1").personal_offers] == ["P-TEA"]


def test_a_row_for_an_unknown_member_is_rejected_and_writes_nothing(db, importer):
    outcome = importer.run("I1", [categories("NOBODY", ["G1"]), personal("NOBODY")])
    assert [(e.line_number, e.field) for e in outcome.errors] == [
        (1, "member_id"),
        (2, "member_id"),
    ]
    assert "unknown member 'NOBODY'" in outcome.errors[0].reason
    assert table_rows(db, PersonalOfferRow) == [] and outbox(db) == []


def test_a_member_created_earlier_in_the_same_batch_can_take_attributes(db, importer):
    outcome = importer.run("I1", [profile("M1"), personal("M1")], batch_size=100)
    assert outcome.state.rows_applied == 2


def test_an_import_writes_the_documents_a_cold_load_reads(db, importer):
    """Documents are patched from what the batch wrote; a member whose document is missing
    (written before documents existed) gets one rebuilt from their rows."""
    importer.run("I1", [profile("M1", segment_tags=["old"]), profile("M2"), personal("M2")])
    with db.begin() as session:
        session.execute(delete(MemberDocumentRow).where(MemberDocumentRow.member_id == "M2"))
    importer.run(
        "I2",
        [profile("M1", segment_tags=["new"]), categories("M1", ["G1"]), personal("M2", "P-TEA")],
    )
    with db() as session:
        columns = (MemberDocumentRow.member_id, MemberDocumentRow.body)
        documents = dict(session.execute(select(*columns)).all())
        m1, m2 = (member_from_document(m, documents[m]) for m in ("M1", "M2"))
    assert m1.segment_tags == {"new"} and [t.group_ids for t in m1.favorite_categories] == [("G1",)]
    assert [o.offer_id for o in m2.personal_offers] == ["P-COFFEE", "P-TEA"]


def test_a_card_of_another_member_rejects_the_whole_profile_row(db, importer):
    importer.run("I1", [profile("M1", "2000000000001")])
    outcome = importer.run(
        "I2", [profile("M2", "2000000000009", "2000000000001", segment_tags=["x"])]
    )
    (error,) = outcome.errors
    assert error.field == "card_numbers[1]" and "belongs to member 'M1'" in error.reason
    assert member(db, "M2") is None
    with db() as session:
        assert load_member_by_card(session, "2000000000009") is None


def test_a_new_card_list_blocks_the_cards_no_longer_listed_and_no_list_keeps_them(db, importer):
    importer.run("I1", [profile("M1", "2000000000001", "2000000000002")])
    importer.run("I2", [profile("M1", "2000000000002", "2000000000003")])
    cards = {number: active for number, _member, active, _at in table_rows(db, CardRow)}
    assert cards == {"2000000000001": False, "2000000000002": True, "2000000000003": True}
    importer.run("I3", [profile("M1", segment_tags=["vip"])])
    cards_after = {number: active for number, _m, active, _at in table_rows(db, CardRow)}
    assert cards_after == cards
    assert member(db, "M1").segment_tags == frozenset({"vip"})


# --- re-import rules -----------------------------------------------------------------------------


def choose(db, member_id: str, *group_ids: str) -> None:
    with db() as session:
        for group_id in group_ids:
            session.execute(
                insert(FavoriteCategoryChoiceRow).values(
                    member_id=member_id, offer_id="C-MONTH", group_id=group_id
                )
            )
        session.commit()


def test_a_reimport_keeps_choices_still_offered_trimmed_to_max_count(db, importer):
    importer.run("I1", [profile("M1"), categories("M1", ["G1", "G2", "G3", "G4"], max_count=3)])
    choose(db, "M1", "G1", "G3", "G4")
    importer.run("I2", [categories("M1", ["G4", "G2", "G3", "G1"], max_count=2)])
    (terms,) = member(db, "M1").favorite_categories
    # still offered: G4, G3, G1; the first two in the new offered order stay
    assert terms.chosen_group_ids == frozenset({"G4", "G3"})
    assert terms.max_count == 2 and terms.group_ids == ("G4", "G2", "G3", "G1")


def test_a_reimport_drops_choices_no_longer_offered(db, importer):
    importer.run("I1", [profile("M1"), categories("M1", ["G1", "G2", "G3"])])
    choose(db, "M1", "G1", "G2")
    importer.run("I2", [categories("M1", ["G2", "G5"])])
    (terms,) = member(db, "M1").favorite_categories
    assert terms.chosen_group_ids == frozenset({"G2"})
    assert table_rows(db, FavoriteCategoryChoiceRow) == [("M1", "C-MONTH", "G2")]


def test_a_reimport_replaces_the_terms_and_bumps_their_version(db, importer):
    importer.run("I1", [profile("M1"), categories("M1", ["G1"], benefit_value=500)])
    importer.run("I2", [categories("M1", ["G1"], benefit_value=700)])
    (terms,) = member(db, "M1").favorite_categories
    assert terms.benefit.value == 700
    attributes = FavoriteCategoryAttributeRow.__table__
    with db() as session:
        stored = session.execute(select(attributes.c.version, attributes.c.import_id)).one()
    assert tuple(stored) == (2, "I2")


def test_a_personal_offer_is_upserted_by_member_and_offer_id(db, importer):
    importer.run("I1", [profile("M1"), personal("M1"), personal("M1", offer_id="P-TEA")])
    importer.run("I2", [personal("M1", benefit_value=3000, skus=["SKU7"])])
    offers = {o.offer_id: o for o in member(db, "M1").personal_offers}
    assert set(offers) == {"P-COFFEE", "P-TEA"}
    assert offers["P-COFFEE"].benefit.value == 3000
    assert offers["P-COFFEE"].skus == frozenset({"SKU7"})


def test_a_revoke_row_revokes_the_members_offer_and_a_later_upsert_restores_it(db, importer):
    importer.run("I1", [profile("M1"), personal("M1"), personal("M1", offer_id="P-TEA")])
    outcome = importer.run("I2", [revoke("M1"), revoke("M1", "P-NEVER-HAD")])
    assert outcome.state.rows_applied == 2 and not outcome.errors
    assert [o.offer_id for o in member(db, "M1").personal_offers] == ["P-TEA"]
    offers = PersonalOfferRow.__table__
    with db() as session:
        revoked = {o: r for o, r in session.execute(select(offers.c.offer_id, offers.c.revoked))}
    assert revoked == {"P-COFFEE": True, "P-TEA": False}  # kept, marked revoked
    importer.run("I3", [personal("M1")])
    assert len(member(db, "M1").personal_offers) == 2


def test_rows_of_one_member_and_offer_in_one_batch_apply_in_file_order(db, importer):
    importer.run(
        "I1",
        [profile("M1"), personal("M1"), revoke("M1"), personal("M1", offer_id="P-TEA")],
        batch_size=100,
    )
    assert [o.offer_id for o in member(db, "M1").personal_offers] == ["P-TEA"]
    assert [t for _m, t, p in outbox(db) if p["offer_id"] == "P-COFFEE"] == []


# --- notifications and the change feed ------------------------------------------------------------


def test_new_personal_offers_and_categories_to_choose_are_announced_once(db, importer):
    importer.run(
        "I1",
        [
            profile("M1"),
            categories("M1", ["G1", "G2"]),
            categories("M1", ["G3"], offer_id="C-AUTO", acceptance_required=False),
            personal("M1"),
        ],
    )
    events = outbox(db)
    assert [(m, t) for m, t, _p in events] == [
        ("M1", "CATEGORIES_TO_CHOOSE"),
        ("M1", "NEW_PERSONAL_OFFER"),
    ]
    assert events[0][2] == {
        "offer_id": "C-MONTH",
        "name": "Your categories",
        "group_ids": ["G1", "G2"],
        "max_count": 2,
        "import_id": "I1",
    }
    assert events[1][2]["offer_id"] == "P-COFFEE"
    # the same terms and offer again: nothing new to hear about
    importer.run("I2", [categories("M1", ["G1", "G2"]), personal("M1", benefit_value=3000)])
    assert len(outbox(db)) == 2
    # other groups offered, nothing chosen: choose again; a revoked offer granted again: new
    importer.run("I3", [categories("M1", ["G1", "G5"]), revoke("M1")])
    importer.run("I4", [personal("M1")])
    assert [t for _m, t, _p in outbox(db)[2:]] == ["CATEGORIES_TO_CHOOSE", "NEW_PERSONAL_OFFER"]


def test_a_member_who_still_has_a_choice_is_not_asked_to_choose_again(db, importer):
    importer.run("I1", [profile("M1"), categories("M1", ["G1", "G2"])])
    choose(db, "M1", "G2")
    importer.run("I2", [categories("M1", ["G2", "G3"])])
    assert [t for _m, t, _p in outbox(db)] == ["CATEGORIES_TO_CHOOSE"]


def test_every_changed_member_gets_a_change_feed_row_and_rejected_rows_none(db, importer):
    importer.run(
        "I1",
        [profile("M1"), profile("M2"), personal("M1"), personal("M3"), profile("M4")],
        batch_size=2,
    )
    assert feed_members(db) == ["M1", "M2", "M1", "M4"]


def test_each_batch_reports_its_members_and_cards_after_it_is_committed(db, importer):
    reports: list[BatchReport] = []

    def after(report: BatchReport) -> None:
        with db() as session:  # committed: a new session sees the batch
            for member_id in report.applied.member_ids:
                assert load_member(session, member_id) is not None
        reports.append(report)

    importer.run(
        "I1",
        [profile("M1", "2000000000001"), personal("M1"), profile("M2")],
        on_batch=after,
        batch_size=2,
    )
    assert [(r.rows, r.consumed, r.last_line) for r in reports] == [(2, 2, 2), (1, 3, 3)]
    assert reports[0].applied.member_ids == ("M1",)
    assert reports[0].applied.card_numbers == ("2000000000001",)


# --- idempotency, crashes, concurrent runs ------------------------------------------------


ROWS = [
    profile("M1", "2000000000001"),
    categories("M1", ["G1", "G2", "G3"]),
    personal("M1"),
    profile("M2", "2000000000002"),
    personal("M2", benefit_kind="NOPE"),
    personal("M2", offer_id="P-TEA"),
    profile("M3"),
    categories("M3", ["G2"], acceptance_required=False),
    revoke("M1"),
    profile("M4", "2000000000004"),
    personal("M4"),
]


def test_running_the_same_import_id_again_changes_nothing_and_says_replayed(db, importer):
    path = importer.file(ROWS)
    first = importer.run("I1", path)
    before = dump(db)
    second = importer.run("I1", path)
    assert second.replayed and not first.replayed
    assert second.state == first.state
    assert dump(db) == before


@pytest.fixture
def other_db(db_url, request, tmp_path):
    """A second, migrated database on the same backend as `db`."""
    if db_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'other.db'}"
    else:
        cluster = request.getfixturevalue("pg_cluster")
        url = cluster.create_database()
        request.addfinalizer(lambda: cluster.drop_database(url.rsplit("/", 1)[1]))
    migrate(url)
    engine = make_engine(url)
    yield make_session_factory(engine)
    engine.dispose()


class Crash(Exception):
    pass


def test_an_import_resumed_after_a_crash_ends_equal_to_a_clean_import(
    db, other_db, importer, tmp_path
):
    path = importer.file(ROWS)
    Importer(other_db, tmp_path).run("I1", path)  # the clean import, elsewhere

    def crash_after_batch_two(report: BatchReport) -> None:
        if report.consumed == 6:
            raise Crash

    with pytest.raises(Crash):
        importer.run("I1", path, on_batch=crash_after_batch_two)
    with db() as session:
        halfway = load_import(session, "I1")
    assert (halfway.status, halfway.consumed, halfway.rows_rejected) == ("RUNNING", 6, 1)
    assert member(db, "M3") is None  # batch three never ran

    resumed = importer.run("I1", path)
    assert resumed.resumed_from == 6 and resumed.state.status == "DONE"
    assert dump(db) == dump(other_db)


def test_a_crash_inside_a_batch_leaves_none_of_that_batch(db, importer, monkeypatch):
    importer.run("I0", [profile("M1")])

    def crash(*_args: Any) -> int:  # after members, cards, terms and offers were written
        raise Crash

    monkeypatch.setattr(unit_of_work, "add_events", crash)  # the batch's events, at commit
    with pytest.raises(Crash):
        importer.run("I1", [profile("M2"), personal("M1"), profile("M3")], batch_size=10)
    assert member(db, "M2") is None and member(db, "M1").personal_offers == ()
    with db() as session:
        assert load_import(session, "I1").consumed == 0
    monkeypatch.undo()
    assert importer.run("I1", [profile("M2"), personal("M1"), profile("M3")]).state.done


def test_a_second_run_of_a_running_import_is_refused_when_the_first_moves_on(db, importer):
    path = importer.file(ROWS)
    first = AttributeImport(db, "I1", batch_size=2, clock=lambda: NOW)
    second = AttributeImport(db, "I1", batch_size=2, clock=lambda: NOW)
    first.begin()
    assert second.begin().skip == 0
    rows = AttributeFile(path, ZONE).rows()
    first_rows = iter(rows)
    first.run([next(first_rows), next(first_rows)], prefetch=False)  # DONE after 2 rows
    with pytest.raises(ImportConflict):
        second.run(AttributeFile(path, ZONE).rows(), prefetch=False)


def test_the_same_import_id_with_another_file_is_refused(db, importer):
    importer.run("I1", [profile("M1")], fingerprint="a" * 64)
    with pytest.raises(AlreadyExists):
        importer.run("I1", [profile("M2")], fingerprint="b" * 64)


def test_a_batch_reads_each_table_with_a_few_queries_whatever_its_size(db, importer):
    def selects(rows: int) -> int:
        statements: list[str] = []
        engine = db.kw["bind"]

        def record(_conn, _cursor, statement, *_args) -> None:
            if statement.lstrip().upper().startswith("SELECT"):
                statements.append(statement)

        data = [profile(f"N{rows}-{i}", f"9{rows:03d}{i:09d}") for i in range(rows)]
        data += [personal(f"N{rows}-{i}") for i in range(rows)]
        data += [categories(f"N{rows}-{i}", ["G1"]) for i in range(rows)]
        event.listen(engine, "before_cursor_execute", record)
        try:
            importer.run(f"Q{rows}", data, batch_size=3 * rows)
        finally:
            event.remove(engine, "before_cursor_execute", record)
        return len(statements)

    assert selects(400) == selects(40)
