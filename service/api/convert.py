"""Translation between protobuf messages and engine domain types.

Enums map by name: proto `CHANNEL_POS` <-> model `Channel.POS`. UNSPECIFIED (0) is rejected
with INVALID_ARGUMENT naming the field. Responses are built with `add()` and attribute sets,
which is the cheapest way to fill a message in Python protobuf.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from google.protobuf import timestamp_pb2
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from loyalty.v1 import common_pb2, receipt_pb2, token_pb2
from service.engine import lifecycle as lc
from service.engine import model as m
from service.engine.coupons import normalise_code
from service.engine.records import new_applied_benefit, new_line
from service.errors import InvalidArgument

E = TypeVar("E", bound=enum.Enum)


class EnumMap(Generic[E]):
    """Both directions between a proto enum and a model enum of the same value names."""

    def __init__(self, proto_enum: EnumTypeWrapper, model_enum: type[E], prefix: str) -> None:
        self.to_model: dict[int, E] = {}
        self.to_proto: dict[E, Any] = {}  # Any: the .pyi types each field as its enum
        for member in model_enum:
            number = proto_enum.Value(f"{prefix}_{member.name}")
            self.to_model[number] = member
            self.to_proto[member] = number

    def parse(self, number: int, field: str) -> E:
        try:
            return self.to_model[number]
        except KeyError:
            raise InvalidArgument(field, "must be set to a known value") from None

    def parse_optional(self, number: int, field: str) -> E | None:
        return None if number == 0 else self.parse(number, field)


CHANNEL = EnumMap(common_pb2.Channel, m.Channel, "CHANNEL")
UNIT = EnumMap(common_pb2.Unit, m.Unit, "UNIT")
LEVEL = EnumMap(common_pb2.Level, m.Level, "LEVEL")
MECHANIC = EnumMap(common_pb2.Mechanic, m.Mechanic, "MECHANIC")
BENEFIT_KIND = EnumMap(common_pb2.BenefitKind, m.BenefitKind, "BENEFIT_KIND")
STACKING = EnumMap(common_pb2.Stacking, m.Stacking, "STACKING")
GENDER = EnumMap(common_pb2.Gender, m.Gender, "GENDER")
FREQUENCY = EnumMap(common_pb2.SelectionFrequency, m.Frequency, "SELECTION_FREQUENCY")
LIST_SOURCE = EnumMap(common_pb2.ListSource, m.ListSource, "LIST_SOURCE")
LIMIT_UNIT = EnumMap(common_pb2.UsageLimitUnit, m.LimitUnit, "USAGE_LIMIT_UNIT")
LIMIT_PERIOD = EnumMap(common_pb2.UsageLimitPeriod, m.LimitPeriod, "USAGE_LIMIT_PERIOD")

# --- time --------------------------------------------------------------------------------------


# google.protobuf.Timestamp's range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_SECONDS = -62_135_596_800
MAX_SECONDS = 253_402_300_799
MAX_NANOS = 999_999_999


def to_datetime(stamp: timestamp_pb2.Timestamp, field: str) -> datetime:
    """The instant as an aware UTC datetime (to the microsecond, truncated, as protobuf's
    ToDatetime); INVALID_ARGUMENT naming `field` outside the range a Timestamp may hold."""
    if not MIN_SECONDS <= stamp.seconds <= MAX_SECONDS:
        raise InvalidArgument(field, "must be from 0001-01-01 to 9999-12-31 (UTC)")
    if not 0 <= stamp.nanos <= MAX_NANOS:
        raise InvalidArgument(field, f"nanos must be from 0 to {MAX_NANOS}")
    return EPOCH + timedelta(seconds=stamp.seconds, microseconds=stamp.nanos // 1000)


def optional_datetime(message: Any, name: str, field: str | None = None) -> datetime | None:
    """The Timestamp field `name` of the message, None when unset; `field` is its path in the
    request (default: the name)."""
    if not message.HasField(name):
        return None
    return to_datetime(getattr(message, name), field or name)


def set_timestamp(stamp: timestamp_pb2.Timestamp, moment: datetime) -> None:
    """As stamp.FromDatetime(moment), in a few integer operations for an aware moment (the
    library's goes through calendar.timegm: a cost on every Calculate)."""
    if moment.tzinfo is None:
        stamp.FromDatetime(moment)  # naive means UTC there
        return
    since = moment - EPOCH
    stamp.seconds = since.days * 86_400 + since.seconds
    stamp.nanos = since.microseconds * 1000


# --- receipts ----------------------------------------------------------------------------------


def receipt_lines(receipt: receipt_pb2.Receipt) -> tuple[m.Line, ...]:
    return tuple(  # a list first: cheaper than a generator's frame per line
        [
            new_line(line.line_id, line.sku, line.quantity, line.price, line.amount)
            for line in receipt.lines
        ]
    )


def receipt_to_model(
    receipt: receipt_pb2.Receipt, member: m.Member | None, now: datetime, chips_to_spend: int = 0
) -> m.Receipt:
    """The receipt as the engine sees it; the member is resolved by the caller."""
    channel = CHANNEL.parse(receipt.channel, "receipt.channel")
    sale_time = optional_datetime(receipt, "sale_time", "receipt.sale_time") or now
    return m.Receipt(
        receipt_id=receipt.receipt_id,
        sale_time=sale_time,
        lines=receipt_lines(receipt),
        store_id=receipt.store_id,
        channel=channel,
        member=member,
        chips_to_spend=chips_to_spend,
    )


def fill_result(
    out: receipt_pb2.ReceiptResult,
    result: m.ReceiptResult,
    *,
    member_id: str,
    currency: str,
    sale_time: datetime,
    degraded: bool = False,
) -> None:
    out.receipt_id = result.receipt_id
    out.member_id = member_id
    out.total_amount = result.total_amount
    out.total_discount = result.total_discount
    out.total_paid = result.total_paid
    out.total_points = result.total_points
    out.currency = currency
    out.degraded = degraded
    set_timestamp(out.sale_time, sale_time)
    out.configuration_version = result.configuration_version
    if result.unknown_skus:
        out.unknown_skus.extend(result.unknown_skus)
    mechanic = _MECHANIC_BY_VALUE
    kind = _KIND_BY_VALUE
    usage_left = dict(result.usage_left) if result.usage_left else None
    # Zero fields are left unset (same bytes, less work), and each repeated field's `add` is
    # looked up once: `pl.benefits` makes a new container object on every access.
    add_line = out.lines.add
    spend = result.spend
    # points spent per line (spec §21), filled in this loop, where the line's message is
    spent, point_value = (spend.per_line, spend.point_value) if spend is not None else ((), 0)
    for index, line in enumerate(result.lines):
        pl = add_line()
        if spent and spent[index]:
            pl.points_spent = spent[index]
            pl.points_value = spent[index] * point_value
        pl.line_id = line.line_id
        pl.sku = line.sku
        pl.amount = line.amount
        pl.paid = line.paid
        if line.discount:
            pl.discount = line.discount
        if line.points:
            pl.points = line.points
        if line.known_sku:
            pl.known_sku = True
        add_benefit = pl.benefits.add
        for benefit in line.benefits:
            pb = add_benefit()
            pb.offer_id = benefit.offer_id
            pb.mechanic = mechanic[benefit.mechanic._value_]
            pb.kind = kind[benefit.kind._value_]
            if benefit.discount:
                pb.discount = benefit.discount
            if benefit.points:
                pb.points = benefit.points
            pb.text = benefit.text
            if usage_left is not None and benefit.offer_id in usage_left:
                pb.usage_left = usage_left[benefit.offer_id]
        if line.rejected:  # explain mode
            _fill_rejected(pl, line.rejected)
    if result.chips is not None:
        _fill_chips(out, result.chips)
    if spend is not None:
        _fill_points_totals(out, spend)


def _fill_rejected(out: receipt_pb2.LineResult, rejected: Sequence[m.RejectedCandidate]) -> None:
    mechanic = _MECHANIC_BY_VALUE
    for candidate in rejected:
        pr = out.rejected.add()
        pr.offer_id = candidate.offer_id
        pr.mechanic = mechanic[candidate.mechanic._value_]
        pr.reason = candidate.reason
        pr.discount = candidate.discount


def _fill_chips(out: receipt_pb2.ReceiptResult, chips: m.ChipsResult) -> None:
    """spec §20: each grant as a benefit of kind CHIPS on its line, each reward's chips on
    its discount, and the totals."""
    lines = {line.line_id: line for line in out.lines}
    for reward in chips.rewards:
        line = lines[reward.line_id]
        line.chips_spent += reward.chips_spent
        for benefit in reversed(line.benefits):  # the reward is the line's last discount
            if benefit.offer_id == reward.offer_id:
                benefit.chips_spent = reward.chips_spent
                break
    for award in chips.awards:
        line = lines[award.line_id]
        line.chips += award.chips
        line.benefits.add(
            offer_id=award.offer_id,
            mechanic=MECHANIC.to_proto[award.mechanic],
            kind=common_pb2.BENEFIT_KIND_CHIPS,
            chips=award.chips,
            text=award.text,
        )
    out.total_chips = chips.granted
    out.total_chips_spent = chips.spent


def _fill_points_totals(out: receipt_pb2.ReceiptResult, spend: m.PointsSpend) -> None:
    """The points a receipt spends (spec §21) in total; fill_result puts each line's."""
    out.points_requested = spend.requested
    out.points_available = spend.available
    out.points_allowed = spend.allowed
    out.point_value = spend.point_value
    spent = spend.spent
    out.total_points_spent = spent
    out.total_points_value = spent * spend.point_value


# Keyed by the enum's value: hashing a str is a C call, hashing an Enum member a Python one.
_MECHANIC_BY_VALUE = {e._value_: n for e, n in MECHANIC.to_proto.items()}
_KIND_BY_VALUE = {e._value_: n for e, n in BENEFIT_KIND.to_proto.items()}


# --- confirms and refunds ------------------------------------------------------------------
#
# A confirm keeps a ConfirmationRecord (token.proto: the first response and the usage it
# counted) and a refund its first RefundResponse, as bytes in the store, so that a repeat is
# answered byte for byte as the first call was.


def receipt_fingerprint(
    receipt: receipt_pb2.Receipt, sale_time: timestamp_pb2.Timestamp | None = None
) -> bytes:
    """SHA-256 of a receipt's content: id, store, channel, member, sale time, coupon codes
    and lines, in line_id order (the order of lines and codes does not matter). The sale
    time is the one sent (unset stays unset), or `sale_time`: the one the receipt was
    evaluated at (what tokens of format 2 cover). A confirm keeps this one (hex) to tell a
    repeat from a reused receipt id, so it never changes."""
    canonical = receipt_pb2.Receipt()
    canonical.CopyFrom(receipt)
    if sale_time is not None:
        canonical.sale_time.seconds = sale_time.seconds
        canonical.sale_time.nanos = sale_time.nanos
    _codes_as_a_set(canonical)
    return _digest(canonical, lambda line: line.line_id)


def token_fingerprint(receipt: receipt_pb2.Receipt) -> bytes:
    """SHA-256 of what a token of format 3 covers: the receipt's content but its sale time
    (the token's result fixes the sale time it was evaluated at, so the one sent again never
    mattered), lines in line order (`line_order`), coupon codes as a set. A receipt already
    in that form, as registers send it (lines numbered 1, 2, ... 10, no sale time, codes in upper
    case and order), is hashed as it is, without a copy; any other is first copied into it."""
    lines = receipt.lines
    ids = [line.line_id for line in lines]
    in_order = ids == sorted(ids, key=line_order)
    if in_order and _codes_in_form(receipt.coupon_codes) and not receipt.HasField("sale_time"):
        return hashlib.sha256(receipt.SerializeToString(deterministic=True)).digest()
    canonical = receipt_pb2.Receipt()
    canonical.CopyFrom(receipt)
    canonical.ClearField("sale_time")
    _codes_as_a_set(canonical)
    return _digest(canonical, lambda line: line_order(line.line_id))


def line_order(line_id: str) -> tuple[int, str]:
    """Shorter line ids first, then byte order: "2" before "10", as registers number lines."""
    return len(line_id), line_id


def _codes_in_form(codes: Sequence[str]) -> bool:
    """Are the codes as _codes_as_a_set leaves them (none, or normalised and sorted)?"""
    previous = ""
    for code in codes:
        if code != normalise_code(code) or code < previous:
            return False
        previous = code
    return True


def _codes_as_a_set(receipt: receipt_pb2.Receipt) -> None:
    if receipt.coupon_codes:  # their order and case do not matter
        codes = sorted(normalise_code(code) for code in receipt.coupon_codes)
        del receipt.coupon_codes[:]
        receipt.coupon_codes.extend(codes)


def confirm_fingerprint(receipt: receipt_pb2.Receipt) -> str:
    """A confirm request's fingerprint, as the store keeps it (hex): the receipt as sent, so a
    confirm repeated with the token of a new calculation of the same receipt is the same."""
    return receipt_fingerprint(receipt).hex()


def refund_fingerprint(request: receipt_pb2.RefundRequest) -> str:
    """Hex SHA-256 of a refund request but its refund id, lines in line_id order."""
    canonical = receipt_pb2.RefundRequest()
    canonical.CopyFrom(request)
    canonical.refund_id = ""
    return _digest(canonical, lambda line: (line.line_id, line.quantity)).hex()


def _digest(canonical: Any, line_order: Callable[[Any], Any]) -> bytes:
    """SHA-256 of a message's deterministic bytes, its `lines` sorted first (in place)."""
    lines = sorted(canonical.lines, key=line_order)
    del canonical.lines[:]
    canonical.lines.extend(lines)
    return hashlib.sha256(canonical.SerializeToString(deterministic=True)).digest()


def confirmed_receipt(
    receipt: receipt_pb2.Receipt, result: receipt_pb2.ReceiptResult
) -> lc.ConfirmedReceipt:
    """The receipt to commit: store, channel, quantities and prices as sent, the rest as the
    result shown (a verified token's)."""
    sent = {line.line_id: line for line in receipt.lines}
    mechanic, kind = MECHANIC.to_model, BENEFIT_KIND.to_model
    lines = []
    for line in result.lines:
        source = sent[line.line_id]
        benefits = tuple(
            new_applied_benefit(
                b.offer_id, mechanic[b.mechanic], kind[b.kind], b.discount, b.points, b.text
            )
            for b in line.benefits
        )
        lines.append(
            lc.SoldLine(
                line.line_id,
                line.sku,
                source.quantity,
                source.price,
                line.amount,
                line.discount,
                line.paid,
                line.points,
                benefits,
                line.chips,
                line.chips_spent,
                line.points_spent,
            )
        )
    return lc.ConfirmedReceipt(
        receipt_id=result.receipt_id,
        store_id=receipt.store_id,
        channel=CHANNEL.to_model[receipt.channel],
        member_id=result.member_id,
        sale_time=result.sale_time.ToDatetime(UTC),
        lines=tuple(lines),
        total_amount=result.total_amount,
        total_discount=result.total_discount,
        total_paid=result.total_paid,
        total_points=result.total_points,
    )


def usage_charges(charges: Iterable[token_pb2.UsageCharge]) -> tuple[m.UsageCharge, ...]:
    return tuple(m.UsageCharge(c.offer_id, c.period_key, c.used) for c in charges)


def confirmation_record(
    result: receipt_pb2.ReceiptResult,
    points_balance: int,
    usage: Sequence[lc.CountedUsage],
    chips_balance: int = 0,
) -> bytes:
    """What a confirm keeps: its response (the result shown, the balances after it) and the
    usage it counted, each with its limit's unit (refunds give it back)."""
    record = token_pb2.ConfirmationRecord()
    record.response.result.CopyFrom(result)
    record.response.points_balance = points_balance
    if chips_balance:
        record.response.chips_balance = chips_balance
    for counted in usage:
        entry = record.usage.add()
        entry.offer_id = counted.offer_id
        entry.period_key = counted.period_key
        entry.used = counted.used
        entry.unit = LIMIT_UNIT.to_proto[counted.unit]
    return record.SerializeToString()


def confirm_response(record: bytes, *, replayed: bool) -> receipt_pb2.ConfirmResponse:
    response = token_pb2.ConfirmationRecord.FromString(record).response
    if replayed:
        response.replayed = True
    return response


def counted_usage(record: bytes) -> tuple[lc.CountedUsage, ...]:
    """The usage a confirm's record says it counted."""
    units = LIMIT_UNIT.to_model
    return tuple(
        lc.CountedUsage(u.offer_id, u.period_key, u.used, units[u.unit])
        for u in token_pb2.ConfirmationRecord.FromString(record).usage
    )


def refund_request(request: receipt_pb2.RefundRequest) -> lc.RefundRequest:
    return lc.RefundRequest(
        refund_id=request.refund_id,
        receipt_id=request.receipt_id,
        full=request.full,
        lines=tuple(lc.RefundLine(line.line_id, line.quantity) for line in request.lines),
        fingerprint=refund_fingerprint(request),
    )


def refund_record(refund: lc.Refund) -> bytes:
    """What a refund keeps: its RefundResponse."""
    response = receipt_pb2.RefundResponse(
        refund_id=refund.refund_id,
        receipt_id=refund.receipt_id,
        points_balance=refund.points_balance,
    )
    for r in refund.lines:
        response.lines.add(
            line_id=r.line_id,
            quantity=r.quantity,
            amount=r.amount,
            discount=r.discount,
            paid=r.paid,
            points=r.points,
            chips=r.chips,
            chips_spent=r.chips_spent,
            points_returned=r.points_returned,
        )
    response.total_paid = refund.total_paid
    response.total_points = refund.total_points
    response.total_points_returned = refund.total_points_returned
    response.total_chips = refund.total_chips
    response.total_chips_spent = refund.total_chips_spent
    response.chips_balance = refund.chips_balance
    return response.SerializeToString()


def refund_response(record: bytes, *, replayed: bool) -> receipt_pb2.RefundResponse:
    response = receipt_pb2.RefundResponse.FromString(record)
    if replayed:
        response.replayed = True
    return response


# --- shared pieces of back-office and member messages -----------------------------------------


def fill_benefit(out: common_pb2.Benefit, benefit: m.Benefit) -> None:
    out.kind = BENEFIT_KIND.to_proto[benefit.kind]
    out.value = benefit.value


def fill_validity(out: common_pb2.Validity, start: datetime | None, end: datetime | None) -> None:
    if start is not None:
        out.valid_from.FromDatetime(start)
    if end is not None:
        out.valid_to.FromDatetime(end)


def usage_limit_to_model(limit: common_pb2.UsageLimit, field: str) -> m.UsageLimit:
    unit = LIMIT_UNIT.parse(limit.unit, f"{field}.unit")
    period = LIMIT_PERIOD.parse(limit.period, f"{field}.period")
    if limit.limit <= 0:
        raise InvalidArgument(f"{field}.limit", "must be positive")
    return m.UsageLimit(unit, limit.limit, period)


def fill_usage_limit(out: common_pb2.UsageLimit, limit: m.UsageLimit) -> None:
    out.unit = LIMIT_UNIT.to_proto[limit.unit]
    out.limit = limit.limit
    out.period = LIMIT_PERIOD.to_proto[limit.period]
