"""`loyalty-server` with the benchmarks' empty and echo services beside the loyalty ones:

    python -m bench.server --address 127.0.0.1:50051 --processes 2 ...

The same flags as loyalty-server. The extra services live here, not in the service: a
production server has no such methods.
"""

from __future__ import annotations

import sys

from service.main import main


def _extension():  # type: ignore[no-untyped-def]
    from bench.services import PUBLIC_PREFIX, bench_handlers
    from service.api.server import Extension

    return Extension(bench_handlers(), (PUBLIC_PREFIX,))


if __name__ == "__main__":
    sys.exit(main(extension=_extension, entry="bench.server"))
