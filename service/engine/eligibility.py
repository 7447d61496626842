"""Which offers may apply to a receipt at all (spec §4): the per-receipt filters.

Each rule is checked at most once per receipt; the outcome is memoised in the receipt's
context as the rule's role on this receipt (INELIGIBLE, EXCLUSIVE, COMBINABLE, BONUS or
UNITS_LIMITED), and for an ineligible rule the reason (the first failing filter):
validity [from, to) against the sale time, store, channel, member (identified and active),
audience, schedule (store's local time), usage limit (per member, program-zone periods).
"""

from __future__ import annotations

from datetime import date

from service.engine.audience import audience_matches
from service.engine.coupons import COUPON_REQUIRED
from service.engine.model import Audience, Member, Receipt, Schedule
from service.engine.rules import INELIGIBLE, UNITS_LIMITED, Role, Rule, to_epoch_us
from service.engine.schedule import LocalClock, schedule_open
from service.engine.snapshot import Snapshot
from service.engine.usage import period_key

NOT_VALID = "not valid at sale time"
STORE_NOT_IN_OFFER = "store not in offer"
CHANNEL_NOT_IN_OFFER = "channel not in offer"
MEMBER_REQUIRED = "member required"
MEMBER_NOT_ACTIVE = "member not active"
AUDIENCE_MISMATCH = "audience does not match"
OUTSIDE_SCHEDULE = "outside schedule"
USAGE_LIMIT_USED_UP = "usage limit used up"


class ReceiptContext:
    """What the filters need about one receipt, and what they found; local times and
    period keys are computed on first use."""

    __slots__ = (
        "snapshot",
        "receipt",
        "member",
        "sale_us",
        "store_id",
        "channel",
        "roles",
        "reasons",
        "charges",
        "locked",
        "_clock",
        "_local_date",
        "_period_keys",
        "_audiences",
        "_schedules",
    )

    def __init__(self, snapshot: Snapshot, receipt: Receipt) -> None:
        self.snapshot = snapshot
        self.receipt = receipt
        self.member: Member | None = receipt.member
        self.sale_us = to_epoch_us(receipt.sale_time)
        self.store_id = receipt.store_id
        self.channel = receipt.channel
        self.roles: dict[Rule, Role] = {}  # memo: rule -> role on this receipt
        self.reasons: dict[Rule, str] = {}  # ineligible rule -> why
        self.charges: dict[Rule, int] = {}  # limited rules applied -> quantity covered
        gated = snapshot.coupons.gated  # coupon-gated offers without a valid code here
        self.locked = gated - receipt.coupon_offers if gated else gated
        self._clock: LocalClock | None = None
        self._local_date: date | None = None
        self._period_keys: dict[int, str] = {}  # id(period) -> key
        # id(audience or schedule) -> outcome; the rules keep those objects alive
        self._audiences: dict[int, bool] = {}
        self._schedules: dict[int, bool] = {}

    def role_of(self, rule: Rule) -> Role:
        """The rule's role on this receipt (memoised)."""
        role = self.roles.get(rule)
        if role is None:
            reason = ineligibility_reason(rule, self) if rule.has_filters else None
            if reason is None and rule.offer_id in self.locked:
                reason = COUPON_REQUIRED
            if reason is not None:
                self.reasons[rule] = reason
                role = INELIGIBLE
            elif rule.units_limited:
                role = UNITS_LIMITED
            else:
                role = rule.role
            self.roles[rule] = role
        return role

    @property
    def store_clock(self) -> LocalClock:
        """The sale time on the store's wall clock (store zone, else the program's)."""
        clock = self._clock
        if clock is None:
            zone = self.snapshot.time_zone_for(self.receipt.store_id)
            clock = self._clock = LocalClock(self.receipt.sale_time.astimezone(zone))
        return clock

    @property
    def local_date(self) -> date:
        """The sale date in the program's time zone (ages, birthdays, usage periods)."""
        found = self._local_date
        if found is None:
            zone = self.snapshot.program_time_zone
            found = self._local_date = self.receipt.sale_time.astimezone(zone).date()
        return found

    def schedule_open(self, schedule: Schedule) -> bool:
        found = self._schedules.get(id(schedule))
        if found is None:
            found = self._schedules[id(schedule)] = schedule_open(schedule, self.store_clock)
        return found

    def audience_matches(self, audience: Audience, member: Member) -> bool:
        found = self._audiences.get(id(audience))
        if found is None:
            found = audience_matches(audience, member, self.local_date)
            self._audiences[id(audience)] = found
        return found

    def usage_key(self, rule: Rule) -> tuple[str, str]:
        """The member's usage key of a limited rule: (offer id, period key)."""
        limit = rule.usage_limit
        assert limit is not None
        period = limit.period
        key = self._period_keys.get(id(period))  # by id: an Enum's hash runs Python code
        if key is None:
            key = self._period_keys[id(period)] = period_key(period, self.local_date)
        return rule.offer_id, key

    def remaining_use(self, rule: Rule) -> int:
        """What is left of a rule's per-member limit: receipts or thousandths of a unit.
        Without a member nothing has been used: the limit caps this receipt alone."""
        limit = rule.usage_limit
        assert limit is not None
        member = self.member
        used = 0 if member is None else member.usage.get(self.usage_key(rule), 0)
        return max(limit.limit - used, 0)


def ineligibility_reason(rule: Rule, context: ReceiptContext) -> str | None:
    """Why the rule cannot apply to this receipt, or None if it can."""
    if not rule.valid_from_us <= context.sale_us < rule.valid_to_us:
        return NOT_VALID
    if rule.store_ids and context.store_id not in rule.store_ids:
        return STORE_NOT_IN_OFFER
    if rule.channels and context.channel not in rule.channels:
        return CHANNEL_NOT_IN_OFFER
    if rule.needs_member:
        member = context.member
        if member is None:
            return MEMBER_REQUIRED
        if not member.active:
            return MEMBER_NOT_ACTIVE
        if rule.audience is not None and not context.audience_matches(rule.audience, member):
            return AUDIENCE_MISMATCH
    if rule.schedule is not None and not context.schedule_open(rule.schedule):
        return OUTSIDE_SCHEDULE
    if rule.usage_limit is not None and context.remaining_use(rule) <= 0:
        return USAGE_LIMIT_USED_UP
    return None
