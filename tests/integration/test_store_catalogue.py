"""Catalogue and offers in the store: replacement, activity, the change feed, snapshots."""

from __future__ import annotations

from service.engine.model import (
    Benefit,
    BenefitKind,
    Category,
    FavoriteProductsOffer,
    Level,
    ListSource,
    Member,
    Offer,
    Product,
    ProductGroup,
    ProductList,
    Store,
)
from service.store.catalog_repo import (
    save_categories,
    save_favorite_products_offer,
    save_offer,
    save_product_groups,
    save_product_lists,
    save_products,
    save_stores,
)
from service.store.db import read_snapshot
from service.store.feed import changes_after, last_position
from service.store.loader import load_catalogue
from service.store.member_repo import add_purchase, save_member

TEN_PERCENT = Offer("O1", "Ten", Level.ALL_BUYERS, Benefit(BenefitKind.PERCENT, 1000))
FAVORITES = FavoriteProductsOffer(
    Offer("F1", "Favorites", Level.INDIVIDUAL, Benefit(BenefitKind.PERCENT, 1500)),
    slot_count=3,
    list_source=ListSource.PREDEFINED,
    product_list_id="L1",
)


def test_saving_products_again_replaces_their_categories_in_the_new_order(db):
    with db() as session:
        save_products(session, [Product("1", "Milk", ("milk", "dairy", "sale"))])
        save_products(session, [Product("1", "Milk 2.5 %", ("sale", "milk"))])
        session.commit()
        assert load_catalogue(session).products == (Product("1", "Milk 2.5 %", ("sale", "milk")),)


def test_saving_a_group_or_a_list_again_replaces_its_items(db):
    with db() as session:
        save_product_groups(session, [ProductGroup("G", "G", skus=frozenset({"1", "2"}))])
        save_product_groups(session, [ProductGroup("G", "G", category_ids=frozenset({"c"}))])
        save_product_lists(session, [ProductList("L", "L", ("1", "2", "3"))])
        save_product_lists(session, [ProductList("L", "L", ("3", "1"))])
        session.commit()
        catalogue = load_catalogue(session)
    assert catalogue.groups == (ProductGroup("G", "G", category_ids=frozenset({"c"})),)
    assert catalogue.product_lists == (ProductList("L", "L", ("3", "1")),)


def test_an_inactive_offer_is_kept_but_not_loaded(db):
    with db() as session:
        save_offer(session, TEN_PERCENT, active=False)
        save_favorite_products_offer(session, FAVORITES, active=False)
        session.commit()
        inactive = load_catalogue(session)
        save_offer(session, TEN_PERCENT)
        save_favorite_products_offer(session, FAVORITES)
        session.commit()
        active = load_catalogue(session)
    assert inactive.offers == () and inactive.favorite_product_offers == ()
    assert active.offers == (TEN_PERCENT,) and active.favorite_product_offers == (FAVORITES,)


def test_a_favorite_products_offer_is_loaded_only_as_such(db):
    with db() as session:
        save_favorite_products_offer(session, FAVORITES)
        session.commit()
        catalogue = load_catalogue(session)
    assert catalogue.offers == ()
    assert catalogue.favorite_product_offers == (FAVORITES,)
    assert set(catalogue.as_kwargs()) == {
        "categories",
        "products",
        "groups",
        "product_lists",
        "offers",
        "favorite_product_offers",
        "stores",
        "configuration_version",
        "coupon_campaigns",
    }


def test_every_writer_appends_what_it_changed_to_the_feed_in_order(db):
    with db() as session:
        save_categories(session, [Category("dairy", "Dairy")])
        save_products(session, [Product("1", "Milk")])
        save_product_groups(session, [ProductGroup("G", "G")])
        save_product_lists(session, [ProductList("L", "L")])
        save_stores(session, [Store("S1")])
        save_offer(session, TEN_PERCENT)
        save_favorite_products_offer(session, FAVORITES)
        save_member(session, Member("M1"))
        add_purchase(session, "M1", "2026-02", "1", 1000, 100)
        session.commit()
        changes = changes_after(session, 0)
        assert [(c.kind, c.key) for c in changes] == [
            ("category", "dairy"),
            ("product", "1"),
            ("product_group", "G"),
            ("product_list", "L"),
            ("store", "S1"),
            ("offer", "O1"),
            ("offer", "F1"),
            ("member", "M1"),
            ("member", "M1"),
        ]
        positions = [c.position for c in changes]
        assert positions == sorted(positions) and last_position(session) == positions[-1]
        assert changes_after(session, positions[5], limit=2) == changes[6:8]


def test_a_read_snapshot_does_not_see_a_commit_made_while_it_reads(db):
    with db() as session:
        save_stores(session, [Store("S1")])
        session.commit()
    with read_snapshot(db) as snapshot:
        assert len(load_catalogue(snapshot).stores) == 1
        with db() as writer:
            save_stores(writer, [Store("S2")])
            writer.commit()
        assert len(load_catalogue(snapshot).stores) == 1
    with read_snapshot(db) as snapshot:
        assert len(load_catalogue(snapshot).stores) == 2


def test_every_catalogue_or_offer_write_raises_the_configuration_version_and_only_a_commit(db):
    with db() as session:
        first = load_catalogue(session).configuration_version
        save_offer(session, TEN_PERCENT)
        session.commit()
        second = load_catalogue(session).configuration_version
        save_favorite_products_offer(session, FAVORITES)
        session.rollback()
        after_rollback = load_catalogue(session).configuration_version
    assert second > first
    assert after_rollback == second
