"""Step time with 1, 2, ... torch threads, on an idle machine and beside other jobs.

Issue 15 found a step 2.5x slower with torch's default threads than with one thread on a
busy 2-core machine. This measures it: for each load level (how many competing CPU-bound
processes run beside the training, each a one-thread matrix-multiply loop standing in
for another user's job) and each thread count, a fresh process (so the inter-op pool
takes the count too) builds one trainer and reports the median ms per step. Rounds cycle
through the thread counts so a slow minute is charged to all of them alike.

    python benchmarks/threads.py                              # srcmt, CPU protocol
    python benchmarks/threads.py --threads 1,2 --loads 0,2 --json threads.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _burn(stop: mp.synchronize.Event) -> None:
    """One competing job: a one-thread float matrix-multiply loop until told to stop."""
    import torch

    torch.set_num_threads(1)
    a = torch.randn(256, 256)
    while not stop.is_set():
        a = torch.tanh(a @ a)


def _measure(args: argparse.Namespace, threads: int) -> float:
    """Median ms per step of one method in a fresh process with ``threads`` threads."""
    code = f"""
import statistics, time, torch
from ssl_bench.config.resolve import resolve_config
from ssl_bench.training.trainer import Trainer
from ssl_bench.training.prepare import prepare
from ssl_bench.core.threads import set_threads
set_threads({threads})
config = resolve_config({{}}, dict(dataset={args.dataset!r}, data_root={args.data_root!r},
    method={args.method!r}, backbone={args.backbone!r}, image_size={args.size},
    pretrained={args.pretrained}, batch_size=48, labeled_batch_size=12, labeled=0.2,
    iterations=10_000, device='cpu', threads={threads}))
trainer = Trainer(prepare(config, quiet=True))
for _ in range({args.warmup}):
    trainer.train_step()
times = []
for _ in range({args.steps}):
    start = time.perf_counter(); trainer.train_step(); times.append(time.perf_counter() - start)
print(1000 * statistics.median(times))
"""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, check=False)
    if done.returncode:
        sys.exit(f"threads.py: measurement with {threads} threads failed:\n{done.stderr}")
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="isic")
    parser.add_argument("--data-root", default=str(SHARED / "isic2018-mini"))
    parser.add_argument("--method", default="srcmt")
    parser.add_argument("--backbone", default="resnet10t")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--pretrained", action="store_true")
    parser.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    parser.add_argument("--loads", default="0,2",
                        help="competing one-thread CPU-bound processes, comma-separated")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the measurements here")
    args = parser.parse_args()
    counts = [int(t) for t in args.threads.split(",")]
    loads = [int(n) for n in args.loads.split(",")]
    results: dict[str, dict[str, float]] = {}
    for load in loads:
        stop = mp.Event()
        burners = [mp.Process(target=_burn, args=(stop,), daemon=True) for _ in range(load)]
        for burner in burners:
            burner.start()
        try:
            samples: dict[int, list[float]] = {t: [] for t in counts}
            for _ in range(args.rounds):
                for threads in counts:
                    samples[threads].append(_measure(args, threads))
        finally:
            stop.set()
            for burner in burners:
                burner.join()
        results[f"load {load}"] = {f"{t} threads": statistics.median(s)
                                   for t, s in samples.items()}
        cells = "  ".join(f"{t} threads: {statistics.median(s):7.0f} ms/step"
                          for t, s in samples.items())
        print(f"{load} competing processes on {os.cpu_count()} cores:  {cells}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"config": vars(args) | {"json": str(args.json)},
                                         "ms_per_step": results}, indent=2, default=str))


if __name__ == "__main__":
    main()
