"""Translation between protobuf messages and engine domain types.

Enums map by name: proto `CHANNEL_POS` <-> model `Channel.POS`. UNSPECIFIED (0) is rejected
with INVALID_ARGUMENT naming the field. Responses are built with `add()` and attribute sets,
which is the cheapest way to fill a message in Python protobuf.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from google.protobuf import timestamp_pb2
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from loyalty.v1 import common_pb2, receipt_pb2
from service.engine import model as m
from service.engine.records import new_line
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
    stamp.FromDatetime(moment)


# --- receipts ----------------------------------------------------------------------------------


def receipt_lines(receipt: receipt_pb2.Receipt) -> tuple[m.Line, ...]:
    return tuple(
        new_line(line.line_id, line.sku, line.quantity, line.price, line.amount)
        for line in receipt.lines
    )


def receipt_to_model(
    receipt: receipt_pb2.Receipt, member: m.Member | None, now: datetime
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
    out.sale_time.FromDatetime(sale_time)
    if result.unknown_skus:
        out.unknown_skus.extend(result.unknown_skus)
    mechanic = _MECHANIC_BY_VALUE
    kind = _KIND_BY_VALUE
    for line in result.lines:  # zero fields are left unset: same bytes, less work
        pl = out.lines.add()
        pl.line_id = line.line_id
        pl.sku = line.sku
        pl.amount = line.amount
        pl.paid = line.paid
        if line.discount:
            pl.discount = line.discount
        if line.points:
            pl.points = line.points
        pl.known_sku = line.known_sku
        for benefit in line.benefits:
            pb = pl.benefits.add()
            pb.offer_id = benefit.offer_id
            pb.mechanic = mechanic[benefit.mechanic._value_]
            pb.kind = kind[benefit.kind._value_]
            if benefit.discount:
                pb.discount = benefit.discount
            if benefit.points:
                pb.points = benefit.points
            pb.text = benefit.text
        for rejected in line.rejected:
            pr = pl.rejected.add()
            pr.offer_id = rejected.offer_id
            pr.mechanic = mechanic[rejected.mechanic._value_]
            pr.reason = rejected.reason
            pr.discount = rejected.discount


# Keyed by the enum's value: hashing a str is a C call, hashing an Enum member a Python one.
_MECHANIC_BY_VALUE = {e._value_: n for e, n in MECHANIC.to_proto.items()}
_KIND_BY_VALUE = {e._value_: n for e, n in BENEFIT_KIND.to_proto.items()}


# --- shared pieces of back-office and member messages -----------------------------------------


def benefit_to_model(benefit: common_pb2.Benefit, field: str) -> m.Benefit:
    kind = BENEFIT_KIND.parse(benefit.kind, f"{field}.kind")
    if benefit.value < 0:
        raise InvalidArgument(f"{field}.value", "must not be negative")
    return m.Benefit(kind, benefit.value)


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
