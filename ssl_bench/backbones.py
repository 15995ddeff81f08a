"""Backbones: any timm architecture behind one ``(features, logits)`` forward.

Every method in ssl-bench needs both the pooled features (SRC-MT's relation consistency)
and the logits from one pass. :class:`Backbone` splits timm's own head at its
``pre_logits`` point, so the features are the pooled vector *after* the head's dropout
(exactly what SRC-MT's official DenseNet-121 wrapper exposes) and the logits are the
classifier applied to them -- bit-identical to ``model(x)``.

Weights come from one of three places:

* none (``pretrained=False``): random initialisation;
* ``weights=PATH``: a local ``.pth``/``.pt``/``.bin``/``.safetensors`` file, loaded through
  timm so a different classifier size and a different number of input channels are
  adapted exactly as for timm's own weights;
* ``pretrained=True``: timm's published weights from the Hugging Face cache. These are
  looked up in the local cache first; when they are missing and the hub is offline
  (``HF_HUB_OFFLINE=1``) or unreachable, a :class:`UserError` says how to provide them,
  within seconds rather than after minutes of retries.
"""

from __future__ import annotations

import difflib
import logging
import os
import socket
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import timm
import torch
from torch import Tensor, nn

from .errors import UserError

__all__ = ["WEIGHT_SUFFIXES", "Backbone", "create_backbone", "list_backbones"]

#: File types accepted by ``weights=`` (``.npz`` is the JAX format a few ViTs load natively).
WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".npz")

#: Seconds allowed for the reachability check before a download is attempted.
_PROBE_TIMEOUT = 3.0

_logger = logging.getLogger(__name__)

_TRUE = {"1", "on", "yes", "true", "y", "t"}


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
        source = (
            f"weights={str(self.weights)!r}" if self.weights else f"pretrained={self.pretrained}"
        )
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
) -> Backbone:
    """Create a timm model ``name`` and wrap it in a :class:`Backbone`.

    Args:
        name: a timm architecture, optionally with a pretrained tag (``resnet50.a1_in1k``).
        num_classes: number of outputs; a pretrained classifier of another size is dropped.
        in_chans: input channels; pretrained first-layer weights are adapted by timm.
        pretrained: load timm's published weights (from the Hugging Face cache).
        drop_rate: dropout before the classifier (so the features are post-dropout).
        weights: a local weight file; takes the place of timm's published weights and
            implies ``pretrained``.
        img_size: input size, for architectures built for one fixed size (ViT, Swin, ...;
            timm resamples their pretrained position embeddings). Ignored by the others,
            which take any size.

    Raises:
        UserError: unknown architecture, bad sizes, a missing or unloadable weight file,
            or published weights that are not cached while the hub cannot be used.
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

    if weights is not None and str(weights).strip():
        path = _check_weights_file(weights)
        overlay = dict(file=str(path), custom_load=path.suffix.lower() == ".npz")
        report = _LoadReport()
        try:
            with report:
                model = timm.create_model(
                    name, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs
                )
        except Exception as exc:  # corrupt file, wrong shapes, ...
            raise UserError(
                f"could not load weights file {path} into {name}: {_reason(exc)}"
            ) from None
        _check_loaded(model, report, path, name)
        return _wrap(model, name, kwargs, pretrained=True, weights=path)

    if pretrained:
        model = _create_pretrained(name, kwargs)
        return _wrap(model, name, kwargs, pretrained=True)

    try:
        model = timm.create_model(name, pretrained=False, **kwargs)
    except Exception as exc:
        raise UserError(f"could not create backbone {name}: {_reason(exc)}") from None
    return _wrap(model, name, kwargs, pretrained=False)


def _wrap(
    model: nn.Module,
    name: str,
    kwargs: dict[str, Any],
    *,
    pretrained: bool,
    weights: Path | None = None,
) -> Backbone:
    backbone = Backbone(model, name=name, pretrained=pretrained, weights=weights)
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


def _check_weights_file(weights: str | Path) -> Path:
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


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 400:
        text = text[:400] + " ..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


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
        value = tuple(float(v) for v in config.get(key) or ())
        if value and len(value) != in_chans:
            value = (sum(value) / len(value),) * in_chans
        config[key] = value
    return config


class _LoadReport(logging.Filter):
    """Collects the missing/unexpected keys timm reports while it loads pretrained weights.

    timm loads non-strictly whenever it drops a classifier of another size, so a file for
    another architecture would otherwise load "successfully" with nothing in it used. timm
    reports the keys only through its logger; this filter reads them there and keeps
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


# ------------------------------------------------------------------ timm's own weights


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def _hub_offline() -> bool:
    """Offline per the environment now, or per huggingface_hub as it was imported."""
    if _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE"):
        return True
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - timm depends on huggingface_hub
        return False
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def _hub_cache_dir() -> Path:
    """The Hugging Face hub cache, resolved from the environment at call time."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(os.environ["HUGGINGFACE_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    try:
        from huggingface_hub import constants

        return Path(constants.HF_HUB_CACHE)
    except ImportError:  # pragma: no cover
        xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        return Path(xdg) / "huggingface" / "hub"


def _hub_endpoint() -> str:
    endpoint = os.environ.get("HF_ENDPOINT")
    if not endpoint:
        try:
            from huggingface_hub import constants

            endpoint = constants.ENDPOINT
        except ImportError:  # pragma: no cover
            endpoint = "https://huggingface.co"
    return endpoint.rstrip("/")


def _cached_hub_file(cfg: Any, cache_dir: Path) -> Path | None:
    """The cached weight file timm would load for ``cfg``, if it is already downloaded."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return None
    repo, _, revision = str(cfg.hf_hub_id).partition("@")
    filename = cfg.hf_hub_filename
    if filename:
        candidates = [filename]
        if filename.endswith(".bin"):
            candidates.insert(0, filename[: -len(".bin")] + ".safetensors")
    else:  # timm's default: model.safetensors, falling back to pytorch_model.bin
        candidates = ["model.safetensors", "pytorch_model.bin"]
    for filename in candidates:
        try:
            found = try_to_load_from_cache(
                repo, filename, cache_dir=str(cache_dir), revision=revision or None
            )
        except Exception:  # an odd repo id or revision: treat as not cached
            found = None
        if isinstance(found, str) and os.path.isfile(found):
            return Path(found)
    return None


def _cached_url_file(url: str) -> Path | None:
    filename = os.path.basename(urllib.parse.urlparse(url).path)
    if not filename:
        return None
    path = Path(torch.hub.get_dir()) / "checkpoints" / filename
    return path if path.is_file() else None


def _unreachable(url: str) -> str | None:
    """Why ``url``'s host (or its proxy) cannot be reached in a few seconds; None if it can."""
    parts = urllib.parse.urlparse(url)
    host, scheme = parts.hostname, parts.scheme or "https"
    if not host:
        return f"the address {url!r} has no host"
    port = parts.port or (443 if scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(scheme) or urllib.request.getproxies().get("all")
    if proxy and not urllib.request.proxy_bypass(host):
        proxy_parts = urllib.parse.urlparse(proxy if "://" in proxy else f"http://{proxy}")
        if proxy_parts.hostname:
            host, port = proxy_parts.hostname, proxy_parts.port or 80
    try:
        with socket.create_connection((host, port), timeout=_PROBE_TIMEOUT):
            return None
    except OSError as exc:
        return f"{host}:{port} cannot be reached ({exc.strerror or exc})"


def _not_cached(name: str, where: str, why: str) -> UserError:
    return UserError(
        f"the pretrained weights for {name} are not in the local cache ({where}) and {why}. "
        "Provide them with --weights path/to/file.safetensors (or .pth), pre-download them "
        "once with network access into the Hugging Face cache (HF_HOME selects its location; "
        "e.g. python -c \"import timm; timm.create_model('" + name + "', pretrained=True)\"), "
        "or run with pretrained off (--pretrained false)"
    )


def _create_pretrained(name: str, kwargs: dict[str, Any]) -> nn.Module:
    """timm's published weights for ``name``, without hanging when the hub is unusable."""
    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except RuntimeError:  # a tag this architecture does not have
        tags = timm.list_pretrained(f"{name.split('.', 1)[0]}.*")
        hint = f"; available: {', '.join(tags[:10])}" if tags else ""
        raise UserError(f"{name} has no such pretrained weights{hint}") from None
    if cfg is None or not (cfg.hf_hub_id or cfg.url or cfg.file):
        raise UserError(
            f"timm publishes no pretrained weights for {name}; provide a file with "
            "--weights path/to/file.safetensors or run with pretrained off (--pretrained false)"
        )

    if cfg.file:  # a registered local file: timm reads it directly
        return _timm_pretrained(name, kwargs, None, None)

    offline = _hub_offline()
    if cfg.hf_hub_id:
        cache_dir = _hub_cache_dir()
        custom_hf = bool(cfg.hf_hub_filename) and cfg.custom_load == "hf"
        cached = None if custom_hf else _cached_hub_file(cfg, cache_dir)
        if cached is not None:  # load the cached file directly: no network at all
            overlay = dict(file=str(cached), custom_load=False)
            return _timm_pretrained(name, kwargs, overlay, None, source=cached)
        if offline:
            raise _not_cached(name, str(cache_dir), "HF_HUB_OFFLINE is set")
        problem = _unreachable(_hub_endpoint())
        if problem:
            raise _not_cached(
                name, str(cache_dir), f"the Hugging Face hub is unreachable: {problem}"
            )
        return _timm_pretrained(name, kwargs, None, cache_dir)

    # legacy weights published only as a URL (torch.hub cache)
    cached = _cached_url_file(cfg.url)
    if cached is not None and not cfg.custom_load:
        overlay = dict(file=str(cached), custom_load=False)
        return _timm_pretrained(name, kwargs, overlay, None, source=cached)
    where = str(Path(torch.hub.get_dir()) / "checkpoints")
    if offline:
        raise _not_cached(name, where, "HF_HUB_OFFLINE is set")
    problem = _unreachable(cfg.url)
    if problem:
        raise _not_cached(name, where, f"the download server is unreachable: {problem}")
    return _timm_pretrained(name, kwargs, None, None)


def _timm_pretrained(
    name: str,
    kwargs: dict[str, Any],
    overlay: dict[str, Any] | None,
    cache_dir: Path | None,
    source: Path | None = None,
) -> nn.Module:
    try:
        return timm.create_model(
            name,
            pretrained=True,
            pretrained_cfg_overlay=overlay,
            cache_dir=str(cache_dir) if cache_dir is not None else None,
            **kwargs,
        )
    except Exception as exc:
        where = f" from {source}" if source is not None else ""
        raise UserError(
            f"could not load the pretrained weights for {name}{where}: {_reason(exc)}. "
            "Provide them with --weights path/to/file.safetensors or run with pretrained off "
            "(--pretrained false)"
        ) from None
