"""Tracking outages never stall or kill a run (issue 28, item 7).

A tracking store that cannot be used when the run starts (nothing listening, a
read-only folder or file, a damaged ``mlflow.db``) is one error line before anything is
prepared; one that fails during the run is one warning line, and the run trains on to
the same records an untracked run writes; a resumed run whose MLflow run is gone from the
store continues on a new one and says so. The command-line cases run in a subprocess
(a hang is bounded by :data:`HANG_LIMIT`, far above what they need; no speed is asserted).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from conftest import TINY_FLAGS, tiny_config

from ssl_bench.cli.main import main
from ssl_bench.training.runner import run

pytest.importorskip("mlflow")

REPO = Path(__file__).resolve().parents[1]
#: Seconds a command-line case may take before it counts as hung (it needs a few).
HANG_LIMIT = 150
#: The one line a store that cannot be used gives, up to the store and the problem.
START_ERROR = "ssl-bench: error: --log mlflow: cannot use the tracking store "
#: What the first failed call of a dead server raises in MLflow (its REST client's text).
REFUSED = ("API request to http://127.0.0.1:9/api/2.0/mlflow/runs/log-batch failed with "
           "exception HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with "
           "url: /api/2.0/mlflow/runs/log-batch (Caused by NewConnectionError(\"HTTPConnection("
           "host='127.0.0.1', port=9): Failed to establish a new connection: [Errno 111] "
           "Connection refused\"))")


@pytest.fixture(scope="module")
def mlflow_db(tmp_path_factory) -> Path:
    """A real MLflow SQLite store with one run and some metrics in it."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    with warnings.catch_warnings():  # (SQLAlchemy's deprecations in MLflow's own code)
        warnings.simplefilter("ignore", DeprecationWarning)
        client = MlflowClient(f"sqlite:///{path}")
        run_id = client.create_run(client.create_experiment("earlier")).info.run_id
        client.log_batch(run_id, metrics=[Metric(f"m{i}", 1.0, 0, s) for i in range(20)
                                          for s in range(20)])
    return path


def _free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _cli(cwd: Path, uri: str, *, without_root_override: bool = False,
         ) -> subprocess.CompletedProcess:
    """``ssl-bench run --log mlflow`` against ``uri`` in a fresh process (MLflow's own
    HTTP limits, not any of this environment's); ``without_root_override``: as root,
    without the capability that writes read-only files, so read-only means read-only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(MLFLOW_TRACKING_URI=uri, OMP_NUM_THREADS="1",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    prefix: list[str] = []
    if without_root_override and os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: a read-only folder is writable")
        prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner"]
    command = [*prefix, sys.executable, "-m", "ssl_bench", "run", "--method", "mt",
               "--dataset", "digits", *TINY_FLAGS, "--log", "mlflow", "-o", str(cwd / "run")]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=HANG_LIMIT)


def _one_start_error(done: subprocess.CompletedProcess, cwd: Path, *problem: str) -> str:
    """The run stopped with exit 2 and one line naming the store and the problem, before
    it prepared or wrote anything."""
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 2, done.stdout + done.stderr
    assert len(lines) == 1, lines
    assert lines[0].startswith(START_ERROR), lines[0]
    for text in problem:
        assert text in lines[0], lines[0]
    assert not (cwd / "run").exists()
    return lines[0]


def test_an_unreachable_tracking_server_is_one_error_line_before_training(tmp_path):
    uri = f"http://127.0.0.1:{_free_port()}"
    line = _one_start_error(_cli(tmp_path, uri), tmp_path, uri, "Connection refused")
    assert "MLFLOW_TRACKING_URI" in line


@pytest.mark.parametrize("existing", [False, True], ids=["new-store", "existing-file"])
def test_a_read_only_sqlite_location_is_one_error_line(tmp_path, existing):
    folder = tmp_path / "read-only"
    folder.mkdir()
    if existing:
        with sqlite3.connect(folder / "mlflow.db") as db:
            db.execute("CREATE TABLE t (x)")
        (folder / "mlflow.db").chmod(0o444)
    folder.chmod(0o555)
    try:
        done = _cli(tmp_path, f"sqlite:///{folder / 'mlflow.db'}", without_root_override=True)
    finally:
        folder.chmod(0o755)
    _one_start_error(done, tmp_path, str(folder),
                     "readonly" if existing else "Permission denied")


@pytest.mark.parametrize("damage", ["truncated", "overwritten"])
def test_a_damaged_mlflow_db_is_one_error_line_saying_what_to_do(tmp_path, mlflow_db, damage):
    path = tmp_path / "mlflow.db"
    data = mlflow_db.read_bytes()
    path.write_bytes(data[:len(data) // 4] if damage == "truncated"
                     else b"not a database " * (len(data) // 15))
    line = _one_start_error(_cli(tmp_path, f"sqlite:///{path}"), tmp_path, str(path))
    assert ("malformed" if damage == "truncated" else "not a database") in line
    assert "aside" in line
    assert path.read_bytes()[:15] == (data[:15] if damage == "truncated" else b"not a database ")


def _comparable(folder: Path) -> dict[str, Any]:
    """``metrics.json`` without its wall-clock times."""
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if "seconds" not in k}
        return value

    return strip(json.loads((folder / "metrics.json").read_text()))


def _history(folder: Path) -> list[list[str]]:
    """``history.csv`` without its seconds column."""
    rows = [line.split(",") for line in (folder / "history.csv").read_text().splitlines()]
    drop = rows[0].index("seconds")
    return [row[:drop] + row[drop + 1:] for row in rows]


def _tracking_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    """The trackers' warnings among ``caught`` (``--log ...``), as text."""
    return [str(w.message) for w in caught if str(w.message).startswith("--log ")]


def _log_batch_failing_after(monkeypatch, calls: int) -> list[int]:
    """MLflow's ``log_batch`` of metrics fails as a dead server's does, from call
    ``calls + 1`` on; returns the list of attempts made."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    real, attempts = MlflowClient.log_batch, []

    def log_batch(self, run_id, metrics=(), *args, **kwargs):
        if metrics:
            attempts.append(len(metrics))
            if len(attempts) > calls:
                raise MlflowException(REFUSED)
        return real(self, run_id, metrics, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "log_batch", log_batch)
    return attempts


@pytest.mark.parametrize("calls", [0, 3])
def test_a_tracker_failing_mid_run_warns_once_and_the_run_finishes_as_untracked(
        tmp_path, mlflow_store, monkeypatch, capsys, calls):
    flags = ["run", "--method", "mt", "--dataset", "digits", *TINY_FLAGS]
    assert main([*flags, "-o", str(tmp_path / "plain")]) == 0
    attempts = _log_batch_failing_after(monkeypatch, calls)
    capsys.readouterr()
    assert main([*flags, "--log", "mlflow", "-o", str(tmp_path / "tracked")]) == 0
    err = capsys.readouterr().err
    warned = [line for line in err.splitlines() if line.startswith("ssl-bench: warning:")]
    assert warned == ["ssl-bench: warning: --log mlflow: Connection refused "
                      "(http://127.0.0.1:9/api/2.0/mlflow/runs/log-batch); mlflow tracking is "
                      "off for the rest of this run (training goes on; its own records are "
                      "written as usual)"], err
    assert "Traceback" not in err
    assert len(attempts) == calls + 1  # no call after the first failure
    assert _comparable(tmp_path / "tracked") == _comparable(tmp_path / "plain")
    assert _history(tmp_path / "tracked") == _history(tmp_path / "plain")
    assert (tmp_path / "tracked" / "best.pt").is_file()


def test_a_store_removed_mid_run_and_a_failing_upload_cost_nothing_but_a_warning(
        tmp_path, mlflow_store, monkeypatch):
    plain = run(tiny_config(method="mt"), tmp_path / "plain", quiet=True)
    store = Path(mlflow_store.tracking_uri.removeprefix("file://"))

    def remove_store(step: int, row: dict) -> None:
        if step == 2:  # the real store goes: every later call fails for real
            shutil.rmtree(store)
            store.write_text("not a store any more")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics = run(tiny_config(method="mt", log="mlflow,tensorboard"), tmp_path / "gone",
                      quiet=True, on_evaluation=remove_store)
    outages = _tracking_warnings(caught)
    assert len(outages) == 1 and outages[0].startswith("--log mlflow: ")
    assert "\n" not in outages[0]
    assert metrics is not None and _comparable(tmp_path / "gone") == _comparable(
        tmp_path / "plain") and plain["steps"] == metrics["steps"]
    assert (tmp_path / "gone" / "tb").is_dir()  # the other tracker went on

    from mlflow.tracking import MlflowClient

    def full_disk(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left")

    monkeypatch.setattr(MlflowClient, "log_artifact", full_disk)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shutil.rmtree(store.with_name("elsewhere"), ignore_errors=True)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", store.with_name("elsewhere").as_uri())
        metrics = run(tiny_config(method="mt", log="mlflow"), tmp_path / "upload", quiet=True)
    outages = _tracking_warnings(caught)
    assert outages == ["--log mlflow: [Errno 28] No space left; mlflow tracking is off for "
                       "the rest of this run (training goes on; its own records are written "
                       "as usual)"]
    assert metrics is not None and _comparable(tmp_path / "upload") == _comparable(
        tmp_path / "plain")


@pytest.mark.parametrize("loss", ["deleted", "store-lost"])
def test_resume_after_the_tracked_run_is_gone_starts_a_new_one_and_says_so(
        tmp_path, mlflow_store, capsys, loss):
    out = tmp_path / "run"
    tiny = list(TINY_FLAGS)
    tiny[tiny.index("--iterations") + 1] = "6"
    flags = ["run", "--method", "mt", "--dataset", "digits", *tiny, "--log", "mlflow",
             "--experiment", "lost", "-o", str(out)]
    config = tiny_config(method="mt", iterations=6, eval_every=2, log="mlflow",
                         experiment="lost")
    assert run(config, out, quiet=True, stop_after=4) is None  # a killed run
    first = json.loads((out / "tracking.json").read_text())["mlflow"]["run_id"]
    if loss == "deleted":
        mlflow_store.delete_run(first)
    else:  # a new, empty store where the old one was (as a new process makes it)
        from mlflow.store.tracking.file_store import FileStore

        store = Path(mlflow_store.tracking_uri.removeprefix("file://"))
        shutil.rmtree(store)
        FileStore(str(store))
    capsys.readouterr()
    assert main([*flags, "--resume"]) == 0
    err = capsys.readouterr().err
    notices = [line for line in err.splitlines() if "--log mlflow" in line]
    assert len(notices) == 1 and notices[0].startswith("ssl-bench: warning: --log mlflow: "
                                                       f"its MLflow run {first} is no longer")
    assert "logging to a new MLflow run" in notices[0] and "Traceback" not in err
    second = json.loads((out / "tracking.json").read_text())["mlflow"]["run_id"]
    assert second != first
    new = mlflow_store.get_run(second)
    assert new.info.status == "FINISHED" and new.info.lifecycle_stage == "active"
    steps = [m.step for m in mlflow_store.get_metric_history(second, "val_student_auc")]
    assert sorted(steps) == [2, 4, 6]  # the history before the resume too
    assert json.loads((out / "metrics.json").read_text())["steps"] == 6
