"""``benchmarks/gpu_check.sh``, ready for the day a GPU is lent: its syntax, its
arguments, a ``--dry-run`` of every stage on the CPU, and that its summary fails when a
stage's figures say something went wrong."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"
pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def test_the_script_parses_and_refuses_unknown_arguments():
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0
    done = subprocess.run(["bash", str(SCRIPT), "--bogus"], capture_output=True, text=True)
    assert done.returncode == 2 and "unknown argument --bogus" in done.stderr
    usage = subprocess.run(["bash", str(SCRIPT), "--help"], capture_output=True, text=True)
    assert usage.returncode == 0 and "--dry-run" in usage.stdout and "--budget" in usage.stdout
    done = subprocess.run(["bash", str(SCRIPT), "--budget", "5min"], capture_output=True,
                          text=True)
    assert done.returncode == 2 and "--budget must be a whole number" in done.stderr
    done = subprocess.run(["bash", str(SCRIPT), "--only", "cuda_tests,speed"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "--only: unknown stage 'speed'" in done.stderr


def test_only_runs_the_named_stages(tmp_path):
    """--only is decided before --budget: under a budget of 1 s the named stages (a group
    such as paper_runs stands for its runs) reach the budget and are cut there, while the
    others are left out by --only. (That a stage let through runs: the full dry run.)"""
    done = subprocess.run(["bash", str(SCRIPT), "--dry-run", "--only", "numerics,paper_runs",
                           "--budget", "1", "--out", str(tmp_path)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert result["ok"] and not result["complete"]
    notes = {k: v["note"] for k, v in result["stages"].items() if v["status"] == "not run"}
    named = {k for k, note in notes.items() if "of --budget 1 left" in note}
    assert named == {"environment", "numerics", "paper_run_supervised", "paper_run_mt"}
    assert {k: note for k, note in notes.items() if k not in named} == {
        "cuda_tests": "not in --only numerics,paper_runs",
        "speed_eager": "not in --only numerics,paper_runs",
        "sweep_throughput": "not in --only numerics,paper_runs"}
    assert result["stages"]["cuda_tests"] == {
        "status": "not run", "seconds": 0, "note": "not in --only numerics,paper_runs"}


def test_a_budget_too_small_for_any_stage_skips_them_all_and_says_incomplete(tmp_path):
    done = subprocess.run(["bash", str(SCRIPT), "--dry-run", "--budget", "1", "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=300)
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert done.returncode == 0 and result["ok"] and not result["complete"]
    assert {k: v["status"] for k, v in result["stages"].items()} == {
        "environment": "not run", "cuda_tests": "not run", "numerics": "not run",
        "speed_eager": "not run", "speed_compile": "skipped",  # (on the GPU only, by design)
        "paper_run_supervised": "not run", "paper_run_mt": "not run",
        "compile_repro": "skipped", "sweep_throughput": "not run"}
    assert "--budget 1 left" in result["stages"]["cuda_tests"]["note"]
    assert "incomplete: --budget or --only" in done.stdout


def test_a_dry_run_runs_every_stage_on_the_cpu(tmp_path):
    done = subprocess.run(["bash", str(SCRIPT), "--dry-run", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert result["ok"] and result["complete"] and result["failed"] == []
    assert {k: v["status"] for k, v in result["stages"].items()} == {
        "environment": "ok", "cuda_tests": "ok", "speed_eager": "ok",
        "speed_compile": "skipped", "paper_run_supervised": "ok", "paper_run_mt": "ok",
        "numerics": "ok", "compile_repro": "skipped", "sweep_throughput": "ok"}
    assert result["cuda_tests"]["status"] == "skipped"  # no GPU here
    assert result["speed_eager"]["methods"]["mt"]["ratio_to_supervised"] > 0
    assert all(run["loss_fell"] and run["metrics_finite"]
               for run in result["paper_runs"].values())
    assert result["numerics"]["ok"]  # the CPU against itself: identical
    throughput = result["sweep_throughput"]["results"]
    assert [(r["jobs"], r["status"], r["runs"]) for r in throughput] == [
        (1, "done", 8), (2, "done", 8)]  # one seed of each of the 8 methods
    assert all(r["steps"] == 8 * 4 and r["steps_per_s"] > 0 for r in throughput)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu_check.json", "gpu_check.log"]


def test_the_summary_fails_when_a_run_did_not_learn_or_a_test_was_skipped_on_a_gpu(
        tmp_path):
    work = tmp_path / "work"
    run = work / "runs" / "mt"
    run.mkdir(parents=True)
    (run / "history.csv").write_text("step,loss_supervised\n35,1.0\n70,1.2\n")
    section = {"val": {"auc": 0.6}, "test": {"auc": 0.55}}
    (run / "metrics.json").write_text(json.dumps({
        "student": section, "steps": 70, "train_seconds": 9.0}))
    (work / "environment.json").write_text(json.dumps({"cuda_available": True}))
    (work / "cuda_tests.xml").write_text(
        '<testsuites><testsuite tests="2" failures="0" errors="0" skipped="1">'
        '<testcase classname="t" name="a"/><testcase classname="t" name="b"><skipped/>'
        '</testcase></testsuite></testsuites>')
    out = tmp_path / "gpu_check.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check_parts.py"),
                    "collect", str(work), str(out)], check=True, capture_output=True)
    result = json.loads(out.read_text())
    assert not result["ok"] and result["failed"] == ["paper run mt", "cuda tests"]
    assert result["complete"]
    assert result["paper_runs"]["mt"]["loss_fell"] is False
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check_parts.py"),
                    "collect", str(work), str(out), "--partial"], check=True,
                   capture_output=True)
    assert json.loads(out.read_text())["complete"] is False  # between two stages
    (run / "history.csv").write_text("step,loss_supervised\n70,1.2\n")  # one interval
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check_parts.py"),
                    "collect", str(work), str(out)], check=True, capture_output=True)
    assert "cannot tell whether the loss fell" in json.loads(
        out.read_text())["paper_runs"]["mt"]["note"]


def test_the_compile_grid_reports_a_factor_between_compiled_and_eager(monkeypatch):
    """benchmarks/compile_repro.py's comparison, with torch.compile replaced by what the
    2026-11-27 check saw (outputs 4x) and by the identity."""
    import importlib.util

    import torch

    spec = importlib.util.spec_from_file_location(
        "compile_repro", REPO / "benchmarks" / "compile_repro.py")
    repro = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(repro)
    x = torch.rand(4, 8, 2, 2)
    pool = lambda t: t.mean((2, 3))  # noqa: E731
    monkeypatch.setattr(torch, "compile", lambda fn, mode=None: lambda t: 4 * fn(t))
    off = repro.compare(pool, x, "default")
    assert off["ratio"] == pytest.approx(4.0) and not off["agree"]
    monkeypatch.setattr(torch, "compile", lambda fn, mode=None: fn)
    same = repro.compare(pool, x, "default")
    assert same["ratio"] == pytest.approx(1.0) and same["agree"] and same["max_abs_diff"] == 0
