"""Benchmark of one member who earns on every receipt and never spends (docs/points.md).

    python -m bench.points_lots_bench --receipts 200 --out bench/points_lots_results.json

One client confirms `--receipts` receipts in a row for one member, through the confirm use case
as bench.confirm_bench calls it (5 lines, two offers giving points), on a real SQLite file
(and PostgreSQL with --backends sqlite,postgresql: a throwaway cluster from tests/pg.py). After
each confirm it notes the member's open lots in the store; at the end, the size of the
member's document (what every replica's cache holds and the confirm rewrites) and the confirm
latency over the first and the last tenth of the run. Before lots were folded, the lots and
the document grew by one lot per receipt; now they stay bounded.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench.confirm_bench import confirm, make_confirmation, postgres
from service.app.unit_of_work import UnitOfWork
from service.engine.model import Member
from service.store.db import make_engine, make_session_factory, migrate
from service.store.member_repo import save_members
from service.store.models import MemberDocumentRow, PointsLotRow

MEMBER = "BM-LOTS"


def bench_backend(url: str, receipts: int) -> dict[str, Any]:
    migrate(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    units = functools.partial(UnitOfWork, sessions)
    lots = PointsLotRow.__table__
    try:
        with sessions() as session:
            save_members(session, [Member(MEMBER)])
            session.commit()
        took: list[float] = []
        most_lots = 0
        for n in range(receipts):
            confirmation = make_confirmation(f"L-{n:07d}", MEMBER)
            started = time.perf_counter()
            confirm(units, *confirmation)
            took.append(time.perf_counter() - started)
            with sessions() as session:
                count = session.scalar(
                    select(func.count()).select_from(lots).where(lots.c.member_id == MEMBER)
                )
            most_lots = max(most_lots, int(count or 0))
        with sessions() as session:
            body = session.scalar(
                select(MemberDocumentRow.body).where(MemberDocumentRow.member_id == MEMBER)
            )
        tenth = max(receipts // 10, 1)
        return {
            "receipts": receipts,
            "open_lots_at_end": int(count or 0),
            "open_lots_most": most_lots,
            "document_bytes": len(body or b""),
            "first_tenth_p50_ms": round(statistics.median(took[:tenth]) * 1000, 2),
            "last_tenth_p50_ms": round(statistics.median(took[-tenth:]) * 1000, 2),
        }
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="write the results here (JSON)")
    parser.add_argument("--receipts", type=int, default=200)
    parser.add_argument("--backends", default="sqlite", help="comma-separated: sqlite,postgresql")
    parser.add_argument("--pg-url", help="PostgreSQL to use (default: a throwaway cluster)")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {
        "benchmark": "one member confirming receipts in a row, never spending",
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "backends": {},
    }
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        if backend == "sqlite":
            with tempfile.TemporaryDirectory() as directory:
                url = f"sqlite:///{Path(directory) / 'lots.db'}"
                results["backends"][backend] = bench_backend(url, args.receipts)
        else:
            with postgres(args.pg_url) as (url, _cpu):
                results["backends"][backend] = bench_backend(url, args.receipts)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    json.dump(results["backends"], sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
