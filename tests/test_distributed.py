"""One run on two processes (torchrun, DDP over gloo on the CPU) against one process.

A data-parallel run trains each rank on half of the same global batch and averages the
gradients; SRC-MT gathers the features of both halves for its relation matrix. With the
randomness that differs between one and two processes removed (augmentation and
dropout: ranks draw from their own generators), the two runs compute the same function,
so their losses, metrics and weights agree up to float rounding: sums are taken in
another order (each rank's partial sums, then the all-reduce), never bit-identically.
``TOLERANCE`` bounds that rounding after a few Adam steps on float32.

Methods are taken from the registry: every method whose ``data_parallel`` is "global"
and that draws only weak views (whose randomness can be switched off) is compared with
one process; every other declaring method must train under DDP (the engine checks at
every evaluation that all ranks hold the same models and method state), and every method
that does not declare it must be refused in one line.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import HEAD_PLUGIN, PLUGIN, tiny_config

from ssl_bench.core import distributed
from ssl_bench.core.errors import UserError
from ssl_bench.plugins.registry import get_method_class, list_methods
from ssl_bench.training.runner import run

TOLERANCE = 1e-5
HERE = Path(__file__).parent
#: Two ranks of the global batch 16 (4 labeled): 2 labeled + 6 unlabeled rows each. A
#: backbone without batch normalisation (layer norm): batch-norm statistics of a shard
#: differ from the whole batch's, and synchronised batch norm needs a GPU.
SETTINGS = dict(dataset="digits", backbone="test_convnext", image_size=32, iterations=6,
                eval_every=2, batch_size=16, labeled_batch_size=4, drop_rate=0.0,
                rotation=0.0, translate=0.0, hflip=False, noise_std=0.0, labeled=0.1)
DECLARING = [m for m in list_methods() if get_method_class(m).data_parallel]
WEAK_ONLY = [m for m in DECLARING if get_method_class(m).data_parallel == "global"
             and all(v.augmentation == "weak" for v in get_method_class(m).view_specs().values())]
OTHERS = [m for m in DECLARING if m not in WEAK_ONLY]
REFUSED = [m for m in list_methods() if not get_method_class(m).data_parallel]


def torchrun(jobs: list[dict], folder: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run ``jobs`` (see tests/ddp_driver.py) on two CPU processes."""
    jobs_file = folder / "jobs.json"
    jobs_file.write_text(json.dumps(jobs))
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
         "2", str(HERE / "ddp_driver.py"), str(jobs_file)],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=folder)


def _first_and_last(text: str, size: int = 3000) -> str:
    """A failed launch's first error (a rank's traceback) and torchrun's summary."""
    first = next((i for i, line in enumerate(text.splitlines())
                  if "Traceback" in line or "terminate called" in line), 0)
    head = "\n".join(text.splitlines()[max(0, first - 5):first + 40])
    return f"{head}\n...\n{text[-size:]}" if len(text) > size else text


def job(name: str, folder: Path, method: str, **extra) -> dict:
    """A run of ``method``; the test plug-ins are loaded as in this process (conftest)."""
    return {"name": name, "config": {**SETTINGS, "method": method},
            "output": str(folder / name), "plugins": [str(PLUGIN), str(HEAD_PLUGIN)],
            **extra}


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory):
    """One torchrun launch for every two-process run the tests below read."""
    folder = tmp_path_factory.mktemp("ddp")
    jobs = [job(m, folder, m) for m in DECLARING + REFUSED]
    jobs += [job("srcmt-partial", folder, "srcmt", stop_after=2),
             job("srcmt-partial", folder, "srcmt", resume=True),
             {**job("unshared", folder, "keeps-unshared-state"),
              "plugins": [str(PLUGIN), str(HEAD_PLUGIN), str(HERE / "plugins_ddp.py")],
              "expect_runtime_error": True}]
    done = torchrun(jobs, folder)
    assert done.returncode == 0, _first_and_last(done.stderr)
    return folder, json.loads((folder / "jobs.out.json").read_text())


def _history(folder: Path) -> list[dict[str, str]]:
    with open(folder / "history.csv") as handle:
        return list(csv.DictReader(handle))


def _numbers(row: dict[str, str]) -> dict[str, float]:
    out = {}
    for key, value in row.items():
        if key == "seconds" or value in ("", None):
            continue
        try:
            out[key] = float(value)
        except ValueError:
            continue
    return out


def _weights(path: Path) -> dict[str, torch.Tensor]:
    saved = torch.load(path, map_location="cpu", weights_only=False)
    return {f"{model}.{name}": tensor.float()
            for model in ("student", "teacher") if saved.get(model) is not None
            for name, tensor in saved[model].items() if tensor.dtype.is_floating_point}


@pytest.mark.parametrize("method", WEAK_ONLY)
def test_two_processes_match_one_on_the_same_global_batch(ddp_runs, tmp_path, method):
    folder, results = ddp_runs
    assert "metrics" in results[method], results[method]
    single = run(tiny_config(**SETTINGS, method=method), tmp_path / "single", quiet=True)
    two = results[method]["metrics"]
    for model in ("student", "teacher"):
        if model in single:
            assert two[model]["best_step"] == single[model]["best_step"]
            for key, value in single[model]["test"].items():
                if isinstance(value, float):
                    assert two[model]["test"][key] == pytest.approx(value, abs=TOLERANCE), key
    rows_one, rows_two = _history(tmp_path / "single"), _history(folder / method)
    assert len(rows_one) == len(rows_two) == 3
    for one, two_row in zip(rows_one, rows_two, strict=True):
        a, b = _numbers(one), _numbers(two_row)
        assert a.keys() == b.keys()
        for key in a:  # losses (the relation loss included) and validation metrics
            assert b[key] == pytest.approx(a[key], rel=TOLERANCE, abs=TOLERANCE), key
    w1, w2 = _weights(tmp_path / "single" / "best.pt"), _weights(folder / method / "best.pt")
    assert w1.keys() == w2.keys()
    worst = max(float((w1[k] - w2[k]).abs().max()) for k in w1)
    assert worst < TOLERANCE, f"largest weight difference {worst:.2e}"


@pytest.mark.parametrize("method", OTHERS)
def test_other_declaring_methods_train_under_ddp_with_ranks_in_agreement(ddp_runs, method):
    folder, results = ddp_runs
    assert "metrics" in results[method], results[method]  # ranks agreed at every evaluation
    config = json.loads((folder / method / "config.json").read_text())
    assert config["schedule"]["processes"] == 2
    assert config["schedule"]["num_labeled_per_batch"] == SETTINGS["labeled_batch_size"]
    for row in _history(folder / method):
        assert np.isfinite(float(row["loss_total"]))


@pytest.mark.parametrize("method", REFUSED)
def test_methods_without_a_declared_ddp_behaviour_are_refused(ddp_runs, method):
    folder, results = ddp_runs
    message = results[method].get("error", "")
    assert "Method.data_parallel" in message and "\n" not in message
    assert not (folder / method).exists(), "a refused run leaves nothing behind"


def test_state_a_method_forgot_to_share_is_caught_at_the_first_evaluation(ddp_runs):
    folder, results = ddp_runs
    message = results["unshared"].get("error", "")
    assert "disagree at step 2 on method.local_mean" in message, results["unshared"]
    assert not (folder / "unshared").exists()


def test_resume_under_ddp_equals_an_uninterrupted_run(ddp_runs):
    folder, results = ddp_runs
    resumed, straight = results["srcmt-partial"]["metrics"], results["srcmt"]["metrics"]
    for model in ("student", "teacher"):
        assert resumed[model]["test"] == straight[model]["test"]
        assert resumed[model]["best_step"] == straight[model]["best_step"]
    rows = [_numbers(r) for r in _history(folder / "srcmt-partial")]
    assert rows == [_numbers(r) for r in _history(folder / "srcmt")]


FAILING_METHOD = '''
from ssl_bench.core import distributed
from ssl_bench.method_kit.method import Method
from ssl_bench.plugins.registry import register_method


@register_method("fails-on-rank-1")
class FailsOnRank1(Method):
    summary = "test plug-in: rank 1 raises at step 2"
    data_parallel = "global"
    views = {"student": "weak"}

    def train_step(self, batch, ctx):
        if distributed.current().rank == 1 and ctx.step == 2:
            raise RuntimeError("rank 1 fails on purpose at step 2")
        _, logits = ctx.student(batch.views["student"])
        loss = ctx.task.supervised_loss(logits[: batch.num_labeled], batch.targets)
        return {"total": loss, "supervised": loss}
'''


def test_a_failing_rank_stops_the_run_with_its_error(tmp_path):
    plugin = tmp_path / "fails_on_rank_1.py"
    plugin.write_text(FAILING_METHOD)
    failing = job("fails", tmp_path, "fails-on-rank-1")
    failing["plugins"].append(str(plugin))
    done = torchrun([failing],
                    tmp_path, timeout=120)  # a hang would end in TimeoutExpired
    assert done.returncode != 0
    assert "rank 1 fails on purpose at step 2" in done.stderr
    # The first rank, waiting for rank 1 in the step's collective, ends with the one-line
    # error of a lost peer (a UserError, which the driver records), not a traceback.
    out = tmp_path / "jobs.out.json"
    if out.exists():
        error = json.loads(out.read_text())["fails"]["error"]
        assert error.startswith("rank 0 of 2: another process of this torchrun run ended")


@pytest.mark.parametrize("method", list_methods())
def test_every_method_declares_a_known_data_parallel_mode(method):
    mode = get_method_class(method).data_parallel
    assert mode is None or mode in distributed.DATA_PARALLEL_MODES
    with pytest.raises(UserError, match="use one of 'global', 'per-process' or None"):
        distributed.check_method_mode(method, "yes")


def test_a_batch_that_does_not_split_evenly_is_refused():
    with pytest.raises(UserError, match="--labeled-batch-size: 4 rows per step do not split "
                                        "evenly over 3 processes") as caught:
        distributed.check_batch(4, 12, distributed.World(0, 3, 0))
    assert "\n" not in str(caught.value)
    distributed.check_batch(4, 12, distributed.World(1, 2, 1))


def test_one_process_is_the_world_of_one():
    world = distributed.current()
    assert (world.rank, world.size, world.is_main, world.distributed) == (0, 1, True, False)
    rows = torch.arange(6.0, requires_grad=True)
    assert distributed.gather_rows(rows) is rows
    assert distributed.shard(8) == slice(0, 8)
    assert not distributed.launched_by_torchrun({"RANK": "0"})
