"""ssl-bench from Python: train two runs, compare them, predict with the better one.

Run it as a script (``python docs/examples/python_api.py [FOLDER]``) or cell by cell in a
notebook; the test suite runs it (``tests/test_api.py``). It uses the built-in ``digits``
data set and a budget of seconds, so the numbers are a smoke test, not a result.
"""

import sys
import tempfile
from pathlib import Path

import numpy as np

from ssl_bench import api

folder = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp())
settings = dict(dataset="digits", labeled=0.1, image_size=16, iterations=40, eval_every=20,
                batch_size=32, labeled_batch_size=8, threads=1)

# 1. Train: any run setting by name, checked as the command line checks its flags.
for method in ("supervised", "mt"):
    metrics = api.run(folder / "runs" / method, method=method, **settings)
    print(f"{method}: test AUC {metrics['reported']['test']['auc']:.3f} "
          f"({metrics['reported']['model']} at step {metrics['reported']['best_step']})")

# 2. Compare: the table of `ssl-bench compare`, as a pandas DataFrame.
table = api.compare(folder / "runs")
print(table[["method", "labeled", "n", "mean", "labeled_seen"]].to_string(index=False))

# 3. Predict: the reported network with the preprocessing its run used.
predictor = api.load_model(folder / "runs" / "mt")
from sklearn.datasets import load_digits  # noqa: E402 (the images to classify)

images = np.round(load_digits().images[:5] * (255 / 16)).astype(np.uint8)
probabilities = predictor.predict(images)
print(f"{predictor.model} of step {predictor.step}: classes {predictor.classes[:3]}...,",
      "predicted", [predictor.classes[i] for i in probabilities.argmax(1)])
