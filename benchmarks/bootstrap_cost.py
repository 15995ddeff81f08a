"""What the bootstrap over test images costs ``compare`` and ``report``, measured in one run.

Synthetic predictions of the isic2018-mini reference protocol's size (1,197 test images,
7 classes, 5 seeds per method; ``--images``, ``--classes``, ``--seeds``): the seconds of
one cell's interval and of one paired difference, per metric, with the resamples
``--resamples`` (default: compare's 2000). The weighted metrics are checked against
``compute_metrics`` on the images as drawn before anything is timed.

    python benchmarks/bootstrap_cost.py --metrics auc accuracy ece
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np

from ssl_bench.compare.arguments import BOOTSTRAP_RESAMPLES
from ssl_bench.compare.bootstrap import Scored, bootstrap_interval
from ssl_bench.compare.weighted_metrics import weighted_metric
from ssl_bench.training.metrics import compute_metrics


def _predictions(rng: np.random.Generator, targets: np.ndarray, classes: int,
                 shift: float) -> np.ndarray:
    logits = rng.normal(size=(len(targets), classes))
    logits[np.arange(len(targets)), targets] += shift
    probs = np.exp(logits)
    return probs / probs.sum(axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1197)
    parser.add_argument("--classes", type=int, default=7)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--resamples", type=int, default=BOOTSTRAP_RESAMPLES)
    parser.add_argument("--metrics", nargs="+", default=["auc", "accuracy", "f1_macro", "ece",
                                                         "brier"])
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    targets = rng.integers(0, args.classes, args.images)
    names = [f"c{j}" for j in range(args.classes)]
    first = [_predictions(rng, targets, args.classes, 1.5) for _ in range(args.seeds)]
    second = [_predictions(rng, targets, args.classes, 1.2) for _ in range(args.seeds)]
    ids = tuple(map(str, range(args.images)))
    figures = []
    for metric in args.metrics:
        def scored(probs: np.ndarray, metric: str = metric) -> Scored:
            return Scored(ids, weighted_metric(metric, probs, targets, "single", names))

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = np.mean([compute_metrics(p, targets, "single", names)[metric]
                            for p in first])
        start = time.perf_counter()
        cell = bootstrap_interval([[scored(p)] for p in first], resamples=args.resamples)
        cell_seconds = time.perf_counter() - start
        assert abs(cell.estimate - want) < 1e-9, (metric, cell.estimate, want)
        start = time.perf_counter()
        pair = bootstrap_interval([[scored(a), scored(b)] for a, b in
                                   zip(first, second, strict=True)],
                                  sign=(1.0, -1.0), resamples=args.resamples)
        pair_seconds = time.perf_counter() - start
        figures.append({"metric": metric, "cell_s": round(cell_seconds, 2),
                        "pair_s": round(pair_seconds, 2), "cell": [cell.low, cell.high],
                        "interval": cell.method, "difference": pair.estimate,
                        "p": pair.p_value})
        print(f"{metric:10s} cell {cell_seconds:6.2f} s ({cell.method} "
              f"[{cell.low:.4f}, {cell.high:.4f}])   pair {pair_seconds:6.2f} s "
              f"(difference {pair.estimate:+.4f}, p {pair.p_value:.3g})")
    print(f"{args.images} images x {args.classes} classes x {args.seeds} seeds, "
          f"{args.resamples} resamples")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"settings": vars(args), "figures": figures}, handle, indent=1)


if __name__ == "__main__":
    main()
