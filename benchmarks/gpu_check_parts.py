"""The Python half of ``benchmarks/gpu_check.sh``: the environment, the CUDA-vs-CPU steps
and the one JSON file that gathers every stage's figures.

    python benchmarks/gpu_check_parts.py environment WORK/environment.json
    python benchmarks/gpu_check_parts.py numerics WORK/numerics.json --device cuda
    python benchmarks/gpu_check_parts.py collect WORK OUT/gpu_check.json
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import platform
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

#: No random augmentation or dropout: CPU and CUDA draw different random numbers, so only
#: with these off can their steps be compared (as in tests/test_cuda.py).
NO_RANDOMNESS = dict(rotation=0.0, translate=0.0, hflip=False, noise_std=0.0, drop_rate=0.0)
#: The methods whose steps are compared across devices (no strong augmentation).
NUMERICS_METHODS = ("supervised", "mt", "srcmt")
#: bf16 tolerance of a loss after a few steps, relative (and absolute for tiny terms).
REL_TOLERANCE, ABS_TOLERANCE = 5e-2, 5e-3


def environment(path: Path) -> None:
    import torch

    info: dict[str, Any] = {
        "python": platform.python_version(), "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(), "torch_cuda": torch.version.cuda,
        "platform": platform.platform(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(device=props.name, memory_gib=round(props.total_memory / 2**30, 1),
                    capability=f"{props.major}.{props.minor}",
                    bf16=torch.cuda.is_bf16_supported())
        try:
            info["nvidia_smi"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,driver_version,clocks.max.sm,power.limit",
                 "--format=csv,noheader"], capture_output=True, text=True,
                timeout=20).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    path.write_text(json.dumps(info, indent=2))


def numerics(path: Path, device: str, methods: tuple[str, ...] = NUMERICS_METHODS,
             steps: int = 3) -> None:
    """The same steps (same batches, no randomness) on ``device`` and on the CPU."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from ssl_bench.training.contract import check_config
    from ssl_bench.training.prepare import prepare
    from ssl_bench.training.trainer import Trainer

    report: dict[str, Any] = {"device": device, "steps": steps,
                              "tolerance": {"relative": REL_TOLERANCE,
                                            "absolute": ABS_TOLERANCE}, "methods": {}}
    for method in methods:
        losses = {}
        for where in ("cpu", device):
            trainer = Trainer(prepare(check_config(method=method, dataset="digits",
                                                   device=where, **NO_RANDOMNESS), quiet=True))
            losses[where] = [{k: float(v) for k, v in trainer.train_step().items()}
                             for _ in range(steps)]
        worst, within = 0.0, True
        for cpu, other in zip(losses["cpu"], losses[device], strict=True):
            for name, value in cpu.items():
                difference = abs(other[name] - value)
                worst = max(worst, difference / max(abs(value), 1e-12))
                within &= math.isclose(value, other[name], rel_tol=REL_TOLERANCE,
                                       abs_tol=ABS_TOLERANCE)
        report["methods"][method] = {"cpu": losses["cpu"], device: losses[device],
                                     "max_relative_difference": worst, "within": within}
    report["ok"] = all(m["within"] for m in report["methods"].values())
    path.write_text(json.dumps(report, indent=2))


def _tests(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {"status": "missing"}
    root = ElementTree.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert suite is not None
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    failed = [f"{case.get('classname')}::{case.get('name')}" for case in suite.iter("testcase")
              if case.find("failure") is not None or case.find("error") is not None]
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    status = "failed" if failed or not counts["tests"] else "ok" if passed else "skipped"
    return {**counts, "passed": passed, "failed": failed, "status": status}


def _speed(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {"status": "missing"}
    record = json.loads(path.read_text())
    methods = {name: {"ms_per_step": round(m["ms_per_step"], 2),
                      "images_per_s": round(m["images_per_s"], 1),
                      "ratio_to_supervised": round(m["ratio_to_supervised"], 3)}
               for name, m in record["methods"].items()}
    return {"status": "ok", "setup": record["setup"], "methods": methods,
            "evaluation_ms_per_image": record.get("evaluation_ms_per_image")}


def _run(folder: Path) -> dict[str, Any]:
    """A one-epoch run: did its supervised loss fall, are its metrics finite?"""
    if not (folder / "metrics.json").is_file():
        return {"status": "failed" if folder.exists() else "missing"}
    metrics = json.loads((folder / "metrics.json").read_text())
    with open(folder / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    if len(rows) < 2:
        return {"status": "failed", "note": "one evaluation interval in history.csv: "
                "cannot tell whether the loss fell (evaluate more often)"}
    first, last = float(rows[0]["loss_supervised"]), float(rows[-1]["loss_supervised"])
    reported = metrics.get("reported", metrics.get("best", {}))
    values = [metrics["student"][part]["auc"] for part in ("val", "test")]
    finite = all(v is not None and math.isfinite(v) for v in values)
    return {"status": "ok" if finite and last < first else "failed",
            "loss_supervised_first_interval": first, "loss_supervised_last_interval": last,
            "loss_fell": last < first, "metrics_finite": finite,
            "student_val_auc": values[0], "student_test_auc": values[1],
            "reported_model": reported.get("model"), "steps": metrics["steps"],
            "train_seconds": metrics["train_seconds"],
            "loss_columns": [k for k in rows[-1] if k.startswith("loss_")]}


def collect(work: Path, output: Path, partial: bool = False) -> None:
    """Every stage's figures in one JSON file; ``ok`` only if no stage failed, and
    ``complete`` only when every stage ran (not ``partial``, none "not run" for --only or
    --budget)."""
    stages: dict[str, dict[str, Any]] = {}
    if (work / "stages.tsv").is_file():  # name, status (ok/failed/skipped/not run), seconds, note
        for line in (work / "stages.tsv").read_text().splitlines():
            name, status, seconds, note = (line.split("\t") + ["", "", ""])[:4]
            stages[name] = {"status": status, "seconds": int(seconds or 0),
                            **({"note": note} if note else {})}
    result: dict[str, Any] = {
        "environment": json.loads((work / "environment.json").read_text())
        if (work / "environment.json").is_file() else {},
        "stages": stages,
        "cuda_tests": _tests(work / "cuda_tests.xml"),
        "speed_eager": _speed(work / "speed_eager.json"),
        "speed_compile": _speed(work / "speed_compile.json"),
        "paper_runs": {run.name: _run(run) for run in sorted((work / "runs").glob("*"))}
        if (work / "runs").is_dir() else {},
        "numerics": json.loads((work / "numerics.json").read_text())
        if (work / "numerics.json").is_file() else {"status": "missing"},
        "compile_repro": json.loads((work / "compile_repro.json").read_text())
        if (work / "compile_repro.json").is_file() else {"status": "missing"},
        "sweep_throughput": json.loads((work / "sweep_throughput.json").read_text())
        if (work / "sweep_throughput.json").is_file() else {"status": "missing"},
    }
    eager, compiled = result["speed_eager"], result["speed_compile"]
    if eager.get("status") == "ok" and compiled.get("status") == "ok":
        result["compile_speedup"] = {
            name: round(eager["methods"][name]["ms_per_step"] / m["ms_per_step"], 3)
            for name, m in compiled["methods"].items() if name in eager["methods"]}
    failed = [name for name, stage in stages.items() if stage.get("status") == "failed"]
    failed += [f"paper run {n}" for n, r in result["paper_runs"].items()
               if r["status"] != "ok"]
    tests = result["cuda_tests"]
    if tests.get("status") == "failed" or (result["environment"].get("cuda_available")
                                           and tests.get("skipped")):
        failed.append("cuda tests")  # (a CUDA test skipped on a GPU did not run)
    if result["numerics"].get("ok") is False:
        failed.append("numerics")
    result["failed"] = failed
    result["ok"] = not failed
    result["complete"] = not partial and all(
        stage["status"] != "not run" for stage in stages.values())
    output.write_text(json.dumps(result, indent=2))
    verdict = "all stages passed" if not failed else "FAILED: " + ", ".join(failed)
    if not result["complete"]:
        verdict += " (incomplete: " + ("still running" if partial else "--budget or --only") + ")"
    print(f"wrote {output}: {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("environment").add_argument("output", type=Path)
    part = sub.add_parser("numerics")
    part.add_argument("output", type=Path)
    part.add_argument("--device", default="cuda")
    part.add_argument("--methods", default=",".join(NUMERICS_METHODS))
    part = sub.add_parser("collect")
    part.add_argument("work", type=Path)
    part.add_argument("output", type=Path)
    part.add_argument("--partial", action="store_true",
                      help="written between stages: the check has not finished")
    args = parser.parse_args()
    if args.command == "environment":
        environment(args.output)
    elif args.command == "numerics":
        numerics(args.output, args.device, tuple(args.methods.split(",")))
    else:
        collect(args.work, args.output, args.partial)


if __name__ == "__main__":
    main()
