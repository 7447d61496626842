"""Readers that map rows back to engine domain objects.

Everything is read with Core selects (no ORM identity map, so a read in a session that also
wrote sees what is in the database). For a consistent catalogue on PostgreSQL, read inside
db.read_snapshot().
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import Table, bindparam, select
from sqlalchemy.orm import Session

from service.engine.coupons import CouponCampaign
from service.engine.model import (
    Category,
    FavoriteProductsOffer,
    Member,
    Offer,
    Product,
    ProductGroup,
    ProductList,
    Store,
)
from service.engine.points_balance import NO_POINTS
from service.store.codec import (
    MEMBER_DOCUMENT_FORMAT,
    attribute_from_row,
    favorite_offer_from_rows,
    member_from_document,
    offer_from_row,
    personal_offer_from_row,
)
from service.store.configuration import configuration_version
from service.store.coupon_repo import load_campaigns
from service.store.models import (
    CardRow,
    CategoryRow,
    ChipBalanceRow,
    FavoriteCategoryAttributeRow,
    FavoriteCategoryChoiceRow,
    FavoriteProductsOfferRow,
    FavoriteSlotRow,
    GroupItemKind,
    MemberDocumentRow,
    MemberRow,
    OfferRow,
    OfferUsageRow,
    PersonalOfferRow,
    ProductCategoryRow,
    ProductGroupItemRow,
    ProductGroupRow,
    ProductListItemRow,
    ProductListRow,
    ProductRow,
    PurchaseRow,
    StoreRow,
)
from service.store.points_repo import points_holdings
from service.store.sql import chunks, keyset_pages, table_of


@dataclass(frozen=True, slots=True)
class Catalogue:
    """Everything the engine needs besides member state. The fields are the keyword
    arguments of engine.snapshot.build_snapshot: pass `**catalogue.as_kwargs()` (not
    dataclasses.asdict, which would turn every product and offer into a dict too)."""

    categories: tuple[Category, ...]
    products: tuple[Product, ...]
    groups: tuple[ProductGroup, ...]
    product_lists: tuple[ProductList, ...]
    offers: tuple[Offer, ...]
    favorite_product_offers: tuple[FavoriteProductsOffer, ...]
    stores: tuple[Store, ...]
    configuration_version: int = 0  # read with the rest (spec §12)
    coupon_campaigns: tuple[CouponCampaign, ...] = ()

    def as_kwargs(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class PurchaseTotal:
    sku: str
    quantity: int
    amount: int


def _rows(session: Session, table: Table, *order_by: str, where: Any = None) -> list[Any]:
    query = select(table).order_by(*(table.c[c] for c in order_by))
    if where is not None:
        query = query.where(where)
    return list(session.execute(query))


# --- catalogue --------------------------------------------------------------------------------


def load_catalogue(session: Session) -> Catalogue:
    """The whole catalogue, every active offer and the coupon campaigns, each kind ordered by
    id, and the configuration version (12 queries; read them in db.read_snapshot() for one
    snapshot)."""
    return Catalogue(
        categories=tuple(
            Category(r.id, r.name, r.parent_id) for r in _rows(session, table_of(CategoryRow), "id")
        ),
        products=_load_products(session),
        groups=_load_groups(session),
        product_lists=_load_product_lists(session),
        offers=_load_offers(session),
        favorite_product_offers=_load_favorite_product_offers(session),
        stores=tuple(
            Store(r.id, r.name, r.time_zone) for r in _rows(session, table_of(StoreRow), "id")
        ),
        configuration_version=configuration_version(session),
        coupon_campaigns=load_campaigns(session),
    )


def _load_products(session: Session) -> tuple[Product, ...]:
    categories: dict[str, list[str]] = defaultdict(list)
    for r in _rows(session, table_of(ProductCategoryRow), "sku", "position"):
        categories[r.sku].append(r.category_id)
    return tuple(
        Product(
            sku=r.sku,
            name=r.name,
            category_ids=tuple(categories.get(r.sku, ())),
            unit=r.unit,
            min_price=r.min_price,
            excluded=r.excluded,
        )
        for r in _rows(session, table_of(ProductRow), "sku")
    )


def _load_groups(session: Session) -> tuple[ProductGroup, ...]:
    items: dict[str, dict[GroupItemKind, set[str]]] = defaultdict(lambda: defaultdict(set))
    for r in _rows(session, table_of(ProductGroupItemRow), "group_id"):
        items[r.group_id][r.kind].add(r.ref)

    def refs(group_id: str, kind: GroupItemKind) -> frozenset[str]:
        return frozenset(items[group_id][kind]) if group_id in items else frozenset()

    return tuple(
        ProductGroup(
            id=r.id,
            name=r.name,
            skus=refs(r.id, GroupItemKind.SKU),
            category_ids=refs(r.id, GroupItemKind.CATEGORY),
            excluded_skus=refs(r.id, GroupItemKind.EXCLUDED_SKU),
            excluded_category_ids=refs(r.id, GroupItemKind.EXCLUDED_CATEGORY),
        )
        for r in _rows(session, table_of(ProductGroupRow), "id")
    )


def _load_product_lists(session: Session) -> tuple[ProductList, ...]:
    skus: dict[str, list[str]] = defaultdict(list)
    for r in _rows(session, table_of(ProductListItemRow), "list_id", "position"):
        skus[r.list_id].append(r.sku)
    return tuple(
        ProductList(r.id, r.name, tuple(skus.get(r.id, ())))
        for r in _rows(session, table_of(ProductListRow), "id")
    )


def _load_offers(session: Session) -> tuple[Offer, ...]:
    """Active offers of levels 1-3 (favorite-products offers come separately)."""
    offers = table_of(OfferRow)
    favorite_ids = select(FavoriteProductsOfferRow.offer_id)
    where = offers.c.active.is_(True) & offers.c.id.not_in(favorite_ids)
    return tuple(offer_from_row(r) for r in _rows(session, offers, "id", where=where))


def _load_favorite_product_offers(session: Session) -> tuple[FavoriteProductsOffer, ...]:
    offers = table_of(OfferRow)
    config = table_of(FavoriteProductsOfferRow)  # no column name clashes with offers
    query = (
        select(offers, config)
        .join(config, config.c.offer_id == offers.c.id)
        .where(offers.c.active.is_(True))
        .order_by(offers.c.id)
    )
    return tuple(favorite_offer_from_rows(offer_from_row(r), r) for r in session.execute(query))


# --- members ----------------------------------------------------------------------------------


# A member is read from their document (one row, see service.store.member_documents); one
# without a document in the current format (not yet backfilled) is read from the per-member
# tables instead, which costs 6 queries.

_CARDS = table_of(CardRow)
_MEMBERS = table_of(MemberRow)
_DOCUMENTS = table_of(MemberDocumentRow)

# Built once: a cold member is read on the calculation path, where building a statement would
# cost more than running it.
_BY_CARD = (
    select(_CARDS.c.member_id, _DOCUMENTS.c.format, _DOCUMENTS.c.body)
    .outerjoin(_DOCUMENTS, _DOCUMENTS.c.member_id == _CARDS.c.member_id)
    .where(_CARDS.c.card_number == bindparam("card_number"), _CARDS.c.active.is_(True))
)
_BY_ID = select(_DOCUMENTS.c.member_id, _DOCUMENTS.c.format, _DOCUMENTS.c.body).where(
    _DOCUMENTS.c.member_id.in_(bindparam("ids", expanding=True))
)


def _from_document(member_id: str, document_format: int | None, body: str | None) -> Member | None:
    if document_format != MEMBER_DOCUMENT_FORMAT or body is None:
        return None
    return member_from_document(member_id, body)


def load_member_by_card(session: Session, card_number: str) -> tuple[str, Member | None] | None:
    """The member an active card belongs to, with their state, in one indexed read; None for
    an unknown or blocked card."""
    row = session.execute(_BY_CARD, {"card_number": card_number}).first()
    if row is None:
        return None
    member = _from_document(row.member_id, row.format, row.body)
    if member is None:
        member = load_members_from_rows(session, [row.member_id]).get(row.member_id)
    return row.member_id, member


def load_member(session: Session, member_id: str) -> Member | None:
    """One member with all individual terms (one indexed read); None for an unknown id."""
    return load_members(session, [member_id]).get(member_id)


def load_members(session: Session, member_ids: Iterable[str]) -> dict[str, Member]:
    """Members by id from their documents, one query per 500 (unknown ids are left out)."""
    ids = list(dict.fromkeys(member_ids))
    members: dict[str, Member] = {}
    for part in chunks(ids):
        for r in session.execute(_BY_ID, {"ids": list(part)}):
            member = _from_document(r.member_id, r.format, r.body)
            if member is not None:
                members[r.member_id] = member
        missing = [member_id for member_id in part if member_id not in members]
        if missing:
            members.update(load_members_from_rows(session, missing))
    return members


def iter_members(session: Session, batch_size: int = 1000) -> Iterator[list[Member]]:
    """Every member in id order, a batch per query (keyset paging, no long cursor)."""
    query = select(_MEMBERS.c.id, _DOCUMENTS.c.format, _DOCUMENTS.c.body).outerjoin(
        _DOCUMENTS, _DOCUMENTS.c.member_id == _MEMBERS.c.id
    )
    for rows in keyset_pages(session, query, _MEMBERS.c.id, batch_size):
        batch: list[Member] = []
        missing: list[str] = []
        for r in rows:
            member = _from_document(r.id, r.format, r.body)
            if member is None:
                missing.append(r.id)
            else:
                batch.append(member)
        if missing:
            batch += load_members_from_rows(session, missing).values()
        yield batch


def load_members_from_rows(session: Session, member_ids: Iterable[str]) -> dict[str, Member]:
    """Members by id from the per-member tables, the source of truth: 6 queries per 500
    members (unknown ids are left out). Documents are written from this.

    Favorite slots list only offers with at least one filled slot; favorite categories and
    personalized offers (not revoked) come ordered by offer id.
    """
    ids = list(dict.fromkeys(member_ids))
    members: dict[str, Member] = {}
    for part in chunks(ids):
        members.update(_load_member_chunk(session, part))
    return members


def _load_member_chunk(session: Session, ids: Sequence[str]) -> dict[str, Member]:
    profiles = _rows(session, table_of(MemberRow), where=MemberRow.id.in_(ids))
    if not profiles:
        return {}
    slots: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for r in _owned_rows(session, FavoriteSlotRow, ids):
        slots[r.member_id][r.offer_id].add(r.sku)
    chosen: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in _owned_rows(session, FavoriteCategoryChoiceRow, ids):
        chosen[(r.member_id, r.offer_id)].add(r.group_id)
    attributes = defaultdict(list)
    for r in _owned_rows(session, FavoriteCategoryAttributeRow, ids):
        terms = attribute_from_row(r, frozenset(chosen.get((r.member_id, r.offer_id), ())))
        attributes[r.member_id].append(terms)
    personal = defaultdict(list)
    for r in _owned_rows(session, PersonalOfferRow, ids, PersonalOfferRow.revoked.is_(False)):
        personal[r.member_id].append(personal_offer_from_row(r))
    usage: dict[str, dict[tuple[str, str], int]] = defaultdict(dict)
    for r in _owned_rows(session, OfferUsageRow, ids):
        usage[r.member_id][(r.offer_id, r.period_key)] = r.used
    chips = {r.member_id: r.balance for r in _owned_rows(session, ChipBalanceRow, ids)}
    points = points_holdings(session, ids)
    return {
        p.id: Member(
            id=p.id,
            active=p.active,
            birth_date=p.birth_date,
            gender=p.gender,
            segment_tags=frozenset(p.segment_tags),
            favorite_slots={o: frozenset(s) for o, s in slots.get(p.id, {}).items()},
            favorite_categories=tuple(attributes.get(p.id, ())),
            personal_offers=tuple(personal.get(p.id, ())),
            usage=usage.get(p.id, {}),
            chips=chips.get(p.id, 0),
            points=points.get(p.id, NO_POINTS),
        )
        for p in profiles
    }


def _owned_rows(
    session: Session, model: type[Any], ids: Sequence[str], *conditions: Any
) -> list[Any]:
    """Rows of a per-member table for these members, ordered by primary key."""
    table = table_of(model)
    query = (
        select(table)
        .where(table.c.member_id.in_(ids), *conditions)
        .order_by(*table.primary_key.columns)
    )
    return list(session.execute(query))


def iter_member_ids(session: Session, batch_size: int = 1000) -> Iterator[str]:
    """Every member id in order, read in batches by key (no OFFSET, no long cursor)."""
    for rows in keyset_pages(session, select(_MEMBERS.c.id), _MEMBERS.c.id, batch_size):
        yield from (r.id for r in rows)


def load_purchases(session: Session, member_id: str, month: str) -> tuple[PurchaseTotal, ...]:
    """What a member bought in `month` ('YYYY-MM'): most quantity first, then amount, then SKU.
    This is the member's PURCHASE_HISTORY list for the month after, in auto-fill order."""
    history = table_of(PurchaseRow)
    query = (
        select(history.c.sku, history.c.quantity, history.c.amount)
        .where(history.c.member_id == member_id, history.c.month == month, history.c.quantity > 0)
        .order_by(history.c.quantity.desc(), history.c.amount.desc(), history.c.sku)
    )
    return tuple(PurchaseTotal(r.sku, r.quantity, r.amount) for r in session.execute(query))
