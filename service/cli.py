"""How every command-line tool stops on a fatal error: one line on stderr naming the tool, a
non-zero exit status, never a traceback.

    @tool("loyalty-credentials")
    def main(argv: Sequence[str] | None = None) -> int:
        ...
        raise ToolError("no active credential 'x'")

A tool raises ToolError for what it can explain; anything else that escapes (a file it cannot
read, a database it cannot open, a server it cannot reach) is still told in one line.
`LOYALTY_TRACEBACK=1` lets the exception through, for whoever is debugging the tool itself.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from typing import ParamSpec

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
TRACEBACK_ENV = "LOYALTY_TRACEBACK"

P = ParamSpec("P")


class ToolError(Exception):
    """A fatal error a tool explains in one line."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def report(prog: str, message: str) -> None:
    """The one line on stderr: `prog: error: message`."""
    first = " ".join(message.split()) or "failed"
    print(f"{prog}: error: {first}", file=sys.stderr)


def describe(error: BaseException) -> str:
    """One line for a person, whatever the exception."""
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    from service.store.db import NoStore

    if isinstance(error, ToolError | NoStore):
        return str(error)
    if isinstance(error, json.JSONDecodeError):
        return f"not valid JSON (line {error.lineno}, column {error.colno}): {error.msg}"
    if type(error) is ValueError:  # this code's ValueErrors carry a message for a person
        return str(error)
    if isinstance(error, OSError) and error.strerror:
        where = f": {error.filename}" if error.filename else ""
        return f"{error.strerror}{where}"
    if isinstance(error, DBAPIError):
        said = str(error.orig).strip().splitlines()
        return f"cannot use the database: {said[0] if said else type(error.orig).__name__}"
    if isinstance(error, SQLAlchemyError):
        return f"cannot use the database: {str(error).splitlines()[0]}"
    code = getattr(error, "code", None)
    if callable(code) and hasattr(error, "details"):  # a grpc.RpcError
        status = code()
        return f"{getattr(status, 'name', status)}: {error.details()}"
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def tool(prog: str) -> Callable[[Callable[P, int]], Callable[P, int]]:
    """Wrap a tool's `main(argv) -> int` so that nothing escapes it but an exit status."""

    def wrap(main: Callable[P, int]) -> Callable[P, int]:
        @functools.wraps(main)
        def run(*args: P.args, **kwargs: P.kwargs) -> int:
            try:
                return main(*args, **kwargs)
            except KeyboardInterrupt:
                report(prog, "interrupted")
                return EXIT_INTERRUPTED
            except Exception as error:
                if os.environ.get(TRACEBACK_ENV) == "1":
                    raise
                report(prog, describe(error))
                return error.exit_code if isinstance(error, ToolError) else EXIT_FAILED

        return run

    return wrap
