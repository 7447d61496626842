"""Readers of the catalogue and offers for the back office (spec §17): pages in key order
(keyset paging: `key > after ORDER BY key LIMIT n`, no OFFSET), or the items of given keys,
with the filters a back office asks for. Offers are read whatever their state.

Each reader returns at most `limit` items; the caller asks for one more than a page to learn
whether another page follows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, or_, select, update
from sqlalchemy.orm import Session

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
from service.store.codec import favorite_offer_from_rows, offer_from_row
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
from service.store.sql import table_of

_CATEGORIES = table_of(CategoryRow)
_PRODUCTS = table_of(ProductRow)
_PRODUCT_CATEGORIES = table_of(ProductCategoryRow)
_GROUPS = table_of(ProductGroupRow)
_GROUP_ITEMS = table_of(ProductGroupItemRow)
_LISTS = table_of(ProductListRow)
_LIST_ITEMS = table_of(ProductListItemRow)
_STORES = table_of(StoreRow)
_OFFERS = table_of(OfferRow)
_FAVORITES = table_of(FavoriteProductsOfferRow)


@dataclass(frozen=True, slots=True)
class Keys:
    """Which items of a kind: those after `after` in key order (None: from the first), or
    only those of `only` (None: any key); at most `limit`."""

    limit: int
    after: str | None = None
    only: Collection[str] | None = None


def _paged(query: Select[Any], key: Any, keys: Keys) -> Select[Any]:
    if keys.after is not None:
        query = query.where(key > keys.after)
    if keys.only is not None:
        query = query.where(key.in_(list(keys.only)))
    return query.order_by(key).limit(keys.limit)


# --- catalogue -------------------------------------------------------------------------------


def read_categories(
    session: Session, keys: Keys, *, parent_id: str | None = None
) -> list[Category]:
    query = select(_CATEGORIES)
    if parent_id is not None:
        query = query.where(_CATEGORIES.c.parent_id == parent_id)
    rows = session.execute(_paged(query, _CATEGORIES.c.id, keys))
    return [Category(r.id, r.name, r.parent_id) for r in rows]


def category_subtree(session: Session, category_id: str) -> set[str]:
    """The category and every category below it (empty for an unknown one)."""
    children: dict[str | None, list[str]] = defaultdict(list)
    known: set[str] = set()
    for child, parent in session.execute(select(_CATEGORIES.c.id, _CATEGORIES.c.parent_id)):
        children[parent].append(child)
        known.add(child)
    if category_id not in known:
        return set()
    found = {category_id}
    pending = [category_id]
    while pending:
        for child in children.get(pending.pop(), ()):
            if child not in found:  # a stored cycle cannot loop here
                found.add(child)
                pending.append(child)
    return found


def read_products(
    session: Session, keys: Keys, *, category_ids: Collection[str] | None = None
) -> list[Product]:
    """Products; with `category_ids`, those with a direct category among them."""
    query = select(_PRODUCTS)
    if category_ids is not None:
        in_categories = select(_PRODUCT_CATEGORIES.c.sku).where(
            _PRODUCT_CATEGORIES.c.category_id.in_(list(category_ids))
        )
        query = query.where(_PRODUCTS.c.sku.in_(in_categories))
    rows = list(session.execute(_paged(query, _PRODUCTS.c.sku, keys)))
    categories: dict[str, list[str]] = defaultdict(list)
    if rows:
        links = (
            select(_PRODUCT_CATEGORIES)
            .where(_PRODUCT_CATEGORIES.c.sku.in_([r.sku for r in rows]))
            .order_by(_PRODUCT_CATEGORIES.c.sku, _PRODUCT_CATEGORIES.c.position)
        )
        for link in session.execute(links):
            categories[link.sku].append(link.category_id)
    return [
        Product(r.sku, r.name, tuple(categories[r.sku]), r.unit, r.min_price, r.excluded)
        for r in rows
    ]


def read_product_groups(session: Session, keys: Keys) -> list[ProductGroup]:
    rows = list(session.execute(_paged(select(_GROUPS), _GROUPS.c.id, keys)))
    items: dict[str, dict[GroupItemKind, set[str]]] = defaultdict(lambda: defaultdict(set))
    if rows:
        query = select(_GROUP_ITEMS).where(_GROUP_ITEMS.c.group_id.in_([r.id for r in rows]))
        for item in session.execute(query):
            items[item.group_id][item.kind].add(item.ref)
    return [
        ProductGroup(
            id=r.id,
            name=r.name,
            skus=frozenset(items[r.id][GroupItemKind.SKU]),
            category_ids=frozenset(items[r.id][GroupItemKind.CATEGORY]),
            excluded_skus=frozenset(items[r.id][GroupItemKind.EXCLUDED_SKU]),
            excluded_category_ids=frozenset(items[r.id][GroupItemKind.EXCLUDED_CATEGORY]),
        )
        for r in rows
    ]


def read_product_lists(session: Session, keys: Keys) -> list[ProductList]:
    rows = list(session.execute(_paged(select(_LISTS), _LISTS.c.id, keys)))
    skus: dict[str, list[str]] = defaultdict(list)
    if rows:
        query = (
            select(_LIST_ITEMS)
            .where(_LIST_ITEMS.c.list_id.in_([r.id for r in rows]))
            .order_by(_LIST_ITEMS.c.list_id, _LIST_ITEMS.c.position)
        )
        for item in session.execute(query):
            skus[item.list_id].append(item.sku)
    return [ProductList(r.id, r.name, tuple(skus[r.id])) for r in rows]


def read_stores(session: Session, keys: Keys) -> list[Store]:
    rows = session.execute(_paged(select(_STORES), _STORES.c.id, keys))
    return [Store(r.id, r.name, r.time_zone) for r in rows]


# --- offers ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredOffer:
    """An offer as stored: its terms, whether it is on, and for a favorite-products offer its
    slot configuration."""

    offer: Offer
    active: bool
    favorite: FavoriteProductsOffer | None = None


@dataclass(frozen=True, slots=True)
class OfferQuery:
    """Filters of an offer read; each one that is set must match."""

    level: Level | None = None
    active: bool | None = None
    valid_at: datetime | None = None
    scope_group_id: str | None = None
    store_id: str | None = None
    favorites_only: bool = False


def _offer_query(query: OfferQuery) -> Select[Any]:
    sql = select(_OFFERS, _FAVORITES).outerjoin(_FAVORITES, _FAVORITES.c.offer_id == _OFFERS.c.id)
    if query.favorites_only:
        sql = sql.where(_FAVORITES.c.offer_id.is_not(None))
    if query.level is not None:
        sql = sql.where(_OFFERS.c.level == query.level)
    if query.active is not None:
        sql = sql.where(_OFFERS.c.active.is_(query.active))
    if query.valid_at is not None:  # [valid_from, valid_to), as Calculate reads it
        at = query.valid_at
        sql = sql.where(
            or_(_OFFERS.c.valid_from.is_(None), _OFFERS.c.valid_from <= at),
            or_(_OFFERS.c.valid_to.is_(None), _OFFERS.c.valid_to > at),
        )
    if query.scope_group_id is not None:
        sql = sql.where(_OFFERS.c.scope_group_id == query.scope_group_id)
    return sql


def _stored_offer(row: Any) -> StoredOffer:
    offer = offer_from_row(row)
    favorite = favorite_offer_from_rows(offer, row) if row.offer_id is not None else None
    return StoredOffer(offer, row.active, favorite)


def read_offers(session: Session, keys: Keys, query: OfferQuery) -> list[StoredOffer]:
    """Offers of every level in id order. The store filter is applied here, not in SQL (the
    store list is JSON), reading on in pages until `keys.limit` offers match."""
    found: list[StoredOffer] = []
    for offer in _scan_offers(session, keys, query):
        if (
            query.store_id is None
            or not offer.offer.store_ids
            or (query.store_id in offer.offer.store_ids)
        ):
            found.append(offer)
            if len(found) == keys.limit:
                break
    return found


def _scan_offers(session: Session, keys: Keys, query: OfferQuery) -> Iterator[StoredOffer]:
    after = keys.after
    while True:
        page = Keys(limit=max(keys.limit, 100), after=after, only=keys.only)
        rows = list(session.execute(_paged(_offer_query(query), _OFFERS.c.id, page)))
        yield from (_stored_offer(r) for r in rows)
        if len(rows) < page.limit:
            return
        after = rows[-1].id


def set_offer_active(session: Session, offer_id: str, active: bool, now: datetime) -> bool:
    """Switch a stored offer on or off (a change-feed row tells the replicas); False for an
    unknown id. The caller commits."""
    result = session.execute(
        update(_OFFERS).where(_OFFERS.c.id == offer_id).values(active=active, updated_at=now)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    append_changes(session, EntityKind.OFFER, [offer_id], now)
    return True
