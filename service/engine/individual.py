"""A member's individual mechanics (spec §7), indexed for the lines of a receipt.

From a member's state the index maps SKUs and product groups to compiled rules:
- favorite products: each SKU in the member's slots of a known favorite-products offer;
- favorite categories: each effective group of the terms (selection.effective_groups: the
  chosen groups still offered, at most max_count, when acceptance is required; otherwise
  every offered group);
- personalized offers: their SKUs and their group. An offer with neither applies to nothing.

Individual rules never apply to an unknown SKU (its scope is not "all products").

A member's terms are compiled into rules only when a line first matches them (most of a
member's personalized offers never touch a given receipt). The index is memoised per Member
object (the cache hands out the same object until the member changes) in a bounded memo on
the snapshot; per SKU, the merged and sorted candidate tuple is memoised inside the index.
"""

from __future__ import annotations

from collections import defaultdict

from service.engine.model import FavoriteCategoryTerms, Member, PersonalOffer
from service.engine.rules import Rule, rule_for_category_terms, rule_for_personal_offer
from service.engine.selection import effective_groups
from service.engine.snapshot import Snapshot, order_of

MEMO_SIZE = 4096  # members whose index is kept per snapshot
LINE_MEMO_SIZE = 1024  # SKUs whose merged candidates are kept per member


# What the index maps SKUs and groups to: a favorite-products offer's rule (compiled once in
# the snapshot), or a member's terms, compiled into a rule the first time a line matches.
Source = Rule | FavoriteCategoryTerms | PersonalOffer


class IndividualRules:
    __slots__ = ("member", "by_sku", "by_group", "by_line", "_compiled")

    def __init__(
        self,
        member: Member,
        by_sku: dict[str, list[Source]],
        by_group: dict[str, list[Source]],
    ) -> None:
        self.member = member
        self.by_sku = by_sku
        self.by_group = by_group
        self.by_line: dict[str, tuple[Rule, ...]] = {}  # sku -> line_candidates, memoised
        self._compiled: dict[int, Rule] = {}  # id(terms) -> rule; the member keeps terms alive

    def line_candidates(
        self, sku: str, groups: frozenset[str], general: tuple[Rule, ...]
    ) -> tuple[Rule, ...]:
        """The general candidates of a known SKU merged with this member's, sorted."""
        found = self.by_line.get(sku)
        if found is None:
            own: dict[Rule, None] = {}
            for source in self.by_sku.get(sku, ()):
                own[self._rule(source)] = None
            by_group = self.by_group
            if by_group:
                for group_id in groups:
                    for source in by_group.get(group_id, ()):
                        own[self._rule(source)] = None
            found = tuple(sorted((*general, *own), key=order_of)) if own else general
            if len(self.by_line) >= LINE_MEMO_SIZE:
                self.by_line.clear()
            self.by_line[sku] = found
        return found

    def _rule(self, source: Source) -> Rule:
        if isinstance(source, Rule):
            return source
        rule = self._compiled.get(id(source))
        if rule is None:
            if isinstance(source, PersonalOffer):
                rule = rule_for_personal_offer(source)
            else:
                rule = rule_for_category_terms(source)
            # Two receipts of the member on two threads may compile the same terms at once:
            # setdefault (atomic on a dict) keeps the first rule for both, so the member has
            # one rule per offer, as identity-hashed keys of a receipt's charges need.
            rule = self._compiled.setdefault(id(source), rule)
        return rule


def individual_rules_for(snapshot: Snapshot, member: Member | None) -> IndividualRules | None:
    """The member's index, or None when there is no member or nothing individual to apply."""
    if member is None:
        return None
    if not (member.favorite_slots or member.favorite_categories or member.personal_offers):
        return None
    memo = snapshot.individual_memo
    found = memo.get(id(member))
    if found is not None and found.member is member:
        return found
    rules = _index(snapshot, member)
    if len(memo) >= MEMO_SIZE:
        memo.clear()
    memo[id(member)] = rules
    return rules


def _index(snapshot: Snapshot, member: Member) -> IndividualRules:
    by_sku: dict[str, list[Source]] = defaultdict(list)
    by_group: dict[str, list[Source]] = defaultdict(list)
    favorite_rules = snapshot.favorite_rules
    for offer_id, skus in member.favorite_slots.items():
        favorite = favorite_rules.get(offer_id)
        if favorite is not None:
            for sku in skus:
                by_sku[sku].append(favorite)
    seen: set[str] = set()
    for terms in member.favorite_categories:
        if terms.offer_id in seen:
            continue
        seen.add(terms.offer_id)
        for group_id in effective_groups(terms):
            by_group[group_id].append(terms)
    seen.clear()
    for offer in member.personal_offers:
        if offer.offer_id in seen:
            continue
        seen.add(offer.offer_id)
        for sku in offer.skus:
            by_sku[sku].append(offer)
        if offer.group_id is not None:
            by_group[offer.group_id].append(offer)
    return IndividualRules(member, dict(by_sku), dict(by_group))
