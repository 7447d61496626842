"""A deterministic demo data set, loaded through the store's repositories.

    python -m service.demo --url sqlite:///var/demo.db   # migrate, load, print the summary
    python -m service.demo --receipt                      # print the showcase receipt (JSON)

load_demo() writes only into an empty store, once: it claims the import id "demo" as its first
write, so a second call, or a concurrent one from another process, does nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session, sessionmaker

from service.cli import tool
from service.clock import utc_now
from service.demo_data.generate import (
    SHOWCASE,
    SHOWCASE_CARD,
    demo_catalogue,
    demo_coupon_campaigns,
    demo_offers,
    ean13,
    line_amount,
)
from service.demo_data.members import demo_members
from service.store.catalog_repo import (
    save_categories,
    save_favorite_products_offers,
    save_offers,
    save_product_groups,
    save_product_lists,
    save_products,
    save_stores,
)
from service.store.coupon_repo import save_campaign
from service.store.db import make_engine, make_session_factory, migrate
from service.store.import_repo import claim_import, finish_import
from service.store.member_repo import add_purchases, save_members
from service.store.models import MemberRow, OfferRow, ProductRow

DEMO_IMPORT_ID = "demo"
RECEIPT_FILE = Path(__file__).parent / "demo_data" / "demo_receipt.json"


@dataclass(frozen=True, slots=True)
class DemoSummary:
    """What load_demo() wrote; loaded is False (and every count 0) when it did nothing."""

    loaded: bool
    categories: int = 0
    products: int = 0
    groups: int = 0
    product_lists: int = 0
    stores: int = 0
    offers: int = 0
    favorite_product_offers: int = 0
    coupon_campaigns: int = 0
    members: int = 0
    cards: int = 0
    favorite_slots: int = 0
    category_attributes: int = 0
    personal_offers: int = 0
    purchases: int = 0
    seconds: float = 0.0


def load_demo(session_factory: sessionmaker[Session], now: datetime) -> DemoSummary:
    """Write the demo data set (times relative to `now`) in one transaction, if the store is
    empty and the demo was never loaded; otherwise change nothing."""
    started = time.perf_counter()
    catalogue = demo_catalogue()
    offers, favorite_offers = demo_offers(catalogue, now)
    campaigns = demo_coupon_campaigns(now)
    people = demo_members(catalogue, now)
    with session_factory() as session:
        if not claim_import(session, DEMO_IMPORT_ID, "DEMO", now=now) or not _is_empty(session):
            session.rollback()
            return DemoSummary(loaded=False)
        save_categories(session, catalogue.categories)
        save_products(session, [p.product for p in catalogue.products])
        save_product_groups(session, catalogue.groups)
        save_product_lists(session, catalogue.product_lists)
        save_stores(session, catalogue.stores)
        save_offers(session, offers, now=now)
        save_favorite_products_offers(session, favorite_offers, now=now)
        for campaign in campaigns:
            save_campaign(session, campaign, now)
        save_members(session, people.members, people.cards, now=now)
        add_purchases(session, people.purchases)
        finish_import(session, DEMO_IMPORT_ID, rows_applied=len(people.members), now=now)
        session.commit()
    members = people.members
    return DemoSummary(
        loaded=True,
        categories=len(catalogue.categories),
        products=len(catalogue.products),
        groups=len(catalogue.groups),
        product_lists=len(catalogue.product_lists),
        stores=len(catalogue.stores),
        offers=len(offers),
        favorite_product_offers=len(favorite_offers),
        coupon_campaigns=len(campaigns),
        members=len(members),
        cards=sum(len(c) for c in people.cards.values()),
        favorite_slots=sum(len(s) for m in members for s in m.favorite_slots.values()),
        category_attributes=sum(len(m.favorite_categories) for m in members),
        personal_offers=sum(len(m.personal_offers) for m in members),
        purchases=len(people.purchases),
        seconds=round(time.perf_counter() - started, 3),
    )


def _is_empty(session: Session) -> bool:
    """No products, offers or members yet."""
    tables = (ProductRow, OfferRow, MemberRow)
    return not any(session.scalar(select(exists().select_from(t))) for t in tables)


# --- the showcase receipt ---------------------------------------------------------------------

UNKNOWN_SKU = ean13("469999999999")

# (role in SHOWCASE or "unknown", quantity in thousandths, what the line shows)
RECEIPT_LINES = (
    ("weighed", 753, "0.753 kg by weight: fruit -30 RUB/kg for everyone"),
    ("yellow_price", 2000, "yellow price tag (FIXED_PRICE) for card holders"),
    ("favorite", 1000, "favorite product slot (PREDEFINED list)"),
    ("history", 2000, "favorite product slot (last month's purchases)"),
    ("category", 1000, "favorite category chosen by the member"),
    ("personal", 1000, "personalized offer"),
    ("tobacco", 1000, "excluded product (tobacco): no benefits at all"),
    ("unknown", 1000, "SKU unknown to the catalogue: only offers on all products"),
)
UNKNOWN_PRICE = 15990


def demo_receipt() -> dict[str, Any]:
    """The showcase receipt of member M000001 (card 2000000000001) at store S001, as JSON data.

    Each line holds the fields of an engine Line plus the product `name` (for printing);
    `notes` say what each line shows.
    No sale time: the register's clock (or the server's) is used."""
    catalogue = demo_catalogue()
    lines, notes = [], {}
    for number, (role, quantity, note) in enumerate(RECEIPT_LINES, start=1):
        if role == "unknown":
            sku, name, price = UNKNOWN_SKU, "Product not in the catalogue", UNKNOWN_PRICE
        else:
            product = catalogue.named(SHOWCASE[role])
            sku, name, price = product.product.sku, product.product.name, product.price
        line_id = str(number)
        amount = line_amount(price, quantity)
        lines.append(
            {
                "line_id": line_id,
                "sku": sku,
                "name": name,
                "quantity": quantity,
                "price": price,
                "amount": amount,
            }
        )
        notes[line_id] = note
    return {
        "receipt_id": "DEMO-0001",
        "store_id": "S001",
        "channel": "POS",
        "card": SHOWCASE_CARD,
        "lines": lines,
        "notes": notes,
    }


@tool("service.demo")
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="sqlite:///var/demo.db", help="database URL")
    parser.add_argument("--receipt", action="store_true", help="print the demo receipt only")
    parser.add_argument("--write-receipt", action="store_true", help=f"rewrite {RECEIPT_FILE}")
    args = parser.parse_args(argv)
    receipt = json.dumps(demo_receipt(), indent=2, ensure_ascii=False) + "\n"
    if args.receipt or args.write_receipt:
        if args.write_receipt:
            RECEIPT_FILE.write_text(receipt)
        print(receipt, end="")
        return 0
    if args.url.startswith("sqlite:///"):
        Path(args.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    migrate(args.url)
    engine = make_engine(args.url)
    try:
        summary = load_demo(make_session_factory(engine), utc_now())
    finally:
        engine.dispose()
    print(json.dumps(asdict(summary), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
