"""The ``file`` source: a local weight file (``--weights PATH``), loaded through timm.

Loading through timm means a classifier of another size and another number of input
channels are adapted exactly as for timm's own weights. timm loads non-strictly whenever
it drops a classifier, so the keys it reports are checked here: a file that leaves
anything outside the classifier uninitialised is refused.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import timm
from torch import nn

from ssl_bench.core.errors import UserError
from ssl_bench.models.weights._common import reason

__all__ = ["WEIGHT_SUFFIXES", "check_weights_file", "create_from_file"]

#: File types accepted by ``weights=`` (``.npz`` is the JAX format a few ViTs load natively).
WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".npz")

_logger = logging.getLogger(__name__)


def check_weights_file(weights: str | Path) -> Path:
    """The resolved path of an existing weight file of a supported type."""
    path = Path(weights).expanduser()
    if not path.exists():
        raise UserError(f"weights file {path} does not exist")
    if not path.is_file():
        raise UserError(f"weights file {path} is not a file")
    if path.suffix.lower() not in WEIGHT_SUFFIXES:
        raise UserError(
            f"weights file {path} has an unsupported type {path.suffix or '(none)'!r}; "
            f"expected one of {', '.join(WEIGHT_SUFFIXES)}"
        )
    return path.resolve()


def create_from_file(
    name: str, kwargs: dict[str, Any], weights: str | Path
) -> tuple[nn.Module, Path]:
    """timm model ``name`` with the weights of a local file, and the file's resolved path."""
    path = check_weights_file(weights)
    overlay = dict(file=str(path), custom_load=path.suffix.lower() == ".npz")
    report = _LoadReport()
    try:
        with report:
            model = timm.create_model(
                name, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs
            )
    except Exception as exc:  # corrupt file, wrong shapes, ...
        raise UserError(f"could not load weights file {path} into {name}: {reason(exc)}") from None
    _check_loaded(model, report, path, name)
    return model, path


class _LoadReport(logging.Filter):
    """Collects the missing/unexpected keys timm reports while it loads pretrained weights.

    timm reports the keys only through its logger; this filter reads them there and keeps
    those (possibly thousands of names long) messages from being printed.
    """

    _LOGGER = "timm.models._builder"
    _LABELS = {"Missing keys (": "missing", "Unexpected keys (": "unexpected"}

    def __init__(self) -> None:
        super().__init__()
        self.missing: list[str] = []
        self.unexpected: list[str] = []
        self._threshold = logging.WARNING
        self._level = logging.NOTSET

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is not ours to judge
            return record.levelno >= self._threshold
        for label, attr in self._LABELS.items():
            if message.startswith(label):
                keys = message[len(label) :].split(")", 1)[0]
                getattr(self, attr).extend(k.strip() for k in keys.split(",") if k.strip())
                return False  # reported by _check_loaded, in one line
        return record.levelno >= self._threshold

    def __enter__(self) -> _LoadReport:
        logger = logging.getLogger(self._LOGGER)
        self._level = logger.level
        self._threshold = logger.getEffectiveLevel()
        logger.setLevel(min(self._threshold, logging.INFO))
        logger.addFilter(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        logger = logging.getLogger(self._LOGGER)
        logger.removeFilter(self)
        logger.setLevel(self._level)


def _check_loaded(model: nn.Module, report: _LoadReport, path: Path, name: str) -> None:
    """Fail when the file left weights outside the classifier uninitialised."""
    classifier = model.get_classifier()
    heads = [n for n, m in model.named_modules() if m is classifier and n]
    missing = [
        key for key in report.missing if not any(key == h or key.startswith(h + ".") for h in heads)
    ]
    if not missing:
        if report.unexpected:
            shown = ", ".join(report.unexpected[:5]) + (
                ", ..." if len(report.unexpected) > 5 else ""
            )
            _logger.warning(
                "weights file %s: %d tensors not used by %s (%s)",
                path,
                len(report.unexpected),
                name,
                shown,
            )
        return
    total = len(model.state_dict())
    shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
    extra = (
        f"; the file has {len(report.unexpected)} tensors {name} does not use"
        if report.unexpected
        else ""
    )
    raise UserError(
        f"could not load weights file {path} into {name}: {len(missing)} of the model's {total} "
        f"tensors are not in the file ({shown}){extra}. Is it a checkpoint of another "
        "architecture?"
    )
