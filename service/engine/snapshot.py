"""The immutable view of catalogue and offers the calculation reads (spec §3, 4).

`build_snapshot()` builds every index once, when the catalogue or the offers change:

- category ancestors (a product in "Milk" is also in "Dairy");
- per SKU, the frozenset of product groups it belongs to (listed SKUs plus whole categories
  with descendants, minus excluded SKUs, minus excluded categories); products with the same
  categories and no SKU-specific membership share one frozenset;
- offers of levels 1-3 indexed by their scope: the "all products" offers in one sorted tuple
  (filtered once per receipt), and per distinct set of groups, the sorted tuple of the
  offers scoped to one of those groups. A line finds its product, groups and scoped offers
  with one dict lookup, so its cost does not grow with offers or products that cannot
  apply to it.

Offers that can never apply again (validity in the past) are kept; filters are checked per
receipt. Level INDIVIDUAL offers apply only through a favorite-products offer.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from operator import attrgetter
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from service.engine.chips import chips_program
from service.engine.coupons import NO_COUPONS, CouponCampaign, CouponIndex
from service.engine.model import (
    Category,
    FavoriteProductsOffer,
    Offer,
    Product,
    ProductGroup,
    ProductList,
    Store,
)
from service.engine.rules import Rule, rule_for_favorite_products, rule_for_offer

if TYPE_CHECKING:
    from service.engine.individual import IndividualRules

# What one dict lookup per line returns: the product, its groups, the offers scoped to them.
ProductEntry = tuple[Product, frozenset[str], tuple[Rule, ...]]

_NO_GROUPS: frozenset[str] = frozenset()


# Sort key of candidates: higher priority first, then smaller offer id, then mechanic.
order_of: Callable[[Rule], tuple[int, str, str]] = attrgetter("sort_key")


class Snapshot:
    """Catalogue and offers, indexed. Immutable after build_snapshot(); safe to share.

    `configuration_version` numbers the catalogue and offers it was built from (the store
    hands it out, spec §12); every result computed on it carries it.
    `individual_memo` is a bounded cache of compiled member terms keyed by member identity
    (see engine.individual); it never changes what a calculation returns.
    """

    __slots__ = (
        "configuration_version",
        "program_time_zone",
        "offers",
        "favorite_products_offers",
        "entries",
        "all_products_rules",
        "favorite_rules",
        "individual_memo",
        "chips",
        "coupons",
        "_categories",
        "_ancestors",
        "_groups",
        "_product_lists",
        "_offers_by_id",
        "_favorites",
        "_stores",
        "_zones",
        "_members_by_group",
    )

    def __init__(
        self,
        *,
        program_time_zone: ZoneInfo,
        offers: tuple[Offer, ...],
        favorite_products_offers: tuple[FavoriteProductsOffer, ...],
        entries: dict[str, ProductEntry],
        all_products_rules: tuple[Rule, ...],
        favorite_rules: dict[str, Rule],
        categories: dict[str, Category],
        ancestors: dict[str, frozenset[str]],
        groups: dict[str, ProductGroup],
        product_lists: dict[str, ProductList],
        stores: dict[str, Store],
        zones: dict[str, ZoneInfo],
        configuration_version: int = 0,
        coupons: CouponIndex = NO_COUPONS,
    ) -> None:
        self.configuration_version = configuration_version
        self.program_time_zone = program_time_zone
        self.offers = offers
        self.favorite_products_offers = favorite_products_offers
        self.entries = entries
        self.all_products_rules = all_products_rules
        self.favorite_rules = favorite_rules
        self.individual_memo: dict[int, IndividualRules] = {}
        self.chips = chips_program(offers)  # None: no chips offer (engine.chips)
        self.coupons = coupons
        self._categories = categories
        self._ancestors = ancestors
        self._groups = groups
        self._product_lists = product_lists
        self._offers_by_id = {offer.id: offer for offer in offers}
        self._favorites = {f.offer.id: f for f in favorite_products_offers}
        self._stores = stores
        self._zones = zones
        self._members_by_group: dict[str, tuple[str, ...]] | None = None

    # --- catalogue -----------------------------------------------------------------------

    def product(self, sku: str) -> Product | None:
        entry = self.entries.get(sku)
        return None if entry is None else entry[0]

    @property
    def product_count(self) -> int:
        return len(self.entries)

    def category(self, category_id: str) -> Category | None:
        return self._categories.get(category_id)

    def category_ancestors(self, category_id: str) -> frozenset[str]:
        """The category itself and every category above it."""
        return self._ancestors.get(category_id, frozenset((category_id,)))

    def group(self, group_id: str) -> ProductGroup | None:
        return self._groups.get(group_id)

    def groups_of(self, sku: str) -> frozenset[str]:
        """The product groups a SKU belongs to; empty for an unknown SKU."""
        entry = self.entries.get(sku)
        return _NO_GROUPS if entry is None else entry[1]

    def group_contains(self, group_id: str, sku: str) -> bool:
        return group_id in self.groups_of(sku)

    def group_members(self, group_id: str) -> tuple[str, ...]:
        """The known SKUs a group covers, sorted (for the back office's reads, not the hot
        path: the inverted index is built on the first call; a racing second build is equal)."""
        if self._members_by_group is None:
            members: dict[str, list[str]] = defaultdict(list)
            for sku in sorted(self.entries):
                for member_of in self.entries[sku][1]:
                    members[member_of].append(sku)
            self._members_by_group = {g: tuple(skus) for g, skus in members.items()}
        return self._members_by_group.get(group_id, ())

    def product_list(self, list_id: str) -> ProductList | None:
        return self._product_lists.get(list_id)

    # --- offers --------------------------------------------------------------------------

    def offer(self, offer_id: str) -> Offer | None:
        """A configured offer by id (levels 1-3 and INDIVIDUAL general parts)."""
        return self._offers_by_id.get(offer_id)

    def favorite_products_offer(self, offer_id: str) -> FavoriteProductsOffer | None:
        return self._favorites.get(offer_id)

    def candidates_for(self, sku: str) -> tuple[Rule, ...]:
        """The compiled general offers (levels 1-3) whose scope covers the SKU, sorted:
        the "all products" offers, and for a known SKU those scoped to its groups."""
        entry = self.entries.get(sku)
        if entry is None:
            return self.all_products_rules
        return tuple(sorted((*self.all_products_rules, *entry[2]), key=order_of))

    # --- stores and time -----------------------------------------------------------------

    def store(self, store_id: str) -> Store | None:
        return self._stores.get(store_id)

    def time_zone_for(self, store_id: str) -> ZoneInfo:
        """The store's own zone, or the program's for an unknown store or one without."""
        return self._zones.get(store_id, self.program_time_zone)


def build_snapshot(
    *,
    categories: Iterable[Category],
    products: Iterable[Product],
    groups: Iterable[ProductGroup],
    product_lists: Iterable[ProductList],
    offers: Iterable[Offer],
    favorite_product_offers: Iterable[FavoriteProductsOffer],
    stores: Iterable[Store],
    program_time_zone: str,
    configuration_version: int = 0,
    coupon_campaigns: Iterable[CouponCampaign] = (),
) -> Snapshot:
    """Index catalogue and offers. Raises ValueError on duplicate ids or an unknown zone."""
    program_zone = _zone(program_time_zone)
    category_by_id = _by_id(categories, lambda c: c.id, "category")
    group_by_id = _by_id(groups, lambda g: g.id, "product group")
    list_by_id = _by_id(product_lists, lambda pl: pl.id, "product list")
    store_by_id = _by_id(stores, lambda s: s.id, "store")
    offer_tuple = tuple(offers)
    favorite_tuple = tuple(favorite_product_offers)
    _by_id(
        [*offer_tuple, *(f.offer for f in favorite_tuple)],
        lambda o: o.id,
        "offer",
        allow_same_object=True,
    )

    ancestors = _category_ancestors(category_by_id)
    all_products: list[Rule] = []
    rules_by_group: dict[str, list[Rule]] = defaultdict(list)
    shared: dict[object, Any] = {}  # equal audiences / schedules: one object, one check
    for offer in offer_tuple:
        rule = rule_for_offer(offer)
        if rule is None:
            continue
        if rule.audience is not None:
            rule.audience = shared.setdefault(rule.audience, rule.audience)
        if rule.schedule is not None:
            rule.schedule = shared.setdefault(rule.schedule, rule.schedule)
        if offer.scope_group_id is None:
            all_products.append(rule)
        else:
            rules_by_group[offer.scope_group_id].append(rule)
    all_products.sort(key=order_of)
    all_products_rules = tuple(all_products)

    entries = _product_entries(products, group_by_id.values(), ancestors, rules_by_group)
    favorite_rules = {f.offer.id: rule_for_favorite_products(f) for f in favorite_tuple}
    zones = {s.id: _zone(s.time_zone) for s in store_by_id.values() if s.time_zone}
    return Snapshot(
        program_time_zone=program_zone,
        offers=offer_tuple,
        favorite_products_offers=favorite_tuple,
        entries=entries,
        all_products_rules=all_products_rules,
        favorite_rules=favorite_rules,
        categories=category_by_id,
        ancestors=ancestors,
        groups=group_by_id,
        product_lists=list_by_id,
        stores=store_by_id,
        zones=zones,
        configuration_version=configuration_version,
        coupons=CouponIndex(coupon_campaigns),
    )


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError) as error:  # a directory name: OSError
        raise ValueError(f"unknown time zone {name!r}") from error


def _by_id(
    items: Iterable[Any], key: Any, what: str, *, allow_same_object: bool = False
) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in items:
        item_id = key(item)
        previous = found.get(item_id)
        if previous is not None and not (allow_same_object and previous is item):
            raise ValueError(f"duplicate {what} id {item_id!r}")
        found[item_id] = item
    return found


def _category_ancestors(categories: Mapping[str, Category]) -> dict[str, frozenset[str]]:
    """Each category with every category above it; a cycle or an unknown parent ends a walk."""
    ancestors: dict[str, frozenset[str]] = {}
    for category_id in categories:
        chain = [category_id]
        seen = {category_id}
        parent = categories[category_id].parent_id
        while parent is not None and parent not in seen:
            seen.add(parent)
            chain.append(parent)
            above = categories.get(parent)
            parent = above.parent_id if above is not None else None
        ancestors[category_id] = frozenset(chain)
    return ancestors


class _GroupIndex:
    """Inverted group definitions: which groups include / exclude a category or a SKU."""

    def __init__(self, groups: Iterable[ProductGroup], ancestors: Mapping[str, frozenset[str]]):
        self.ancestors = ancestors
        self.by_category: dict[str, set[str]] = defaultdict(set)
        self.excluded_by_category: dict[str, set[str]] = defaultdict(set)
        self.by_sku: dict[str, set[str]] = defaultdict(set)
        self.excluded_by_sku: dict[str, set[str]] = defaultdict(set)
        for group in groups:
            for category_id in group.category_ids:
                self.by_category[category_id].add(group.id)
            for category_id in group.excluded_category_ids:
                self.excluded_by_category[category_id].add(group.id)
            for sku in group.skus:
                self.by_sku[sku].add(group.id)
            for sku in group.excluded_skus:
                self.excluded_by_sku[sku].add(group.id)

    def category_groups(self, category_ids: tuple[str, ...]) -> tuple[set[str], set[str]]:
        """Groups that include, and groups that exclude, products in these categories."""
        included: set[str] = set()
        excluded: set[str] = set()
        for category_id in category_ids:
            for above in self.ancestors.get(category_id, (category_id,)):
                included |= self.by_category.get(above, set())
                excluded |= self.excluded_by_category.get(above, set())
        return included, excluded


def _product_entries(
    products: Iterable[Product],
    groups: Iterable[ProductGroup],
    ancestors: Mapping[str, frozenset[str]],
    rules_by_group: Mapping[str, list[Rule]],
) -> dict[str, ProductEntry]:
    index = _GroupIndex(groups, ancestors)
    interned: dict[frozenset[str], tuple[frozenset[str], tuple[Rule, ...]]] = {}
    by_categories: dict[
        tuple[str, ...], tuple[set[str], set[str], frozenset[str], tuple[Rule, ...]]
    ] = {}

    def intern(group_ids: frozenset[str]) -> tuple[frozenset[str], tuple[Rule, ...]]:
        found = interned.get(group_ids)
        if found is None:
            rules: list[Rule] = []
            for group_id in group_ids:
                rules.extend(rules_by_group.get(group_id, ()))
            rules.sort(key=order_of)
            found = interned[group_ids] = (group_ids, tuple(rules))
        return found

    entries: dict[str, ProductEntry] = {}
    special_skus = index.by_sku.keys() | index.excluded_by_sku.keys()
    for product in products:
        sku = product.sku
        if sku in entries:
            raise ValueError(f"duplicate product sku {sku!r}")
        shared = by_categories.get(product.category_ids)
        if shared is None:
            included, excluded = index.category_groups(product.category_ids)
            group_ids, rules = intern(frozenset(included - excluded))
            shared = by_categories[product.category_ids] = (included, excluded, group_ids, rules)
        included, excluded, group_ids, rules = shared
        if sku in special_skus:
            own = (included | index.by_sku.get(sku, set())) - index.excluded_by_sku.get(sku, set())
            group_ids, rules = intern(frozenset(own - excluded))
        entries[sku] = (product, group_ids, rules)
    return entries
