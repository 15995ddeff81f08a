"""The one exception type for user mistakes, and warnings shown as one line.

Anything raised as :class:`UserError` is the user's to fix (a bad flag, a missing file,
a malformed CSV); the CLI prints it as one line and exits with code 2. Every other
exception is a bug in ssl-bench and keeps its traceback.
"""

from __future__ import annotations

import sys
from typing import Any


class UserError(Exception):
    """A mistake in the user's input, reported without a traceback."""


def show_warning_line(message: Warning | str, category: type[Warning], filename: str,
                      lineno: int, file: Any = None, line: str | None = None) -> None:
    """``warnings.showwarning`` for the command line and sweep workers: a warning as the
    one line a user reads (``ssl-bench: warning: ...``), not the source line raising it."""
    print(f"ssl-bench: warning: {message}", file=sys.stderr if file is None else file)
