"""Campaign replay (spec §13; docs/replay.md): what would a draft offer have cost?

The confirmed receipts of a period are calculated again by the pure engine twice: on the
live configuration (catalogue and offers as the store holds them now) and on the same
configuration with the draft offer added, replaced or (inactive) removed. The report sets
the two side by side, with what the confirms actually gave, and the difference the draft
makes: discount and points added, receipts and members affected, the products most
affected, per local day of the program's time zone.

Nothing is written: no receipt, ledger row, usage counter, feed row or cache entry. Receipts
are read page by page by key (service.store.receipt_history), and members' state as it is
now, once per page; so memory is one page plus the tallies (per day, per product, and the
ids of the members affected). Approximations, documented in docs/replay.md: members are as
they are now (tags, favorites, personal offers, usage counters), and usage limits count
only what each receipt itself uses, not what the receipts before it in the replay used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from service.app.sessions import Sessions
from service.deadline import check_deadline
from service.engine.calculate import calculate
from service.engine.model import Member, Offer, Receipt, ReceiptResult
from service.engine.snapshot import Snapshot, build_snapshot
from service.errors import InvalidArgument
from service.limits import quote
from service.store import loader
from service.store.db import read_snapshot
from service.store.receipt_history import ConfirmedSale, count_sales, sale_pages


@dataclass(frozen=True, slots=True)
class ReplayRequest:
    """A draft of one offer of levels 1-3 (checked field by field by the caller) and the
    period [start, end) of sale times; `store_ids` empty: every store."""

    draft: Offer
    draft_active: bool
    start: datetime
    end: datetime
    store_ids: frozenset[str] = frozenset()
    top_products: int = 10


@dataclass(frozen=True, slots=True)
class ReplayProgress:
    receipts_done: int
    receipts_total: int  # counted when the replay began


@dataclass(slots=True)
class Benefits:
    """Discount (minor units) and points given."""

    discount: int = 0
    points: int = 0

    def add(self, discount: int, points: int) -> None:
        self.discount += discount
        self.points += points


@dataclass(frozen=True, slots=True)
class ProductImpact:
    sku: str
    name: str  # "" for a SKU not in the catalogue
    lines_affected: int
    added_discount: int
    added_points: int


@dataclass(slots=True)
class DayImpact:
    day: date  # local date in the program's time zone
    receipts: int = 0
    receipts_affected: int = 0
    live: Benefits = field(default_factory=Benefits)
    draft: Benefits = field(default_factory=Benefits)


@dataclass(frozen=True, slots=True)
class ReplayReport:
    configuration_version: int  # the live configuration the draft was applied to
    receipts: int
    confirmed: Benefits  # what the confirms gave
    live: Benefits  # what the live configuration gives the same receipts now
    draft: Benefits  # what it gives with the draft
    receipts_affected: int  # receipts whose result the draft changes
    members_affected: int
    top_products: tuple[ProductImpact, ...]
    days: tuple[DayImpact, ...]

    @property
    def added(self) -> Benefits:
        return Benefits(
            self.draft.discount - self.live.discount, self.draft.points - self.live.points
        )


ReplayEvent = ReplayProgress | ReplayReport


class CampaignReplay:
    """Replays drafts against the store's confirmed receipts; `page_size` receipts per read."""

    def __init__(
        self, sessions: Sessions, *, time_zone: str, page_size: int, max_days: int
    ) -> None:
        self._sessions = sessions
        self._time_zone = time_zone
        self._page_size = page_size
        self._max_days = max_days

    def run(
        self, request: ReplayRequest, cancelled: Callable[[], bool] = lambda: False
    ) -> Iterator[ReplayEvent]:
        """Progress after each page, then the report. Stops early, without a report, once
        `cancelled()` says so; raises DeadlineExceeded once the call's deadline passed, and
        InvalidArgument for a period or draft it cannot replay."""
        self._check_period(request)
        live, draft = self._snapshots(request)
        with self._sessions() as session:
            total = count_sales(session, request.start, request.end, request.store_ids)
        yield ReplayProgress(0, total)
        tally = _Tally(live.program_time_zone)
        pages = sale_pages(
            self._sessions, request.start, request.end, request.store_ids, self._page_size
        )
        for page in pages:
            if cancelled():
                return
            check_deadline("replaying the next page of receipts")
            members = self._members(page)
            for sale in page:
                member = members.get(sale.member_id) if sale.member_id else None
                receipt = Receipt(
                    sale.receipt_id, sale.sale_time, sale.lines, sale.store_id, sale.channel, member
                )
                tally.add(sale, calculate(live, receipt), calculate(draft, receipt))
            yield ReplayProgress(tally.receipts, max(total, tally.receipts))
        yield tally.report(live, request.top_products)

    def _check_period(self, request: ReplayRequest) -> None:
        if request.end <= request.start:
            raise InvalidArgument("end", "must be after start")
        if request.end - request.start > timedelta(days=self._max_days):
            raise InvalidArgument("end", f"the period may span at most {self._max_days} days")

    def _snapshots(self, request: ReplayRequest) -> tuple[Snapshot, Snapshot]:
        """The live configuration, and the same with the draft, from one read of the store."""
        with read_snapshot(self._sessions) as session:
            catalogue = loader.load_catalogue(session)
        draft = request.draft
        if any(f.offer.id == draft.id for f in catalogue.favorite_product_offers):
            raise InvalidArgument(
                "draft_offer.id",
                f"{quote(draft.id)} is a favorite-products offer: only offers of levels 1-3 "
                "can be replayed",
            )
        offers = tuple(o for o in catalogue.offers if o.id != draft.id)
        if request.draft_active:
            offers += (draft,)
        live = build_snapshot(**catalogue.as_kwargs(), program_time_zone=self._time_zone)
        drafted = replace(catalogue, offers=offers)
        return live, build_snapshot(**drafted.as_kwargs(), program_time_zone=self._time_zone)

    def _members(self, page: list[ConfirmedSale]) -> dict[str, Member]:
        ids = {sale.member_id for sale in page if sale.member_id}
        if not ids:
            return {}
        with self._sessions() as session:
            return loader.load_members(session, ids)


class _Tally:
    """What the report adds up, receipt by receipt."""

    def __init__(self, zone: ZoneInfo) -> None:
        self._zone = zone
        self.receipts = 0
        self.receipts_affected = 0
        self.confirmed = Benefits()
        self.live = Benefits()
        self.draft = Benefits()
        self.members: set[str] = set()
        self.days: dict[date, DayImpact] = {}
        # SKU -> [lines affected, added discount, added points]
        self.products: dict[str, list[int]] = {}

    def add(self, sale: ConfirmedSale, live: ReceiptResult, draft: ReceiptResult) -> None:
        self.receipts += 1
        self.confirmed.add(sale.discount, sale.points)
        self.live.add(live.total_discount, live.total_points)
        self.draft.add(draft.total_discount, draft.total_points)
        day_of_sale = sale.sale_time.astimezone(self._zone).date()
        day = self.days.get(day_of_sale)
        if day is None:
            day = self.days[day_of_sale] = DayImpact(day_of_sale)
        day.receipts += 1
        day.live.add(live.total_discount, live.total_points)
        day.draft.add(draft.total_discount, draft.total_points)
        if not self._lines_changed(live, draft):
            return
        self.receipts_affected += 1
        day.receipts_affected += 1
        if sale.member_id:
            self.members.add(sale.member_id)

    def _lines_changed(self, live: ReceiptResult, draft: ReceiptResult) -> bool:
        changed = False
        for before, after in zip(live.lines, draft.lines, strict=True):
            if before.discount == after.discount and before.points == after.points:
                continue
            changed = True
            found = self.products.get(before.sku)
            if found is None:
                found = self.products[before.sku] = [0, 0, 0]
            found[0] += 1
            found[1] += after.discount - before.discount
            found[2] += after.points - before.points
        return changed

    def report(self, live: Snapshot, top: int) -> ReplayReport:
        def name(sku: str) -> str:
            product = live.product(sku)
            return "" if product is None else product.name

        # most discount added first, then most points, then by SKU
        ranked = sorted(self.products.items(), key=lambda item: (-item[1][1], -item[1][2], item[0]))
        return ReplayReport(
            configuration_version=live.configuration_version,
            receipts=self.receipts,
            confirmed=self.confirmed,
            live=self.live,
            draft=self.draft,
            receipts_affected=self.receipts_affected,
            members_affected=len(self.members),
            top_products=tuple(
                ProductImpact(sku, name(sku), lines, discount, points)
                for sku, (lines, discount, points) in ranked[:top]
            ),
            days=tuple(self.days[d] for d in sorted(self.days)),
        )
