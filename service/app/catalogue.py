"""The back office's catalogue and offers: upserts of categories, products, product groups,
product lists, stores, offers and favorite-products offers.

Each use case takes domain values already checked field by field (the servicer translated
them), checks what needs the store (a category tree without cycles; an offer id keeps its
kind, general or favorite-products), writes through catalog_repo in one unit of work (the
repository appends feed rows of the kinds it writes), and after the commit reloads this
replica's snapshot, so the next Calculate here sees the change; other replicas follow the
change feed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from sqlalchemy.orm import Session

from service.app.sessions import Sessions
from service.app.unit_of_work import UnitOfWork
from service.clock import Clock, utc_now
from service.engine.definitions import check_category_tree
from service.engine.model import (
    Category,
    FavoriteProductsOffer,
    Offer,
    Product,
    ProductGroup,
    ProductList,
    Store,
)
from service.errors import FailedPrecondition, NotFound
from service.limits import quote
from service.store import catalog_reads, catalog_repo
from service.store.catalog_reads import Keys, OfferQuery, StoredOffer

T = TypeVar("T")


class Catalogue:
    def __init__(
        self,
        sessions: Sessions,
        reload_snapshot: Callable[[], object],
        *,
        clock: Clock = utc_now,
    ) -> None:
        self._sessions = sessions
        self._reload_snapshot = reload_snapshot
        self._clock = clock

    def _write(self, action: Callable[[UnitOfWork], None]) -> None:
        """One unit of work; then this replica's snapshot is rebuilt from the store."""
        with UnitOfWork(self._sessions, now=self._clock()) as uow:
            action(uow)
            uow.commit()
        self._reload_snapshot()

    def _upsert(self, items: Sequence[T], save: Callable[[Session, Sequence[T]], None]) -> int:
        if items:
            self._write(lambda uow: save(uow.session, items))
        return len(items)

    # --- the catalogue ------------------------------------------------------------------------

    def upsert_categories(self, categories: Sequence[Category]) -> int:
        """Categories put into the stored tree; one that would make a cycle refuses them all."""

        def save(session: Session, items: Sequence[Category]) -> None:
            check_category_tree(items, catalog_repo.category_parents(session))
            catalog_repo.save_categories(session, items)

        return self._upsert(categories, save)

    def upsert_products(self, products: Sequence[Product]) -> int:
        return self._upsert(products, catalog_repo.save_products)

    def upsert_product_groups(self, groups: Sequence[ProductGroup]) -> int:
        return self._upsert(groups, catalog_repo.save_product_groups)

    def upsert_product_lists(self, lists: Sequence[ProductList]) -> int:
        return self._upsert(lists, catalog_repo.save_product_lists)

    def upsert_stores(self, stores: Sequence[Store]) -> int:
        return self._upsert(stores, catalog_repo.save_stores)

    # --- offers -------------------------------------------------------------------------------

    def upsert_offer(self, offer: Offer, *, active: bool) -> None:
        """A general offer (levels 1-3); its id must not be a favorite-products offer's."""

        def save(uow: UnitOfWork) -> None:
            if catalog_repo.is_favorite_products_offer(uow.session, offer.id):
                raise FailedPrecondition(
                    f"offer {quote(offer.id)} is a favorite-products offer: "
                    "use UpsertFavoriteProductsOffer",
                    reason="OFFER_KIND_MISMATCH",
                )
            catalog_repo.save_offer(uow.session, offer, active=active, now=uow.now)

        self._write(save)

    def upsert_favorite_products_offer(
        self, favorite: FavoriteProductsOffer, *, active: bool
    ) -> None:
        """A favorite-products offer; its id must not be a general offer's."""
        offer_id = favorite.offer.id

        def save(uow: UnitOfWork) -> None:
            level = catalog_repo.general_offer_level(uow.session, offer_id)
            if level is not None:
                raise FailedPrecondition(
                    f"offer {quote(offer_id)} is an offer of level {level.name}: use UpsertOffer, "
                    "or another id",
                    reason="OFFER_KIND_MISMATCH",
                )
            catalog_repo.save_favorite_products_offer(
                uow.session, favorite, active=active, now=uow.now
            )

        self._write(save)

    def set_offer_active(self, offer_id: str, active: bool) -> StoredOffer:
        """Switch a stored offer of any level off or on (spec §17.3); the offer as stored now.
        Switching to the state it is in changes nothing but its updated_at."""

        def save(uow: UnitOfWork) -> None:
            if not catalog_reads.set_offer_active(uow.session, offer_id, active, uow.now):
                raise NotFound(f"no offer {quote(offer_id)}", reason="OFFER_NOT_FOUND")

        self._write(save)
        with self._sessions() as session:
            return catalog_reads.read_offers(session, Keys(limit=1, only=[offer_id]), OfferQuery())[
                0
            ]
