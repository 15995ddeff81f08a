"""``predictions.csv.gz``: a finished run's test probabilities, with the image ids.

What ``compare`` and ``report`` resample for bootstrap intervals and draw confusion
matrices from. A record, not an array dump: one gzip-compressed CSV per run (written with
a fixed gzip timestamp, so the same predictions give the same bytes), one row per test
image in split order, with the columns

* ``id``: the image id,
* ``target`` (single-label: the class index) or ``target:<class>`` (multi-label: 0/1),
* ``<model>:<class>``: the probability of each model (``student``, ``teacher``) at its
  best-validation step -- the weights its test metrics come from -- written with 9
  significant digits, which give back every float32 exactly.

``metrics.json`` describes it under ``"predictions"`` (file, models and their steps,
``n``, and an xxh3-128 digest of the arrays); :func:`read_predictions` parses it back into
those arrays (``ids``, ``classes``, ``targets``, ``probs_<model>``) and checks them
against that record, so a damaged or swapped file is refused, never resampled.
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path
from typing import Any

from ssl_bench.core.atomic import atomic_write_bytes
from ssl_bench.core.errors import UserError
from ssl_bench.runs.integrity import content_digest

PREDICTIONS = "predictions.csv.gz"
#: The prefix of each model's probability array (as :func:`read_predictions` returns it).
PROBS = "probs_"


def _arrays(ids: list[str], classes: list[str], targets: Any,
            probs: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    arrays = {"ids": np.asarray(ids, dtype=str), "classes": np.asarray(classes, dtype=str),
              "targets": np.asarray(targets).astype(np.int16)}
    for model, values in probs.items():
        arrays[PROBS + model] = np.asarray(values, dtype=np.float32)
    return arrays


def write_predictions(folder: str | Path, ids: list[str], classes: list[str], targets: Any,
                      probs: dict[str, Any], steps: dict[str, int]) -> dict[str, Any]:
    """Write ``predictions.csv.gz`` into ``folder`` (atomically) and return the record
    ``metrics.json`` keeps of it."""
    arrays = _arrays(ids, classes, targets, probs)
    multi = arrays["targets"].ndim == 2
    models = list(probs)
    header = ["id", *([f"target:{c}" for c in classes] if multi else ["target"]),
              *[f"{model}:{c}" for model in models for c in classes]]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    for i, image in enumerate(arrays["ids"]):
        target = arrays["targets"][i]
        writer.writerow([image, *([int(t) for t in target] if multi else [int(target)]),
                         *[f"{v:.9g}" for model in models for v in arrays[PROBS + model][i]]])
    data = gzip.compress(text.getvalue().encode("utf-8"), mtime=0)
    atomic_write_bytes(Path(folder) / PREDICTIONS, data)
    return {"file": PREDICTIONS, "part": "test", "n": len(ids),
            "models": {model: int(steps[model]) for model in probs},
            "digest": content_digest(arrays)}


def _parse(path: Path, record: dict[str, Any]) -> dict[str, Any]:
    """The arrays of a predictions file (``record`` names its models)."""
    import numpy as np

    rows = list(csv.reader(io.StringIO(gzip.decompress(path.read_bytes()).decode("utf-8"))))
    header, body = rows[0], rows[1:]
    models = list(record.get("models", {}))
    columns = {name: j for j, name in enumerate(header)}
    first = models[0] if models else ""
    classes = [name.split(":", 1)[1] for name in header if name.startswith(f"{first}:")]
    probs = {model: np.array([[float(row[columns[f"{model}:{c}"]]) for c in classes]
                              for row in body], dtype=np.float32).reshape(-1, len(classes))
             for model in models}
    if "target" in columns:
        targets = [int(row[columns["target"]]) for row in body]
    else:
        targets = [[int(row[columns[f"target:{c}"]]) for c in classes] for row in body]
    return _arrays([row[0] for row in body], classes, targets, probs)


def read_predictions(folder: str | Path, record: dict[str, Any]) -> dict[str, Any]:
    """The arrays of a run's predictions file, checked against ``record`` (its entry in
    ``metrics.json``); a missing, damaged or altered file is a one-line error."""
    path = Path(folder) / str(record.get("file", PREDICTIONS))
    if not path.is_file():
        raise UserError(f"{path}: missing (metrics.json records test predictions)")
    try:
        arrays = _parse(path, record)
    except Exception as exc:  # not gzip, not CSV, a missing column or value, ...
        raise UserError(f"{path} is damaged and cannot be read ({type(exc).__name__})") from None
    if content_digest(arrays) != record.get("digest"):
        raise UserError(f"{path}: its content does not match the digest metrics.json "
                        "records (altered or from another run)")
    return arrays
