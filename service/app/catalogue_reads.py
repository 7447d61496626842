"""The back office's reads of the catalogue and offers (spec §17): what the store holds, paged
in key order, with filters. Offers are read in any state.

What a product group covers is this replica's resolution - the snapshot Calculate uses - so
"which products does G-DAIRY give its discount to" is answered the way receipts are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from sqlalchemy.orm import Session

from service.app.sessions import Sessions
from service.engine.model import Category, Product, ProductGroup, ProductList, Store
from service.engine.snapshot import Snapshot
from service.store import catalog_reads
from service.store.catalog_reads import Keys, OfferQuery, StoredOffer

T = TypeVar("T")

# Keys per query when a filter names the items by key (an IN list).
_CHUNK = 500


def _chunked(
    keys: Sequence[str], after: str | None, limit: int, read: Callable[[Keys], list[T]]
) -> list[T]:
    """Items of sorted `keys` after `after`, at most `limit`, read a chunk of keys at a time
    until enough match (a read may find fewer items than keys: other filters)."""
    found: list[T] = []
    position = 0
    if after is not None:
        position = next((i for i, key in enumerate(keys) if key > after), len(keys))
    while position < len(keys) and len(found) < limit:
        chunk = keys[position : position + _CHUNK]
        found += read(Keys(limit=limit - len(found), only=chunk))
        position += len(chunk)
    return found


class CatalogueReads:
    def __init__(self, sessions: Sessions, snapshot: Callable[[], Snapshot]) -> None:
        self._sessions = sessions
        self._snapshot = snapshot

    def _read(self, action: Callable[[Session], T]) -> T:
        with self._sessions() as session:
            return action(session)

    def categories(self, keys: Keys, *, parent_id: str | None = None) -> list[Category]:
        return self._read(lambda s: catalog_reads.read_categories(s, keys, parent_id=parent_id))

    def products(
        self, keys: Keys, *, category_id: str | None = None, group_id: str | None = None
    ) -> list[Product]:
        """Products; `category_id`: of that category or one below it; `group_id`: those the
        group covers."""

        def read(session: Session) -> list[Product]:
            subtree = None
            if category_id is not None:
                subtree = catalog_reads.category_subtree(session, category_id)
                if not subtree:
                    return []
            if group_id is None:
                return catalog_reads.read_products(session, keys, category_ids=subtree)
            members = self._snapshot().group_members(group_id)
            return _chunked(
                members,
                keys.after,
                keys.limit,
                lambda part: catalog_reads.read_products(session, part, category_ids=subtree),
            )

        return self._read(read)

    def product_groups(
        self, keys: Keys, *, sku: str | None = None
    ) -> list[tuple[ProductGroup, tuple[str, ...]]]:
        """Groups with the SKUs each covers; `sku`: only the groups it belongs to."""
        snapshot = self._snapshot()

        def read(session: Session) -> list[ProductGroup]:
            if sku is None:
                return catalog_reads.read_product_groups(session, keys)
            of_sku = sorted(snapshot.groups_of(sku))
            return _chunked(
                of_sku,
                keys.after,
                keys.limit,
                lambda part: catalog_reads.read_product_groups(session, part),
            )

        return [(g, snapshot.group_members(g.id)) for g in self._read(read)]

    def product_lists(self, keys: Keys) -> list[ProductList]:
        return self._read(lambda s: catalog_reads.read_product_lists(s, keys))

    def stores(self, keys: Keys) -> list[Store]:
        return self._read(lambda s: catalog_reads.read_stores(s, keys))

    def offers(self, keys: Keys, query: OfferQuery | None = None) -> list[StoredOffer]:
        return self._read(lambda s: catalog_reads.read_offers(s, keys, query or OfferQuery()))
