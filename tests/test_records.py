"""Records that cannot lie: resume verifies split.json and config.json; compare and sweep
treat a garbled or contradicting split record as a problem, never skip past it."""

from __future__ import annotations

import json

import pytest
from conftest import tiny_config
from test_sweep import _spec

from ssl_bench.compare import load_runs
from ssl_bench.core.errors import UserError
from ssl_bench.data.splits import make_split, save_split
from ssl_bench.sweeps.local import check_same_splits, plan, run_sweep
from ssl_bench.training.prepare import load_dataset
from ssl_bench.training.runner import run


def _stopped(tmp_path):
    out = tmp_path / "run"
    run(tiny_config(method="mt"), out, quiet=True, stop_after=2)
    return out


def _edit_split(path, edit):
    record = json.loads(path.read_text())
    edit(record)
    path.write_text(json.dumps(record))


@pytest.mark.parametrize("damage,message", [
    (lambda p: p.write_text('{"train": [1, 2, oops'), "not valid JSON"),
    (lambda p: p.unlink(), "does not exist"),
    (lambda p: _edit_split(p, lambda r: r.update(labeled=r["labeled"][:1])),
     "labeled part lists 1"),
    (lambda p: save_split(make_split(load_dataset(tiny_config()), 1, 0.1), p),
     "is not the split this run's configuration gives"),
    (lambda p: _edit_split(p, lambda r: r.update(format_version=99)), "format version"),
])
def test_resume_refuses_a_garbled_or_contradicting_split(tmp_path, damage, message):
    out = _stopped(tmp_path)
    damage(out / "split.json")
    with pytest.raises(UserError, match=message) as caught:
        run(tiny_config(method="mt"), out, quiet=True, resume=True)
    assert "--overwrite" in str(caught.value)
    assert (out / "checkpoint.pt").exists()  # refused before touching anything


def test_resume_refuses_a_config_record_without_its_table(tmp_path):
    out = _stopped(tmp_path)
    (out / "config.json").write_text('{"settings": {}}')
    with pytest.raises(UserError, match="has no 'config' table"):
        run(tiny_config(method="mt"), out, quiet=True, resume=True)
    (out / "config.json").write_text("{")
    with pytest.raises(UserError, match="cannot read"):
        run(tiny_config(method="mt"), out, quiet=True, resume=True)


def test_an_intact_record_resumes(tmp_path):
    out = _stopped(tmp_path)
    assert run(tiny_config(method="mt"), out, quiet=True, resume=True)["finished"]


def test_sweep_split_check_and_compare_catch_a_garbled_split(tmp_path):
    spec = _spec(tmp_path)
    runs = plan(spec)
    run_sweep(spec, runs, quiet=True)
    assert check_same_splits(runs) == []
    garbled = runs[1].output / "split.json"
    garbled.write_text('{"train": [1, 2, oops')
    problems = check_same_splits(runs)
    assert len(problems) == 1 and runs[1].key in problems[0] and "not valid JSON" in problems[0]
    frame, warnings = load_runs([tmp_path / "results"])
    assert set(frame["method"]) == {"supervised"}
    assert any("skipped corrupt run" in w and "not valid JSON" in w for w in warnings)
    # a valid split file that is not the split the run trained on
    save_split(make_split(load_dataset(runs[0].config), 5, 0.1), runs[0].output / "split.json")
    with pytest.raises(UserError, match="its ids .* are not the split the run recorded"):
        load_runs([tmp_path / "results"])


def test_a_plug_in_method_s_source_is_recorded_and_copied(tmp_path):
    """Issue 15, item 8: the code that made a result stays beside it."""
    import hashlib

    from conftest import PLUGIN

    from ssl_bench.training.runner import run

    run(tiny_config(method="test-kl-teacher"), tmp_path / "r", quiet=True)
    record = json.loads((tmp_path / "r" / "config.json").read_text())["plugins"]
    assert [(r["kind"], r["name"]) for r in record] == [("method", "test-kl-teacher")]
    assert record[0]["sha256"] == hashlib.sha256(PLUGIN.read_bytes()).hexdigest()
    assert (tmp_path / "r" / record[0]["copy"]).read_bytes() == PLUGIN.read_bytes()
    run(tiny_config(method="mt"), tmp_path / "builtin", quiet=True)
    assert json.loads((tmp_path / "builtin" / "config.json").read_text())["plugins"] == []


def test_the_running_checkout_is_the_repository_root():
    """Without a path, provenance reads the checkout that holds the running code (where
    pyproject.toml is): its digest covers every engine and method file (after the
    package moved into sub-folders it once covered none, and the reference check with
    it saw no uncommitted file)."""
    from ssl_bench.core.provenance import CODE_FOLDERS, checkout, code_digest

    root = checkout()
    assert (root / "pyproject.toml").is_file() and (root / "methods" / "mt.py").is_file()
    files = [path for folder in CODE_FOLDERS for path in (root / folder).rglob("*.py")]
    assert code_digest()["files"] == len(files) > 100


def test_code_digest_follows_the_engine_and_method_sources(tmp_path):
    """Issue 27 (provenance): equal code gives an equal digest, committed or not; any
    edit of an engine or method file, or a new method file, changes it; other files
    (tests, results, docs) do not."""
    from ssl_bench.core.provenance import code_digest

    for folder, name in (("ssl_bench", "engine.py"), ("methods", "mt.py")):
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / name).write_text("x = 1\n")
    (tmp_path / "README.md").write_text("docs")
    first = code_digest(tmp_path)
    assert first["files"] == 2 and len(first["digest"]) == 16
    assert code_digest(tmp_path) == first
    (tmp_path / "README.md").write_text("other docs")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "a.py").write_text("y = 2\n")
    assert code_digest(tmp_path) == first
    (tmp_path / "methods" / "mt.py").write_text("x = 2\n")
    edited = code_digest(tmp_path)
    assert edited["digest"] != first["digest"]
    (tmp_path / "methods" / "new.py").write_text("")
    assert code_digest(tmp_path)["files"] == 3
    assert code_digest(tmp_path)["digest"] != edited["digest"]
