"""`loyalty-server` with a thread that outlives its stop (a stand-in for any part that never
finishes), for the test that a stopping process still exits: tests/e2e/test_server_process.py.

    python -m tests.e2e.lingering_server --address ... (loyalty-server's flags)
"""

from __future__ import annotations

import sys
import threading

from service.main import main


def _extension():  # type: ignore[no-untyped-def]
    from service.api.server import Extension

    # Not a daemon: the interpreter's exit waits for it, forever.
    threading.Thread(target=threading.Event().wait, name="never-ends").start()
    return Extension()


if __name__ == "__main__":
    sys.exit(main(extension=_extension, entry="tests.e2e.lingering_server"))
