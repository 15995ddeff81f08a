"""Issue 28, item 3: a plug-in that calls ``sys.exit`` or raises ``KeyboardInterrupt`` is a
failure of that run or check, in one line naming it -- never a success, never a Ctrl-C."""

from __future__ import annotations

import json

import pytest
from conftest import TINY_FLAGS

from ssl_bench.cli.main import main
from ssl_bench.plugins.registry import method_registry

EXITING = '''
import sys

from ssl_bench.method_kit.method import Method
from ssl_bench.plugins.registry import register_method


@register_method({name!r})
class Exiting(Method):
    summary = "test plug-in that ends the process in train_step"

    def train_step(self, batch, ctx):
        {statement}
'''

STATEMENTS = {"exit0": "sys.exit(0)", "exit3": "sys.exit(3)",
              "keyboard": "raise KeyboardInterrupt"}


@pytest.fixture(params=sorted(STATEMENTS))
def exiting_plugin(request, tmp_path):
    """A plug-in file whose train_step ends the process one way; unregistered afterwards."""
    name = f"test-exiting-{request.param}"
    path = tmp_path / f"exiting_{request.param}.py"
    path.write_text(EXITING.format(name=name, statement=STATEMENTS[request.param]))
    yield name, path
    if name in dict(method_registry.items()):
        method_registry.unregister(name)


def test_run_of_a_plugin_that_exits_fails_in_one_line(exiting_plugin, tmp_path, capsys):
    name, path = exiting_plugin
    out = tmp_path / "run"
    code = main(["run", "--plugin", str(path), "--method", name, "--output", str(out),
                 "--quiet", *TINY_FLAGS])
    err = capsys.readouterr().err.strip()
    assert code == 2, err  # not 0 (sys.exit(0)), not 130 (as if Ctrl-C)
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"method {name!r} ({path})" in err and "in train_step" in err
    assert not (out / "metrics.json").exists()


def test_check_method_on_a_plugin_that_exits_fails_the_check(exiting_plugin, capsys):
    name, path = exiting_plugin
    assert main(["check-method", str(path), "--checks", "gradients"]) == 1
    err = capsys.readouterr().err
    assert f"{name} on digits: gradients FAILED: MethodEndedProcess: method {name!r}" in err
    assert "2 check(s) failed" in err  # on digits and digits-multilabel
    assert "method_faults.py" not in err


def test_a_sweep_goes_on_past_a_plugin_that_exits(tmp_path, capsys):
    path = tmp_path / "exiting_sweep.py"
    name = "test-exiting-sweep"
    path.write_text(EXITING.format(name=name, statement="sys.exit(0)"))
    try:
        code = main(["sweep", "--plugin", str(path), "--name", "exits", "--methods",
                     f"{name},supervised", "--labeled", "0.1", "--seeds", "0",
                     "--dataset", "digits", "--results", str(tmp_path / "results"),
                     *TINY_FLAGS])
    finally:
        method_registry.unregister(name)
    assert code == 1  # a run failed; the sweep did not end with 0 and no summary
    runs = json.loads((tmp_path / "results" / "exits" / "sweep.json").read_text())["runs"]
    status = {key.split("/")[0]: run["status"] for key, run in runs.items()}
    assert status == {name: "failed", "supervised": "done"}, runs
    assert "called sys.exit(0) in train_step" in runs[f"{name}/labeled=0.1/seed=0"]["error"]


def test_a_plugin_that_exits_at_import_is_a_one_line_error(tmp_path, capsys):
    path = tmp_path / "exits_at_import.py"
    path.write_text("import sys\nsys.exit(0)\n")
    for command in (["check-method", str(path)], ["list", "--plugin", str(path)]):
        assert main(command) == 2
        err = capsys.readouterr().err.strip()
        assert err == (f"ssl-bench: error: plug-in file {path} called sys.exit(0) while it "
                       "was imported; a plug-in must register methods, not end the process")
