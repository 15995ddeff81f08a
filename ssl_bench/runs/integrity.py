"""Self-checking checkpoints: a damaged ``checkpoint.pt``/``best.pt`` is refused, not used.

torch's zip format does not stop a file whose tensor bytes were overwritten from loading
(a garbled checkpoint resumed into NaN and blamed the learning rate). Every checkpoint
ssl-bench writes is a dict carrying ``"integrity"``: a 128-bit xxh3 digest of its own
content (every tensor's dtype, shape and bytes; every other value's type and repr), taken
before saving and checked after loading. The file stays an ordinary ``torch.load``-able
dict. xxh3 runs at memory speed (~10 GB/s); ``benchmarks/integrity_cost.py`` measures it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ssl_bench.core.errors import UserError

KEY = "integrity"
ALGORITHM = "xxh3_128 over every tensor's dtype, shape and bytes and every value's repr"


def _feed(digest: Any, value: Any) -> None:
    import numpy as np
    import torch

    if isinstance(value, torch.Tensor):
        # clone: a one-element tensor with a non-unit stride counts as contiguous, but
        # viewing its bytes needs stride 1 (e.g. a buffer made by ``x[:, 0].clone()``)
        tensor = value.detach().cpu().reshape(-1).clone(memory_format=torch.contiguous_format)
        digest.update(f"T{tensor.dtype}{tuple(value.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().data)
    elif isinstance(value, np.ndarray):
        array = np.ascontiguousarray(value)
        digest.update(f"A{array.dtype.str}{array.shape}".encode())
        if array.dtype.hasobject:
            _feed(digest, array.tolist())
        else:
            digest.update(array.view(np.uint8).data if array.size else b"")
    elif isinstance(value, dict):
        digest.update(f"D{len(value)}".encode())
        for key, item in value.items():
            _feed(digest, key)
            _feed(digest, item)
    elif isinstance(value, (list, tuple)):
        digest.update(f"{type(value).__name__[0]}{len(value)}".encode())
        for item in value:
            _feed(digest, item)
    else:
        digest.update(f"{type(value).__name__}:{value!r};".encode())


def content_digest(state: dict[str, Any]) -> str:
    """The xxh3-128 digest (hex) of a checkpoint dict's content, its own record excluded."""
    import xxhash

    digest = xxhash.xxh3_128()
    _feed(digest, {k: v for k, v in state.items() if k != KEY})
    return digest.hexdigest()


def with_digest(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` plus its ``"integrity"`` record (a new dict; ``state`` is not changed)."""
    return {**state, KEY: {"algorithm": ALGORITHM, "digest": content_digest(state)}}


def load_verified(path: str | Path, map_location: Any = "cpu",
                  way_out: str = "pass --overwrite to start again") -> dict[str, Any]:
    """Load a checkpoint written with :func:`with_digest`; raise if it is damaged.

    The error is one line naming the file, what is wrong and ``way_out``.
    """
    import torch

    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # truncated zip, garbled pickle, ...
        raise UserError(f"{path} is damaged and cannot be loaded ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}); "
                        f"{way_out}") from None
    if not isinstance(state, dict) or not isinstance(state.get(KEY), dict):
        raise UserError(f"{path} has no integrity record (not written by this ssl-bench "
                        f"version, or damaged); {way_out}")
    stored = state.pop(KEY).get("digest")
    if content_digest(state) != stored:
        raise UserError(f"{path} is damaged: its content does not match the checksum stored "
                        f"when it was written; {way_out}")
    return state
