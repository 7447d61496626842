"""Running `loyalty-import` in this process, with what it printed."""

from __future__ import annotations

import io
import sys

from service.imports import cli as importer


def run_cli(*args: str) -> tuple[int, str, str]:
    """The exit code, stdout and stderr of `loyalty-import ARGS`."""
    out, err = io.StringIO(), io.StringIO()
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        code = importer.main(list(args))
    finally:
        sys.stdout, sys.stderr = stdout, stderr
    return code, out.getvalue(), err.getvalue()
