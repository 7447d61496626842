"""The demo data set: loads once into an empty store, reads back as generated, and its
showcase receipt shows every individual mechanic when the engine calculates it."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

from service.demo import RECEIPT_FILE, demo_receipt, load_demo
from service.demo_data.generate import (
    FAVORITE_HISTORY,
    MEMBER_COUNT,
    SHOWCASE_MEMBER,
    WELCOME_CODE,
    WELCOME_OFFER,
    demo_catalogue,
    demo_coupon_campaigns,
    demo_offers,
    previous_month,
)
from service.demo_data.members import demo_members, most_bought
from service.engine.calculate import calculate
from service.engine.model import BenefitKind, Channel, Level, Line, Mechanic, Product, Receipt
from service.engine.snapshot import build_snapshot
from service.store.catalog_repo import save_products
from service.store.db import read_snapshot
from service.store.loader import (
    iter_member_ids,
    load_catalogue,
    load_member,
    load_member_by_card,
    load_members,
    load_purchases,
)

NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # 10:00 in Moscow, a Monday


def test_the_demo_loads_into_an_empty_store_once_and_a_second_load_does_nothing(db):
    first = load_demo(db, NOW)
    second = load_demo(db, NOW)
    assert first.loaded and not second.loaded
    assert first.members == MEMBER_COUNT == first.cards
    assert first.products >= 250 and first.categories >= 30 and first.stores == 3
    assert first.favorite_product_offers == 2 and first.purchases > MEMBER_COUNT
    assert first.coupon_campaigns == 1
    with db() as session:
        assert len(list(iter_member_ids(session))) == MEMBER_COUNT


def test_the_demo_reads_back_exactly_as_generated(db):
    load_demo(db, NOW)
    catalogue = demo_catalogue()
    offers, favorites = demo_offers(catalogue, NOW)
    people = demo_members(catalogue, NOW)
    with read_snapshot(db) as session:
        loaded = load_catalogue(session)
        members = load_members(session, [m.id for m in people.members])
    assert loaded.products == tuple(sorted((p.product for p in catalogue.products), key=sku))
    assert set(loaded.offers) == set(offers) and set(loaded.favorite_product_offers) == set(
        favorites
    )
    assert members == {m.id: m for m in people.members}
    assert loaded.coupon_campaigns == demo_coupon_campaigns(NOW)


def test_the_demo_coupon_takes_10_percent_off_household_goods_only_with_its_code(db):
    load_demo(db, NOW)
    with read_snapshot(db) as session:
        catalogue = load_catalogue(session)
    snapshot = build_snapshot(**catalogue.as_kwargs(), program_time_zone="Europe/Moscow")
    [campaign] = catalogue.coupon_campaigns
    assert (campaign.shared_code, campaign.offer_id) == (WELCOME_CODE, WELCOME_OFFER)
    assert campaign.valid_at(NOW)
    soap = demo_catalogue().in_category("cleaning")[0]
    line = Line("1", soap.product.sku, 1000, soap.price, soap.price)
    without = Receipt("R1", NOW, (line,), "S001", Channel.POS)
    with_code = Receipt(
        "R1", NOW, (line,), "S001", Channel.POS, coupon_offers=frozenset({WELCOME_OFFER})
    )
    assert not calculate(snapshot, without).lines[0].benefits, "gated: no code, no discount"
    [benefit] = calculate(snapshot, with_code).lines[0].benefits
    assert (benefit.offer_id, benefit.discount) == (WELCOME_OFFER, (soap.price + 5) // 10)


def sku(product: Product) -> str:
    return product.sku


def test_the_demo_covers_every_offer_level_and_benefit_kind():
    offers, favorites = demo_offers(demo_catalogue(), NOW)
    everything = [*offers, *(f.offer for f in favorites)]
    assert {o.level for o in everything} == set(Level)
    assert {o.benefit.kind for o in everything} == set(BenefitKind)


def test_the_demo_is_the_same_on_every_build():
    assert demo_catalogue() == demo_catalogue()
    assert demo_members(demo_catalogue(), NOW) == demo_members(demo_catalogue(), NOW)


def test_the_demo_does_not_load_into_a_store_that_already_has_data(db):
    with db() as session:
        save_products(session, [Product("1", "Milk")])
        session.commit()
    assert not load_demo(db, NOW).loaded
    with db() as session:
        assert list(iter_member_ids(session)) == []


def test_two_concurrent_demo_loads_write_the_demo_once(db):
    results = []

    def load() -> None:
        results.append(load_demo(db, NOW).loaded)

    threads = [threading.Thread(target=load) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, True]
    with db() as session:
        assert len(list(iter_member_ids(session))) == MEMBER_COUNT


def test_demo_cards_lead_to_their_members(db):
    load_demo(db, NOW)
    with db() as session:
        assert load_member_by_card(session, "2000000000001")[0] == SHOWCASE_MEMBER
        assert load_member_by_card(session, "2000000001000")[0] == "M001000"
        assert load_member_by_card(session, "2000000001001") is None


def test_the_showcase_members_history_slots_are_last_months_most_bought_products(db):
    load_demo(db, NOW)
    with db() as session:
        bought = load_purchases(session, SHOWCASE_MEMBER, previous_month(NOW))
        member = load_member(session, SHOWCASE_MEMBER)
    assert member is not None
    assert member.favorite_slots[FAVORITE_HISTORY] == {p.sku for p in bought[:5]}
    assert [p.sku for p in bought] == [p.sku for p in most_bought(bought)]  # type: ignore[arg-type]


def test_the_receipt_file_is_the_demo_receipt():
    assert json.loads(RECEIPT_FILE.read_text()) == demo_receipt()


def test_the_showcase_receipt_shows_a_benefit_of_every_individual_mechanic(db):
    load_demo(db, NOW)
    data = demo_receipt()
    with read_snapshot(db) as session:
        catalogue = load_catalogue(session)
        _, member = load_member_by_card(session, data["card"]) or ("", None)
    snapshot = build_snapshot(**catalogue.as_kwargs(), program_time_zone="Europe/Moscow")
    fields = ("line_id", "sku", "quantity", "price", "amount")
    lines = tuple(Line(**{f: line[f] for f in fields}) for line in data["lines"])
    receipt = Receipt(
        data["receipt_id"], NOW, lines, data["store_id"], Channel[data["channel"]], member
    )
    result = calculate(snapshot, receipt)
    mechanics = {b.mechanic for line in result.lines for b in line.benefits if b.discount > 0}
    assert {
        Mechanic.FAVORITE_PRODUCTS,
        Mechanic.FAVORITE_CATEGORIES,
        Mechanic.PERSONALIZED_OFFER,
        Mechanic.ALL_BUYERS,
        Mechanic.MEMBERS_ONLY,
    } <= mechanics
    by_note = {data["notes"][line.line_id]: line for line in result.lines}
    tobacco = next(line for note, line in by_note.items() if note.startswith("excluded"))
    unknown = next(line for note, line in by_note.items() if note.startswith("SKU unknown"))
    assert tobacco.benefits == () and not unknown.known_sku
    assert result.unknown_skus == (unknown.sku,)
    assert any(line.quantity == 753 for line in lines)
