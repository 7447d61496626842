"""Game chips (spec §20, docs/chips.md): granted for what is paid on a product group, spent
to unlock rewards. Pure; applied once per receipt after the lines (calculate's last step),
so receipts without chips offers pay one attribute check.

A grant offer (benefit kind CHIPS, level ALL_BUYERS or MEMBERS_ONLY) gives `value` chips per
whole `chips_threshold` paid on the lines in its scope, the receipt's total: 1 chip per
500.00 on 1 234.56 of fresh food is 2 chips. The chips are split over the lines that paid
for them in proportion to what each paid (largest remainder), so a refund can take back a
line's share. Excluded products never count; an unknown SKU counts only for an offer on all
products. An anonymous buyer is shown the chips (the cashier hands out physical ones).

A reward offer (chips_price K > 0) gives its discount only to units the member unlocks by
spending K chips each, out of the receipt's `chips_to_spend`: rewards in offer order (higher
priority, then offer id), each over its lines in line_id order, whole units while the budget
lasts (a weighed line counts as whole kilograms, begun ones included). The discount comes
last on the line, valued on what is left to pay for the unlocked share, capped by the min
price; the line's bonus points are scaled to what is then paid. A reward that would give
nothing costs nothing. Grants are counted after rewards.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from service.engine.model import (
    PIECE_QUANTITY,
    AppliedBenefit,
    BenefitKind,
    ChipsAward,
    ChipsResult,
    LineResult,
    Offer,
    Product,
    Receipt,
    ReceiptResult,
    RewardUse,
)
from service.engine.money import allocate, round_half_up
from service.engine.rules import INELIGIBLE, Rule, is_chips_offer, rule_for_chips_offer
from service.engine.texts import benefit_text, format_money, mechanic_label
from service.engine.valuation import covered_share, discount_on, min_price_floor
from service.errors import FailedPrecondition

if TYPE_CHECKING:
    from service.engine.eligibility import ReceiptContext
    from service.engine.snapshot import Snapshot

CHIPS_INSUFFICIENT = "CHIPS_INSUFFICIENT"


@dataclass(frozen=True, slots=True)
class ChipsGrant:
    rule: Rule
    group_id: str | None
    chips: int  # per threshold
    threshold: int  # minor units paid
    text: str


@dataclass(frozen=True, slots=True)
class ChipsReward:
    rule: Rule
    group_id: str | None
    price: int  # chips per unit
    text: str


@dataclass(frozen=True, slots=True)
class ChipsProgram:
    """The snapshot's chips offers, each in offer order."""

    grants: tuple[ChipsGrant, ...]
    rewards: tuple[ChipsReward, ...]


def chips_program(offers: Iterable[Offer]) -> ChipsProgram | None:
    """The chips offers among `offers`, compiled; None when there is none."""
    grants: list[ChipsGrant] = []
    rewards: list[ChipsReward] = []
    for offer in offers:
        if not is_chips_offer(offer):
            continue
        rule = rule_for_chips_offer(offer)
        label = mechanic_label(rule.mechanic, offer.name)
        if offer.benefit.kind is BenefitKind.CHIPS:
            text = offer.text or (
                f"{label} +{offer.benefit.value} chips per {format_money(offer.chips_threshold)}"
            )
            grant = ChipsGrant(
                rule, offer.scope_group_id, offer.benefit.value, offer.chips_threshold, text
            )
            grants.append(grant)
        else:
            text = offer.text or (
                f"{label} {benefit_text(offer.benefit)} for {offer.chips_price} chips"
            )
            rewards.append(ChipsReward(rule, offer.scope_group_id, offer.chips_price, text))
    if not grants and not rewards:
        return None
    grants.sort(key=lambda g: g.rule.sort_key)
    rewards.sort(key=lambda r: r.rule.sort_key)
    return ChipsProgram(tuple(grants), tuple(rewards))


def check_chips_to_spend(receipt: Receipt) -> None:
    """Chips are spent only out of what the member holds; an anonymous buyer holds none.
    (The caller refuses a negative amount as bad input.)"""
    asked = receipt.chips_to_spend
    if asked <= 0:
        return
    member = receipt.member
    if member is None:
        raise FailedPrecondition(
            "an anonymous buyer holds no chips to spend", reason=CHIPS_INSUFFICIENT
        )
    if asked > member.chips:
        raise FailedPrecondition(
            f"the member holds {member.chips} chips, {asked} asked to spend",
            reason=CHIPS_INSUFFICIENT,
        )


def chips_after_refund(balance: int, taken_back: int, given_back: int) -> int:
    """A member's balance after a refund takes back `taken_back` granted chips and gives
    back `given_back` spent ones: never below zero (chips already spent elsewhere are not
    owed)."""
    return max(balance + given_back - taken_back, 0)


def apply_chips(
    snapshot: Snapshot,
    context: ReceiptContext,
    receipt: Receipt,
    result: ReceiptResult,
    products: list[Product | None],
) -> ReceiptResult:
    """The result with the receipt's rewards unlocked and its chips granted (unchanged when
    no chips offer applies); `products`: each line's in the snapshot (None: unknown SKU)."""
    program: ChipsProgram | None = snapshot.chips
    if program is None:
        return result
    lines = list(result.lines)
    rewards: list[RewardUse] = []
    if receipt.chips_to_spend > 0 and receipt.member is not None and program.rewards:
        rewards = _unlock_rewards(program, snapshot, context, receipt, lines, products)
    awards = _grant(program, snapshot, context, lines, products)
    if not awards and not rewards:
        return result
    discount = sum(line.discount for line in lines)
    return replace(
        result,
        lines=tuple(lines),
        total_discount=discount,
        total_paid=result.total_amount - discount,
        total_points=sum(line.points for line in lines),
        chips=ChipsResult(tuple(awards), tuple(rewards)),
    )


def _in_scope(
    snapshot: Snapshot, group_id: str | None, line: LineResult, product: Product | None
) -> bool:
    if product is not None and product.excluded:
        return False
    if group_id is None:
        return True
    return product is not None and snapshot.group_contains(group_id, line.sku)


def _unlock_rewards(
    program: ChipsProgram,
    snapshot: Snapshot,
    context: ReceiptContext,
    receipt: Receipt,
    lines: list[LineResult],
    products: list[Product | None],
) -> list[RewardUse]:
    """Spend the budget on rewards (module docstring); `lines` get the reward discounts."""
    budget = receipt.chips_to_spend
    quantities = {line.line_id: line.quantity for line in receipt.lines}
    order = sorted(range(len(lines)), key=lambda i: lines[i].line_id)
    rewarded: set[int] = set()  # one reward per line
    used: list[RewardUse] = []
    for reward in program.rewards:
        if context.role_of(reward.rule) is INELIGIBLE:
            continue
        for index in order:
            if budget < reward.price:
                return used
            line, product = lines[index], products[index]
            if index in rewarded or not _in_scope(snapshot, reward.group_id, line, product):
                continue
            quantity = quantities[line.line_id]
            units = -(-quantity // PIECE_QUANTITY)
            unlocked = min(units, budget // reward.price)
            rule = reward.rule
            value = discount_on(rule.kind, rule.value, line.paid, quantity)
            value = covered_share(value, min(quantity, unlocked * PIECE_QUANTITY), quantity)
            value = min(value, max(line.paid - min_price_floor(product, quantity), 0))
            if value <= 0:
                continue
            spent = unlocked * reward.price
            budget -= spent
            rewarded.add(index)
            benefit = AppliedBenefit(rule.offer_id, rule.mechanic, rule.kind, value, 0, reward.text)
            lines[index] = _with_reward(line, benefit)
            used.append(RewardUse(line.line_id, rule.offer_id, spent))
    return used


def _with_reward(line: LineResult, reward: AppliedBenefit) -> LineResult:
    """The line with the reward's discount last; its bonus points follow the paid amount
    (each scaled to what is paid now, rounded half up)."""
    paid = line.paid - reward.discount
    benefits = [
        b if not b.points else replace(b, points=round_half_up(b.points * paid, line.paid))
        for b in line.benefits
    ]
    return replace(
        line,
        discount=line.discount + reward.discount,
        paid=paid,
        points=sum(b.points for b in benefits),
        benefits=(*benefits, reward),
    )


def _grant(
    program: ChipsProgram,
    snapshot: Snapshot,
    context: ReceiptContext,
    lines: list[LineResult],
    products: list[Product | None],
) -> list[ChipsAward]:
    """Each eligible grant's chips on what its scope paid, split over the paying lines."""
    awards: list[ChipsAward] = []
    for grant in program.grants:
        if context.role_of(grant.rule) is INELIGIBLE:
            continue
        paying = [
            line
            for line, product in zip(lines, products, strict=True)
            if line.paid > 0 and _in_scope(snapshot, grant.group_id, line, product)
        ]
        chips = sum(line.paid for line in paying) // grant.threshold * grant.chips
        if chips <= 0:
            continue
        shares = allocate(chips, [line.paid for line in paying])
        rule = grant.rule
        awards.extend(
            ChipsAward(line.line_id, rule.offer_id, rule.mechanic, share, grant.text)
            for line, share in zip(paying, shares, strict=True)
            if share
        )
    return awards
