"""Sweep throughput on one GPU against the number of runs at once (issue 32, item 3).

For each N of ``--jobs`` (1, 2, 4, 8 by default) it runs one seed of every method of a
reference sweep spec at a fixed number of steps (no early stopping, so every N does the
same work) with ``ssl-bench sweep --jobs N --device cuda --images-on-device true``; each
run then holds a 1/N share of the GPU's memory. It records the wall time, the aggregate
training steps per second and, from the steps the committed reference runs took
(``--reference``, their ``metrics.json``), the projected wall time of the whole sweep at
that N. ``sweep_throughput.json`` is rewritten after every N, so a cut-off lease keeps
what was measured; an N whose projected time exceeds what is left of ``--budget`` is
skipped. Example (on a GPU, with a data pack as the data)::

    python benchmarks/gpu_sweep_throughput.py --data-root isic-64px.sslpack --budget 420

``--dry-run`` runs the same commands on the CPU on the built-in digits data at a tiny
size: it checks this script, not a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tomli_w

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "results/isic2018-mini-reference-20pct/tuned-64px.toml"
REFERENCE = REPO / "results/isic2018-mini-reference-20pct-tuned-64px"
#: What a dry run changes: the built-in data, a tiny model and image, the CPU.
DRY_RUN = {"dataset": "digits", "data_root": None, "backbone": "test_resnet",
           "pretrained": False, "image_size": 16, "batch_size": 16, "labeled_batch_size": 4,
           "eval_batch_size": 600, "device": "cpu"}


def fixed_steps_spec(spec: Path, steps: int, seed: int, dry_run: bool) -> dict:
    """``spec`` with ``steps`` training steps and no early stopping, on seed ``seed``."""
    document = tomllib.loads(spec.read_text())
    run = document.setdefault("run", {})
    for key in ("labeled_epochs", "epochs", "patience"):
        run.pop(key, None)
    # random weights: the same arithmetic, and no weights to carry to the device
    run.update(iterations=steps, eval_every=steps, pretrained=False)
    if dry_run:
        run.update({k: v for k, v in DRY_RUN.items() if v is not None})
        run.pop("data_root", None)
    document["seeds"] = [seed]
    document.pop("tuned_by", None)
    document["reference"] = False  # a timing, not a result: its runs are thrown away
    return document


def reference_steps(folder: Path) -> int:
    """Training steps summed over the finished runs below ``folder`` (0 if none)."""
    return sum(json.loads(p.read_text()).get("steps", 0) for p in folder.rglob("metrics.json"))


def run_one(spec_file: Path, jobs: int, threads: int, results: Path, data_root: str | None,
            device: str, limit: float) -> dict:
    command = [sys.executable, "-m", "ssl_bench", "sweep", str(spec_file), "--jobs",
               str(jobs), "--threads", str(threads), "--results", str(results), "--name",
               f"jobs-{jobs}", "--device", device, "--images-on-device", "true",
               "--allow-uncommitted"]
    if data_root:
        command += ["--data-root", data_root]
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=limit,
                              cwd=REPO)
    except subprocess.TimeoutExpired:
        return {"jobs": jobs, "status": "timed out", "limit_s": round(limit, 1)}
    wall = time.perf_counter() - started
    runs = list((results / f"jobs-{jobs}").rglob("metrics.json"))
    steps = sum(json.loads(p.read_text())["steps"] for p in runs)
    return {"jobs": jobs, "status": "done" if done.returncode == 0 else "failed",
            "returncode": done.returncode, "runs": len(runs), "steps": steps,
            "wall_s": round(wall, 2), "steps_per_s": round(steps / wall, 2) if wall else None,
            "stderr_tail": done.stderr[-1500:] if done.returncode else ""}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=SPEC, help="reference sweep spec")
    parser.add_argument("--reference", type=Path, default=REFERENCE,
                        help="its committed runs (for the projected whole-sweep time)")
    parser.add_argument("--reference-steps", type=int,
                        help="their summed steps, when the runs are not carried along")
    parser.add_argument("--data-root", help="data folder or pack (default: the spec's)")
    parser.add_argument("--jobs", default="1,2,4,8", help="comma-separated N")
    parser.add_argument("--steps", type=int, default=200, help="training steps per run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=0, help="seconds for all N (0: none)")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")))
    parser.add_argument("--dry-run", action="store_true", help="tiny, on the CPU")
    args = parser.parse_args(argv)
    jobs_list = [int(n) for n in args.jobs.split(",")]
    steps = 4 if args.dry_run else args.steps
    device = "cpu" if args.dry_run else "cuda"
    cores = os.cpu_count() or 1
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"spec": str(args.spec), "steps_per_run": steps, "device": device,
              "cpu_cores": cores,
              "reference_steps": args.reference_steps or reference_steps(args.reference),
              "results": []}
    if not args.dry_run:
        import torch
        report["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        spec_file = Path(scratch, "spec.toml")
        spec_file.write_text(tomli_w.dumps(fixed_steps_spec(args.spec, steps, args.seed,
                                                            args.dry_run)))
        last = None
        for jobs in jobs_list:
            left = args.budget - (time.perf_counter() - started) if args.budget else 3600.0
            if last is not None and last["status"] == "done" and last["wall_s"] * 1.2 > left:
                report["results"].append({"jobs": jobs, "status": "skipped: budget"})
                continue
            last = run_one(spec_file, jobs, max(1, cores // jobs), Path(scratch, "runs"),
                           None if args.dry_run else args.data_root, device, max(left, 1))
            if last.get("steps_per_s") and report["reference_steps"]:
                last["projected_sweep_s"] = round(
                    report["reference_steps"] / last["steps_per_s"], 1)
            report["results"].append(last)
            (args.out / "sweep_throughput.json").write_text(json.dumps(report, indent=2))
            print(json.dumps(last), flush=True)
    return 0 if all(r["status"] in ("done", "skipped: budget") for r in report["results"]) \
        else 1


if __name__ == "__main__":
    raise SystemExit(main())
