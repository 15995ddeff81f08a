"""What scoring the test part at every evaluation costs (reference sweeps do, for the robustness
views), measured in one process on the isic2018-mini fair protocol: one mt run's training steps,
validation and test scoring, timed side by side. Run from the repository root:

    python benchmarks/test_every_cost.py
"""
from __future__ import annotations

import time

import torch

from ssl_bench.sweeps.plan import make_spec, plan, read_spec
from ssl_bench.training.prepare import prepare
from ssl_bench.training.trainer import Trainer

torch.set_num_threads(1)
runs = plan(make_spec(read_spec('benchmarks/isic2018-mini-fair-20pct.toml'), 'x'))
mt = next(r for r in runs if r.method == 'mt')
p = prepare(mt.config, quiet=True)
t = Trainer(p)


def timed(fn, n):
    s = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - s) / n


step = timed(t.train_step, 10)
val = timed(lambda: t.evaluator._score(t.student, 'student', 'val', 0), 3)
test = timed(lambda: t.evaluator._score(t.student, 'student', 'test', 0), 3)
evals = p.total_steps // p.eval_every
models = 2
train = step * p.total_steps
print(f"train step {step*1000:.0f} ms; val part {val:.2f} s, test part {test:.2f} s per model")
extra = (evals - 1) * models * test
print(f"mt, {p.total_steps} steps, {evals} evaluations x {models} models: training {train:.0f} s, "
      f"validation {evals*models*val:.0f} s, test at every evaluation {evals*models*test:.0f} s "
      f"vs once at the end {models*test:.0f} s: "
      f"+{extra / (train + evals * models * val + models * test) * 100:.0f}% of the run")
