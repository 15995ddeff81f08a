"""MLflow: one MLflow run per ssl-bench run, in an experiment named after the sweep.

The server is ``MLFLOW_TRACKING_URI`` when set (a lab's shared server, a ``file:`` store,
...), else MLflow's own default in the working directory (``mlflow.db`` and ``mlruns/``
since MLflow 3; ``mlflow ui`` run there shows them). A resumed run continues the same
MLflow run: its id is kept in ``<run>/tracking.json``.
"""

from __future__ import annotations

import time
from typing import Any

from ..atomic import atomic_write_json
from ..errors import UserError
from . import RunInfo, flatten

#: Where a run directory keeps the id of its MLflow run (to continue it on --resume).
TRACKING_FILE = "tracking.json"
#: The files of the run directory logged as artifacts at the end.
ARTIFACTS = ("metrics.json", "config.json", "split.json")
#: MLflow's limits per ``log_batch`` call and on a parameter value's length (MLflow 2.x).
MAX_METRICS, MAX_PARAMS, MAX_PARAM_LENGTH = 1000, 100, 500


def experiment_id(client: Any, name: str) -> str:
    """The id of experiment ``name``, created if needed (safe when workers race); a
    server that cannot be used is a one-line error naming it."""
    from mlflow.exceptions import MlflowException

    try:
        found = client.get_experiment_by_name(name)
    except MlflowException as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"--log mlflow: cannot use the tracking server "
                        f"{client.tracking_uri} (MLFLOW_TRACKING_URI): {first}") from None
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(client.create_experiment(name))
    except MlflowException:  # another process created it meanwhile
        return str(client.get_experiment_by_name(name).experiment_id)


class MlflowTracker:
    """Metrics at their step, the resolved configuration as parameters, records as
    artifacts, tags method/dataset/labeled/seed (so a sweep compares in MLflow's UI)."""

    def __init__(self, info: RunInfo) -> None:
        from mlflow.tracking import MlflowClient

        self.info = info
        self.client = MlflowClient()
        self.run_id = self._continued() if info.resumed else None
        if self.run_id is None:
            run = self.client.create_run(
                experiment_id(self.client, info.experiment), run_name=info.name,
                tags={**info.tags, "experiment": info.experiment})
            self.run_id = run.info.run_id
            self._params(flatten(info.config))
            atomic_write_json(info.run_dir / TRACKING_FILE, {"mlflow": {
                "run_id": self.run_id, "tracking_uri": self.client.tracking_uri,
                "experiment": info.experiment}})

    def _continued(self) -> str | None:
        """The MLflow run this run directory started on the same server, if any."""
        import json

        path = self.info.run_dir / TRACKING_FILE
        try:
            kept = json.loads(path.read_text())["mlflow"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if kept.get("tracking_uri") != self.client.tracking_uri:
            return None
        self.client.update_run(kept["run_id"], status="RUNNING")
        return str(kept["run_id"])

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
        self._metrics(step, values)

    def log_evaluation(self, step: int, values: dict[str, float]) -> None:
        self._metrics(step, values)

    def finish(self, step: int, hparams: dict[str, Any], final: dict[str, float]) -> None:
        self._metrics(step, final)  # (the parameters were logged when the run started)
        for name in ARTIFACTS:
            path = self.info.run_dir / name
            if path.is_file():
                self.client.log_artifact(self.run_id, str(path))

    def close(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status)
