"""What the client tools sell and to whom: products with shelf prices, stores, loyalty cards and
the members' favorite products.

The service knows no prices (a register sends them), so prices come from the demo data set
(`demo_shop()`), from a JSON price file (`load_price_file`), or, for products read from a
store database that the demo does not know, from a stable made-up price (`shop_from_store`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Item:
    """A product on the shelf: price in minor units per piece, or per kg when `weighed`."""

    sku: str
    name: str
    price: int
    weighed: bool = False
    excluded: bool = False


@dataclass(frozen=True, slots=True)
class Card:
    """A loyalty card and the SKUs in its member's favorite-product slots."""

    card_number: str
    member_id: str
    favorites: tuple[str, ...] = ()


@dataclass(frozen=True)
class Shop:
    items: tuple[Item, ...]
    stores: tuple[str, ...]
    cards: tuple[Card, ...]

    def by_sku(self) -> dict[str, Item]:
        return {item.sku: item for item in self.items}


def demo_shop(now: datetime | None = None) -> Shop:
    """The demo data set's catalogue, prices, stores and cards (with favorite slots)."""
    from service.demo_data.generate import card_number, demo_catalogue
    from service.demo_data.members import demo_members
    from service.engine.model import Unit

    catalogue = demo_catalogue()
    items = tuple(
        Item(
            p.product.sku,
            p.product.name,
            p.price,
            weighed=p.product.unit is Unit.WEIGHT,
            excluded=p.product.excluded,
        )
        for p in catalogue.products
    )
    people = demo_members(catalogue, now or datetime.now(UTC))
    cards = tuple(
        Card(
            card_number(int(member.id[1:])),
            member.id,
            tuple(sorted({sku for slots in member.favorite_slots.values() for sku in slots})),
        )
        for member in people.members
        if member.active
    )
    return Shop(items, tuple(s.id for s in catalogue.stores), cards)


def made_up_price(sku: str) -> int:
    """A stable shelf price (10.90 .. 999.90) for a product nobody gave a price for."""
    digest = int.from_bytes(hashlib.sha256(sku.encode()).digest()[:4], "big")
    return (10 + digest % 990) * 100 + 90


def shop_from_store(database_url: str) -> Shop:
    """Products, stores, active cards and favorite slots read from a store database (the URL
    the server uses); prices from the demo data where it knows the SKU, else made up."""
    from sqlalchemy import select

    from service.demo_data.generate import demo_catalogue
    from service.engine.model import Unit
    from service.store.db import make_engine, make_session_factory, require_store
    from service.store.models import CardRow, FavoriteSlotRow, MemberRow, ProductRow, StoreRow

    require_store(database_url)  # a mistyped path names no store: say so, create nothing
    known = {p.product.sku: p.price for p in demo_catalogue().products}
    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            products = session.scalars(select(ProductRow).order_by(ProductRow.sku)).all()
            stores = session.scalars(select(StoreRow.id).order_by(StoreRow.id)).all()
            card_rows = session.execute(
                select(CardRow.card_number, CardRow.member_id)
                .join(MemberRow, MemberRow.id == CardRow.member_id)
                .where(CardRow.active, MemberRow.active)
                .order_by(CardRow.card_number)
            ).all()
            slot_rows = session.execute(select(FavoriteSlotRow.member_id, FavoriteSlotRow.sku))
            favorites: dict[str, set[str]] = {}
            for member_id, sku in slot_rows:
                if sku:
                    favorites.setdefault(member_id, set()).add(sku)
            items = tuple(
                Item(
                    p.sku,
                    p.name,
                    known.get(p.sku) or made_up_price(p.sku),
                    weighed=p.unit is Unit.WEIGHT,
                    excluded=p.excluded,
                )
                for p in products
            )
            cards = tuple(
                Card(number, member_id, tuple(sorted(favorites.get(member_id, ()))))
                for number, member_id in card_rows
            )
    finally:
        engine.dispose()
    if not items:
        raise ValueError(f"no products in the store at {database_url}")
    return Shop(items, tuple(stores) or ("S001",), cards)


def load_price_file(path: Path) -> list[Item]:
    """Items from a JSON price file, either `{"SKU": 8790, ...}` or
    `{"SKU": {"price": 8790, "name": "Milk", "weighed": false}, ...}` or a list of such
    objects with a "sku" key. Prices in minor units (per kg for weighed goods)."""
    data: Any = json.loads(path.read_text(encoding="utf-8"))
    entries: Iterable[tuple[str, Any]]
    if isinstance(data, list):
        entries = ((str(e["sku"]), e) for e in data)
    elif isinstance(data, Mapping):
        entries = ((str(k), v) for k, v in data.items())
    else:
        raise ValueError(f"{path}: expected a JSON object or list")
    items = []
    for sku, value in entries:
        if isinstance(value, Mapping):
            items.append(
                Item(
                    sku,
                    str(value.get("name", sku)),
                    int(value["price"]),
                    weighed=bool(value.get("weighed", False)),
                )
            )
        else:
            items.append(Item(sku, sku, int(value)))
    return items


def write_price_file(path: Path, items: Iterable[Item]) -> None:
    """A price file `load_price_file` reads back."""
    data = {
        item.sku: {"price": item.price, "name": item.name, "weighed": item.weighed}
        for item in items
    }
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
