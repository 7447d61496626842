"""Receipts that look like a shop's: drawn from a catalogue and its members' cards.

- Line count: 1 + a geometric number, mean `lines_mean`, at most `lines_max` (most baskets
  are small, a few are large).
- Products: distinct SKUs drawn uniformly (excluded products such as tobacco included);
  pieces mostly 1 (70 %), 2 (20 %), 3 (7 %), up to 6; weighed goods 0.150 - 2.500 kg.
- Members: a share `member_share` of receipts carries a card; of those, a share
  `favorites_hit` gets one of the member's favorite products on a line (when they have any).
- A share `unknown_share` of receipts has one SKU the catalogue does not know; a share
  `online_share` is an ONLINE cart rather than a POS receipt.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from random import Random

from clients.catalogue import Item, Shop
from clients.receipt_format import line_amount
from loyalty.v1 import common_pb2, receipt_pb2

UNKNOWN_SKU = "4699999999998"
UNKNOWN_PRICE = 15990
PIECES = (1, 2, 3, 4, 5, 6)
PIECE_WEIGHTS = (70, 20, 7, 1, 1, 1)


@dataclass(frozen=True)
class ReceiptMix:
    lines_mean: float = 8.0
    lines_max: int = 40
    member_share: float = 0.7
    favorites_hit: float = 0.3
    unknown_share: float = 0.02
    online_share: float = 0.1

    def __post_init__(self) -> None:
        if not 1 <= self.lines_mean <= self.lines_max:
            raise ValueError("need 1 <= lines_mean <= lines_max")
        for name in ("member_share", "favorites_hit", "unknown_share", "online_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")


class ReceiptFactory:
    """Makes receipts from a shop; deterministic for a given seed."""

    def __init__(self, shop: Shop, mix: ReceiptMix, seed: int, id_prefix: str = "LOAD") -> None:
        if not shop.items:
            raise ValueError("the shop has no products")
        self.shop = shop
        self.mix = mix
        self.rng = Random(seed)
        self.items = list(shop.items)
        self.by_sku = shop.by_sku()
        self.cards = [c for c in shop.cards if c.card_number]
        self.id_prefix = id_prefix
        self.count = 0

    def line_count(self) -> int:
        """1 + geometric(p = 1 / mean): mean `lines_mean`, capped at `lines_max`."""
        mean = self.mix.lines_mean
        if mean <= 1:
            return 1
        p = 1.0 / mean
        extra = int(math.log(1.0 - self.rng.random()) / math.log(1.0 - p))
        return min(1 + extra, self.mix.lines_max, len(self.items))

    def quantity(self, item: Item) -> int:
        if item.weighed:
            return self.rng.randint(150, 2500)
        return 1000 * self.rng.choices(PIECES, PIECE_WEIGHTS)[0]

    def receipt(self) -> receipt_pb2.Receipt:
        rng, mix = self.rng, self.mix
        self.count += 1
        online = rng.random() < mix.online_share
        receipt = receipt_pb2.Receipt(
            receipt_id=f"{self.id_prefix}-{self.count}",
            store_id=rng.choice(self.shop.stores) if self.shop.stores else "S001",
            channel=common_pb2.CHANNEL_ONLINE if online else common_pb2.CHANNEL_POS,
        )
        chosen = rng.sample(self.items, self.line_count())
        if self.cards and rng.random() < mix.member_share:
            card = rng.choice(self.cards)
            receipt.member.card_number = card.card_number
            favorites = [self.by_sku[s] for s in card.favorites if s in self.by_sku]
            if favorites and rng.random() < mix.favorites_hit:
                favorite = rng.choice(favorites)
                if favorite not in chosen:
                    chosen[rng.randrange(len(chosen))] = favorite
        lines = [(item.sku, self.quantity(item), item.price) for item in chosen]
        if rng.random() < mix.unknown_share:
            lines.append((UNKNOWN_SKU, 1000, UNKNOWN_PRICE))
        for number, (sku, quantity, price) in enumerate(lines, start=1):
            receipt.lines.add(
                line_id=str(number),
                sku=sku,
                quantity=quantity,
                price=price,
                amount=line_amount(price, quantity),
            )
        return receipt
