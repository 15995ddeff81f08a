"""The ``hub`` source: timm's published weights, from the local cache when possible.

Weights on the Hugging Face hub are looked up in the local hub cache first, legacy
URL-only weights in torch.hub's cache. Only when they are not cached, the hub is not
offline (``HF_HUB_OFFLINE``) and its host answers within seconds does timm download
them; otherwise a :class:`UserError` says how to provide them, instead of minutes of
retries.
"""

from __future__ import annotations

import os
import socket
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from ssl_bench.core.errors import UserError
from ssl_bench.models.weights._common import arch_and_tag, reason

__all__ = ["cached_weights", "create_from_hub", "hub_offline", "pretrained_cfg"]

#: Seconds allowed for the reachability check before a download is attempted.
_PROBE_TIMEOUT = 3.0

_TRUE = {"1", "on", "yes", "true", "y", "t"}


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def hub_offline() -> bool:
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


def pretrained_cfg(name: str) -> Any:
    """timm's pretrained config for ``name`` (its default tag when it has none), or None.

    Raises:
        UserError: ``name`` has a tag its architecture does not publish.
    """
    try:
        return timm.models.get_pretrained_cfg(name)
    except RuntimeError:  # a tag this architecture does not have
        tags = timm.list_pretrained(f"{arch_and_tag(name)[0]}.*")
        hint = f"; available: {', '.join(tags[:10])}" if tags else ""
        raise UserError(f"{name} has no such pretrained weights{hint}") from None


def cached_weights(name: str) -> Path | None:
    """The locally cached file of timm's weights for ``name``; no network, no model built."""
    try:
        cfg = pretrained_cfg(name)
    except UserError:
        return None
    if cfg is None:
        return None
    if cfg.file:
        return Path(cfg.file) if Path(cfg.file).is_file() else None
    if cfg.hf_hub_id:
        return _cached_hub_file(cfg, _hub_cache_dir())
    return _cached_url_file(cfg.url) if cfg.url else None


def create_from_hub(name: str, kwargs: dict[str, Any]) -> tuple[nn.Module, str]:
    """timm's published weights for ``name`` and where they were read from.

    Never hangs when the hub is unusable: cached files are loaded directly, and without
    them a download is only tried when the hub is online and reachable.
    """
    cfg = pretrained_cfg(name)
    if cfg is None or not (cfg.hf_hub_id or cfg.url or cfg.file):
        raise UserError(
            f"timm publishes no pretrained weights for {name}; provide a file with "
            "--weights path/to/file.safetensors or run with pretrained off (--pretrained false)"
        )

    if cfg.file:  # a registered local file: timm reads it directly
        return _timm_pretrained(name, kwargs, None, None), str(cfg.file)

    offline = hub_offline()
    if cfg.hf_hub_id:
        cache_dir = _hub_cache_dir()
        custom_hf = bool(cfg.hf_hub_filename) and cfg.custom_load == "hf"
        cached = None if custom_hf else _cached_hub_file(cfg, cache_dir)
        if cached is not None:  # load the cached file directly: no network at all
            overlay = dict(file=str(cached), custom_load=False)
            return _timm_pretrained(name, kwargs, overlay, None, source=cached), str(cached)
        if offline:
            raise _not_cached(name, str(cache_dir), "HF_HUB_OFFLINE is set")
        problem = _unreachable(_hub_endpoint())
        if problem:
            raise _not_cached(
                name, str(cache_dir), f"the Hugging Face hub is unreachable: {problem}"
            )
        model = _timm_pretrained(name, kwargs, None, cache_dir)
        found = None if custom_hf else _cached_hub_file(cfg, cache_dir)
        return model, str(found or cfg.hf_hub_id)

    # legacy weights published only as a URL (torch.hub cache)
    cached = _cached_url_file(cfg.url)
    if cached is not None and not cfg.custom_load:
        overlay = dict(file=str(cached), custom_load=False)
        return _timm_pretrained(name, kwargs, overlay, None, source=cached), str(cached)
    where = str(Path(torch.hub.get_dir()) / "checkpoints")
    if offline:
        raise _not_cached(name, where, "HF_HUB_OFFLINE is set")
    problem = _unreachable(cfg.url)
    if problem:
        raise _not_cached(name, where, f"the download server is unreachable: {problem}")
    model = _timm_pretrained(name, kwargs, None, None)
    return model, str(_cached_url_file(cfg.url) or cfg.url)


def ensure_downloadable(name: str) -> None:
    """Raise now the :class:`UserError` :func:`create_from_hub` would raise for ``name``.

    Checks only (no model, no download), so a run can fail before minutes of image
    decoding: weights must be published, and cached or the hub online and reachable.
    """
    cfg = pretrained_cfg(name)
    if cfg is None or not (cfg.hf_hub_id or cfg.url or cfg.file):
        raise UserError(
            f"timm publishes no pretrained weights for {name}; provide a file with "
            "--weights path/to/file.safetensors or run with pretrained off (--pretrained false)"
        )
    if cfg.file or cached_weights(name) is not None:
        return
    where = (str(_hub_cache_dir()) if cfg.hf_hub_id
             else str(Path(torch.hub.get_dir()) / "checkpoints"))
    if hub_offline():
        raise _not_cached(name, where, "HF_HUB_OFFLINE is set")
    problem = _unreachable(_hub_endpoint() if cfg.hf_hub_id else cfg.url)
    if problem:
        server = "the Hugging Face hub" if cfg.hf_hub_id else "the download server"
        raise _not_cached(name, where, f"{server} is unreachable: {problem}")


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
            f"could not load the pretrained weights for {name}{where}: {reason(exc)}. "
            "Provide them with --weights path/to/file.safetensors or run with pretrained off "
            "(--pretrained false)"
        ) from None
