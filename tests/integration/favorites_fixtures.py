"""Builders shared by the favorite-products, favorite-categories and outbox tests: a small
catalogue in memory (the use cases read the catalogue from the snapshot), members in a real
database, and local (program zone) times."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.app.favorites import select_favorite_products
from service.app.unit_of_work import UnitOfWork
from service.engine.favorites import FavoriteState
from service.engine.model import (
    Benefit,
    BenefitKind,
    FavoriteCategoryTerms,
    FavoriteProductsOffer,
    Frequency,
    Level,
    ListSource,
    Member,
    Offer,
    Product,
    ProductGroup,
    ProductList,
)
from service.engine.snapshot import Snapshot, build_snapshot
from service.store.member_repo import save_member
from service.store.models import FavoriteSelectionRow, OutboxRow

ZONE = "Europe/Moscow"
TZ = ZoneInfo(ZONE)
PRODUCTS = tuple(Product(f"SKU{i:02d}", f"Product {i}") for i in range(1, 31)) + (
    Product("TOBACCO", "Cigarettes", excluded=True),
)
LIST = ProductList("L-FAV", "Favorites", ("SKU01", "SKU02", "SKU03", "TOBACCO", "SKU04", "SKU05"))
GROUPS = (
    ProductGroup("G-A", "Group A", skus=frozenset({"SKU01"})),
    ProductGroup("G-B", "Group B", skus=frozenset({"SKU02"})),
    ProductGroup("G-C", "Group C", skus=frozenset({"SKU03"})),
)


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0):
    """A wall-clock time in the program's zone, as a UTC instant."""
    return datetime(year, month, day, hour, minute, second, tzinfo=TZ).astimezone(UTC)


def favorite_offer(
    offer_id: str = "F-LIST",
    *,
    source: ListSource = ListSource.PREDEFINED,
    frequency: Frequency = Frequency.MONTHLY,
    every_n_days: int = 0,
    slots: int = 3,
    autofill: bool = False,
    valid_to: datetime | None = None,
) -> FavoriteProductsOffer:
    offer = Offer(
        offer_id,
        f"Favorites {offer_id}",
        Level.INDIVIDUAL,
        Benefit(BenefitKind.PERCENT, 1500),
        valid_to=valid_to,
    )
    return FavoriteProductsOffer(
        offer,
        slot_count=slots,
        list_source=source,
        product_list_id=LIST.id if source is ListSource.PREDEFINED else None,
        frequency=frequency,
        every_n_days=every_n_days,
        autofill=autofill,
    )


def snapshot_with(*favorites: FavoriteProductsOffer) -> Snapshot:
    return build_snapshot(
        categories=(),
        products=PRODUCTS,
        groups=GROUPS,
        product_lists=(LIST,),
        offers=(),
        favorite_product_offers=favorites,
        stores=(),
        program_time_zone=ZONE,
    )


def category_terms(
    offer_id: str = "C-1",
    *,
    acceptance: bool = True,
    max_count: int = 2,
    chosen: Sequence[str] = (),
    frequency: Frequency = Frequency.MONTHLY,
    every_n_days: int = 0,
) -> FavoriteCategoryTerms:
    return FavoriteCategoryTerms(
        offer_id=offer_id,
        name="Favorite categories",
        group_ids=("G-A", "G-B", "G-C"),
        benefit=Benefit(BenefitKind.PERCENT, 1000),
        max_count=max_count,
        acceptance_required=acceptance,
        chosen_group_ids=frozenset(chosen),
        frequency=frequency,
        every_n_days=every_n_days,
    )


def add_members(db: sessionmaker[Session], *members: str | Member) -> None:
    with db() as session:
        for member in members:
            save_member(session, member if isinstance(member, Member) else Member(member))
        session.commit()


def choose(
    db: sessionmaker[Session],
    snapshot: Snapshot,
    skus: Sequence[str | None],
    now: datetime,
    member_id: str = "M1",
    offer_id: str = "F-LIST",
) -> FavoriteState:
    """The member's selection, committed."""
    return select_favorite_products(UnitOfWork(db, now=now), snapshot, member_id, offer_id, skus)


def units_of_work(db: sessionmaker[Session], now: datetime) -> Callable[[], UnitOfWork]:
    """Units of work at `now`, one per transaction of a use case that runs several."""
    return lambda: UnitOfWork(db, now=now)


def last_change(db: sessionmaker[Session], member_id: str = "M1", offer_id: str = "F-LIST"):
    with db() as session:
        return session.scalar(
            select(FavoriteSelectionRow.last_change_at).where(
                FavoriteSelectionRow.member_id == member_id,
                FavoriteSelectionRow.offer_id == offer_id,
            )
        )


def outbox_events(db: sessionmaker[Session], event_type: str | None = None) -> list[OutboxRow]:
    with db() as session:
        query = select(OutboxRow).order_by(OutboxRow.position)
        if event_type is not None:
            query = query.where(OutboxRow.event_type == event_type)
        return list(session.scalars(query))
