"""``predictions.npz``: a finished run's test probabilities, with the image ids.

What ``compare`` and ``report`` resample for bootstrap intervals and draw confusion
matrices from. One compressed ``.npz`` per run (no pickle), holding

* ``ids``: the test images' ids (split order), ``classes``: the class names,
* ``targets``: class indices ``[N]`` (single-label) or 0/1 ``[N, K]`` (multi-label),
* ``probs_<model>``: float32 ``[N, K]`` probabilities of each model (``student``,
  ``teacher``) at its best-validation step -- the weights its test metrics come from.

``metrics.json`` describes it under ``"predictions"`` (file, models and their steps,
``n``, and an xxh3-128 digest of every array); :func:`read_predictions` checks the file
against that record, so a damaged or swapped file is refused, never resampled.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ssl_bench.core.atomic import atomic_write_bytes
from ssl_bench.core.errors import UserError
from ssl_bench.runs.integrity import content_digest

PREDICTIONS = "predictions.npz"
#: The prefix of each model's probability array.
PROBS = "probs_"


def write_predictions(folder: str | Path, ids: list[str], classes: list[str], targets: Any,
                      probs: dict[str, Any], steps: dict[str, int]) -> dict[str, Any]:
    """Write ``predictions.npz`` into ``folder`` (atomically) and return the record
    ``metrics.json`` keeps of it."""
    import numpy as np

    arrays = {"ids": np.asarray(ids, dtype=str), "classes": np.asarray(classes, dtype=str),
              "targets": np.asarray(targets).astype(np.int16)}
    for model, values in probs.items():
        arrays[PROBS + model] = np.asarray(values, dtype=np.float32)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(Path(folder) / PREDICTIONS, buffer.getvalue())
    return {"file": PREDICTIONS, "part": "test", "n": len(ids),
            "models": {model: int(steps[model]) for model in probs},
            "digest": content_digest(arrays)}


def read_predictions(folder: str | Path, record: dict[str, Any]) -> dict[str, Any]:
    """The arrays of a run's ``predictions.npz``, checked against ``record`` (its entry in
    ``metrics.json``); a missing, damaged or altered file is a one-line error."""
    import numpy as np

    path = Path(folder) / str(record.get("file", PREDICTIONS))
    if not path.is_file():
        raise UserError(f"{path}: missing (metrics.json records test predictions)")
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {key: stored[key] for key in stored.files}
    except Exception as exc:  # a truncated zip, a file of another format, ...
        raise UserError(f"{path} is damaged and cannot be read ({type(exc).__name__})") from None
    if content_digest(arrays) != record.get("digest"):
        raise UserError(f"{path}: its content does not match the digest metrics.json "
                        "records (altered or from another run)")
    return arrays
