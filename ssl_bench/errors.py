"""The one exception type for user mistakes.

Anything raised as :class:`UserError` is the user's to fix (a bad flag, a missing file,
a malformed CSV); the CLI prints it as one line and exits with code 2. Every other
exception is a bug in ssl-bench and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input, reported without a traceback."""
