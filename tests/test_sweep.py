"""The sweep runner: specs, fairness, layout, resume, failures and parallel jobs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import TINY_RUN

from ssl_bench.cli.main import main
from ssl_bench.core.errors import UserError
from ssl_bench.sweeps.local import (
    check_same_splits,
    make_spec,
    overridden_defaults,
    plan,
    run_sweep,
)


def _spec(tmp_path: Path, **overrides):
    values = {"name": "tiny", "methods": ["supervised", "mt"], "labeled": [0.1], "seeds": [0],
              "run": dict(TINY_RUN), "results": str(tmp_path / "results"),
              "keep_checkpoints": False}
    values.update(overrides)
    return make_spec(values, "test spec")


def _metrics(run_dir: Path) -> dict:
    record = json.loads((run_dir / "metrics.json").read_text())
    record.pop("train_seconds")
    return record


@pytest.mark.parametrize("values,message", [
    ({"methods": []}, "non-empty"),
    ({"bogus": 1}, "unknown key"),
    ({"run": {"seed": 3}}, "may not set seed"),
    ({"run": {"lr_typo": 3}}, "unknown run setting"),
    ({"method_options": {"srcmt": {"relation_weight": 2.0}}}, "does not run"),
    ({"seeds": [0, 0]}, "twice"),
    ({"labeled": [0]}, "--labeled"),
    ({"name": "a/b"}, "plain folder name"),
])
def test_bad_specs(tmp_path, values, message):
    with pytest.raises(UserError, match=message):
        plan(_spec(tmp_path, **values))


def test_bad_method_options_fail_before_anything_runs(tmp_path):
    spec = _spec(tmp_path, methods=["srcmt"],
                 method_options={"srcmt": {"relation_weight": "heavy"}})
    with pytest.raises(UserError, match="expects float"):
        plan(spec)
    assert not (tmp_path / "results").exists()


def test_a_shared_setting_that_overrides_a_methods_own_default_is_reported(tmp_path, capsys):
    # FixMatch declares rampup = 0 (its paper's); a shared rampup = 0.3 silently replaced it
    # in the isic2018-mini-cpu reference runs, so the sweep now says so before running.
    spec = _spec(tmp_path, methods=["supervised", "fixmatch"],
                 run={**TINY_RUN, "rampup": 0.3})
    notes = overridden_defaults(spec)
    assert len(notes) == 1
    assert "rampup = 0.3" in notes[0] and "fixmatch's own default rampup = 0.0" in notes[0]
    assert overridden_defaults(_spec(tmp_path, methods=["supervised", "fixmatch"])) == []
    same = _spec(tmp_path, methods=["fixmatch"], run={**TINY_RUN, "rampup": 0.0})
    assert overridden_defaults(same) == []
    assert main(["sweep", "--name", "t", "--methods", "supervised,fixmatch", "--labeled",
                 "0.1", "--seeds", "0", "--rampup", "0.3", "--results",
                 str(tmp_path / "r"), "--dry-run"]) == 0
    assert "overrides fixmatch's own default" in capsys.readouterr().out


def test_sweep_layout_fairness_and_records(tmp_path):
    spec = _spec(tmp_path, seeds=[0, 1])
    runs = plan(spec)
    assert [r.key for r in runs] == ["supervised/labeled=0.1/seed=0", "mt/labeled=0.1/seed=0",
                                     "supervised/labeled=0.1/seed=1", "mt/labeled=0.1/seed=1"]
    result = run_sweep(spec, runs, quiet=True)
    assert result.count("done") == 4 and not result.failed
    root = tmp_path / "results" / "tiny" / "digits"
    for method in ("supervised", "mt"):
        for seed in (0, 1):
            run_dir = root / method / "labeled=0.1" / f"seed={seed}"
            assert (run_dir / "metrics.json").is_file()
            assert not (run_dir / "best.pt").exists(), "reference sweeps keep no checkpoints"
    assert check_same_splits(runs) == []
    supervised = json.loads((root / "supervised/labeled=0.1/seed=0/split.json").read_text())
    mt = json.loads((root / "mt/labeled=0.1/seed=0/split.json").read_text())
    assert supervised["labeled"] == mt["labeled"] and supervised["test"] == mt["test"]
    record = json.loads((tmp_path / "results" / "tiny" / "sweep.json").read_text())
    assert record["shared_settings"]["image_size"] == 16
    assert {r["status"] for r in record["runs"].values()} == {"done"}
    again = run_sweep(spec, plan(spec), quiet=True)
    assert again.count("skipped") == 4


def test_changed_settings_are_refused_for_an_existing_sweep(tmp_path):
    spec = _spec(tmp_path, methods=["supervised"], seeds=[0])
    run_sweep(spec, plan(spec), quiet=True)
    changed = _spec(tmp_path, methods=["supervised"], seeds=[0],
                    run={**TINY_RUN, "image_size": 24})
    with pytest.raises(UserError, match="image_size: 16 vs 24"):
        plan(changed)


def test_protocol_settings_are_part_of_the_fairness_check(tmp_path):
    """A run on disk trained with another baseline batch or teacher is never mixed in."""
    spec = _spec(tmp_path, methods=["supervised"], seeds=[0])
    run_sweep(spec, plan(spec), quiet=True)
    changed = _spec(tmp_path, methods=["supervised"], seeds=[0],
                    run={**TINY_RUN, "supervised_batch": "labeled"})
    planned = plan(changed)[0]
    assert planned.output.parent.parent.name == "supervised-labeled-batch"
    planned.output.parent.parent.parent.joinpath("supervised").rename(
        planned.output.parent.parent)  # the two-stream run, moved where the other belongs
    with pytest.raises(UserError, match="label: 'supervised' vs 'supervised-labeled-batch'"):
        plan(changed)
    planned.output.parent.parent.rename(planned.output.parent.parent.parent / "supervised")
    config = next((tmp_path / "results").rglob("config.json"))
    record = json.loads(config.read_text())
    del record["config"]["teacher_buffers"]  # a run from before the setting existed
    config.write_text(json.dumps(record))
    with pytest.raises(UserError, match="teacher_buffers: None vs 'own'"):
        plan(spec)


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[1] / "benchmarks").glob(
    "*.toml")), ids=lambda p: p.stem)
def test_every_shipped_sweep_spec_plans(path, tmp_path):
    """The specs in benchmarks/ resolve to valid, fair configurations."""
    from ssl_bench.sweeps.local import read_spec

    values = read_spec(path)
    values["results"] = str(tmp_path)
    runs = plan(make_spec(values, str(path)))
    assert runs
    config = runs[0].config
    if config.preset == "paper":
        assert config.backbone == "densenet121.tv_in1k" and config.report_model == "student"
        if config.dataset == "chestxray14":  # multi-label: no class weights
            assert config.class_weights == config.consistency_class_weights == "none"


def test_resume_after_a_crash_mid_sweep_neither_duplicates_nor_loses_runs(tmp_path):
    from ssl_bench.training.runner import run

    reference_spec = _spec(tmp_path, name="reference")
    run_sweep(reference_spec, plan(reference_spec), quiet=True)

    spec = _spec(tmp_path, name="crashed")
    runs = plan(spec)
    run(runs[0].config, runs[0].output, quiet=True)  # the first run had finished
    run(runs[1].config, runs[1].output, quiet=True, stop_after=2)  # crashed mid-run
    assert (runs[1].output / "checkpoint.pt").is_file()
    result = run_sweep(spec, plan(spec), quiet=True)
    assert result.status[runs[0].key]["status"] == "skipped"
    assert result.status[runs[1].key]["status"] == "resumed"
    crashed_root = tmp_path / "results" / "crashed"
    assert len(list(crashed_root.rglob("metrics.json"))) == 2
    for planned in runs:
        relative = planned.output.relative_to(crashed_root)
        assert _metrics(planned.output) == _metrics(tmp_path / "results" / "reference" / relative)


def test_a_failed_run_is_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch):
    from ssl_bench.methods.mt import MeanTeacher

    def broken(self, batch, ctx):
        raise RuntimeError("simulated failure in mt")

    monkeypatch.setattr(MeanTeacher, "train_step", broken)
    spec = _spec(tmp_path)
    result = run_sweep(spec, plan(spec), quiet=True)
    assert result.count("done") == 1
    assert result.failed == ["mt/labeled=0.1/seed=0"]
    record = json.loads(result.record.read_text())
    failure = record["runs"]["mt/labeled=0.1/seed=0"]
    assert failure["status"] == "failed" and "simulated failure" in failure["error"]
    monkeypatch.undo()
    retried = run_sweep(spec, plan(spec), quiet=True)
    assert retried.count("done") == 1 and retried.count("skipped") == 1


def test_two_jobs_give_the_same_records_as_one(tmp_path):
    one = _spec(tmp_path, name="one")
    two = _spec(tmp_path, name="two")
    run_sweep(one, plan(one), jobs=1, threads=1, quiet=True)
    result = run_sweep(two, plan(two), jobs=2, threads=1, quiet=True)
    assert result.count("done") == 2
    for planned in plan(one):
        relative = planned.output.relative_to(tmp_path / "results" / "one")
        assert _metrics(planned.output) == _metrics(tmp_path / "results" / "two" / relative)


def test_workers_take_this_process_environment_and_folder(tmp_path, monkeypatch):
    """The fork server keeps the environment and folder it started with; each worker takes
    the sweep process's current ones, as a freshly spawned worker does."""
    import os

    from ssl_bench.sweeps.execution import worker_pool

    pool, _ = worker_pool(1)  # (starts the fork server, if this process has none yet)
    assert pool.submit(os.getenv, "SSL_BENCH_TEST_MARK").result() is None
    pool.shutdown()
    monkeypatch.setenv("SSL_BENCH_TEST_MARK", "set later")
    monkeypatch.chdir(tmp_path)
    pool, _ = worker_pool(1)
    try:
        assert pool.submit(os.getenv, "SSL_BENCH_TEST_MARK").result() == "set later"
        assert pool.submit(os.getcwd).result() == str(tmp_path)
    finally:
        pool.shutdown()


def test_sweep_cli_with_a_spec_file(tmp_path, capsys):
    spec_file = tmp_path / "quick.toml"
    spec_file.write_text(
        'methods = ["supervised", "srcmt"]\nlabeled = [0.1]\nseeds = [0]\n'
        f'results = "{tmp_path / "results"}"\nkeep_checkpoints = false\n'
        '[run]\nbackbone = "test_resnet"\nimage_size = 16\niterations = 4\neval_every = 2\n'
        'batch_size = 16\n'
        'labeled_batch_size = 4\n[method_options.srcmt]\nrelation_weight = 2.0\n')
    assert main(["sweep", str(spec_file), "--dry-run"]) == 0
    assert "2 runs" in capsys.readouterr().out
    assert main(["sweep", str(spec_file), "--seeds", "1"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "quick" in out
    # progress for logs (no terminal): a count and a remaining-time estimate per run
    assert "[1/2] supervised/labeled=0.1/seed=1: done (" in captured.err
    assert "left at this sweep's pace so far\n" in captured.err  # one line, unwrapped
    assert "[2/2] srcmt/labeled=0.1/seed=1: done (" in captured.err
    config = json.loads((tmp_path / "results/quick/digits/srcmt/labeled=0.1/seed=1/"
                         "config.json").read_text())["config"]
    assert config["method_options"] == {"relation_weight": 2.0}
    assert main(["sweep", "--methods", "supervised", "--labeled", "0.1", "--seeds", "0"]) == 2
    assert "--name" in capsys.readouterr().err


def test_a_finished_sweep_of_every_method_plans_and_skips_again(tmp_path):
    """Methods with options (srcmt's relation weight) record them resolved with their
    defaults; planning the same sweep again must match those records, not refuse them."""
    from ssl_bench.plugins.registry import list_methods

    spec = _spec(tmp_path, methods=list_methods())
    first = run_sweep(spec, plan(spec), quiet=True)
    assert first.count("done") == len(list_methods())
    again = run_sweep(spec, plan(spec), quiet=True)
    assert again.count("skipped") == len(list_methods())


# ------------------------------------------------- reference sweeps (issue 27, provenance)

def _git(cwd: Path, *args: str) -> None:
    import subprocess

    subprocess.run(["git", "-c", "user.email=t@example.org", "-c", "user.name=t", *args],
                   cwd=cwd, check=True, capture_output=True)


def _code_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    for folder in ("ssl_bench", "methods"):
        (tree / folder).mkdir(parents=True)
        (tree / folder / "a.py").write_text("x = 1\n")
    (tree / "README.md").write_text("docs\n")
    _git(tree, "init", "-q")
    _git(tree, "add", "-A")
    _git(tree, "commit", "-q", "-m", "code")
    return tree


def test_a_reference_sweep_refuses_uncommitted_code_unless_allowed(tmp_path):
    from ssl_bench.sweeps.plan import code_provenance

    tree = _code_tree(tmp_path)
    reference = _spec(tmp_path, reference=True, run={**TINY_RUN, "report_model": "best"})
    clean = code_provenance(reference, False, tree)
    assert clean["uncommitted_code"] == [] and clean["reference"] is True
    assert len(clean["git"]["commit"]) == 40 and clean["code"]["files"] == 2
    (tree / "README.md").write_text("edited docs\n")  # not code: still clean
    assert code_provenance(reference, False, tree)["uncommitted_code"] == []
    (tree / "methods" / "a.py").write_text("x = 2\n")
    (tree / "methods" / "new.py").write_text("")  # untracked code counts too
    with pytest.raises(UserError, match=r"reference sweep \(reference = true\) and the code "
                       r"has uncommitted changes \(methods/a.py, methods/new.py\)"):
        code_provenance(reference, False, tree)
    allowed = code_provenance(reference, True, tree)
    assert allowed["allow_uncommitted"] is True
    assert allowed["uncommitted_code"] == ["methods/a.py", "methods/new.py"]
    assert allowed["code"]["digest"] != clean["code"]["digest"]
    ordinary = code_provenance(_spec(tmp_path), False, tree)  # not a reference sweep
    assert ordinary["reference"] is False and ordinary["uncommitted_code"]


def test_a_reference_sweep_refuses_code_imported_from_another_checkout(tmp_path,
                                                                     monkeypatch):
    """A worktree's ssl_bench on PYTHONPATH with ssl_bench.methods mapped by another
    checkout's editable install would run one checkout's methods under the other's
    commit: refused for a reference sweep, naming the package and the way out."""
    from ssl_bench.core import provenance
    from ssl_bench.sweeps.plan import code_provenance

    assert provenance.code_elsewhere() == []  # (this checkout's own packages run)
    tree = _code_tree(tmp_path)
    monkeypatch.setattr(provenance, "checkout", lambda path=None: path or tree)
    assert [line.split(" from ")[0] for line in provenance.code_elsewhere()] == [
        "ssl_bench", "ssl_bench.methods"]
    reference = _spec(tmp_path, reference=True, run={**TINY_RUN, "report_model": "best"})
    with pytest.raises(UserError, match=r"reference sweep \(reference = true\) and "
                       r"ssl_bench from .*; ssl_bench.methods from .*, not from .*: install "
                       r"that checkout in its own environment"):
        code_provenance(reference, False)
    assert code_provenance(_spec(tmp_path), False)["reference"] is False  # (not refused)


def test_reference_must_be_a_boolean(tmp_path):
    with pytest.raises(UserError, match="test spec: reference must be true or false"):
        _spec(tmp_path, reference="yes")


def test_sweep_json_records_the_code_it_ran(tmp_path):
    from conftest import TINY_FLAGS

    assert main(["sweep", "--name", "tiny", "--methods", "supervised", "--labeled", "0.1",
                 "--seeds", "0", "--results", str(tmp_path), *TINY_FLAGS]) == 0
    record = json.loads((tmp_path / "tiny" / "sweep.json").read_text())
    from ssl_bench.core.provenance import code_digest

    assert record["code"]["code"] == code_digest() and record["code"]["reference"] is False
    assert "uncommitted_code" in record["code"]
