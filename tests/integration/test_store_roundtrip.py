"""What the repositories save, the loader reads back equal, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from service.engine.model import (
    Audience,
    Benefit,
    BenefitKind,
    Category,
    Channel,
    FavoriteCategoryTerms,
    FavoriteProductsOffer,
    Frequency,
    Gender,
    Level,
    LimitPeriod,
    LimitUnit,
    ListSource,
    Member,
    Offer,
    PersonalOffer,
    Product,
    ProductGroup,
    ProductList,
    Schedule,
    Stacking,
    Store,
    TimeRange,
    Unit,
    UsageLimit,
)
from service.store.catalog_repo import (
    save_categories,
    save_favorite_products_offers,
    save_offers,
    save_product_groups,
    save_product_lists,
    save_products,
    save_stores,
)
from service.store.loader import load_catalogue, load_member
from service.store.member_repo import save_member
from service.store.models import ChangeFeedRow

# --- strategies ---------------------------------------------------------------------------------

text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40
)
ids = st.text(st.characters(min_codepoint=33, max_codepoint=0x7FF), min_size=1, max_size=20)
small = st.integers(-(2**31), 2**31 - 1)
money = st.integers(-(2**63), 2**63 - 1)
moments = st.datetimes(
    min_value=datetime(1971, 1, 1),
    max_value=datetime(2200, 1, 1),
    # fixed offsets: PEP 495 makes times in a DST fold unequal to every other zone
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=3)), timezone(timedelta(hours=-5))]),
)
optional_moments = st.none() | moments
id_sets = st.frozensets(ids, max_size=4)
benefits = st.builds(Benefit, st.sampled_from(BenefitKind), money)
limits = st.none() | st.builds(
    UsageLimit, st.sampled_from(LimitUnit), money, st.sampled_from(LimitPeriod)
)
schedules = st.none() | st.builds(
    Schedule,
    st.frozensets(st.integers(1, 7)),
    st.lists(st.builds(TimeRange, st.integers(0, 1439), st.integers(0, 1440)), max_size=3).map(
        tuple
    ),
)
audiences = st.none() | st.builds(
    Audience,
    id_sets,
    st.none() | st.integers(0, 120),
    st.none() | st.integers(0, 120),
    st.none() | st.sampled_from(Gender),
    st.none() | st.integers(0, 366),
)


def offers(level: st.SearchStrategy[Level] | None = None) -> st.SearchStrategy[Offer]:
    return st.builds(
        Offer,
        id=ids,
        name=text,
        level=st.sampled_from(Level) if level is None else level,
        benefit=benefits,
        scope_group_id=st.none() | ids,
        priority=small,
        stacking=st.sampled_from(Stacking),
        valid_from=optional_moments,
        valid_to=optional_moments,
        schedule=schedules,
        store_ids=id_sets,
        channels=st.frozensets(st.sampled_from(Channel)),
        audience=audiences,
        usage_limit=limits,
        text=text,
    )


favorite_offers = st.builds(
    FavoriteProductsOffer,
    offer=offers(st.just(Level.INDIVIDUAL)),
    slot_count=small,
    list_source=st.sampled_from(ListSource),
    product_list_id=st.none() | ids,
    frequency=st.sampled_from(Frequency),
    every_n_days=small,
    autofill=st.booleans(),
)


def unique(strategy: st.SearchStrategy, key: str, max_size: int = 6) -> st.SearchStrategy:
    return st.lists(strategy, max_size=max_size, unique_by=lambda x: getattr(x, key))


catalogues = st.fixed_dictionaries(
    {
        "categories": unique(st.builds(Category, ids, text, st.none() | ids), "id"),
        "products": unique(
            st.builds(
                Product,
                ids,
                text,
                st.lists(ids, unique=True, max_size=3).map(tuple),
                st.sampled_from(Unit),
                st.none() | money,
                st.booleans(),
            ),
            "sku",
        ),
        "groups": unique(
            st.builds(ProductGroup, ids, text, id_sets, id_sets, id_sets, id_sets), "id"
        ),
        "product_lists": unique(
            st.builds(ProductList, ids, text, st.lists(ids, unique=True, max_size=5).map(tuple)),
            "id",
        ),
        "stores": unique(st.builds(Store, ids, text, st.none() | ids), "id"),
        "offers": unique(offers(), "id", 4),
        "favorite_product_offers": st.lists(
            favorite_offers, max_size=3, unique_by=lambda f: f.offer.id
        ),
    }
)


def by_offer_id(items: list) -> tuple:
    return tuple(sorted(items, key=lambda item: item.offer_id))


terms = st.builds(
    FavoriteCategoryTerms,
    offer_id=ids,
    name=text,
    group_ids=st.lists(ids, max_size=4).map(tuple),
    benefit=benefits,
    max_count=small,
    acceptance_required=st.booleans(),
    chosen_group_ids=id_sets,
    valid_from=optional_moments,
    valid_to=optional_moments,
    frequency=st.sampled_from(Frequency),
    every_n_days=small,
    priority=small,
    stacking=st.sampled_from(Stacking),
)
personal_offers = st.builds(
    PersonalOffer,
    offer_id=ids,
    name=text,
    benefit=benefits,
    skus=id_sets,
    group_id=st.none() | ids,
    valid_from=optional_moments,
    valid_to=optional_moments,
    usage_limit=limits,
    priority=small,
    stacking=st.sampled_from(Stacking),
)
members = st.builds(
    Member,
    id=ids,
    active=st.booleans(),
    birth_date=st.none() | st.dates(date(1900, 1, 1), date(2030, 1, 1)),
    gender=st.none() | st.sampled_from(Gender),
    segment_tags=id_sets,
    favorite_slots=st.dictionaries(ids, st.frozensets(ids, min_size=1, max_size=5), max_size=3),
    favorite_categories=unique(terms, "offer_id", 3).map(by_offer_id),
    personal_offers=unique(personal_offers, "offer_id", 3).map(by_offer_id),
    usage=st.dictionaries(st.tuples(ids, ids), money, max_size=3),
)

ROUND_TRIP = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- tests ----------------------------------------------------------------------------------------


def save_catalogue(session, catalogue: dict) -> None:
    save_categories(session, catalogue["categories"])
    save_products(session, catalogue["products"])
    save_product_groups(session, catalogue["groups"])
    save_product_lists(session, catalogue["product_lists"])
    save_stores(session, catalogue["stores"])
    favorite_ids = {f.offer.id for f in catalogue["favorite_product_offers"]}
    save_offers(session, [o for o in catalogue["offers"] if o.id not in favorite_ids])
    save_favorite_products_offers(session, catalogue["favorite_product_offers"])


def sorted_by(items: list, key) -> tuple:
    return tuple(sorted(items, key=key))


@given(catalogue=catalogues)
@ROUND_TRIP
def test_a_saved_catalogue_loads_back_equal(shared_db, catalogue):
    with shared_db() as session:
        save_catalogue(session, catalogue)
        session.flush()
        loaded = load_catalogue(session)
        session.rollback()
    favorite_ids = {f.offer.id for f in catalogue["favorite_product_offers"]}
    assert loaded.categories == sorted_by(catalogue["categories"], lambda c: c.id)
    assert loaded.products == sorted_by(catalogue["products"], lambda p: p.sku)
    assert loaded.groups == sorted_by(catalogue["groups"], lambda g: g.id)
    assert loaded.product_lists == sorted_by(catalogue["product_lists"], lambda pl: pl.id)
    assert loaded.stores == sorted_by(catalogue["stores"], lambda s: s.id)
    assert loaded.offers == sorted_by(
        [o for o in catalogue["offers"] if o.id not in favorite_ids], lambda o: o.id
    )
    assert loaded.favorite_product_offers == sorted_by(
        catalogue["favorite_product_offers"], lambda f: f.offer.id
    )


@given(member=members, cards=st.lists(ids, max_size=3, unique=True))
@ROUND_TRIP
def test_a_saved_member_loads_back_equal(shared_db, member, cards):
    with shared_db() as session:
        save_member(session, member, cards)
        session.flush()
        loaded = load_member(session, member.id)
        session.rollback()
    assert loaded == member


@given(first=members, second=members)
@settings(max_examples=30, deadline=None)
def test_saving_a_member_again_replaces_all_of_their_state(shared_db, first, second):
    second = Member(**{**{f: getattr(second, f) for f in second.__slots__}, "id": first.id})
    with shared_db() as session:
        save_member(session, first)
        save_member(session, second)
        session.flush()
        loaded = load_member(session, first.id)
        session.rollback()
    assert loaded == second


def test_a_write_and_its_change_feed_rows_commit_or_roll_back_together(db):
    with db() as session:
        save_member(session, Member("M-rolled-back"))
        session.rollback()
        assert session.scalar(select(func.count()).select_from(ChangeFeedRow)) == 0
        save_stores(session, [Store("S1", "One"), Store("S2", "Two")])
        session.commit()
    with db() as session:
        changes = session.execute(select(ChangeFeedRow.entity_kind, ChangeFeedRow.entity_key))
        assert sorted(changes) == [("store", "S1"), ("store", "S2")]
