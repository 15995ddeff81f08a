"""The command line: smoke tests and every user error (one line, exit code 2)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import PLUGIN, TINY_FLAGS

from ssl_bench.cli.main import main


def test_list_shows_methods_datasets_and_backbones(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("supervised", "pi", "mt", "srcmt", "--relation-weight", "digits",
                 "digits-multilabel", "backbones:"):
        assert name in out
    assert main(["list", "--backbones", "resnet1*"]) == 0
    out = capsys.readouterr().out
    assert "resnet10t" in out and "densenet121" not in out


def test_list_with_a_plugin(capsys):
    assert main(["list", "--methods", "--plugin", str(PLUGIN)]) == 0
    assert "test-kl-teacher" in capsys.readouterr().out


def test_run_writes_results_and_prints_a_table(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["run", "--method", "srcmt", "--labeled", "0.1", "--relation-weight", "2",
                 "--output", str(out), "--quiet", *TINY_FLAGS])
    assert code == 0
    printed = capsys.readouterr().out
    assert "srcmt on digits" in printed and "teacher" in printed
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["method_options"] == {"relation_weight": 2.0}
    assert config["image_size"] == 16 and config["labeled"] == 0.1
    assert (out / "metrics.json").is_file()


def test_run_default_output_layout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--method", "supervised", "--labeled", "50", "--seed", "3", "--quiet",
                 *TINY_FLAGS]) == 0
    assert (tmp_path / "runs/digits/supervised/labeled=50/seed=3/metrics.json").is_file()


def test_config_file_and_flag_precedence(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('method = "mt"\nlr = 0.002\nimage_size = 16\n'
                      '[method_options]\n')
    out = tmp_path / "run"
    assert main(["run", "--config", str(config), "--lr", "0.003", "--output", str(out),
                 "--quiet", *TINY_FLAGS]) == 0
    stored = json.loads((out / "config.json").read_text())["config"]
    assert stored["method"] == "mt" and stored["lr"] == 0.003


def test_plugin_method_runs_from_the_cli(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--plugin", str(PLUGIN), "--method", "test-kl-teacher",
                 "--temperature", "2", "--output", str(out), "--quiet", *TINY_FLAGS]) == 0
    stored = json.loads((out / "config.json").read_text())["config"]
    assert stored["method_options"] == {"temperature": 2.0}


def test_resume_from_the_run_directory_alone(tmp_path):
    from conftest import tiny_config

    from ssl_bench.training.runner import run

    out = tmp_path / "run"
    run(tiny_config(method="mt"), out, quiet=True, stop_after=2)
    assert main(["run", "--resume", "--output", str(out), "--quiet"]) == 0
    assert json.loads((out / "metrics.json").read_text())["steps"] == 4


def test_bad_config_file_names_file_and_key(tmp_path, capsys):
    config = tmp_path / "bad.toml"
    config.write_text("learning_rate = 0.1\n")
    assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert str(config) in err and "learning_rate" in err
    config.write_text("lr = [\n")
    assert main(["run", "--config", str(config)]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_broken_plugin_is_an_error(tmp_path, capsys):
    plugin = tmp_path / "broken.py"
    plugin.write_text("import not_a_real_module\n")
    assert main(["list", "--plugin", str(plugin)]) == 2
    err = capsys.readouterr().err
    assert "broken.py failed to import" in err and "not_a_real_module" in err


def test_console_entry_point_exits_2_without_traceback(tmp_path):
    import os
    from pathlib import Path

    repo = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": repo + os.pathsep + os.environ.get("PYTHONPATH", "")}
    # No speed is asserted (a loaded machine may take minutes): the error's content is.
    result = subprocess.run(
        [sys.executable, "-m", "ssl_bench", "run", "--labeled", "0"],
        capture_output=True, text=True, cwd=tmp_path, timeout=1800, env=env,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("ssl-bench: error: --labeled")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


@pytest.mark.parametrize("name", ["srcmt", "SRCMT"])
def test_a_plugin_reusing_a_built_in_name_is_a_one_line_error(tmp_path, name):
    """Issue 9, item 11: the clash used to surface later as a traceback.

    A fresh interpreter, since in this test session the built-ins are already loaded.
    """
    import os
    from pathlib import Path

    plugin = tmp_path / "dup.py"
    plugin.write_text(
        "from ssl_bench.method_kit.method import Method\n"
        "from ssl_bench.plugins.registry import register_method\n\n"
        f"@register_method({name!r})\n"
        "class Dup(Method):\n"
        "    pass\n")
    repo = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": repo + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run(
        [sys.executable, "-m", "ssl_bench", "run", "--plugin", str(plugin), "--method",
         "srcmt", "-o", "out"], capture_output=True, text=True, cwd=tmp_path, timeout=1800,
        env=env)
    assert result.returncode == 2
    assert result.stderr.startswith("ssl-bench: error: plug-in file")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert "is already registered" in result.stderr
    assert not (tmp_path / "out").exists()


def test_every_run_flag_has_one_help_section():
    """Issue 15, item 7: run --help groups its flags; none is left out or shown twice."""
    from ssl_bench.cli.flags import FLAG_GROUPS, RUN_FLAGS

    grouped = [dest for dests in FLAG_GROUPS.values() for dest in dests]
    assert sorted(grouped) == sorted(dest for _, dest, _, _ in RUN_FLAGS)


def test_every_run_setting_has_a_flag_and_every_number_a_range():
    """Issue 29: every setting the README promises a flag has one (momentum and
    channels_last had none), and a numeric one out of range is one line naming its flag."""
    import dataclasses

    from ssl_bench.cli.flags import RUN_FLAGS
    from ssl_bench.config.run_config import RunConfig

    set_otherwise = {"method", "method_options", "dataset_options", "preset", "own_settings"}
    flagged = {dest for _, dest, _, _ in RUN_FLAGS}
    assert {f.name for f in dataclasses.fields(RunConfig)} - flagged == set_otherwise
    assert main(["run", "--optimizer", "sgd", "--momentum", "1.0", "-o", "/nonexistent/x"]) == 2


def test_sweep_takes_method_options_on_the_command_line(tmp_path, capsys):
    from ssl_bench.cli.flags import parse_method_options

    assert parse_method_options(["fixmatch.threshold=0.9", "mt.x-y=1"]) == {
        "fixmatch": {"threshold": "0.9"}, "mt": {"x_y": "1"}}
    common = ["sweep", "--name", "s", "--methods", "fixmatch", "--labeled", "0.2", "--seeds",
              "0", "--results", str(tmp_path), "--dry-run"]
    assert main([*common, "--method-option", "fixmatch.threshold=0.9"]) == 0
    assert main([*common, "--method-option", "fixmatch.thresh=0.9"]) == 2
    assert "has no option(s) thresh" in capsys.readouterr().err
    assert main([*common, "--method-option", "threshold=0.9"]) == 2
    assert "is not METHOD.OPTION=VALUE" in capsys.readouterr().err


BROKEN_METHOD = '''
from ssl_bench.method_kit.method import Method
from ssl_bench.plugins.registry import register_method


@register_method("test-frozen-backbone")
class FrozenBackbone(Method):
    """Trains only the classifier by mistake: its loss never reaches the backbone."""

    summary = "test plug-in that breaks the contract"

    def train_step(self, batch, ctx):
        features, _ = ctx.student(batch.student_view)
        logits = ctx.student.model.get_classifier()(features.detach())
        supervised = ctx.task.supervised_loss(logits[: batch.num_labeled], batch.targets)
        return {"total": supervised, "supervised": supervised}
'''


def test_check_method_passes_a_good_plug_in_and_names_what_a_bad_one_breaks(tmp_path, capsys):
    """Issue 15, item 8: the registry contract checks, run on an outside file."""
    from ssl_bench.plugins.registry import method_registry

    bad = tmp_path / "broken.py"
    bad.write_text(BROKEN_METHOD)
    try:
        _check_method_runs(bad, capsys)
    finally:  # the broken method must not stay registered for the other tests
        method_registry.unregister("test-frozen-backbone")


def _check_method_runs(bad, capsys):
    from conftest import PLUGIN

    assert main(["check-method", str(bad), "--checks", "gradients"]) == 1
    err = capsys.readouterr().err
    assert "test-frozen-backbone on digits: gradients FAILED: no gradient reaches" in err
    assert "2 check(s) failed" in err  # on digits and digits-multilabel
    assert main(["check-method", str(PLUGIN), "--checks", "gradients,vanishing"]) == 0
    err = capsys.readouterr().err
    assert "nothing" not in err and "every check passed" in err
    assert main(["check-method", str(bad), "--checks", "speed"]) == 2


BAD_SPACE_METHOD = '''
from ssl_bench.method_kit.method import Method
from ssl_bench.plugins.registry import register_method
from ssl_bench.method_kit.search_space import Float


@register_method("test-bad-space")
class BadSpace(Method):
    """Searches an option it does not have (a typo) -- ssl-bench tune would fail late."""

    summary = "test plug-in with a bad search space"
    search_space = {"wieght": Float(0.1, 1.0)}

    def train_step(self, batch, ctx):
        logits = ctx.student(batch.student_view)[1]
        supervised = ctx.task.supervised_loss(logits[: batch.num_labeled], batch.targets)
        return {"total": supervised, "supervised": supervised}
'''


def test_check_method_checks_the_search_space(tmp_path, capsys):
    """Issue 27: check-method validates what ``ssl-bench tune`` would search."""
    from ssl_bench.plugins.registry import method_registry

    bad = tmp_path / "bad_space.py"
    bad.write_text(BAD_SPACE_METHOD)
    try:
        assert main(["check-method", str(bad), "--checks", "search-space"]) == 1
    finally:
        method_registry.unregister("test-bad-space")
    err = capsys.readouterr().err
    assert "test-bad-space on digits: search-space FAILED:" in err and "'wieght'" in err
