"""MLflow: one MLflow run per ssl-bench run, in an experiment named after the sweep.

The server is ``MLFLOW_TRACKING_URI`` when set (a lab's shared server, a ``file:`` store,
...), else MLflow's own default in the working directory (``mlflow.db`` and ``mlruns/``
since MLflow 3; ``mlflow ui`` run there shows them). A resumed run continues the same
MLflow run: its id is kept in ``<run>/tracking.json``; when that MLflow run is gone from
the store (deleted, or the store lost), the run says so and continues on a new MLflow
run, given the history it already has.

Outages cost seconds, not minutes: MLflow's own defaults retry an unreachable server for
about four minutes per call and a database it cannot open for about two, so the start
check (:func:`check_store`) allows one short try, and the calls during a run a few
(:data:`START_HTTP`, :data:`LOGGING_HTTP`; a value the user set in the environment wins).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ssl_bench.core.atomic import atomic_write_json
from ssl_bench.core.errors import UserError
from ssl_bench.tracking.base import (
    RunInfo,
    TrackingWarning,
    first_line,
    flatten,
    numbers,
    register_tracker,
)

#: Where a run directory keeps the id of its MLflow run (to continue it on --resume).
TRACKING_FILE = "tracking.json"
#: The files of the run directory logged as artifacts at the end.
ARTIFACTS = ("metrics.json", "config.json", "split.json")
#: MLflow's limits per ``log_batch`` call and on a parameter value's length (MLflow 2.x).
MAX_METRICS, MAX_PARAMS, MAX_PARAM_LENGTH = 1000, 100, 500
#: MLflow's HTTP settings for the start check: one retry (at once), 5 s per request.
START_HTTP = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "5", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1"}
#: ... and for the calls during a run: one retry after a second, 5 s per request, so a
#: server that stops answering holds training up once, for about 11 s, before tracking is
#: turned off (10 s and two retries measured 34 s; a value set in the environment wins).
LOGGING_HTTP = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "5", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
                "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}
#: The most seconds the start check spends on SQLite's integrity check of a store (a
#: larger store is checked only that far).
INTEGRITY_SECONDS = 2.0
#: The table the start check creates, in a transaction it rolls back, to try a write.
WRITE_PROBE = "ssl_bench_write_probe"
#: What to do about a damaged store.
MOVE_ASIDE = ("move {path} aside (MLflow starts a new store there) or set "
              "MLFLOW_TRACKING_URI to another store")


def experiment_id(client: Any, name: str) -> str:
    """The id of experiment ``name``, created if needed (safe when workers race)."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(client.create_experiment(name))
    except MlflowException:  # another process created it meanwhile
        return str(client.get_experiment_by_name(name).experiment_id)


def check_store(experiment: str) -> str:
    """Before a run or sweep: the tracking store answers and takes writes, within seconds,
    and experiment ``experiment`` exists in it (its id returned); else a one-line
    :class:`UserError` naming the store."""
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = mlflow.get_tracking_uri()
    if uri.startswith("sqlite:"):
        problem = sqlite_problem(uri)
        if problem:
            raise UserError(store_message(uri, problem))
    with http_limits(START_HTTP), no_database_retries():
        try:
            return experiment_id(MlflowClient(uri), experiment)
        except Exception as exc:  # noqa: BLE001 (a store fails in its own ways, a file
            # store with a bare Exception: all of them are this store's problem)
            raise UserError(store_message(uri, first_line(exc))) from None


def store_message(uri: str, problem: str) -> str:
    """The one line of a store that cannot be used."""
    source = ("MLFLOW_TRACKING_URI" if os.environ.get("MLFLOW_TRACKING_URI")
              else "MLflow's default; set MLFLOW_TRACKING_URI for another")
    return f"--log mlflow: cannot use the tracking store {uri} ({source}): {problem}"


def store_errors() -> tuple[type[BaseException], ...]:
    """What a tracking store raises when it cannot be used (not a bug of ssl-bench)."""
    from mlflow.exceptions import MlflowException

    errors: list[type[BaseException]] = [MlflowException, OSError, sqlite3.Error]
    with contextlib.suppress(ImportError):
        import sqlalchemy.exc

        errors.append(sqlalchemy.exc.SQLAlchemyError)
    with contextlib.suppress(ImportError):
        import requests

        errors.append(requests.RequestException)
    return tuple(errors)


@contextlib.contextmanager
def http_limits(limits: dict[str, str]) -> Iterator[None]:
    """MLflow's HTTP timeout and retries set to ``limits`` for the calls inside (where the
    user has not set them), and urllib3's retry warnings kept out of the run's output."""
    added = {key: value for key, value in limits.items() if key not in os.environ}
    retries = logging.getLogger("urllib3.connectionpool")
    level = retries.level
    os.environ.update(added)
    retries.setLevel(logging.ERROR)
    try:
        yield
    finally:
        retries.setLevel(level)
        for key in added:
            os.environ.pop(key, None)


@contextlib.contextmanager
def no_database_retries() -> Iterator[None]:
    """MLflow's database stores without their retries while connecting (ten, over about
    two minutes, for a database that cannot be opened): the start check fails at once."""
    from mlflow.store.db import utils

    before = getattr(utils, "MAX_RETRY_COUNT", None)
    if before is not None:
        utils.MAX_RETRY_COUNT = 1
    try:
        yield
    finally:
        if before is not None:
            utils.MAX_RETRY_COUNT = before


def sqlite_path(uri: str) -> Path | None:
    """The file of a ``sqlite:`` store (None: in memory, or a path given as a URI)."""
    from sqlalchemy.engine import make_url

    url = make_url(uri)
    if not url.database or url.database == ":memory:" or url.query.get("uri"):
        return None
    return Path(url.database)


def sqlite_problem(uri: str) -> str | None:
    """Why the SQLite store ``uri`` cannot be used (None: it can), found with SQLite itself
    in at most a few seconds: a folder that cannot be written, a file that is not a
    database or is damaged (truncated, overwritten), one that cannot be written."""
    path = sqlite_path(uri)
    if path is None:
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # as MLflow does
    except OSError as exc:
        return f"cannot create {exc.filename or path.parent}: {exc.strerror or exc}"
    if path.exists():
        return database_problem(path)
    try:
        with tempfile.TemporaryFile(dir=path.parent):
            return None
    except OSError as exc:
        return f"cannot write in {path.parent}: {exc.strerror or exc}"


def database_problem(path: Path) -> str | None:
    """Why the SQLite file ``path`` cannot be a store: damaged, or not writable."""
    try:
        with contextlib.closing(sqlite3.connect(f"{path.absolute().as_uri()}?mode=rw",
                                                uri=True, timeout=5,
                                                isolation_level=None)) as db:
            damage = integrity_problem(db)
            if damage:
                return f"{path} is damaged ({damage}); {MOVE_ASIDE.format(path=path)}"
            db.execute("BEGIN IMMEDIATE")
            db.execute(f"CREATE TABLE {WRITE_PROBE} (x)")  # a real write (rolled back)
            db.execute("ROLLBACK")
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc):  # busy with another run's writes: usable
            return None
        return f"{path}: {first_line(exc)}"
    except sqlite3.DatabaseError as exc:  # not a database at all
        return f"{path}: {first_line(exc)}; {MOVE_ASIDE.format(path=path)}"
    return None


def integrity_problem(db: sqlite3.Connection) -> str | None:
    """SQLite's ``quick_check`` of ``db``, for at most :data:`INTEGRITY_SECONDS` (a
    larger file passes on what was checked); None: no damage found."""
    deadline = time.monotonic() + INTEGRITY_SECONDS
    db.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    try:
        rows = db.execute("PRAGMA quick_check").fetchall()
    except sqlite3.OperationalError as exc:
        if "interrupt" in str(exc):
            return None
        raise
    finally:
        db.set_progress_handler(None, 0)
    return None if rows == [("ok",)] else str(rows[0][0]) if rows else "no answer"


@register_tracker("mlflow")
class MlflowTracker:
    """MLflow runs: metrics at their step, the configuration as parameters, tags.

    The run's records are stored as artifacts and its tags name method, data set, labeled
    fraction and seed, so a sweep compares in MLflow's UI."""

    name = "mlflow"
    requires = "mlflow"
    install = "pip install 'ssl-bench[mlflow]'"
    check_store = staticmethod(check_store)

    def __init__(self, info: RunInfo) -> None:
        from mlflow.tracking import MlflowClient

        self.info = info
        self.client = MlflowClient()
        with http_limits(LOGGING_HTTP):
            try:
                self.run_id = self._continued() if info.resumed else None
                if self.run_id is None:
                    self._start()
            except store_errors() as exc:
                raise UserError(store_message(self.client.tracking_uri,
                                              first_line(exc))) from None

    def _start(self) -> None:
        """A new MLflow run: its tags and parameters, its id in ``tracking.json``, and (a
        resumed run) the history it already has."""
        run = self.client.create_run(
            experiment_id(self.client, self.info.experiment), run_name=self.info.name,
            tags={**self.info.tags, "experiment": self.info.experiment})
        self.run_id = run.info.run_id
        self._params(flatten(self.info.config))
        if self.info.resumed:
            self._replay_history()
        atomic_write_json(self.info.run_dir / TRACKING_FILE, {"mlflow": {
            "run_id": self.run_id, "tracking_uri": self.client.tracking_uri,
            "experiment": self.info.experiment}})

    def _continued(self) -> str | None:
        """The MLflow run this run directory started on the same server, if it is still
        there (else None, and a notice that a new one starts)."""
        import json

        path = self.info.run_dir / TRACKING_FILE
        try:
            kept = json.loads(path.read_text())["mlflow"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        run_id, uri = str(kept["run_id"]), self.client.tracking_uri
        if kept.get("tracking_uri") != uri:
            self._notice(f"this run was tracked in {kept.get('tracking_uri')}, not in {uri}")
            return None
        if not self._still_there(run_id):
            self._notice(f"its MLflow run {run_id} is no longer in {uri} (deleted, or the "
                         "store was replaced)")
            return None
        self.client.update_run(run_id, status="RUNNING")
        return run_id

    def _still_there(self, run_id: str) -> bool:
        """Whether MLflow run ``run_id`` exists in the store and is not deleted."""
        from mlflow.exceptions import MlflowException

        try:
            run = self.client.get_run(run_id)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return False
            raise
        return run.info.lifecycle_stage != "deleted"

    def _notice(self, why: str) -> None:
        """Say, in one line, that the resumed run goes on in a new MLflow run."""
        warnings.warn(f"--log mlflow: {why}; logging to a new MLflow run, which gets this "
                      f"run's history.csv up to step {self.info.start_step} first",
                      TrackingWarning, stacklevel=2)

    def _replay_history(self) -> None:
        """The rows of ``history.csv`` a resumed run already has, at their steps."""
        import csv

        from ssl_bench.runs.run_dir import HISTORY

        path = self.info.run_dir / HISTORY
        if not path.is_file():
            return
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                step = int(row.pop("step"))
                if step <= self.info.start_step:
                    self._metrics(step, numbers({k: _number(v) for k, v in row.items()}))

    def _params(self, config: dict[str, Any]) -> None:
        from mlflow.entities import Param

        params = [Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in config.items()]
        for start in range(0, len(params), MAX_PARAMS):
            self.client.log_batch(self.run_id, params=params[start:start + MAX_PARAMS])

    def _metrics(self, step: int, values: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v in values.items()]
        for start in range(0, len(metrics), MAX_METRICS):
            self.client.log_batch(self.run_id, metrics=metrics[start:start + MAX_METRICS])

    def log_step(self, step: int, values: dict[str, float]) -> None:
        with http_limits(LOGGING_HTTP):
            self._metrics(step, values)

    def log_evaluation(self, step: int, values: dict[str, float]) -> None:
        with http_limits(LOGGING_HTTP):
            self._metrics(step, values)

    def finish(self, step: int, hparams: dict[str, Any], final: dict[str, float]) -> None:
        with http_limits(LOGGING_HTTP):
            self._metrics(step, final)  # (the parameters were logged when the run started)
            for name in ARTIFACTS:
                path = self.info.run_dir / name
                if path.is_file():
                    self.client.log_artifact(self.run_id, str(path))

    def close(self, status: str) -> None:
        with http_limits(LOGGING_HTTP):
            self.client.set_terminated(self.run_id, status)


def _number(text: str | None) -> float | None:
    """A ``history.csv`` cell as a number (None: empty or not a number)."""
    try:
        return float(text) if text not in ("", None) else None
    except ValueError:
        return None
