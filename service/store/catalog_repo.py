"""Writers for the catalogue and offers, and the few reads their use cases check first
(service/app/catalogue.py). Each writer takes engine domain objects, upserts them with their
child rows replaced, appends to the change feed and raises the configuration version
(service.store.configuration). The caller commits."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.clock import utc_now
from service.engine.model import (
    Category,
    FavoriteProductsOffer,
    Level,
    Offer,
    Product,
    ProductGroup,
    ProductList,
    Store,
)
from service.store.codec import favorite_offer_row, offer_row
from service.store.configuration import raise_configuration_version
from service.store.feed import EntityKind, append_changes
from service.store.models import (
    CategoryRow,
    FavoriteProductsOfferRow,
    GroupItemKind,
    OfferRow,
    ProductCategoryRow,
    ProductGroupItemRow,
    ProductGroupRow,
    ProductListItemRow,
    ProductListRow,
    ProductRow,
    StoreRow,
)
from service.store.sql import delete_where_in, insert_rows, table_of, upsert

CATEGORIES = table_of(CategoryRow)
OFFERS = table_of(OfferRow)
FAVORITE_OFFERS = table_of(FavoriteProductsOfferRow)


def _changed(
    session: Session, kind: EntityKind, keys: Iterable[str], now: datetime | None = None
) -> None:
    """Replicas hear of the change (the feed), and the configuration gets a new number."""
    append_changes(session, kind, keys, now)
    raise_configuration_version(session)


def category_parents(session: Session) -> dict[str, str | None]:
    """The stored category tree: category id -> parent id."""
    rows = session.execute(select(CATEGORIES.c.id, CATEGORIES.c.parent_id))
    return {category_id: parent_id for category_id, parent_id in rows}


def is_favorite_products_offer(session: Session, offer_id: str) -> bool:
    query = select(FAVORITE_OFFERS.c.offer_id).where(FAVORITE_OFFERS.c.offer_id == offer_id)
    return session.execute(query).first() is not None


def general_offer_level(session: Session, offer_id: str) -> Level | None:
    """The level of the stored offer of this id unless it is a favorite-products offer."""
    query = select(OFFERS.c.level).where(
        OFFERS.c.id == offer_id, OFFERS.c.id.not_in(select(FAVORITE_OFFERS.c.offer_id))
    )
    level: Level | None = session.execute(query).scalar()
    return level


def save_categories(session: Session, categories: Iterable[Category]) -> None:
    categories = list(categories)
    rows = [{"id": c.id, "name": c.name, "parent_id": c.parent_id} for c in categories]
    upsert(session, CategoryRow, rows)
    _changed(session, EntityKind.CATEGORY, [c.id for c in categories])


def save_products(session: Session, products: Iterable[Product]) -> None:
    """Upsert products; each product's categories are replaced, in the given order."""
    products = list(products)
    upsert(
        session,
        ProductRow,
        [
            {
                "sku": p.sku,
                "name": p.name,
                "unit": p.unit,
                "min_price": p.min_price,
                "excluded": p.excluded,
            }
            for p in products
        ],
    )
    skus = [p.sku for p in products]
    delete_where_in(session, ProductCategoryRow, "sku", skus)
    insert_rows(
        session,
        ProductCategoryRow,
        [
            {"sku": p.sku, "category_id": category_id, "position": position}
            for p in products
            for position, category_id in enumerate(p.category_ids)
        ],
    )
    _changed(session, EntityKind.PRODUCT, skus)


def _group_items(group: ProductGroup) -> list[dict[str, object]]:
    parts = (
        (GroupItemKind.SKU, group.skus),
        (GroupItemKind.CATEGORY, group.category_ids),
        (GroupItemKind.EXCLUDED_SKU, group.excluded_skus),
        (GroupItemKind.EXCLUDED_CATEGORY, group.excluded_category_ids),
    )
    return [
        {"group_id": group.id, "kind": kind, "ref": ref}
        for kind, refs in parts
        for ref in sorted(refs)
    ]


def save_product_groups(session: Session, groups: Iterable[ProductGroup]) -> None:
    groups = list(groups)
    ids = [g.id for g in groups]
    upsert(session, ProductGroupRow, [{"id": g.id, "name": g.name} for g in groups])
    delete_where_in(session, ProductGroupItemRow, "group_id", ids)
    insert_rows(session, ProductGroupItemRow, [i for g in groups for i in _group_items(g)])
    _changed(session, EntityKind.PRODUCT_GROUP, ids)


def save_product_lists(session: Session, lists: Iterable[ProductList]) -> None:
    lists = list(lists)
    ids = [pl.id for pl in lists]
    upsert(session, ProductListRow, [{"id": pl.id, "name": pl.name} for pl in lists])
    delete_where_in(session, ProductListItemRow, "list_id", ids)
    insert_rows(
        session,
        ProductListItemRow,
        [
            {"list_id": pl.id, "position": position, "sku": sku}
            for pl in lists
            for position, sku in enumerate(pl.skus)
        ],
    )
    _changed(session, EntityKind.PRODUCT_LIST, ids)


def save_stores(session: Session, stores: Iterable[Store]) -> None:
    stores = list(stores)
    rows = [{"id": s.id, "name": s.name, "time_zone": s.time_zone} for s in stores]
    upsert(session, StoreRow, rows)
    _changed(session, EntityKind.STORE, [s.id for s in stores])


def save_offers(
    session: Session,
    offers: Iterable[Offer],
    *,
    active: bool = True,
    now: datetime | None = None,
) -> None:
    """Upsert offers of levels 1-3. An inactive offer stays stored but is not loaded."""
    at = now or utc_now()
    offers = list(offers)
    upsert(session, OfferRow, [offer_row(o, active=active, now=at) for o in offers])
    _changed(session, EntityKind.OFFER, [o.id for o in offers], at)


def save_offer(
    session: Session, offer: Offer, *, active: bool = True, now: datetime | None = None
) -> None:
    save_offers(session, [offer], active=active, now=now)


def save_favorite_products_offers(
    session: Session,
    offers: Sequence[FavoriteProductsOffer],
    *,
    active: bool = True,
    now: datetime | None = None,
) -> None:
    """Upsert favorite-products offers: the general offer row plus the slot configuration."""
    save_offers(session, [f.offer for f in offers], active=active, now=now)
    upsert(session, FavoriteProductsOfferRow, [favorite_offer_row(f) for f in offers])


def save_favorite_products_offer(
    session: Session,
    offer: FavoriteProductsOffer,
    *,
    active: bool = True,
    now: datetime | None = None,
) -> None:
    save_favorite_products_offers(session, [offer], active=active, now=now)
