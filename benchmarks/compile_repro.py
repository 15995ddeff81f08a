"""Where do compiled and eager outputs part? A grid for the ``--compile`` mismatch on CUDA
(issue 32, item 1).

The GPU check of 2026-11-27 found the compiled student's features exactly 4.0x the eager
ones on an H100 (test_resnet at 16 px: a 2 x 2 map before global average pooling), and no
difference on the CPU. A factor of 4 = 2 x 2 points at the pooling reduction summing
instead of averaging, so this script compiles the pieces one at a time and reports, for
every case, the ratio of mean absolute outputs (compiled / eager), the largest
difference, and whether they agree within the dtype's tolerance:

* ops: ``x.mean((2, 3))``, ``F.adaptive_avg_pool2d(x, 1)``, timm's
  ``SelectAdaptivePool2d`` (the backbones' head), on ``[B, C, s, s]`` for s = 1, 2, 4, 7;
* memory format (contiguous, channels-last), dtype (fp32, bf16), compile mode
  (``default``, ``reduce-overhead`` = CUDA graphs);
* whole backbones (``forward_features`` alone, then the pooled head), eval mode.

It writes ``compile_repro.json`` (every case, and the failing ones first) and always exits
0: it is a diagnosis, not a test. ``--dry-run`` runs a few cases on the CPU.
Example: ``python benchmarks/compile_repro.py --out DIR``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

TOLERANCE = {torch.float32: (1e-3, 1e-4), torch.bfloat16: (2e-2, 2e-2)}
FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def _ops() -> dict:
    from timm.layers import SelectAdaptivePool2d

    pool = SelectAdaptivePool2d(pool_type="avg", flatten=True)
    return {"mean": lambda x: x.mean((2, 3)),
            "adaptive_avg_pool2d": lambda x: F.adaptive_avg_pool2d(x, 1).flatten(1),
            "timm_pool": pool}


def compare(fn, x: torch.Tensor, mode: str) -> dict:
    """Eager against compiled ``fn(x)``: ratio of mean |outputs|, max |difference|."""
    torch._dynamo.reset()  # each case compiles afresh
    with torch.no_grad():
        eager = fn(x).float()
        started = time.perf_counter()
        compiled = torch.compile(fn, mode=mode)(x).float()
        seconds = time.perf_counter() - started
    rtol, atol = TOLERANCE[x.dtype]
    return {"ratio": float(compiled.abs().mean() / eager.abs().mean().clamp_min(1e-12)),
            "max_abs_diff": float((compiled - eager).abs().max()),
            "agree": bool(torch.allclose(compiled, eager, rtol=rtol, atol=atol)),
            "compile_s": round(seconds, 2)}


def op_cases(device: torch.device, dry_run: bool) -> list[dict]:
    ops = {"mean": _ops()["mean"]} if dry_run else _ops()
    sizes = (2,) if dry_run else (1, 2, 4, 7)
    dtypes = (torch.float32,) if dry_run else (torch.float32, torch.bfloat16)
    modes = ("default",) if dry_run or device.type != "cuda" else ("default",
                                                                     "reduce-overhead")
    out = []
    for (name, fn), size, fmt, dtype, mode in itertools.product(
            ops.items(), sizes, FORMATS, dtypes, modes):
        generator = torch.Generator().manual_seed(0)
        x = torch.rand(4, 32, size, size, generator=generator).to(device, dtype)
        x = x.contiguous(memory_format=FORMATS[fmt])
        out.append({"case": "op", "op": name, "spatial": size, "format": fmt,
                    "dtype": str(dtype).removeprefix("torch."), "mode": mode,
                    **compare(fn, x, mode)})
    return out


def backbone_cases(device: torch.device, dry_run: bool) -> list[dict]:
    from ssl_bench.models.backbones import create_backbone

    models = [("test_resnet", 16)] if dry_run else [("test_resnet", 16), ("resnet10t", 32),
                                                    ("densenet121", 64)]
    out = []
    for (name, size), fmt in itertools.product(models, FORMATS):
        model = create_backbone(name, num_classes=7, pretrained=False).to(device).eval()
        model = model.to(memory_format=FORMATS[fmt])
        x = torch.rand(4, 3, size, size, generator=torch.Generator().manual_seed(0))
        x = x.to(device).contiguous(memory_format=FORMATS[fmt])
        parts = {"forward_features": lambda t, m=model: m.model.forward_features(t),
                 "features (pooled head)": lambda t, m=model: m(t)[0],
                 "logits": lambda t, m=model: m(t)[1]}
        if dry_run:
            parts = {"features (pooled head)": parts["features (pooled head)"]}
        for part, fn in parts.items():
            out.append({"case": "backbone", "model": name, "image_size": size,
                        "format": fmt, "part": part, "dtype": "float32", "mode": "default",
                        **compare(fn, x, "default")})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")))
    parser.add_argument("--dry-run", action="store_true", help="a few cases on the CPU")
    args = parser.parse_args(argv)
    device = torch.device("cpu" if args.dry_run else args.device)
    report = {"device": str(device), "torch": torch.__version__,
              "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}
    args.out.mkdir(parents=True, exist_ok=True)
    cases: list[dict] = []
    for make in (op_cases, backbone_cases):
        try:
            cases += make(device, args.dry_run)
        except Exception as exc:  # a diagnosis reports what broke and goes on
            cases.append({"case": make.__name__, "error": f"{type(exc).__name__}: {exc}"})
        report["failing"] = [c for c in cases if not c.get("agree", False)]
        report["cases"] = cases
        (args.out / "compile_repro.json").write_text(json.dumps(report, indent=2))
    for case in report["failing"]:
        print(json.dumps(case))
    print(f"{len(cases)} cases, {len(report['failing'])} disagree "
          f"-> {args.out / 'compile_repro.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
