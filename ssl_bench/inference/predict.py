"""``ssl-bench predict RUN INPUT``: class probabilities of a finished run's model.

The images (:mod:`ssl_bench.inference.inputs`) are decoded and predicted in batches of
``batch_size`` with the run's own preprocessing (:meth:`Predictor.transform`), so memory
holds one batch of images, never all of them. The table -- ``image`` (the path as given)
and one probability column per class, in the run's class order -- is written only once
every image is predicted: to ``output`` atomically (a failure leaves no half-written
file) or, without one, to standard output.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from ssl_bench.core.atomic import atomic_write_text
from ssl_bench.core.errors import UserError
from ssl_bench.inference.inputs import Image, collect_images
from ssl_bench.inference.model import Predictor, load_model

__all__ = ["predict_batches", "predict_command", "prediction_csv"]

#: Significant digits of each probability: enough to give back the float32 exactly.
DIGITS = 9


def predict_batches(predictor: Predictor, images: Sequence[Image], batch_size: int) -> Any:
    """``[N, classes]`` probabilities of ``images``, decoded ``batch_size`` at a time."""
    import numpy as np

    parts = [predictor.predict([image.path for image in images[start:start + batch_size]])
             for start in range(0, len(images), batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0, len(predictor.classes)))


def prediction_csv(images: Sequence[Image], classes: Sequence[str], probs: Any) -> str:
    """The predictions table as CSV text: ``image`` then one column per class."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["image", *classes])
    for image, row in zip(images, probs, strict=True):
        writer.writerow([image.name, *(format(float(p), f".{DIGITS}g") for p in row)])
    return buffer.getvalue()


def predict_command(run: str | Path, source: str | Path, *, model: str = "reported",
                    device: str = "auto", batch_size: int = 64, output: str | Path | None = None,
                    image_column: str = "image", image_root: str | Path | None = None,
                    stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Predict every image of ``source`` with ``run``'s model; write the table to
    ``output`` (or standard output) and a one-line summary (to standard error when the
    table goes to standard output)."""
    from ssl_bench.training.prepare import resolve_device

    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    if output is not None and Path(output).is_dir():
        raise UserError(f"--output {output} is a folder; give the CSV file to write")
    predictor = load_model(run, model)
    images = collect_images(source, image_column, image_root)
    target = resolve_device(device)
    predictor.to(target)
    probs = predict_batches(predictor, images, batch_size)
    text = prediction_csv(images, predictor.classes, probs)
    if output is None:
        stdout.write(text)
        where, say = "standard output", stderr
    else:
        atomic_write_text(output, text)
        where, say = str(output), stdout
    print(f"predicted {len(images):,} image{'s' if len(images) != 1 else ''} with the "
          f"{predictor.model} of {run} (step {predictor.step}, {predictor.image_size}px, "
          f"{predictor.activation} over {len(predictor.classes)} classes) on {target.type}"
          f" -> {where}", file=say)
    return 0
