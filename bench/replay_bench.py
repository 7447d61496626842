"""A campaign replay of a month of a large store's receipts: time and peak memory.

    python -m bench.replay_bench --receipts 1000000 --out bench/replay_results.json

The store (bench/replay_data.py: receipts of two lines, half of them with a member, 30 days)
is generated once into bench/var/ by a child process, so this process's peak memory is the
replay's own; the replay is the use case (service/app/replay.py) the RPC runs, draft 5 % on
category C2 against the live 10 % on C1, pages of --page-size receipts.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from bench import replay_data as data
from service.app.replay import CampaignReplay, ReplayProgress, ReplayReport, ReplayRequest
from service.engine.model import Benefit, BenefitKind, Level, Offer, Stacking
from service.store import db

DRAFT = Offer(
    id="A-DRAFT",
    name="Five percent on C2",
    level=Level.ALL_BUYERS,
    benefit=Benefit(BenefitKind.PERCENT, 500),
    scope_group_id="G-C2",
    stacking=Stacking.COMBINABLE,
)


def generate(path: Path, receipts: int, members: int) -> None:
    """Write the store (in this process: called by the child)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    url = f"sqlite:///{partial}"
    db.migrate(url)
    engine = db.make_engine(url)
    began = time.perf_counter()

    def report(done: int) -> None:
        if done % 100_000 == 0:
            print(f"  {done:,} receipts written ({time.perf_counter() - began:.0f} s)", flush=True)

    data.write_store(db.make_session_factory(engine), receipts, members, 20_000, report)
    engine.dispose()
    partial.rename(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--receipts", type=int, default=1_000_000)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=2000)
    parser.add_argument("--generate-only", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.generate_only:
        generate(args.generate_only, args.receipts, args.members)
        return
    store = Path("bench/var") / f"replay-{args.receipts}-{args.members}.db"
    if not store.exists():
        print(f"generating {store} ...", flush=True)
        began = time.perf_counter()
        child = [sys.executable, "-m", "bench.replay_bench", "--receipts", str(args.receipts)]
        child += ["--members", str(args.members), "--generate-only", str(store)]
        subprocess.run(child, check=True)
        print(f"generated in {time.perf_counter() - began:.0f} s", flush=True)

    engine = db.make_engine(f"sqlite:///{store}")
    replay = CampaignReplay(
        db.make_session_factory(engine), time_zone="UTC", page_size=args.page_size, max_days=92
    )
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    began = time.perf_counter()
    report: ReplayReport | None = None
    request = ReplayRequest(DRAFT, True, data.START, data.START + timedelta(days=data.DAYS))
    for event in replay.run(request):
        if isinstance(event, ReplayProgress):
            if event.receipts_done % 100_000 == 0:
                print(f"  {event.receipts_done:,} / {event.receipts_total:,}", flush=True)
        else:
            report = event
    seconds = time.perf_counter() - began
    engine.dispose()
    assert report is not None
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results = {
        "receipts": report.receipts,
        "page_size": args.page_size,
        "seconds": round(seconds, 1),
        "receipts_per_s": round(report.receipts / seconds),
        "peak_rss_mb": round(peak_mb),
        "rss_before_replay_mb": round(rss_before / 1024),
        "receipts_affected": report.receipts_affected,
        "members_affected": report.members_affected,
        "added_discount": report.added.discount,
        "python": platform.python_version(),
    }
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
