"""The demo's members: profiles, cards, favorite slots, favorite-category terms, personalized
offers and last month's purchases. Deterministic; M000001 is the showcase member."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from random import Random

from service.demo_data.generate import (
    CATEGORY_CHOICES,
    FAVORITE_CATEGORIES,
    FAVORITE_HISTORY,
    FAVORITE_PRODUCTS,
    FAVORITES_LIST,
    MEMBER_COUNT,
    SEED,
    SHOWCASE,
    DemoCatalogue,
    DemoProduct,
    card_number,
    line_amount,
    member_id,
    previous_month,
    today_in_program_zone,
)
from service.engine.model import (
    Benefit,
    BenefitKind,
    FavoriteCategoryTerms,
    Frequency,
    Gender,
    LimitPeriod,
    LimitUnit,
    Member,
    PersonalOffer,
    Unit,
    UsageLimit,
)
from service.store.member_repo import Purchase


@dataclass(frozen=True, slots=True)
class DemoMembers:
    members: tuple[Member, ...]
    cards: Mapping[str, tuple[str, ...]]  # member id -> card numbers
    purchases: tuple[Purchase, ...]  # last month's, per member and SKU


@dataclass(frozen=True, slots=True)
class Campaign:
    """A personalized-offer campaign: each member gets it on a few SKUs of one category
    (or on a whole group)."""

    offer_id: str
    name: str
    category_id: str
    benefit: Benefit
    usage_limit: UsageLimit | None = None
    group_id: str | None = None


CAMPAIGNS = (
    Campaign(
        "P-COFFEE",
        "Your coffee -25 %",
        "coffee",
        Benefit(BenefitKind.PERCENT, 2500),
        UsageLimit(LimitUnit.UNITS, 3000, LimitPeriod.OFFER),
    ),
    Campaign("P-TEA", "Your tea -20 %", "tea", Benefit(BenefitKind.PERCENT, 2000)),
    Campaign(
        "P-CHEESE",
        "Cheese for 499 RUB/kg",
        "cheese",
        Benefit(BenefitKind.FIXED_PRICE, 49900),
        UsageLimit(LimitUnit.UNITS, 2000, LimitPeriod.WEEK),
    ),
    Campaign(
        "P-FRUIT",
        "Fruit -20 RUB/kg",
        "fruit",
        Benefit(BenefitKind.AMOUNT_PER_UNIT, 2000),
        UsageLimit(LimitUnit.RECEIPTS, 2, LimitPeriod.WEEK),
    ),
    Campaign(
        "P-MEAT-POINTS", "Meat: 10 % in points", "meat", Benefit(BenefitKind.BONUS_PERCENT, 1000),
        group_id="G-MEAT",
    ),
)  # fmt: skip


class _MemberBuilder:
    def __init__(self, catalogue: DemoCatalogue, now: datetime) -> None:
        self.catalogue = catalogue
        self.now = now
        self.today = today_in_program_zone(now)
        self.month = previous_month(now)
        self.valid_from = now - timedelta(days=30)
        self.valid_to = now + timedelta(days=60)
        lists = {pl.id: pl.skus for pl in catalogue.product_lists}
        self.favorites_list = lists[FAVORITES_LIST]
        self.buyable = [p for p in catalogue.products if not p.product.excluded]

    def build(self, rng: Random, n: int) -> tuple[Member, list[Purchase]]:
        mid = member_id(n)
        age = rng.randint(18, 85)
        birth_date = self.today - timedelta(days=age * 365 + rng.randint(0, 364))
        tags = {
            tag
            for tag, wanted in (
                ("pensioner", age >= 60 and rng.random() < 0.85),
                ("student", age <= 24 and rng.random() < 0.6),
                ("vip", rng.random() < 0.05),
                ("family", rng.random() < 0.2),
                ("new", rng.random() < 0.1),
            )
            if wanted
        }
        purchases = self._purchases(rng, mid) if rng.random() < 0.7 else []
        slots: dict[str, frozenset[str]] = {}
        if rng.random() < 0.45:
            picked = rng.sample(self.favorites_list, rng.randint(1, 3))
            slots[FAVORITE_PRODUCTS] = frozenset(picked)
        if purchases and rng.random() < 0.6:
            slots[FAVORITE_HISTORY] = frozenset(p.sku for p in most_bought(purchases)[:5])
        member = Member(
            id=mid,
            active=rng.random() >= 0.02,
            birth_date=birth_date,
            gender=rng.choices([Gender.FEMALE, Gender.MALE, Gender.OTHER, None], [52, 42, 2, 4])[0],
            segment_tags=frozenset(tags),
            favorite_slots=slots,
            favorite_categories=self._categories(rng) if rng.random() < 0.5 else (),
            personal_offers=self._personal_offers(rng) if rng.random() < 0.3 else (),
        )
        return member, purchases

    def _purchases(self, rng: Random, mid: str) -> list[Purchase]:
        return [
            self._purchase(mid, p, rng.randint(300, 3000) if p.product.unit is Unit.WEIGHT
                           else rng.randint(1, 6) * 1000)
            for p in rng.sample(self.buyable, rng.randint(3, 20))
        ]  # fmt: skip

    def _purchase(self, mid: str, p: DemoProduct, quantity: int) -> Purchase:
        return Purchase(mid, self.month, p.product.sku, quantity, line_amount(p.price, quantity))

    def _categories(self, rng: Random) -> tuple[FavoriteCategoryTerms, ...]:
        offered = tuple(rng.sample(CATEGORY_CHOICES, rng.randint(3, 5)))
        max_count = rng.randint(1, 2)
        acceptance = rng.random() < 0.6
        chosen = rng.sample(offered, max_count) if acceptance and rng.random() < 0.7 else []
        kind = BenefitKind.BONUS_PERCENT if rng.random() < 0.2 else BenefitKind.PERCENT
        value = rng.choice((500, 1000, 1500, 2000))
        return (self._terms(offered, Benefit(kind, value), max_count, acceptance, chosen),)

    def _terms(
        self,
        offered: tuple[str, ...],
        benefit: Benefit,
        max_count: int,
        acceptance: bool,
        chosen: Sequence[str],
    ) -> FavoriteCategoryTerms:
        return FavoriteCategoryTerms(
            offer_id=FAVORITE_CATEGORIES,
            name="Favorite categories",
            group_ids=offered,
            benefit=benefit,
            max_count=max_count,
            acceptance_required=acceptance,
            chosen_group_ids=frozenset(chosen),
            valid_from=self.valid_from,
            valid_to=self.valid_to,
            frequency=Frequency.MONTHLY,
        )

    def _personal_offers(self, rng: Random) -> tuple[PersonalOffer, ...]:
        campaigns = sorted(rng.sample(CAMPAIGNS, rng.randint(1, 2)), key=lambda c: c.offer_id)
        return tuple(self._personal_offer(rng, c) for c in campaigns)

    def _personal_offer(
        self, rng: Random, campaign: Campaign, skus: frozenset[str] | None = None
    ) -> PersonalOffer:
        if skus is None and campaign.group_id is None:
            candidates = [p.product.sku for p in self.catalogue.in_category(campaign.category_id)]
            skus = frozenset(rng.sample(candidates, rng.randint(1, 3)))
        return PersonalOffer(
            offer_id=campaign.offer_id,
            name=campaign.name,
            benefit=campaign.benefit,
            skus=skus or frozenset(),
            group_id=campaign.group_id,
            valid_from=self.valid_from,
            valid_to=self.valid_to,
            usage_limit=campaign.usage_limit,
        )

    def showcase(self, rng: Random) -> tuple[Member, list[Purchase]]:
        """M000001: every individual mechanic hits a line of the demo receipt."""
        mid = member_id(1)
        sku = {key: self.catalogue.named(name).product.sku for key, name in SHOWCASE.items()}
        named = self.catalogue.named
        bought = [
            (named(SHOWCASE["history"]), 6000),
            (named("Oat flakes 500 g, Mistral"), 4000),
            (named("Still water 5 l, Holy Spring"), 4000),
            (named("Potatoes"), 3500),
            (named("Spaghetti 450 g, Makfa"), 3000),
            (named("Kefir 1 % 900 ml, Green Meadow"), 2000),
            (named("Toilet paper 8 rolls, Soft Cloud"), 1000),
        ]
        purchases = [self._purchase(mid, p, quantity) for p, quantity in bought]
        favorites = {
            sku["favorite"],
            named("Butter 82.5 % 180 g, Green Meadow").product.sku,
            named("Borodinsky rye bread 400 g, Khlebny Dom").product.sku,
        }
        coffee, fruit = CAMPAIGNS[0], CAMPAIGNS[3]
        member = Member(
            id=mid,
            birth_date=self.today - timedelta(days=40 * 365 + 10 - 180),  # birthday far away
            gender=Gender.MALE,
            segment_tags=frozenset({"vip"}),
            favorite_slots={
                FAVORITE_PRODUCTS: frozenset(favorites),
                FAVORITE_HISTORY: frozenset(p.sku for p in most_bought(purchases)[:5]),
            },
            favorite_categories=(
                self._terms(
                    ("G-SWEETS", "G-BAKERY", "G-DAIRY"),
                    Benefit(BenefitKind.PERCENT, 1500),
                    max_count=1,
                    acceptance=True,
                    chosen=["G-SWEETS"],
                ),
            ),
            personal_offers=(
                self._personal_offer(rng, coffee, frozenset({sku["personal"]})),
                self._personal_offer(rng, fruit, frozenset({named("Apples Gala").product.sku})),
            ),
        )
        return member, purchases


def most_bought(purchases: Sequence[Purchase]) -> list[Purchase]:
    """Auto-fill order (spec §7.1): most quantity first, then amount, then SKU."""
    return sorted(purchases, key=lambda p: (-p.quantity, -p.amount, p.sku))


def demo_members(catalogue: DemoCatalogue, now: datetime) -> DemoMembers:
    rng = Random(SEED + 1)
    builder = _MemberBuilder(catalogue, now)
    members: list[Member] = []
    purchases: list[Purchase] = []
    for n in range(1, MEMBER_COUNT + 1):
        member, bought = builder.showcase(rng) if n == 1 else builder.build(rng, n)
        members.append(member)
        purchases.extend(bought)
    cards = {member_id(n): (card_number(n),) for n in range(1, MEMBER_COUNT + 1)}
    return DemoMembers(tuple(members), cards, tuple(purchases))
