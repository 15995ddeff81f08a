"""Small helpers shared by the weight sources."""

from __future__ import annotations

from collections.abc import Sequence


def reason(exc: BaseException) -> str:
    """An exception as one short line for a :class:`UserError` message."""
    text = " ".join(str(exc).split())
    if len(text) > 400:
        text = text[:400] + " ..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def per_channel(values: Sequence[float] | None, in_chans: int) -> tuple[float, ...]:
    """``values`` (a mean or std) for ``in_chans`` channels; averaged when the count differs."""
    value = tuple(float(v) for v in values or ())
    if value and len(value) != in_chans:
        value = (sum(value) / len(value),) * in_chans
    return value


def arch_and_tag(name: str) -> tuple[str, str]:
    """``"resnet50.a1_in1k"`` -> ``("resnet50", "a1_in1k")``; no tag -> ``(name, "")``."""
    arch, _, tag = str(name).partition(".")
    return arch, tag
