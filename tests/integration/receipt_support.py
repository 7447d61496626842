"""Helpers for the receipt lifecycle tests (no tests here): a register talking to a real
ReceiptServicer over a real database loaded with the demo data, the use cases called with a
verified token's content, and ways to look at what the store holds."""

from __future__ import annotations

import functools
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from clients import register_cli
from clients.receipt_format import load_receipt
from loyalty.v1 import common_pb2, receipt_pb2
from service.api import convert
from service.api.auth import Principal, Role, set_current_principal
from service.api.receipts import REFUND_CODEC, ReceiptServicer
from service.app import receipts
from service.app.unit_of_work import UnitOfWork
from service.cache.state import BenefitCache
from service.config import Settings
from service.demo import load_demo
from service.demo_data.generate import WELCOME_CODE
from service.engine.lifecycle import IsPiece, UsageClaim
from service.store.db import make_engine, make_session_factory, migrate
from service.store.models import (
    ChangeFeedRow,
    OfferUsageRow,
    PointsLedgerRow,
    PointsLotRow,
    PurchaseRow,
    ReceiptLineRow,
    ReceiptRow,
    RefundLineRow,
    RefundRow,
)
from tests.pg import PostgresCluster

Sessions = Callable[[], Session]
SHOWCASE_MEMBER = "M000001"
COFFEE_LINE = "6"  # the showcase's personalized offer P-COFFEE: 3 pieces per member, ever
REGISTER = Principal("test-register", "test register", Role.REGISTER)
SETTINGS = Settings(token_secret="test-secret-of-at-least-32-bytes!", time_zone="Europe/Moscow")

WRITTEN_TABLES = (
    ReceiptRow,
    ReceiptLineRow,
    RefundRow,
    RefundLineRow,
    PointsLedgerRow,
    PointsLotRow,
    OfferUsageRow,
    PurchaseRow,
    ChangeFeedRow,
)


@dataclass
class Register:
    """A register calling the servicer directly (no gRPC), as an authenticated caller."""

    servicer: ReceiptServicer
    cache: BenefitCache
    sessions: Sessions

    def calculate(
        self, receipt: receipt_pb2.Receipt, *, points: int = 0, spend_max: bool = False
    ) -> receipt_pb2.CalculateResponse:
        """Calculate, spending `points` (or as many as allowed with `spend_max`)."""
        set_current_principal(REGISTER)
        request = receipt_pb2.CalculateRequest(
            receipt=receipt, points_to_spend=points, spend_max_points=spend_max
        )
        return self.servicer.Calculate(request, None)  # type: ignore[arg-type]

    def confirm(
        self, receipt: receipt_pb2.Receipt, token: bytes | None = None, *, resent: bool = False
    ) -> receipt_pb2.ConfirmResponse:
        """Confirm with the given token, or with one from a fresh calculation."""
        if token is None:
            token = self.calculate(receipt).confirmation_token
        set_current_principal(REGISTER)
        request = receipt_pb2.ConfirmRequest(
            receipt=receipt, confirmation_token=token, resent=resent
        )
        return self.servicer.Confirm(request, None)  # type: ignore[arg-type]

    def refund(
        self,
        refund_id: str,
        receipt_id: str,
        lines: dict[str, int] | None = None,
        *,
        full: bool = False,
        store_id: str = "S001",
    ) -> receipt_pb2.RefundResponse:
        request = receipt_pb2.RefundRequest(
            refund_id=refund_id, receipt_id=receipt_id, full=full, store_id=store_id
        )
        for line_id, quantity in (lines or {}).items():
            request.lines.add(line_id=line_id, quantity=quantity)
        set_current_principal(REGISTER)
        return self.servicer.Refund(request, None)  # type: ignore[arg-type]


def demo_register(sessions: Sessions, now: datetime | None = None) -> Register:
    """Load the demo data into the (empty, migrated) store and open a register on it."""
    load_demo(sessions, now or datetime.now(UTC))  # type: ignore[arg-type]
    return open_register(sessions)


def open_register(sessions: Sessions, settings: Settings = SETTINGS) -> Register:
    """Another replica on the same store: its own cache and servicer."""
    cache = BenefitCache(sessions, time_zone=settings.time_zone)
    cache.reload_snapshot()
    return Register(ReceiptServicer(settings, cache, sessions=sessions), cache, sessions)


def showcase_receipt(receipt_id: str, *, coffee: bool = True) -> receipt_pb2.Receipt:
    """The demo receipt (every mechanic on one receipt) under a new id; without the coffee
    line no limited offer applies."""
    receipt = load_receipt(register_cli.DEMO_RECEIPT)[0]
    receipt.receipt_id = receipt_id
    if not coffee:
        kept = [line for line in receipt.lines if line.line_id != COFFEE_LINE]
        del receipt.lines[:]
        receipt.lines.extend(kept)
    return receipt


def coupon_receipt(register: Register, receipt_id: str) -> receipt_pb2.Receipt:
    """The showcase receipt with a household product and the demo's shared coupon code,
    which gives that line 10 % off."""
    receipt = showcase_receipt(receipt_id)
    household = next(
        sku for sku, (_, groups, _) in register.cache.snapshot.entries.items()
        if "G-HOUSEHOLD" in groups
    )  # fmt: skip
    receipt.lines.add(line_id="90", sku=household, quantity=1000, price=19900, amount=19900)
    receipt.coupon_codes.append(WELCOME_CODE)
    return receipt


def row_counts(sessions: Sessions) -> dict[str, int]:
    """Rows in every table a confirm or refund writes."""
    with sessions() as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in WRITTEN_TABLES
        }


def ledger_sum(sessions: Sessions, member_id: str, **where: str) -> int:
    with sessions() as session:
        query = select(func.coalesce(func.sum(PointsLedgerRow.points), 0)).where(
            PointsLedgerRow.member_id == member_id
        )
        for column, value in where.items():
            query = query.where(getattr(PointsLedgerRow, column) == value)
        return int(session.scalar(query) or 0)


def usage_of(sessions: Sessions, member_id: str, offer_id: str) -> int:
    with sessions() as session:
        total = session.scalar(
            select(func.coalesce(func.sum(OfferUsageRow.used), 0)).where(
                OfferUsageRow.member_id == member_id, OfferUsageRow.offer_id == offer_id
            )
        )
        return int(total or 0)


def history_of(sessions: Sessions, member_id: str) -> dict[tuple[str, str], tuple[int, int]]:
    """(month, sku) -> (quantity, amount) of a member's purchase history."""
    with sessions() as session:
        rows = session.execute(select(PurchaseRow).where(PurchaseRow.member_id == member_id))
        return {(r.month, r.sku): (r.quantity, r.amount) for (r,) in rows}


def sku_named(register: Register, name: str) -> str:
    snapshot = register.cache.snapshot
    for sku in snapshot.entries:
        product = snapshot.product(sku)
        if product is not None and product.name == name:
            return sku
    raise LookupError(name)


class DemoTemplate:
    """A migrated database with the demo data, made once per module and backend; each test
    gets a fresh copy (a file copy for SQLite, CREATE DATABASE ... TEMPLATE for PostgreSQL),
    which is much faster than migrating and loading every time."""

    def __init__(self, backend: str, request: pytest.FixtureRequest, directory: Path) -> None:
        self.backend = backend
        self.cluster: PostgresCluster | None = None
        if backend == "sqlite":
            self.source = directory / "demo.db"
            url = f"sqlite:///{self.source}"
        else:
            self.cluster = request.getfixturevalue("pg_cluster")
            url = self.cluster.create_database()
            self.name = url.rsplit("/", 1)[1]
        migrate(url)
        engine = make_engine(url)
        try:
            load_demo(make_session_factory(engine), datetime.now(UTC))
        finally:
            engine.dispose()

    @contextmanager
    def copy(self, directory: Path) -> Iterator[Sessions]:
        """Sessions on a fresh copy of the demo database, removed afterwards."""
        if self.cluster is None:
            target = directory / f"copy-{uuid.uuid4().hex[:8]}.db"
            shutil.copyfile(self.source, target)
            url = f"sqlite:///{target}"
        else:
            name = f"copy_{uuid.uuid4().hex[:12]}"
            self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.name}"')
            url = self.cluster.url(name)
        engine = make_engine(url)
        try:
            yield make_session_factory(engine)
        finally:
            engine.dispose()
            if self.cluster is not None:
                self.cluster.drop_database(name)

    def close(self) -> None:
        if self.cluster is not None:
            self.cluster.drop_database(self.name)

    def _admin(self, sql: str) -> None:
        assert self.cluster is not None
        dsn = f"host=127.0.0.1 port={self.cluster.port} user=postgres dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as connection:
            connection.execute(sql.encode())


@contextmanager
def demo_template(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    backend: str | None = None,
) -> Iterator[DemoTemplate]:
    """For a module-scoped fixture parametrized with tests.conftest.BACKENDS (or given its
    `backend`)."""
    template = DemoTemplate(backend or request.param, request, tmp_path_factory.mktemp("demo"))
    try:
        yield template
    finally:
        template.close()


# --- synthetic receipts, for the store-level tests ---------------------------------------------


@dataclass(frozen=True)
class Verified:
    """What a verified token carries for a receipt: the result shown and the usage it claims
    (here with the limits given, not looked up in a cache)."""

    receipt: receipt_pb2.Receipt
    result: receipt_pb2.ReceiptResult
    usage: tuple[UsageClaim, ...] = ()


def confirm_receipt(
    sessions: Sessions, verified: Verified, *, time_zone: ZoneInfo
) -> receipt_pb2.ConfirmResponse:
    """The confirm use case, translated as ReceiptServicer.Confirm does once the token is
    verified, without a cache."""
    receipt, result = verified.receipt, verified.result
    confirmation = receipts.Confirmation(
        convert.confirmed_receipt(receipt, result),
        verified.usage,
        convert.confirm_fingerprint(receipt),
    )
    answer = receipts.confirm_receipt(
        functools.partial(UnitOfWork, sessions),
        confirmation,
        time_zone=time_zone,
        encode=functools.partial(convert.confirmation_record, result),
    )
    return convert.confirm_response(answer.record, replayed=answer.replayed)


def refund_receipt(
    sessions: Sessions,
    request: receipt_pb2.RefundRequest,
    *,
    time_zone: ZoneInfo,
    is_piece: IsPiece,
) -> receipt_pb2.RefundResponse:
    """The refund use case, translated as ReceiptServicer.Refund does, without a cache."""
    answer = receipts.refund_receipt(
        functools.partial(UnitOfWork, sessions),
        convert.refund_request(request),
        time_zone=time_zone,
        is_piece=is_piece,
        codec=REFUND_CODEC,
    )
    return convert.refund_response(answer.record, replayed=answer.replayed)


@dataclass(frozen=True)
class LineSpec:
    """A line of a made-up confirmed result: a discount by one offer, points by others."""

    line_id: str
    sku: str
    quantity: int
    amount: int
    discount: int = 0
    points: tuple[tuple[str, int], ...] = ()  # (offer id, points)
    discount_offer: str = "D-SALE"


def synthetic_confirmation(
    receipt_id: str,
    member_id: str,
    lines: Sequence[LineSpec],
    usage: Sequence[UsageClaim] = (),
    sale_time: datetime | None = None,
) -> Verified:
    """A receipt and the result 'shown' for it, as a verified token would carry them."""
    receipt = receipt_pb2.Receipt(receipt_id=receipt_id, store_id="S001")
    receipt.channel = common_pb2.CHANNEL_POS
    if member_id:
        receipt.member.member_id = member_id
    result = receipt_pb2.ReceiptResult(receipt_id=receipt_id, member_id=member_id, currency="RUB")
    result.sale_time.FromDatetime(sale_time or datetime.now(UTC))
    for spec in lines:
        price = -(-spec.amount * 1000 // spec.quantity)
        receipt.lines.add(
            line_id=spec.line_id,
            sku=spec.sku,
            quantity=spec.quantity,
            price=price,
            amount=spec.amount,
        )
        line = result.lines.add(
            line_id=spec.line_id,
            sku=spec.sku,
            amount=spec.amount,
            discount=spec.discount,
            paid=spec.amount - spec.discount,
            points=sum(p for _, p in spec.points),
            known_sku=True,
        )
        if spec.discount:
            line.benefits.add(
                offer_id=spec.discount_offer,
                mechanic=common_pb2.MECHANIC_ALL_BUYERS,
                kind=common_pb2.BENEFIT_KIND_PERCENT,
                discount=spec.discount,
            )
        for offer_id, points in spec.points:
            line.benefits.add(
                offer_id=offer_id,
                mechanic=common_pb2.MECHANIC_MEMBERS_ONLY,
                kind=common_pb2.BENEFIT_KIND_BONUS_PERCENT,
                points=points,
            )
        result.total_amount += line.amount
        result.total_discount += line.discount
        result.total_paid += line.paid
        result.total_points += line.points
    return Verified(receipt, result, tuple(usage))


def refund_request(
    refund_id: str, receipt_id: str, lines: dict[str, int] | None = None, *, full: bool = False
) -> receipt_pb2.RefundRequest:
    request = receipt_pb2.RefundRequest(
        refund_id=refund_id, receipt_id=receipt_id, full=full, store_id="S001"
    )
    for line_id, quantity in (lines or {}).items():
        request.lines.add(line_id=line_id, quantity=quantity)
    return request
