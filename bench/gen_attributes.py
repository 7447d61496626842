"""Writes a customer-attribute import file of N rows (CSV or JSON Lines), deterministic.

    python -m bench.gen_attributes --rows 1000000 --out /tmp/attributes.csv

Rows come member by member, as a CRM export would: the member's profile (one or two cards,
birth date, gender, segment tags), then zero to two favorite-categories rows (campaigns with
and without acceptance) and zero to three personalized offers (SKUs or a group, some with a
usage limit; now and then a revocation). About 30 % of rows are profiles, 30 % favorite
categories, 40 % personalized offers; one row in a thousand is broken on purpose (an unknown
enum, a missing value, a bad date) so the rejects path is exercised too.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from service.imports.files import ALL_FIELDS

SEED = 20260301
GROUPS = tuple(
    f"G-{name}"
    for name in (
        "DAIRY", "BAKERY", "PRODUCE", "MEAT", "FISH", "GROCERY", "SWEETS", "BEVERAGES",
        "HOUSEHOLD", "PETS", "BABY", "FROZEN",
    )
)  # fmt: skip
TAGS = ("pensioner", "student", "family", "vip", "new", "online", "eco")
CATEGORY_CAMPAIGNS = (
    ("C-MONTH", "Your categories of the month", True, "MONTHLY"),
    ("C-WEEK", "Weekly favorite categories", True, "WEEKLY"),
    ("C-GIFT", "Categories we picked for you", False, ""),
)
OFFER_CAMPAIGNS = (
    ("P-COFFEE", "Your coffee -25 %", "PERCENT", 2500),
    ("P-TEA", "Your tea -20 %", "PERCENT", 2000),
    ("P-CHEESE", "Cheese for 499 a kg", "FIXED_PRICE", 49900),
    ("P-BONUS", "Triple points on sweets", "BONUS_PERCENT", 300),
    ("P-FRUIT", "10 off every kg of fruit", "AMOUNT_PER_UNIT", 1000),
)
BROKEN = (
    ("benefit_kind", "PERCENTAGE"),
    ("benefit_value", "ten"),
    ("valid_to", "2026-02-30"),
    ("member_id", ""),
)


def member_rows(rng: random.Random, number: int) -> Iterator[dict[str, Any]]:
    member_id = f"M{number:09d}"
    cards = [f"7{number:012d}"] + ([f"8{number:012d}"] if rng.random() < 0.2 else [])
    yield {
        "type": "member_profile",
        "member_id": member_id,
        "card_numbers": cards,
        "birth_date": f"{rng.randint(1940, 2006)}-{rng.randint(1, 12):02d}-"
        f"{rng.randint(1, 28):02d}",
        "gender": rng.choice(("FEMALE", "MALE", "OTHER", "")),
        "segment_tags": rng.sample(TAGS, rng.randint(0, 2)),
        "active": "true" if rng.random() < 0.98 else "false",
    }
    for offer_id, name, acceptance, frequency in rng.sample(CATEGORY_CAMPAIGNS, rng.randint(0, 2)):
        offered = rng.sample(GROUPS, rng.randint(3, 6))
        yield {
            "type": "favorite_categories",
            "member_id": member_id,
            "offer_id": offer_id,
            "name": name,
            "group_ids": offered,
            "benefit_kind": "PERCENT",
            "benefit_value": rng.choice((500, 700, 1000, 1500)),
            "valid_from": "2026-03-01",
            "valid_to": "2026-04-01",
            "max_count": rng.randint(1, 3) if acceptance else "",
            "acceptance_required": "true" if acceptance else "false",
            "frequency": frequency,
            "priority": 10,
            "stacking": "EXCLUSIVE",
        }
    for offer_id, name, kind, value in rng.sample(OFFER_CAMPAIGNS, rng.randint(0, 3)):
        if rng.random() < 0.03:
            yield {"type": "personal_offer", "member_id": member_id, "offer_id": offer_id,
                   "revoke": "true"}  # fmt: skip
            continue
        row: dict[str, Any] = {
            "type": "personal_offer",
            "member_id": member_id,
            "offer_id": offer_id,
            "name": name,
            "benefit_kind": kind,
            "benefit_value": value,
            "valid_from": "2026-03-01T00:00:00+03:00",
            "valid_to": "2026-03-31T23:59:59+03:00",
            "priority": 20,
            "stacking": rng.choice(("EXCLUSIVE", "COMBINABLE")),
        }
        if rng.random() < 0.5:
            row["skus"] = [f"SKU{rng.randint(1, 50_000):06d}" for _ in range(rng.randint(1, 4))]
        else:
            row["group_id"] = rng.choice(GROUPS)
        if rng.random() < 0.3:
            row.update(limit_unit="UNITS", limit_value=3000, limit_period="WEEK")
        yield row


def rows(count: int, seed: int = SEED) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    produced = 0
    number = 0
    while True:
        number += 1
        for row in member_rows(rng, number):
            if rng.random() < 0.001:
                field, value = rng.choice(BROKEN)
                row = {**row, field: value}
            yield row
            produced += 1
            if produced >= count:
                return


def _csv_value(value: Any) -> str:
    if isinstance(value, list):
        return "|".join(value)
    return "" if value is None else str(value)


def write(path: Path, count: int, file_format: str | None = None, seed: int = SEED) -> int:
    """Write `count` rows to `path`; returns the file's size in bytes."""
    file_format = file_format or ("csv" if path.suffix.lower() == ".csv" else "jsonl")
    with path.open("w", newline="", encoding="utf-8") as out:
        if file_format == "csv":
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(ALL_FIELDS)
            for row in rows(count, seed):
                writer.writerow([_csv_value(row.get(f)) for f in ALL_FIELDS])
        else:
            for row in rows(count, seed):
                clean = {k: v for k, v in row.items() if v not in ("", None, [])}
                for key in ("benefit_value", "max_count", "priority", "limit_value"):
                    if isinstance(clean.get(key), str) and clean[key].isdigit():
                        clean[key] = int(clean[key])
                out.write(json.dumps(clean, separators=(",", ":")) + "\n")
    return path.stat().st_size


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--out", type=Path, required=True, help="*.csv or *.jsonl")
    parser.add_argument("--format", choices=("csv", "jsonl"))
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    began = time.perf_counter()
    size = write(args.out, args.rows, args.format, args.seed)
    print(
        f"wrote {args.rows:,} rows ({size / 1e6:.1f} MB) to {args.out} "
        f"in {time.perf_counter() - began:.1f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
