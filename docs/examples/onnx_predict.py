"""Run a model from ``ssl-bench export --format onnx`` with onnxruntime, NumPy and Pillow
alone (no torch, no ssl-bench): the preprocessing its sidecar ``MODEL.json`` records, then
one session call for the whole batch.

``python docs/examples/onnx_predict.py model.onnx IMAGE...`` prints each image's most
probable class and every probability; the test suite runs it (``tests/test_export.py``)
and checks the numbers against ``ssl-bench predict``.
"""

import json
import sys

import numpy as np
import onnxruntime
from PIL import Image

model, paths = sys.argv[1], sys.argv[2:]
with open(model + ".json", encoding="utf-8") as handle:
    sidecar = json.load(handle)
prep = sidecar["preprocessing"]
size, mode = prep["image_size"], prep["color"]
mean = np.asarray(prep["mean"], dtype=np.float32)
std = np.asarray(prep["std"], dtype=np.float32)


def load(path: str) -> np.ndarray:
    """One image as the model's input: [channels, size, size], normalised."""
    with Image.open(path) as image:
        image.draft(mode, (size, size))  # (JPEG: decode at a reduced scale, as ssl-bench)
        image = image.convert(mode).resize((size, size), Image.Resampling.BILINEAR)
        pixels = np.asarray(image, dtype=np.float32).reshape(size, size, -1) / 255.0
    return ((pixels - mean) / std).transpose(2, 0, 1)


session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
batch = np.stack([load(path) for path in paths])  # any batch size
(probabilities,) = session.run([sidecar["output"]["name"]], {sidecar["input"]["name"]: batch})
for path, row in zip(paths, probabilities, strict=True):
    best = int(row.argmax())
    print(f"{path}: {sidecar['classes'][best]} {row[best]:.3f}  "
          + " ".join(f"{name}={p:.6f}" for name, p in zip(sidecar["classes"], row, strict=True)))
