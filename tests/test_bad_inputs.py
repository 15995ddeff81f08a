"""Every bad input is one ``ssl-bench: error:`` line, exit code 2, no traceback, and
nothing written (issue 9): bad flags, TOML files, split files, data files, plug-ins,
folders that cannot be written and commands that would clobber a run.

Each case is ``(id, argv, expected text)``; ``{w}`` in an argument is the test's working
folder, ``{data}`` a small CSV data set and ``{ro}`` a folder no process can write to.
Cases that need a file get it from :func:`_materials`.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import PLUGIN, TINY_FLAGS
from fixtures import edit_csv_cell, write_csv_dataset

from ssl_bench.cli.main import main

RUN = ["run", "--quiet", "--output", "{w}/out", "--cache-dir", "{w}/cache", *TINY_FLAGS]
CSV = ["--dataset", "csv", "--data-root", "{data}", "--label-column", "label"]
SWEEP = ["sweep", "--results", "{w}/results", "--methods", "supervised", "--labeled", "0.1",
         "--seeds", "0", "--name", "s", *TINY_FLAGS]

CASES: list[tuple[str, list[str], str]] = [
    # -- numbers: type, finiteness, range ------------------------------------------------
    ("lr-nan", [*RUN, "--lr", "nan"], "lr (--lr) must be a finite number, got nan"),
    ("lr-inf", [*RUN, "--lr", "inf"], "lr (--lr) must be a finite number, got inf"),
    ("lr-negative", [*RUN, "--lr", "-1"], "--lr"),
    ("lr-zero", [*RUN, "--lr", "0"], "--lr"),
    ("lr-word", [*RUN, "--lr", "fast"], "--lr"),
    ("epochs-nan", [*RUN, "--epochs", "nan"], "epochs (--epochs) must be a finite number"),
    ("epochs-zero", [*RUN, "--epochs", "0"], "--epochs"),
    ("iterations-zero", [*RUN, "--iterations", "0"], "--iterations"),
    ("iterations-word", [*RUN, "--iterations", "ten"], "--iterations"),
    ("seed-negative", [*RUN, "--seed", "-1"], "seed (--seed) must be >= 0"),
    ("seed-word", [*RUN, "--seed", "abc"], "--seed"),
    ("threads-negative", [*RUN, "--threads", "-1"], "threads (--threads) must be >= 0"),
    ("labeled-zero", [*RUN, "--labeled", "0"], "--labeled"),
    ("labeled-negative", [*RUN, "--labeled", "-0.2"], "--labeled"),
    ("labeled-fraction-above-one", [*RUN, "--labeled", "1.5"], "whole number"),
    ("labeled-word", [*RUN, "--labeled", "most"], "--labeled"),
    ("labeled-too-many", [*RUN, "--labeled", "5000"], "more labeled images than the training"),
    ("labeled-misses-a-class", [*RUN, "--labeled", "5"], "misses class"),
    ("batch-size-zero", [*RUN, "--batch-size", "0"], "--batch-size"),
    ("labeled-batch-zero", [*RUN, "--labeled-batch-size", "0"], "--labeled-batch-size"),
    ("labeled-batch-above-batch", [*RUN, "--labeled-batch-size", "32"], "--labeled-batch-size"),
    ("image-size-zero", [*RUN, "--image-size", "0"], "--image-size"),
    ("eval-every-negative", [*RUN, "--eval-every", "-1"], "--eval-every"),
    ("consistency-weight-nan", [*RUN, "--consistency-weight", "nan"],
     "consistency_weight (--consistency-weight)"),
    ("consistency-weight-negative", [*RUN, "--consistency-weight", "-1"],
     "--consistency-weight"),
    ("ema-decay-above-one", [*RUN, "--ema-decay", "1.5"], "--ema-decay"),
    ("ema-decay-nan", [*RUN, "--ema-decay", "nan"], "--ema-decay"),
    ("rampup-negative", [*RUN, "--rampup", "-0.1"], "--rampup"),
    ("drop-rate-above-one", [*RUN, "--drop-rate", "1.5"], "--drop-rate"),
    ("frozen-groups-negative", [*RUN, "--frozen-groups", "-1"], "--frozen-groups"),
    ("frozen-groups-all", [*RUN, "--frozen-groups", "6"], "--frozen-groups"),
    ("weight-decay-negative", [*RUN, "--weight-decay", "-1"], "--weight-decay"),
    ("hflip-not-a-bool", [*RUN, "--hflip", "maybe"], "--hflip"),
    # -- the split ------------------------------------------------------------------------
    ("no-test-part", [*RUN, "--split-ratios", "0.9,0.1,0"],
     "the split has no test images (--split-ratios 0.9,0.1,0)"),
    ("two-ratios", [*RUN, "--split-ratios", "0.5,0.5"], "--split-ratios"),
    ("ratios-not-summing-to-one", [*RUN, "--split-ratios", "0.7,0.2,0.2"], "split"),
    ("ratios-words", [*RUN, "--split-ratios", "a,b,c"], "--split-ratios"),
    ("split-mode", [*RUN, "--split-mode", "random"], "split_mode"),
    ("split-file-missing", [*RUN, "--split", "{w}/nowhere.json"], "does not exist"),
    ("split-file-garbled", [*RUN, "--split", "{w}/garbled.json"], "not valid JSON"),
    ("split-file-contradicting", [*RUN, "--split", "{w}/one-labeled.json"],
     "but the labeled part lists 1"),
    ("split-file-no-test", [*RUN, "--split", "{w}/no-test.json"], "no test images"),
    # -- names ----------------------------------------------------------------------------
    ("method-unknown", [*RUN, "--method", "srcmtt"], "unknown method 'srcmtt'. Did you mean"),
    ("dataset-unknown", [*RUN, "--dataset", "isic2019"], "unknown data set"),
    ("backbone-unknown", [*RUN, "--backbone", "resnet10tt"], "resnet10t"),
    ("optimizer-unknown", [*RUN, "--optimizer", "adamax"],
     "optimizer (--optimizer) must be one of"),
    ("lr-schedule-unknown", [*RUN, "--lr-schedule", "step"], "lr_schedule"),
    ("device-unknown", [*RUN, "--device", "tpu"], "device"),
    ("class-weights-unknown", [*RUN, "--class-weights", "heavy"], "class_weights"),
    ("teacher-buffers-unknown", [*RUN, "--teacher-buffers", "maybe"], "teacher_buffers"),
    ("report-model-unknown", [*RUN, "--report-model", "ensemble"], "report_model"),
    ("test-at-unknown", [*RUN, "--test-at", "sometimes"], "test_at (--test-at) must be one of"),
    ("flag-unknown", [*RUN, "--bogus-flag"], "unrecognized arguments"),
    ("method-option-type", [*RUN, "--relation-weight", "x"], "expects float"),
    ("method-option-of-another-method", [*RUN, "--method", "mt", "--relation-weight", "1"],
     "unrecognized arguments"),
    ("command-unknown", ["frobnicate"], "unknown command"),
    # -- TOML configuration files ---------------------------------------------------------
    ("config-missing", [*RUN, "--config", "{w}/missing.toml"], "missing.toml does not exist"),
    ("config-not-toml", [*RUN, "--config", "{w}/garbled.toml"], "not valid TOML"),
    ("config-unknown-key", [*RUN, "--config", "{w}/unknown-key.toml"], "learning_rate"),
    ("config-lr-string", [*RUN, "--config", "{w}/lr-string.toml"], "lr"),
    ("config-iterations-string", [*RUN, "--config", "{w}/iterations-string.toml"],
     "iterations"),
    ("config-seed-string", [*RUN, "--config", "{w}/seed-string.toml"], "seed"),
    ("config-ratios-number", [*RUN, "--config", "{w}/ratios-number.toml"], "split_ratios"),
    ("config-lr-nan", [*RUN, "--config", "{w}/lr-nan.toml"], "finite"),
    # -- data files -----------------------------------------------------------------------
    ("data-root-missing", [*RUN, "--dataset", "isic", "--data-root", "{w}/nowhere"],
     "does not exist"),
    ("csv-nan-labels", [*RUN, *CSV.__iter__(), "--data-root", "{w}/nan-data"],
     "--skip-bad-rows"),
    ("csv-neither-label-option", [*RUN, "--dataset", "csv", "--data-root", "{data}"],
     "label_column"),
    ("weights-file-missing", [*RUN, "--weights", "{w}/nowhere.pth"], "nowhere.pth"),
    # -- plug-ins -------------------------------------------------------------------------
    ("plugin-missing", [*RUN, "--plugin", "{w}/nowhere.py"], "nowhere.py does not exist"),
    ("plugin-broken", [*RUN, "--plugin", "{w}/broken.py"], "failed to import"),
    # -- folders and existing runs --------------------------------------------------------
    ("output-in-read-only-folder", [*RUN[:3], "{ro}/out", *RUN[4:]], "{ro}"),
    ("output-below-a-file", [*RUN[:3], "{w}/a-file/out", *RUN[4:]], "a-file"),
    ("cache-dir-read-only", [*RUN[:5], "{ro}/cache", *RUN[6:], *CSV], "--cache-dir"),
    ("cache-dir-is-a-file", [*RUN[:5], "{w}/a-file", *RUN[6:], *CSV], "--cache-dir"),
    ("resume-without-a-checkpoint", [*RUN[:3], "{w}/partial", *RUN[4:], "--resume"],
     "cannot resume"),
    ("run-into-a-finished-run", [*RUN[:3], "{w}/finished", *RUN[4:]], "--overwrite"),
    ("split-command-output-exists", ["split", "--output", "{w}/garbled.json"],
     "pass --overwrite"),
    ("split-command-read-only", ["split", "--output", "{ro}/split.json"], "{ro}"),
    # -- sweeps ---------------------------------------------------------------------------
    ("sweep-no-name", [*SWEEP[:-len(TINY_FLAGS) - 2], *TINY_FLAGS], "--name"),
    ("sweep-jobs-zero", [*SWEEP, "--jobs", "0"], "--jobs"),
    ("sweep-time-zero", [*SWEEP, "--executor", "submitit-local", "--time", "0"],
     "--time must be > 0 minutes"),
    ("sweep-gpus-negative", [*SWEEP, "--executor", "submitit-local", "--gpus-per-run", "-1"],
     "--gpus-per-run must be >= 0"),
    ("sweep-sbatch-not-key-value", [*SWEEP, "--executor", "slurm", "--sbatch", "qos"],
     "--sbatch: 'qos' is not KEY=VALUE"),
    ("sweep-slurm-without-slurm", [*SWEEP, "--executor", "slurm"],
     'Could not detect "srun"'),
    ("sweep-status-never-started", [*SWEEP, "--status"], "this sweep was never started"),
    ("sweep-spec-missing", ["sweep", "{w}/nowhere.toml"], "nowhere.toml"),
    ("sweep-spec-unknown-key", ["sweep", "{w}/sweep-unknown.toml"], "unknown key"),
    ("sweep-method-twice", [*SWEEP, "--methods", "mt,mt"], "twice"),
    ("sweep-seed-word", [*SWEEP, "--seeds", "a"], "seeds must be integers"),
    ("sweep-lr-nan", [*SWEEP, "--lr", "nan"], "finite"),
    ("sweep-results-read-only", [*SWEEP, "--results", "{ro}/results"], "{ro}"),
    # -- compare --------------------------------------------------------------------------
    ("compare-missing-folder", ["compare", "{w}/nowhere"], "does not exist"),
    ("compare-nothing-finished", ["compare", "{w}/empty"], "no finished run"),
    ("compare-output-read-only", ["compare", "{w}/finished", "--output", "{ro}/t.md"],
     "{ro}"),
    ("compare-baseline-absent", ["compare", "{w}/finished", "--baseline", "fixmatch"],
     "--baseline: no runs of method 'fixmatch'"),
    ("compare-pairs-malformed", ["compare", "{w}/finished", "--pairs", "srcmt-mt"],
     "--pairs: 'srcmt-mt' is not METHOD:METHOD"),
    ("compare-pairs-absent", ["compare", "{w}/finished", "--pairs", "srcmt:mt"],
     "--pairs: no runs of method"),
]


def _toml(path: Path, text: str) -> None:
    path.write_text(text)


def _materials(work: Path) -> dict[str, str]:
    """Files and folders the cases refer to (made once per module)."""
    from conftest import tiny_config

    from ssl_bench.data.splits import make_split, save_split
    from ssl_bench.training.prepare import load_dataset
    from ssl_bench.training.runner import run

    data = write_csv_dataset(work / "data", n=24, classes=("a", "b"), groups=False)
    nan_data = write_csv_dataset(work / "nan-data", n=24, classes=("a", "b"), groups=False)
    edit_csv_cell(nan_data.csv, 3, "label", "NaN")
    (work / "garbled.json").write_text('{"train": [1, 2, oops')
    split = make_split(load_dataset(tiny_config()), 0, 0.1).to_dict()
    save_split_record = work / "one-labeled.json"
    save_split_record.write_text(json.dumps({**split, "labeled": split["labeled"][:1]}))
    no_test = make_split(load_dataset(tiny_config()), 0, 0.1, (0.9, 0.1, 0.0))
    save_split(no_test, work / "no-test.json")
    _toml(work / "garbled.toml", "lr = [\n")
    _toml(work / "unknown-key.toml", "learning_rate = 0.1\n")
    _toml(work / "lr-string.toml", 'lr = "fast"\n')
    _toml(work / "iterations-string.toml", 'iterations = "ten"\n')
    _toml(work / "seed-string.toml", 'seed = "abc"\n')
    _toml(work / "ratios-number.toml", "split_ratios = 0.5\n")
    _toml(work / "lr-nan.toml", "lr = nan\n")
    _toml(work / "sweep-unknown.toml", 'name = "x"\nmethods = ["mt"]\nlabeled = [0.1]\n'
                                       'seeds = [0]\nbogus = 1\n')
    (work / "broken.py").write_text("import not_a_real_module\n")
    (work / "a-file").write_text("not a folder\n")
    (work / "empty").mkdir()
    (work / "partial").mkdir()
    (work / "partial" / "config.json").write_text("{}\n")
    run(tiny_config(), work / "finished", quiet=True)
    return {"data": str(data.root), "w": str(work)}


@pytest.fixture(scope="module")
def materials(tmp_path_factory):
    work = tmp_path_factory.mktemp("bad-inputs")
    return work, _materials(work)


def _read_only(folder: Path) -> None:
    """Make ``folder`` unwritable even for root (immutable), or skip the case."""
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return
    done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("running as root without chattr: no folder is read-only")


def _writable(folder: Path) -> None:
    if os.geteuid() != 0:
        folder.chmod(0o755)
    else:
        subprocess.run(["chattr", "-i", str(folder)], capture_output=True)


def _snapshot(root: Path) -> dict[str, int]:
    """Every file and folder under ``root`` with its size (the image cache aside)."""
    return {str(p.relative_to(root)): (p.stat().st_size if p.is_file() else -1)
            for p in root.rglob("*") if "cache" not in p.relative_to(root).parts}


@pytest.mark.parametrize("argv,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(argv, expected, materials, tmp_path,
                                                         capsys, monkeypatch):
    work, names = materials
    ro = tmp_path / "read-only"
    names = {**names, "ro": str(ro)}
    argv = [arg.format(**names) for arg in argv]
    monkeypatch.chdir(tmp_path)
    if any(str(ro) in arg for arg in argv):
        _read_only(ro)
    before = _snapshot(work), _snapshot(tmp_path)
    try:
        code = main(argv)
    finally:
        if ro.exists():
            _writable(ro)
    err = capsys.readouterr().err
    assert code == 2, err
    # (warnings about the data, such as a CSV without --group-column, may come first)
    err = "".join(line for line in err.splitlines(keepends=True)
                  if not line.startswith("ssl-bench: warning: "))
    assert err.startswith("ssl-bench: error: ") and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert expected.format(**names) in err
    assert (_snapshot(work), _snapshot(tmp_path)) == before, "a bad input wrote files"


def test_the_table_covers_every_category_and_enough_cases():
    assert len(CASES) >= 55
    assert len({case[0] for case in CASES}) == len(CASES)
    assert PLUGIN.is_file()  # the registry carries the test plug-in's method too
