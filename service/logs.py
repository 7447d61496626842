"""One log setup for the server and every tool: each line on stderr is one JSON object (time,
level, logger, message, and whatever fields the line carries: a call's method, code,
duration_ms, caller, store, receipt_id, peer, trace_id), which a log shipper reads as it is;
or, for a terminal, plain text with the same fields after the message.

The server takes --log-format/--log-level (service/config.py); the tools, whose flags are
their own, read LOYALTY_LOG_FORMAT and LOYALTY_LOG_LEVEL. Only the standard library and
python-json-logger: the clients, which otherwise depend on the contract only, use it too.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import traceback
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from pythonjsonlogger.json import JsonFormatter

FORMAT_ENV = "LOYALTY_LOG_FORMAT"
LEVEL_ENV = "LOYALTY_LOG_LEVEL"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# Attributes every LogRecord has: what is not among them is a field the line carries.
_RECORD_ATTRIBUTES = frozenset(
    {*vars(logging.LogRecord("", 0, "", 0, "", None, None)), "message", "asctime", "taskName"}
)


class TextFormatter(logging.Formatter):
    """The classic line, then the line's own fields as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = [f"{k}={v}" for k, v in vars(record).items() if k not in _RECORD_ATTRIBUTES]
        return f"{line} {' '.join(fields)}" if fields else line


def formatter(log_format: str, worker: str = "") -> logging.Formatter:
    """json (the default) or text; `worker` names the process of a multi-process server."""
    if log_format == "text":
        name = f" {worker}" if worker else ""
        return TextFormatter(f"%(asctime)s %(levelname)s{name} %(name)s %(message)s")
    return _JsonFormatter(
        "{levelname}{name}{message}",
        style="{",
        rename_fields={"levelname": "level", "name": "logger"},
        static_fields={"worker": worker} if worker else None,
    )


class _JsonFormatter(JsonFormatter):
    """The time as an ISO 8601 string in UTC, made here: python-json-logger's own timestamp
    is a datetime its encoder converts through a Python hook, a sixth of a call line's cost."""

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        log_data["time"] = datetime.fromtimestamp(record.created, UTC).isoformat()


class _OurHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time (as logging's last-resort handler does),
    and marks the handler this module installed, so that a second setup replaces only it and
    leaves alone handlers others added, such as pytest's."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(
    level: str = "INFO", log_format: str = "json", *, worker: str = "", server: bool = False
) -> None:
    """Every line through one handler on stderr. `server`: a thread's uncaught exception is
    a log line too (a tool's threads end with the tool)."""
    handler = _OurHandler()
    handler.setFormatter(formatter(log_format, worker))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _OurHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Alembic says seven INFO lines at every start; service/store/db.py says the revision.
    logging.getLogger("alembic").setLevel(logging.DEBUG if level.upper() == "DEBUG" else "WARNING")
    logging.captureWarnings(True)  # warnings become log lines too, not bare stderr text
    if server:
        threading.excepthook = _log_thread_exception


def configure_tool_logging(default_level: str = "WARNING") -> None:
    """A tool's setup: LOYALTY_LOG_FORMAT (json, or text) and LOYALTY_LOG_LEVEL."""
    log_format = "text" if os.environ.get(FORMAT_ENV, "json").lower() == "text" else "json"
    level = os.environ.get(LEVEL_ENV, default_level).upper()
    if level not in logging.getLevelNamesMapping():
        level = default_level
    configure_logging(level, log_format)


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    """A thread's uncaught exception as one log line (its traceback a field of it)."""
    if args.exc_type is SystemExit:
        return
    info: tuple[type[BaseException], BaseException, TracebackType | None] | None = None
    if args.exc_value is not None:
        info = (args.exc_type, args.exc_value, args.exc_traceback)
    name = args.thread.name if args.thread is not None else "?"
    logging.getLogger("service.threads").error("uncaught in thread %s", name, exc_info=info)


def log_overrun(logger: logging.Logger, what: str, seconds: float) -> None:
    """A warning that `what` took over `seconds`, with every thread's stack (where it was),
    for a part of shutdown that is then left behind rather than holding the process."""
    frames = sys._current_frames()
    stacks = {
        thread.name: "".join(traceback.format_stack(frames[thread.ident]))
        for thread in threading.enumerate()
        if thread.ident in frames
    }
    logger.warning(
        "%s took over %.1f s; going on without it", what, seconds, extra={"stacks": stacks}
    )
