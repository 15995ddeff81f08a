"""``ssl-bench export RUN --format onnx|torchscript``: a run's model as one file, its
preprocessing recorded beside it, checked against eager torch before it is written.

The exported module maps a normalised ``float32 [N, C, H, W]`` batch (the batch size is
free) to class probabilities: softmax over the classes, or one sigmoid per finding for a
multi-label run (:func:`~ssl_bench.inference.model.probabilities`, as ``predict`` and the
run's evaluation compute them). Decoding, resizing and normalising stay outside the
model; ``<output>.json`` says exactly how (:func:`sidecar`).

ONNX goes through ``torch.onnx.export(..., dynamo=True)``, the ``torch.export``-based
exporter: PyTorch's default since 2.9 (the TorchScript-based one is deprecated and due to
be removed), with the batch dimension declared dynamic. It runs offline and needs the
``onnx`` and ``onnxscript`` packages; onnxruntime checks the result (``pip install
'ssl-bench[export]'`` installs all three). The graph is built in memory and written as one
self-contained file (no external ``.data`` file; fine below ONNX's 2 GB limit).
TorchScript is ``torch.jit.trace`` (timm models trace, few script), itself deprecated by
PyTorch in favour of ``torch.export`` but still loadable by ``torch.jit.load`` and
LibTorch.

Both are checked on a batch of 1 and a batch of 3 images put through the run's own
preprocessing: the largest absolute difference from eager torch is recorded in the
sidecar, and above :data:`TOLERANCE` nothing is written.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import io
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ssl_bench.core.atomic import atomic_write_bytes, atomic_write_json
from ssl_bench.core.errors import UserError
from ssl_bench.inference.model import RESIZE, Predictor, probabilities

__all__ = ["FORMATS", "TOLERANCE", "ProbabilityModel", "check_batch", "export_model", "sidecar",
           "sidecar_path"]

#: Format -> the default output file.
FORMATS = {"onnx": "model.onnx", "torchscript": "model.pt"}
#: The largest absolute difference of probabilities from eager torch that is accepted.
TOLERANCE = 1e-4
DEFAULT_OPSET = 18
INPUT, OUTPUT = "images", "probabilities"
#: The batch sizes the check runs (the export itself traces a batch of 2).
CHECK_BATCHES = (1, 3)
ONNX_PACKAGES = ("onnxruntime", "onnx", "onnxscript")


class ProbabilityModel(nn.Module):
    """The run's network followed by its activation: normalised batch -> probabilities."""

    def __init__(self, network: nn.Module, multilabel: bool) -> None:
        super().__init__()
        self.network = network
        self.multilabel = multilabel

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        _, logits = self.network(images)
        return probabilities(logits, self.multilabel)


def check_batch(predictor: Predictor, size: int, seed: int = 0) -> torch.Tensor:
    """``size`` seeded random uint8 images through the run's preprocessing."""
    import numpy as np

    rng = np.random.default_rng(seed)
    shape = (predictor.image_size, predictor.image_size, predictor.channels)
    return predictor.transform([rng.integers(0, 256, shape, dtype=np.uint8)
                                for _ in range(size)])


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _require_onnx() -> None:
    missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(f"--format onnx needs {', '.join(missing)}: pip install "
                        "'ssl-bench[export]'")


def _onnx_bytes(module: ProbabilityModel, example: torch.Tensor, opset: int) -> bytes:
    batch = torch.export.Dim("batch")
    try:
        program = torch.onnx.export(module, (example,), dynamo=True, verbose=False,
                                    external_data=False, opset_version=opset,
                                    input_names=[INPUT], output_names=[OUTPUT],
                                    dynamic_shapes={"images": {0: batch}})
    except Exception as exc:  # an operator the exporter cannot translate, a bad opset, ...
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise UserError(f"the ONNX export failed ({reason}); try --format torchscript") from exc
    return program.model_proto.SerializeToString()


def _onnx_run(data: bytes) -> Any:
    import onnxruntime

    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    return lambda batch: torch.from_numpy(session.run([OUTPUT], {INPUT: batch.numpy()})[0])


def _torchscript_bytes(module: ProbabilityModel, example: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`torch.jit", category=FutureWarning)
        traced = torch.jit.trace(module, example, check_trace=False)
        torch.jit.save(traced, buffer)
    return buffer.getvalue()


def _torchscript_run(data: bytes) -> Any:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`torch.jit", category=FutureWarning)
        loaded = torch.jit.load(io.BytesIO(data), map_location="cpu")
    return loaded


def export_model(predictor: Predictor, fmt: str, output: str | Path | None = None,
                 opset: int = DEFAULT_OPSET) -> tuple[Path, dict[str, Any]]:
    """Export ``predictor``'s network as ``fmt`` to ``output`` (default :data:`FORMATS`'s
    name), check it against eager torch, write ``<output>.json``; return both."""
    if fmt not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "onnx":
        _require_onnx()
    path = Path(output if output is not None else FORMATS[fmt])
    if path.is_dir():
        raise UserError(f"--output {path} is a folder; give the file to write")
    predictor.to("cpu")
    module = ProbabilityModel(predictor.network, predictor.multilabel).eval()
    example = check_batch(predictor, 2, seed=1)
    with torch.no_grad():
        if fmt == "onnx":
            data = _onnx_bytes(module, example, opset)
            run = _onnx_run(data)
        else:
            data = _torchscript_bytes(module, example)
            run = _torchscript_run(data)
        difference = 0.0
        for size in CHECK_BATCHES:
            batch = check_batch(predictor, size)
            got = run(batch)
            expected = module(batch)
            if tuple(got.shape) != tuple(expected.shape):
                raise UserError(f"the exported {fmt} model gave shape {list(got.shape)} for a "
                                f"batch of {size}, torch {list(expected.shape)}; nothing "
                                "written")
            difference = max(difference, float((got - expected).abs().max()))
    if not difference <= TOLERANCE:
        raise UserError(f"the exported {fmt} model differs from torch by {difference:.3g} "
                        f"(more than {TOLERANCE:g}); nothing written")
    record = sidecar(predictor, fmt, path, opset if fmt == "onnx" else None, difference)
    atomic_write_bytes(path, data)
    atomic_write_json(sidecar_path(path), record)
    return path, record


def sidecar_path(path: str | Path) -> Path:
    """Where the preprocessing of the model exported to ``path`` is recorded."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def sidecar(predictor: Predictor, fmt: str, path: Path, opset: int | None,
            difference: float) -> dict[str, Any]:
    """What it takes to use the exported model: its input and output, the preprocessing
    that makes its input, the classes, where it comes from and how it was checked."""
    size, channels = predictor.image_size, predictor.channels
    mode = "RGB" if channels == 3 else "L"
    runtime = ("onnxruntime", _version("onnxruntime")) if fmt == "onnx" else (
        "torch.jit.load", torch.__version__)
    return {
        "format": fmt,
        "file": path.name,
        "input": {"name": INPUT, "shape": ["batch", channels, size, size],
                  "dtype": "float32", "layout": "NCHW"},
        "output": {"name": OUTPUT, "shape": ["batch", len(predictor.classes)],
                   "dtype": "float32", "activation": predictor.activation},
        "classes": list(predictor.classes),
        "multilabel": predictor.multilabel,
        "activation": predictor.activation,
        "preprocessing": {
            "image_size": size, "channels": channels,
            "decode": f"PIL, converted to {mode}; a JPEG decoded at a reduced scale first "
                      f"(Image.draft('{mode}', ({size}, {size})): the smallest 1/2, 1/4 or "
                      f"1/8 scale still at least {size}x{size}), as the run's image cache",
            "color": mode,
            "resize": f"{RESIZE} (PIL, antialiased), straight to {size}x{size} (no crop; "
                      "aspect ratio not kept)",
            "scale": "pixel / 255, to [0, 1]",
            "mean": [float(v) for v in predictor.mean],
            "std": [float(v) for v in predictor.std],
            "normalise": "(x - mean) / std, per channel",
        },
        "run": {"folder": str(predictor.run) if predictor.run is not None else None,
                "method": predictor.method, "backbone": predictor.backbone,
                "model": predictor.model, "step": predictor.step},
        "exporter": ("torch.onnx.export (dynamo=True)" if fmt == "onnx"
                     else "torch.jit.trace"),
        "opset": opset,
        "versions": {"ssl-bench": _version("ssl-bench"), "torch": torch.__version__,
                     **({"onnx": _version("onnx"), "onnxscript": _version("onnxscript")}
                        if fmt == "onnx" else {})},
        "check": {"against": "eager torch on CPU", "runtime": f"{runtime[0]} {runtime[1]}",
                  "batch_sizes": list(CHECK_BATCHES),
                  "inputs": "seeded random uint8 images through the preprocessing above",
                  "max_abs_difference": difference, "tolerance": TOLERANCE},
    }
