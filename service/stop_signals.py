"""The stop signals, SIGTERM and SIGINT, for a server process and for the supervisor.

Python runs a signal's handler in the main thread, between any two bytecodes, including
inside an earlier run of the same handler: a second signal (Ctrl-C twice, or the SIGTERM
that `kill -- -PGID` and the supervisor both send a worker) arrives while the first is being
handled. A handler that takes a lock there waits for itself for ever: `threading.Event.set`
did, and the process never stopped. So the handler here takes no lock and logs nothing. It
records the first signal, ignores any later one (one stop is enough, and the stop is bounded
by the exit margin), and leaves the rest to the main thread's loop.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """Install once in the main thread; `received` is the first stop signal, 0 until then.
    `forward` runs inside the handler, once: it too must take no lock (os.kill, Popen's
    send_signal, which only tries its lock, are fine)."""

    def __init__(self, forward: Callable[[int], None] | None = None) -> None:
        self.received = 0
        self._forward = forward

    def install(self) -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.received:
            return
        self.received = signum
        for other in STOP_SIGNALS:  # a later stop signal is dropped by the kernel
            signal.signal(other, signal.SIG_IGN)
        if self._forward is not None:
            self._forward(signum)

    def wait(self, check_s: float) -> int:
        """Until a stop signal; which one. The kernel hands a signal sent to the process to
        any of its threads that does not block it (gRPC's, the call pool's), and Python runs
        the handler only once the main thread is back in the interpreter, which an untimed
        wait never is (python/cpython#85300): a SIGTERM was then left unhandled and the
        server served on. So the wait wakes up every `check_s` to let the handler run."""
        while not self.received:
            time.sleep(check_s)
        return self.received

    @property
    def name(self) -> str:
        return signal.Signals(self.received).name if self.received else ""
