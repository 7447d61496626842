"""Campaign replay on a generated store (spec §13): 100,000 confirmed receipts written with
bulk inserts (bench/replay_data.py), replayed with a draft offer; what the report says is
worked out from the generator without the engine. The replay writes nothing, reads in pages
(progress after each), stops when cancelled and when the call's deadline passes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bench import replay_data as data
from service import replay_cli
from service.app.replay import CampaignReplay, ReplayProgress, ReplayReport, ReplayRequest
from service.deadline import set_call_deadline
from service.engine.model import (
    Benefit,
    BenefitKind,
    FavoriteProductsOffer,
    Level,
    ListSource,
    Offer,
    Stacking,
)
from service.engine.money import percent_of
from service.errors import DeadlineExceeded, InvalidArgument
from service.store import db
from service.store.catalog_repo import save_favorite_products_offer
from service.store.models import Base, ReceiptRow
from service.store.sql import insert_rows

RECEIPTS = 100_000
MEMBERS = 2_000
PAGE = 5_000
PERIOD = (data.START, data.START + timedelta(days=data.DAYS))
# 5 % on category C2, which no live offer touches: what it adds is 5 % of each C2 line.
DRAFT = Offer(
    id="A-DRAFT",
    name="Five percent on C2",
    level=Level.ALL_BUYERS,
    benefit=Benefit(BenefitKind.PERCENT, 500),
    scope_group_id="G-C2",
    stacking=Stacking.COMBINABLE,
)


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('replay') / 'store.db'}"
    db.migrate(url)
    engine = db.make_engine(url)
    sessions = db.make_session_factory(engine)
    data.write_store(sessions, RECEIPTS, MEMBERS, batch=20_000)
    try:
        yield sessions
    finally:
        engine.dispose()


def replayer(sessions: sessionmaker[Session], page_size: int = PAGE) -> CampaignReplay:
    return CampaignReplay(sessions, time_zone="UTC", page_size=page_size, max_days=92)


def request(draft: Offer = DRAFT, active: bool = True) -> ReplayRequest:
    return ReplayRequest(draft, active, *PERIOD)


def events(
    sessions: sessionmaker[Session], replay: ReplayRequest, **kwargs: object
) -> tuple[list[ReplayProgress], ReplayReport]:
    found = list(replayer(sessions, **kwargs).run(replay))  # type: ignore[arg-type]
    progress = [e for e in found[:-1] if isinstance(e, ReplayProgress)]
    assert len(progress) == len(found) - 1
    report = found[-1]
    assert isinstance(report, ReplayReport)
    return progress, report


def _receipt_row(receipt_id: str, sale_time: datetime) -> dict[str, object]:
    """A confirmed receipt without lines (an empty cart is not confirmed, but a replay
    must page past it all the same)."""
    return {
        "receipt_id": receipt_id, "store_id": "S1", "channel": "POS", "member_id": None,
        "sale_time": sale_time, "fingerprint": receipt_id, "response": b"", "total_amount": 0,
        "total_discount": 0, "total_paid": 0, "total_points": 0, "confirmed_at": sale_time,
    }  # fmt: skip


def store_fingerprint(sessions: sessionmaker[Session]) -> dict[str, int]:
    with sessions() as session:
        return {
            table.name: int(session.scalar(select(func.count()).select_from(table)) or 0)
            for table in Base.metadata.sorted_tables
        }


def test_a_draft_on_a_hundred_thousand_receipts_adds_what_it_gives_and_writes_nothing(big_store):
    before = store_fingerprint(big_store)
    progress, report = events(big_store, request())

    sales = list(data.sales(RECEIPTS, MEMBERS))
    c2 = [(s, line) for s in sales for line in s.lines if data.category_of(line.sku) == "C2"]
    added = sum(percent_of(line.amount, 500) for _, line in c2)
    live = sum(data.live_discount(line) for s in sales for line in s.lines)
    affected = {s.receipt_id for s, _ in c2}
    members = {s.member_id for s, _ in c2 if s.member_id}
    assert report.receipts == RECEIPTS
    assert report.confirmed.discount == live  # the generator stored what the live offer gives
    assert report.live.discount == live
    assert report.added.discount == added > 0
    assert report.draft.discount == live + added
    assert report.receipts_affected == len(affected)
    assert report.members_affected == len(members)
    assert len(report.days) == data.DAYS
    assert sum(d.receipts for d in report.days) == RECEIPTS
    assert sum(d.draft.discount - d.live.discount for d in report.days) == added
    by_sku: dict[str, int] = {}
    for _, line in c2:
        by_sku[line.sku] = by_sku.get(line.sku, 0) + percent_of(line.amount, 500)
    best = sorted(by_sku.items(), key=lambda item: (-item[1], item[0]))[:10]
    assert [(p.sku, p.added_discount) for p in report.top_products] == best
    assert all(data.category_of(p.sku) == "C2" and p.name for p in report.top_products)

    assert [p.receipts_done for p in progress] == list(range(0, RECEIPTS + 1, PAGE))
    assert {p.receipts_total for p in progress} == {RECEIPTS}
    assert store_fingerprint(big_store) == before


def test_a_draft_change_to_the_live_offer_and_its_removal(big_store):
    """The live offer raised from 10 % to 25 % adds 15 % on C1 lines (the report compares
    with the live 10 %); replayed inactive, it takes the 10 % away."""
    short = (data.START, data.START + timedelta(days=2))
    sales = [s for s in data.sales(RECEIPTS, MEMBERS) if s.sale_time < short[1]]
    c1 = [line for s in sales for line in s.lines if data.category_of(line.sku) == "C1"]
    live = sum(percent_of(line.amount, 1000) for line in c1)

    raised = replace(data.LIVE_OFFER, benefit=Benefit(BenefitKind.PERCENT, 2500))
    _, report = events(big_store, ReplayRequest(raised, True, *short))
    assert report.receipts == len(sales)
    assert report.live.discount == live
    assert report.draft.discount == sum(percent_of(line.amount, 2500) for line in c1)

    _, removed = events(big_store, ReplayRequest(data.LIVE_OFFER, False, *short))
    assert removed.draft.discount == 0
    assert removed.added.discount == -live


def test_a_replay_stops_when_cancelled_and_when_the_deadline_passes(big_store):
    pages = 0

    def cancelled() -> bool:
        nonlocal pages
        pages += 1
        return pages > 2

    found = list(replayer(big_store).run(request(), cancelled))
    assert [type(e) for e in found] == [ReplayProgress] * 3  # the count, then two pages
    assert found[-1].receipts_done == 2 * PAGE

    set_call_deadline(0.0)
    try:
        with pytest.raises(DeadlineExceeded):
            list(replayer(big_store).run(request()))
    finally:
        set_call_deadline(None)


def test_a_period_or_draft_it_cannot_replay_is_invalid_argument(big_store):
    replay = replayer(big_store)
    with pytest.raises(InvalidArgument) as empty:
        list(replay.run(ReplayRequest(DRAFT, True, data.START, data.START)))
    assert empty.value.field == "end"
    with pytest.raises(InvalidArgument) as long:
        list(replay.run(ReplayRequest(DRAFT, True, data.START, data.START + timedelta(days=93))))
    assert long.value.field == "end"


def test_the_pages_are_read_by_key_on_both_backends(db):
    """A few receipts, pages of 3 (receipts of the same sale time split across pages), on
    SQLite and PostgreSQL: every receipt once, in order; a favorite-products offer's id is
    refused as a draft."""
    data.write_store(db, 20, 5, batch=7)
    same_time = data.START + timedelta(hours=5)
    with db() as session:
        insert_rows(session, ReceiptRow, [_receipt_row(f"T{i}", same_time) for i in range(4)])
        session.commit()
    progress, report = events(db, request(), page_size=3)
    assert report.receipts == 24
    assert [p.receipts_done for p in progress] == [0, 3, 6, 9, 12, 15, 18, 21, 24]
    assert report.days[0].receipts == 1 + 4  # R00000000 and the four of the same time
    favorite = FavoriteProductsOffer(
        replace(DRAFT, id="FAV", level=Level.INDIVIDUAL, scope_group_id=None),
        slot_count=3,
        list_source=ListSource.PURCHASE_HISTORY,
    )
    with db() as session:
        save_favorite_products_offer(session, favorite)
        session.commit()
    with pytest.raises(InvalidArgument) as refused:
        list(replayer(db).run(request(replace(DRAFT, id="FAV"))))
    assert refused.value.field == "draft_offer.id"


def test_the_cli_prints_the_report_of_a_replay_on_the_store(db_url, tmp_path, capsys):
    """loyalty-replay --database-url: progress on stderr, the report on stdout, as a table
    and as JSON; a period the wrong way round is exit status 2 naming the field."""
    engine = db.make_engine(db_url)
    try:
        data.write_store(db.make_session_factory(engine), 40, 5)
    finally:
        engine.dispose()
    draft = tmp_path / "draft.json"
    draft.write_text(
        '{"id": "A-DRAFT", "name": "Five on C2", "level": "LEVEL_ALL_BUYERS", '
        '"benefit": {"kind": "BENEFIT_KIND_PERCENT", "value": 500}, "scope_group_id": "G-C2", '
        '"stacking": "STACKING_COMBINABLE", "active": true}',
        encoding="utf-8",
    )
    common = ["--database-url", db_url, "--offer", str(draft), "--time-zone", "UTC"]
    period = ["--start", "2026-10-01", "--end", "2026-11-01"]
    assert replay_cli.main([*common, *period, "--page-size", "16"]) == 0
    out, err = capsys.readouterr()
    sales = list(data.sales(40, 5))
    added = sum(
        percent_of(line.amount, 500)
        for s in sales
        for line in s.lines
        if data.category_of(line.sku) == "C2"
    )
    assert "Campaign replay of A-DRAFT" in out and "40 receipts" in out
    added_row = next(row for row in out.splitlines() if row.startswith("added "))
    assert added_row.split()[1] == f"{added:,}"
    assert err.splitlines() == [f"replayed {n} of 40 receipts" for n in (0, 16, 32, 40)]

    assert replay_cli.main([*common, *period, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert int(report["added"]["discount"]) == added
    assert int(report["receipts"]) == 40

    backwards = ["--start", "2026-11-01", "--end", "2026-10-01"]
    assert replay_cli.main([*common, *backwards]) == 2
    assert "end: must be after start" in capsys.readouterr().err
