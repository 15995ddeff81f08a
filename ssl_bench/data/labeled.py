"""The labeled amount of a run: a fraction in (0, 1] or a count of images.

Torch-free on purpose, so that ``compare`` can parse and print amounts without importing
the training stack.
"""

from __future__ import annotations

import math

from ssl_bench.core.errors import UserError


def parse_labeled(value: str | float | int) -> float | int:
    """``"0.2"`` -> fraction 0.2; ``"50"`` -> count 50; ``"1"``/``1.0`` -> all (fraction 1)."""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        raise UserError(
            f"--labeled must be a fraction in (0, 1] or a count, got {text!r}"
        ) from None
    if not math.isfinite(number) or number <= 0:
        raise UserError(f"--labeled must be a fraction in (0, 1] or a count > 0, got {text!r}")
    if number <= 1:
        return float(number)
    if not number.is_integer():
        raise UserError(
            f"--labeled {text}: above 1 it is a count of images and must be a whole number "
            "(a fraction must lie in (0, 1])"
        )
    return int(number)


def labeled_tag(labeled: float | int) -> str:
    """Stable text for paths and tables: ``0.2`` or ``50``."""
    return f"{labeled:g}" if isinstance(labeled, float) else str(labeled)
