"""A finished run's network outside training: load it, predict with it, export it.

``model`` loads the reported (or the student's, the teacher's) weights of a finished run
as a :class:`Predictor` with the run's own preprocessing (image size, channels, mean and
std) and the network that maps a normalised batch to probabilities (``Probabilities``);
``inputs`` turns an image file, a folder or a CSV of paths into the list of images to
predict; ``predict`` is ``ssl-bench predict`` (batched, one CSV row per image);
``export`` is ``ssl-bench export`` (ONNX or TorchScript, its preprocessing recorded
beside it and the exported model checked against eager torch).
"""

from __future__ import annotations

from ssl_bench.inference.model import Predictor, load_model

__all__ = ["Predictor", "load_model"]
