"""Preload time and memory per cached member for a large store (issue 7's figure).

    python -m bench.preload_bench --members 1000000 --out bench/preload_results.json

Builds (or reuses) the scaled data with that many members, then preloads all of them into
one cache in this process and reports seconds and bytes of memory per member.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench.run import preload_figures
from bench.scale_data import build


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--data", type=Path, default=Path("bench/var/scaled_1m.db"))
    parser.add_argument("--out", type=Path, default=Path("bench/preload_results.json"))
    args = parser.parse_args()
    started = time.perf_counter()
    data = build(args.data, args.members)
    built = time.perf_counter() - started
    figures = preload_figures(data)
    result = {"command": " ".join(sys.argv), "store_build_seconds": round(built), **figures}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
