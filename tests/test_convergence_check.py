"""benchmarks/convergence.py: the budget check a protocol is chosen with (validation only)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).parents[1] / "benchmarks" / "convergence.py"
_spec = importlib.util.spec_from_file_location("convergence", _PATH)
convergence = importlib.util.module_from_spec(_spec)
sys.modules["convergence"] = convergence  # dataclasses look their module up
_spec.loader.exec_module(convergence)


def _run(folder: Path, losses: list[float], val: list[float], best_step: int) -> Path:
    folder.mkdir(parents=True)
    steps = 10 * len(losses)
    lines = ["step,loss_supervised,val_student_auc,val_teacher_auc,test_student_auc"]
    for i, (loss, auc) in enumerate(zip(losses, val, strict=True)):
        lines.append(f"{10 * (i + 1)},{loss},{auc},{auc - 0.01},0.99")
    (folder / "history.csv").write_text("\n".join(lines) + "\n")
    (folder / "metrics.json").write_text(json.dumps({
        "method": "mt", "labeled": 0.2, "seed": 0, "steps": steps,
        "best": {"best_step": best_step}, "reported": {"best_step": best_step}}))
    return folder


def test_a_flat_loss_and_an_early_best_step_pass(tmp_path):
    # 10 evaluations, window 20% = the last 2 (steps 90, 100) against the 2 before (70, 80)
    losses = [1.0, 0.6, 0.4, 0.3, 0.25, 0.22, 0.21, 0.21, 0.205, 0.205]
    check = convergence.check_run(_run(tmp_path / "a", losses, [0.7] * 10, 60), 0.2)
    # (mean(0.21, 0.21) - mean(0.205, 0.205)) / (1.0 - 0.205)
    assert check.remaining_fall == pytest.approx(0.005 / 0.795)
    assert check.best_fraction == pytest.approx(0.6)
    assert check.val_curve[0] == (10, 0.7)  # the better of student and teacher


def test_the_two_supervised_baselines_are_checked_apart(tmp_path):
    """By metrics.json's label, and for runs that predate it by config.json's batch."""
    losses = [1.0, 0.5, 0.3, 0.3]
    folders = [_run(tmp_path / name, losses, [0.7] * 4, 20)
               for name in ("same", "batch", "old-batch")]
    for folder, label in zip(folders, (None, "supervised-labeled-batch", None), strict=True):
        record = {**json.loads((folder / "metrics.json").read_text()), "method": "supervised"}
        if label:
            record["label"] = label
        (folder / "metrics.json").write_text(json.dumps(record))
    (folders[2] / "config.json").write_text(json.dumps({
        "method": {"uses_unlabeled": False}, "config": {"supervised_batch": "labeled"}}))
    labels = [convergence.check_run(f, 0.2).label for f in folders]
    assert labels == ["supervised", "supervised-labeled-batch", "supervised-labeled-batch"]


def test_a_falling_loss_is_not_converged(tmp_path):
    losses = [1.0 - 0.09 * i for i in range(10)]
    check = convergence.check_run(_run(tmp_path / "b", losses, [0.7] * 10, 100), 0.2)
    assert check.remaining_fall == pytest.approx(0.18 / 0.765)  # (0.415 - 0.235) / (1.0 - 0.235)
    assert check.best_fraction == 1.0
