"""The receipt lifecycle's use cases (docs/receipts.md): calculate from memory, confirm once,
refund once per refund id.

Calculate reads only the cache. Confirm and refund each run one transaction through a unit of
work (service.app.unit_of_work), their statements in the order that makes them correct:

    confirm  claim the receipt id (the FIRST statement: the primary key decides a race),
             and with it, judged only once the claim is known: lines and benefits, the
             member's lock and document, chips (the debit a conditional update), usage (each
             counter a conditional upsert), the points ledger with the open lots read under
             the lock, history. A repeat answers from the stored record and rolls that back.
             Anything new: the token's age and the window for late receipts, then chips,
             usage and points spent refused if they no longer hold, the coupon codes the
             token carries (service.app.coupons.redeem), the record with the balances -> commit
    refund   one read answers most repeats. Then: lock the receipt row (a stored refund
             answers), each line's share (engine.lifecycle), the refund with its record, the
             member's lock, usage given back, ledger reversal and spent points given back,
             history, the coupon codes released when nothing of the receipt is left -> commit

The unit of work patches the member's document with the new counters, appends the change
feed and, after the commit, tells this replica's cache. What a confirm or refund answered is
kept as the bytes the api encoded (`encode`, `RefundCodec`): a repeat gets them unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.app import coupons
from service.app.sessions import Sessions
from service.app.unit_of_work import Patch, UnitOfWork
from service.cache.state import BenefitCache
from service.clock import Clock, utc_now
from service.engine.calculate import calculate as calculate_benefits
from service.engine.chips import CHIPS_INSUFFICIENT, check_chips_to_spend, chips_after_refund
from service.engine.coupons import CouponOutcome, Redemption, coupon_outcomes, unlocked_offers
from service.engine.lifecycle import (
    ConfirmedLine,
    ConfirmedReceipt,
    CountedUsage,
    IsPiece,
    Refund,
    RefundRequest,
    UsageClaim,
    lines_to_refund,
    points_by_offer,
    purchase_month,
    refund_line,
    returned_goods,
    usage_given_back,
)
from service.engine.model import Member, Receipt, ReceiptResult, Unit, UsageCharge, UsageLimit
from service.engine.points_balance import FOREVER, Lifetime, PointsHolding
from service.engine.points_spend import PointsPolicy, PointsRequest
from service.engine.validation import validate_receipt
from service.errors import AlreadyExists, DomainError, FailedPrecondition, InvalidArgument, NotFound
from service.limits import NAME, quote
from service.store.chips_repo import (
    queue_chips_balance,
    queue_credit,
    queue_debit,
)
from service.store.member_repo import member_exists
from service.store.pipeline import Batch, Later
from service.store.points_repo import (
    ReceiptPoints,
    Reversal,
    queue_receipt_points,
    reverse,
    write_reversal,
)
from service.store.receipt_repo import (
    SoldReceipt,
    StoredReceipt,
    StoredRefund,
    add_to_history,
    add_usage,
    claim_receipt,
    confirmed_lines,
    lock_receipt,
    save_refund,
    set_record,
    stored_receipt,
    stored_refund,
    take_back_usage,
    write_lines,
)

USAGE_LIMIT_REACHED = "USAGE_LIMIT_REACHED"
POINTS_INSUFFICIENT = "POINTS_INSUFFICIENT"
DEFAULT_POINTS_POLICY = PointsPolicy()
MEMBER_NOT_FOUND = "MEMBER_NOT_FOUND"
RECEIPT_NOT_FOUND = "RECEIPT_NOT_FOUND"

Units = Callable[[], UnitOfWork]  # a new unit of work per transaction
# (points balance after the confirm, the usage it counted, chips balance after it) -> the
# record a repeat gets back
EncodeConfirmation = Callable[[int, tuple[CountedUsage, ...], int], bytes]
Totals = Mapping[tuple[str, str], int]  # (offer id, period key) -> a counter's new value


@dataclass(frozen=True, slots=True)
class Confirmation:
    """A verified confirm: the receipt and the result shown (the token's), the usage it
    claims with each offer's current limit, and the request's fingerprint (a repeat of the
    same receipt has the same one)."""

    receipt: ConfirmedReceipt
    usage: tuple[UsageClaim, ...]
    fingerprint: str
    coupons: tuple[Redemption, ...] = ()  # the codes that applied (the token's)


@dataclass(frozen=True, slots=True)
class Admission:
    """What only a repeat may skip, checked once the receipt id is claimed: a token that may
    no longer commit anything new (expired, its key retired), and the window for late
    receipts (a sale time more than `max_sale_time_age` before `now`)."""

    token_refusal: DomainError | None = None
    now: datetime | None = None
    max_sale_time_age: timedelta | None = None

    def check(self, receipt: ConfirmedReceipt) -> None:
        if self.token_refusal is not None:
            raise self.token_refusal
        if self.now is None or self.max_sale_time_age is None:
            return
        if receipt.sale_time < self.now - self.max_sale_time_age:
            raise InvalidArgument(
                "receipt.sale_time", "older than the window for late receipts: not confirmed"
            )


ADMIT_ANY = Admission()


@dataclass(frozen=True, slots=True)
class Answer:
    """What a confirm or refund answered, as the api encoded it and the store keeps it, and
    whether it was a repeat (then nothing was written)."""

    record: bytes
    replayed: bool


@dataclass(frozen=True, slots=True)
class RefundCodec:
    """How the api keeps a refund's answer, and reads the usage a confirm's record counted."""

    counted_usage: Callable[[bytes], tuple[CountedUsage, ...]]
    encode: Callable[[Refund], bytes]


# --- confirm ----------------------------------------------------------------------------------


def confirm_receipt(
    units: Units,
    confirmation: Confirmation,
    *,
    time_zone: ZoneInfo,
    encode: EncodeConfirmation,
    admission: Admission = ADMIT_ANY,
    lifetime: Lifetime = FOREVER,
    resent: bool = False,
) -> Answer:
    """Commit the receipt once and return its record; a repeat returns the stored one.

    Raises AlreadyExists (same id, other content), FailedPrecondition (CHIPS_INSUFFICIENT,
    the chips the rewards cost no longer held; a usage limit used up since the calculation;
    POINTS_INSUFFICIENT, the points spent no longer available; MEMBER_NOT_FOUND, the member
    deleted since) and what `admission` refuses; database errors propagate, nothing written.
    Accrued points live the `lifetime` given.

    The statements are queued on the unit of work's batch and sent when a result is needed:
    the claim, the stored record a repeat answers, and every write and read that decides
    nothing before the claim is known, together; then the record, the documents and the
    feed with the COMMIT (docs/operations.md). A repeat rolls back what it sent with its
    claim; chips, usage and points are only judged once the claim is known to be new.
    `resent` (the request was sent before, so it is often a repeat): the claim and the
    stored record go alone first, and a repeat costs only them (a new receipt one round trip
    more)."""
    receipt = confirmation.receipt
    with units() as uow:
        try:
            claimed = claim_receipt(uow.batch, receipt, confirmation.fingerprint, uow.now)
            stored = stored_receipt(uow.batch, receipt.receipt_id)
            if resent and not claimed.value():
                return _answer_repeat(uow, stored, confirmation)
            queued = _queue_confirmation(uow, confirmation, time_zone, lifetime)
            redeemed = _queue_coupons(uow, confirmation)
            if not claimed.value():  # sends it all
                return _answer_repeat(uow, stored, confirmation)
            admission.check(receipt)
            record = _finish_confirmation(uow, confirmation, queued, redeemed, encode)
            uow.commit()
        except IntegrityError:
            uow.rollback()
            _refuse_if_member_gone(uow.session, receipt.member_id)
            raise
    return Answer(record, replayed=False)


def _answer_repeat(
    uow: UnitOfWork, stored: Later[StoredReceipt | None], confirmation: Confirmation
) -> Answer:
    """The receipt id is taken by a committed receipt (a concurrent claim was waited for):
    its stored answer, if this is the same request."""
    answer = _replay_confirm(stored.value(), confirmation.receipt.receipt_id, confirmation)
    # Rolled back, not committed: what was sent with the claim is undone, and a commit would
    # write a commit record (16 clients replaying ran at half the rate). psycopg then drops
    # the connection's prepared statements, prepared again by its next confirm: paid after
    # repeats only.
    uow.rollback()
    return answer


@dataclass(frozen=True, slots=True)
class _Queued:
    """What a member's confirm queued with its claim, read once the claim is known to be new:
    the chips balance after it (raises CHIPS_INSUFFICIENT), the usage it counts and the
    counters' new values (raises USAGE_LIMIT_REACHED), and its points: spent and accrued,
    with what was available before."""

    chips: Callable[[], int]
    counted: tuple[CountedUsage, ...]
    totals: Callable[[], Totals]
    points: Later[ReceiptPoints]


def _queue_confirmation(
    uow: UnitOfWork, confirmation: Confirmation, time_zone: ZoneInfo, lifetime: Lifetime
) -> _Queued | None:
    """Queue what a new confirm writes and reads before anything is judged, to be sent with
    its claim (None: no member). All of it must be harmless for a repeat, which rolls it
    back: the lines and benefits of an id already stored are left as they are (ON CONFLICT
    DO NOTHING); counters, chips and history change only inside this transaction."""
    batch, at = uow.batch, uow.now
    receipt = confirmation.receipt
    write_lines(batch, receipt)
    member_id = receipt.member_id
    if not member_id:
        return None
    uow.lock_members([member_id])
    if confirmation.usage or _moves_points(receipt) or _moves_chips(receipt):
        uow.will_patch([member_id])  # their document is read with the rest
    chips = _queue_chips(batch, member_id, receipt, at)
    counted, totals = _count_usage(batch, member_id, confirmation.usage, at)
    spent, earned = receipt.total_points_spent, receipt.points_by_offer()
    points = queue_receipt_points(batch, member_id, receipt.receipt_id, spent, earned, at, lifetime)
    add_to_history(batch, member_id, receipt.bought(time_zone))
    return _Queued(chips, counted, totals, points)


def _moves_points(receipt: ConfirmedReceipt) -> bool:
    return bool(receipt.total_points or receipt.total_points_spent)


def _moves_chips(receipt: ConfirmedReceipt) -> bool:
    return bool(receipt.chips_spent or receipt.chips_granted)


def _queue_coupons(uow: UnitOfWork, confirmation: Confirmation) -> Callable[[], None]:
    """The coupon codes the token carries, queued after the member's lock, like every
    confirm (no deadlock); their check once sent."""
    receipt, redeemed = confirmation.receipt, confirmation.coupons
    return coupons.queue_redeem(uow.batch, receipt.receipt_id, receipt.member_id, redeemed, uow.now)


def _finish_confirmation(
    uow: UnitOfWork,
    confirmation: Confirmation,
    queued: _Queued | None,
    check_coupons: Callable[[], None],
    encode: EncodeConfirmation,
) -> bytes:
    """Judge what came back with the claim, the member's first, then the coupons, and queue
    the record (it carries the balances), sent with the COMMIT."""
    receipt = confirmation.receipt
    points = chips = 0
    if queued is not None:
        points, chips = _settle_member(uow, confirmation, queued)
    check_coupons()
    record = encode(points, queued.counted if queued else (), chips)
    set_record(uow.batch, receipt.receipt_id, record)
    return record


def _settle_member(uow: UnitOfWork, confirmation: Confirmation, queued: _Queued) -> tuple[int, int]:
    """Refuse what no longer holds, chips first, then usage, then points spent, and patch the
    member's document; their points and chips balances after the confirm."""
    at, receipt = uow.now, confirmation.receipt
    member_id = receipt.member_id
    chips = queued.chips()
    totals = queued.totals()
    points = queued.points.value()  # queues the lots' writes, sent with the commit
    _check_points_spent(receipt, points.available_before)
    if _moves_points(receipt):
        points_changed(uow, member_id, points.after)
    if _moves_chips(receipt):
        uow.patch_members([member_id], _with_chips(chips))
    _usage_counted(uow, member_id, functools.partial(dict, totals) if confirmation.usage else None)
    return points.after.position(at).balance, chips


def _check_points_spent(receipt: ConfirmedReceipt, available: int) -> None:
    """Refused if the member no longer has the points the receipt spends available. The
    store's open lots were read under the member's lock (not the cached ones a calculation
    used), so a concurrent confirm of the same member (on any replica) waits and then sees
    this one's debit: this is the check that holds."""
    spent = receipt.total_points_spent
    if spent and available < spent:
        raise FailedPrecondition(
            f"{spent} points were to be spent but {max(available, 0)} are available now; "
            "calculate the receipt again",
            reason=POINTS_INSUFFICIENT,
        )


def _queue_chips(
    batch: Batch, member_id: str, receipt: ConfirmedReceipt, at: datetime
) -> Callable[[], int]:
    """spec §20: debit the chips the rewards cost, then credit the chips granted, queued. The
    balance after, once sent; it raises CHIPS_INSUFFICIENT if the balance no longer held
    what the rewards cost (checked by the database, so across replicas)."""
    spent, granted, receipt_id = receipt.chips_spent, receipt.chips_granted, receipt.receipt_id
    if not spent and not granted:
        return queue_chips_balance(batch, member_id).value
    debit = queue_debit(batch, member_id, spent, at, receipt_id=receipt_id) if spent else None
    credit = queue_credit(batch, member_id, granted, at, receipt_id=receipt_id) if granted else None

    def balance() -> int:
        after = None if debit is None else debit.value()
        if debit is not None and after is None:
            raise _chips_not_held(spent)
        if credit is not None:
            after = credit.value()
        assert after is not None
        return after

    return balance


def _chips_not_held(chips: int) -> FailedPrecondition:
    return FailedPrecondition(
        f"the member no longer holds the {chips} chips the rewards cost; "
        "calculate the receipt again",
        reason=CHIPS_INSUFFICIENT,
    )


def _with_chips(balance: int) -> Patch:
    def patch(member: Member) -> Member:
        return replace(member, chips=balance)

    return patch


def _count_usage(
    batch: Batch, member_id: str, claims: Sequence[UsageClaim], at: datetime
) -> tuple[tuple[CountedUsage, ...], Callable[[], Totals]]:
    """Add each claim to the member's counter, in one order (offer, period) so concurrent
    confirms lock counters alike; refused if any would pass its limit (checked by the
    database, so it holds across replicas). What was counted, and the counters' new values
    once the batch is sent (that call raises the refusal of the first claim refused)."""
    counted = []
    added: list[tuple[UsageClaim, Later[int | None] | None]] = []
    for claim in sorted(claims, key=lambda c: (c.offer_id, c.period_key)):
        fits = claim.used <= claim.limit  # else no statement: it cannot fit
        added.append((claim, add_usage(batch, member_id, claim, at) if fits else None))
        counted.append(CountedUsage(claim.offer_id, claim.period_key, claim.used, claim.unit))

    @functools.cache
    def totals() -> Totals:
        new: dict[tuple[str, str], int] = {}
        for claim, pending in added:
            used = None if pending is None else pending.value()
            if used is None:
                raise FailedPrecondition(
                    f"the usage limit of {quote(claim.name or claim.offer_id, NAME)} was "
                    "reached since the receipt was calculated; calculate the receipt again",
                    reason=USAGE_LIMIT_REACHED,
                )
            new[(claim.offer_id, claim.period_key)] = used
        return new

    return tuple(counted), totals


def _replay_confirm(
    stored: StoredReceipt | None, receipt_id: str, confirmation: Confirmation
) -> Answer:
    """The first answer to this receipt id, if the request is the same; else refused."""
    if stored is None:
        raise RuntimeError(f"receipt {receipt_id!r} is claimed but not stored")
    if stored.fingerprint != confirmation.fingerprint:
        raise AlreadyExists(
            f"receipt {quote(stored.receipt_id)} was already confirmed with other content; "
            "a new receipt needs a new receipt id",
            reason="RECEIPT_ID_REUSED",
        )
    return Answer(stored.record, replayed=True)


def _refuse_if_member_gone(session: Session, member_id: str) -> None:
    """A member deleted from the store since the calculation: the receipt's foreign key
    refused the claim. The register must calculate again (and hears there is no member)."""
    if member_id and not member_exists(session, member_id):
        raise FailedPrecondition(
            "the member of this receipt no longer exists; calculate the receipt again",
            reason=MEMBER_NOT_FOUND,
        )


def points_changed(uow: UnitOfWork, member_id: str, holding: PointsHolding) -> None:
    """The member's points are now `holding`, the store's open lots as this transaction left
    them (under the member's lock): their document gets it at commit and every replica's
    cache hears of it, so calculations read the points from memory."""

    def patch(member: Member) -> Member:
        return replace(member, points=holding)

    uow.patch_members([member_id], patch)


def _usage_changed(uow: UnitOfWork, member_id: str, totals: Totals) -> None:
    """A confirm or refund changed the member's usage counters to `totals` and nothing else
    of what their document holds: the document is patched at commit. With no counter
    changed, the document stays (patching would read and rewrite it, two statements more on
    most confirms) and the feed and the cache hear of the member all the same."""
    _usage_counted(uow, member_id, functools.partial(dict, totals) if totals else None)


def _usage_counted(uow: UnitOfWork, member_id: str, totals: Callable[[], Totals] | None) -> None:
    """_usage_changed with the new values known at commit (None: no counter changed)."""
    if totals is not None:
        uow.patch_members([member_id], _with_usage(totals))
    else:
        uow.members_touched([member_id])


def _with_usage(totals: Callable[[], Totals]) -> Patch:
    def patch(member: Member) -> Member:
        return replace(member, usage={**member.usage, **totals()})

    return patch


# --- refund -----------------------------------------------------------------------------------


def refund_receipt(
    units: Units,
    request: RefundRequest,
    *,
    time_zone: ZoneInfo,
    is_piece: IsPiece,
    codec: RefundCodec,
    lifetime: Lifetime = FOREVER,
    release_coupons: bool = False,
) -> Answer:
    """Refund once and return the response's record; a repeat returns the stored one. Spent
    points given back live the `lifetime` of new points (spendable at once).

    The request's own fields are validated by the caller (ids present, positive quantities,
    no duplicate lines, `full` xor lines). Raises NotFound (no such confirmed receipt),
    InvalidArgument (a line the receipt does not have, part of a piece), FailedPrecondition
    (more than is left of a line, nothing left at all) and AlreadyExists (refund id reused
    with other content)."""
    with units() as uow:
        try:
            return _refund(uow, request, time_zone, is_piece, codec, lifetime, release_coupons)
        except IntegrityError:
            # the same refund id was stored meanwhile, for another receipt
            uow.rollback()
            stored = stored_refund(uow.batch, request.refund_id).value()
            if stored is None:
                raise
            return _replay_refund(stored, request.fingerprint)


def _refund(
    uow: UnitOfWork,
    request: RefundRequest,
    time_zone: ZoneInfo,
    is_piece: IsPiece,
    codec: RefundCodec,
    lifetime: Lifetime,
    release_coupons: bool,
) -> Answer:
    """The receipt's lock with what the refund reads of it, then (a member's) the member's
    lock with their points, chips and counters, then every write with the COMMIT: three
    round trips on PostgreSQL (one more when chips are taken back; docs/operations.md)."""
    batch, receipt_id = uow.batch, request.receipt_id
    sold = lock_receipt(batch, receipt_id)
    stored = stored_refund(batch, request.refund_id)  # after the lock: one that waited sees it
    confirmed = confirmed_lines(batch, receipt_id)
    held = coupons.held(batch, receipt_id) if release_coupons else None
    if (repeat := stored.value()) is not None:
        return _replay_refund(repeat, request.fingerprint)  # (the lock is rolled back)
    receipt = sold.value()
    if receipt is None:
        raise NotFound(f"no confirmed receipt {quote(receipt_id)}", reason=RECEIPT_NOT_FOUND)
    lines = confirmed.value()
    wanted = lines_to_refund(request, lines, is_piece)
    shares = tuple(refund_line(line, quantity) for line, quantity in wanted)
    refund = Refund(request.refund_id, receipt_id, shares, 0)
    member = None
    if receipt.member_id:
        member = _read_member(uow, receipt.member_id, receipt, lines, refund, codec, lifetime)
        refund = member.refund
    record = codec.encode(refund)
    save_refund(batch, refund, request.fingerprint, record, uow.now)  # before rows naming it
    if member is not None:
        _write_member(uow, member, receipt, time_zone)
    if held is not None and _returned_in_full(lines, refund):
        coupons.release(batch, receipt_id, held.value())
    uow.commit()
    return Answer(record, replayed=False)


@dataclass(frozen=True, slots=True)
class _MemberRefund:
    """What a refund found under its member's lock: the refund with their balances after
    it, the points it takes back and gives back, and the counters it lowered."""

    member_id: str
    refund: Refund
    points: Mapping[str, int]  # taken back, by offer
    reversal: Reversal
    chips_change: int
    totals: Callable[[], Totals]


def _read_member(
    uow: UnitOfWork,
    member_id: str,
    receipt: SoldReceipt,
    lines: Sequence[ConfirmedLine],
    refund: Refund,
    codec: RefundCodec,
    lifetime: Lifetime,
) -> _MemberRefund:
    """The member's lock, document, chips and points, and their counters lowered: one round
    trip."""
    batch, at = uow.batch, uow.now
    points = points_by_offer(refund.lines)
    returned = refund.total_points_returned
    uow.will_patch([member_id])  # locked before their balances are read
    chips = queue_chips_balance(batch, member_id)
    counted = codec.counted_usage(receipt.record)
    totals = _give_back_usage(batch, member_id, counted, lines, refund, at)
    reversal = reverse(
        batch, member_id, refund.receipt_id, refund.refund_id, points, returned, at, lifetime
    ).value()  # sends it all
    chips_before = chips.value()
    taken = sum(share.chips for share in refund.lines)
    given = sum(share.chips_spent for share in refund.lines)
    chips_after = chips_after_refund(chips_before, taken, given)
    balance = reversal.balance_before - sum(points.values()) + returned
    refund = replace(refund, points_balance=balance, chips_balance=chips_after)
    return _MemberRefund(member_id, refund, points, reversal, chips_after - chips_before, totals)


def _write_member(
    uow: UnitOfWork, member: _MemberRefund, receipt: SoldReceipt, time_zone: ZoneInfo
) -> None:
    """The member's chips, points, history and counters as the refund leaves them."""
    member_id, refund = member.member_id, member.refund
    _move_chips(uow, member_id, refund, member.chips_change)
    write_reversal(uow.batch, member.reversal)
    if any(member.points.values()) or refund.total_points_returned:
        points_changed(uow, member_id, member.reversal.after)
    month = purchase_month(receipt.sale_time, time_zone)
    add_to_history(uow.batch, member_id, returned_goods(refund.lines, month))
    _usage_changed(uow, member_id, member.totals())


def _move_chips(uow: UnitOfWork, member_id: str, refund: Refund, change: int) -> None:
    """A refund's net change of the member's chips (engine.chips.chips_after_refund)."""
    batch, at = uow.batch, uow.now
    ids = {"receipt_id": refund.receipt_id, "refund_id": refund.refund_id}
    if change > 0:
        queue_credit(batch, member_id, change, at, **ids)
    elif change < 0 and queue_debit(batch, member_id, -change, at, **ids).value() is None:
        raise _chips_not_held(-change)  # (read under the member's lock: it always holds)
    if change:
        uow.patch_members([member_id], _with_chips(refund.chips_balance))


def _returned_in_full(lines: Sequence[ConfirmedLine], refund: Refund) -> bool:
    """Nothing of the receipt is left once this refund is made (spec §22: codes come back)."""
    now = {r.line_no: r.quantity for r in refund.lines}
    return all(line.left - now.get(line.line_no, 0) <= 0 for line in lines)


def _give_back_usage(
    batch: Batch,
    member_id: str,
    usage: Sequence[CountedUsage],
    lines: Sequence[ConfirmedLine],
    refund: Refund,
    at: datetime,
) -> Callable[[], Totals]:
    """Lower the member's counters by what the refund gives back (never below zero), in one
    order (offer, period) like the confirm; the new values of those it lowered, once the
    batch is sent."""
    refunded_now = {r.line_no: r.quantity for r in refund.lines}
    lowered: list[tuple[tuple[str, str], Later[int | None]]] = []
    for counted in sorted(usage, key=lambda u: (u.offer_id, u.period_key)):
        back = usage_given_back(counted, lines, refunded_now)
        if back > 0:
            key = (counted.offer_id, counted.period_key)
            lowered.append((key, take_back_usage(batch, member_id, counted, back, at)))

    def totals() -> Totals:
        return {key: used for key, later in lowered if (used := later.value()) is not None}

    return totals


def _replay_refund(stored: StoredRefund, fingerprint: str) -> Answer:
    if stored.fingerprint != fingerprint:
        raise AlreadyExists(
            f"refund {quote(stored.refund_id)} was already made with other content; "
            "a new refund needs a new refund id",
            reason="REFUND_ID_REUSED",
        )
    return Answer(stored.response, replayed=True)


@dataclass(frozen=True, slots=True)
class SpendAsk:
    """Points a calculation is asked to spend: a number, or None for as many as allowed."""

    points: int | None


# --- as a replica serves them -----------------------------------------------------------------


class ReceiptLifecycle:
    """The use cases on this replica's cache (snapshot and members) and store: the program's
    time zone and window for late receipts, one unit of work per transaction whose commit
    tells the cache which members changed."""

    def __init__(
        self,
        cache: BenefitCache,
        sessions: Sessions,
        *,
        time_zone: ZoneInfo,
        max_sale_time_age: timedelta,
        max_receipt_lines: int,
        points_policy: PointsPolicy = DEFAULT_POINTS_POLICY,
        points_lifetime: Lifetime = FOREVER,
        clock: Clock = utc_now,
        release_coupons_on_refund: bool = True,
    ) -> None:
        self._points_policy = points_policy
        self._points_lifetime = points_lifetime
        self._cache = cache
        self._sessions = sessions
        self._time_zone = time_zone
        self._max_sale_time_age = max_sale_time_age
        self._max_receipt_lines = max_receipt_lines
        self._clock = clock
        self._release_coupons = release_coupons_on_refund

    def calculate(
        self,
        receipt: Receipt,
        now: datetime,
        *,
        explain: bool = False,
        spend: SpendAsk | None = None,
        codes: Sequence[str] = (),
    ) -> tuple[ReceiptResult, tuple[CouponOutcome, ...]]:
        """The receipt's benefits from the cached snapshot, and what became of each coupon
        code (normalised, checked for form by the caller); nothing is written. Raises
        InvalidArgument naming the field of the receipt at fault, FailedPrecondition
        (CHIPS_INSUFFICIENT) when the member holds fewer chips than it would spend. With
        `spend` (the caller checked there is a member), the points the cached member has
        available at `now` are spent on the receipt (spec §21); the store is not read, the
        confirm checks them again."""
        snapshot = self._cache.snapshot
        validate_receipt(
            snapshot,
            receipt,
            now,
            max_lines=self._max_receipt_lines,
            max_sale_time_age=self._max_sale_time_age,
        )
        check_chips_to_spend(receipt)
        points = None
        if spend is not None and receipt.member is not None:
            available = receipt.member.points.position(now).available
            points = PointsRequest(spend.points, max(available, 0), self._points_policy)
        if not codes:
            return calculate_benefits(snapshot, receipt, explain=explain, points=points), ()
        member_id = receipt.member.id if receipt.member is not None else ""
        checks = coupons.check_codes(
            self._sessions, snapshot.coupons, codes, member_id, receipt.sale_time
        )
        receipt = replace(receipt, coupon_offers=unlocked_offers(checks))
        result = calculate_benefits(snapshot, receipt, explain=explain, points=points)
        return result, coupon_outcomes(checks, result)

    def confirm(
        self,
        receipt: ConfirmedReceipt,
        charges: Sequence[UsageCharge],
        fingerprint: str,
        *,
        encode: EncodeConfirmation,
        token_refusal: DomainError | None = None,
        redeemed: Sequence[Redemption] = (),
        resent: bool = False,
    ) -> Answer:
        """Commit what the verified token says the customer was shown (confirm_receipt), with
        each usage charge at its offer's current limit; `token_refusal`: why the token may
        commit nothing new (a repeat is still answered); `resent`: the request was sent
        before (confirm_receipt)."""
        usage = self._usage_claims(receipt.member_id, charges)
        now = self._clock()
        try:
            return confirm_receipt(
                self._units(now),
                Confirmation(receipt, usage, fingerprint, tuple(redeemed)),
                time_zone=self._time_zone,
                encode=encode,
                admission=Admission(token_refusal, now, self._max_sale_time_age),
                lifetime=self._points_lifetime,
                resent=resent,
            )
        except FailedPrecondition as refused:
            if refused.reason == MEMBER_NOT_FOUND:  # deleted: the recalculation must see it
                # forgotten, not dropped: their cards stay linked, so a lookup by card
                # reads the member again and says MEMBER_NOT_FOUND, not CARD_NOT_FOUND
                self._cache.members_changed([receipt.member_id])
            raise

    def refund(self, request: RefundRequest, *, codec: RefundCodec) -> Answer:
        """Refund once (refund_receipt); products sold by the piece per the cached catalogue."""
        snapshot = self._cache.snapshot

        def is_piece(sku: str) -> bool:
            product = snapshot.product(sku)
            return product is not None and product.unit is Unit.PIECE

        return refund_receipt(
            self._units(self._clock()),
            request,
            time_zone=self._time_zone,
            is_piece=is_piece,
            codec=codec,
            lifetime=self._points_lifetime,
            release_coupons=self._release_coupons,
        )

    def _units(self, now: datetime) -> Units:
        return functools.partial(UnitOfWork, self._sessions, self._cache.members_changed, now=now)

    def _usage_claims(
        self, member_id: str, charges: Sequence[UsageCharge]
    ) -> tuple[UsageClaim, ...]:
        """The token's usage charges with each offer's current limit: the member's
        personalized offers first, then the offers of the snapshot. If an offer is missing
        from the cached member (imported on another replica since), the member is read
        again once. A charge whose offer has no limit any more counts nothing."""
        if not charges or not member_id:
            return ()
        member = self._cache.member(member_id)
        limits = [self._limit_of(charge.offer_id, member) for charge in charges]
        if None in limits and member is not None:
            self._cache.members_changed([member_id])
            member = self._cache.member(member_id)
            limits = [self._limit_of(charge.offer_id, member) for charge in charges]
        return tuple(
            UsageClaim(c.offer_id, c.period_key, c.used, found[0].limit, found[0].unit, found[1])
            for c, found in zip(charges, limits, strict=True)
            if found is not None
        )

    def _limit_of(self, offer_id: str, member: Member | None) -> tuple[UsageLimit, str] | None:
        if member is not None:
            for personal in member.personal_offers:
                if personal.offer_id == offer_id:
                    limit = personal.usage_limit
                    return None if limit is None else (limit, personal.name)
        snapshot = self._cache.snapshot
        offer = snapshot.offer(offer_id)
        if offer is None:
            favorite = snapshot.favorite_products_offer(offer_id)
            offer = None if favorite is None else favorite.offer
        if offer is None or offer.usage_limit is None:
            return None
        return offer.usage_limit, offer.name
