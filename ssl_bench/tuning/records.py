"""Reading tuning records back: which ``tuning.json`` files belong to a set of results,
and each method's budget and choice as table rows (the report's "Tuning" section)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ssl_bench.tuning import TUNING_DIR, TUNING_JSON


def find_tuning_records(folders: Sequence[str | Path]) -> list[tuple[Path, dict[str, Any]]]:
    """``tuning.json`` files below ``folders`` and those their tuned sweeps name
    (``tuned_by`` in ``sweep.json``); unreadable ones are left out."""
    paths: dict[Path, None] = {}
    for folder in map(Path, folders):
        for path in sorted(folder.rglob(f"{TUNING_DIR}/{TUNING_JSON}")):
            paths.setdefault(path.resolve(), None)
        for sweep in sorted(folder.rglob("sweep.json")):
            try:
                tuned_by = json.loads(sweep.read_text(encoding="utf-8"))["spec"].get("tuned_by")
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                continue
            if tuned_by and Path(tuned_by).is_file():
                paths.setdefault(Path(tuned_by).resolve(), None)
    records = []
    for path in paths:
        try:
            records.append((path, json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError):
            continue
    return records


def _value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def budget_rows(record: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Per method: trials counted (finished / pruned / diverged), the best validation
    value and the chosen settings."""
    header = ["method", "trials", "finished", "pruned", "diverged",
              f"best val {record['objective']['metric']}", "chosen"]
    rows = []
    for label, entry in record["methods"].items():
        outcomes = [t["outcome"] for t in entry["trials"]]
        best = entry.get("best")
        rows.append([label, str(entry["counted"]), str(outcomes.count("finished")),
                     str(outcomes.count("pruned")), str(outcomes.count("diverged")),
                     "n/a" if best is None else f"{best['value']:.4f}",
                     "defaults kept" if best is None else ", ".join(
                         f"{k}={_value(v)}" for k, v in best["params"].items())])
    return header, rows


def describe(record: dict[str, Any]) -> str:
    """One sentence: the budget and what the objective saw."""
    run = ", ".join(f"{k}={v}" for k, v in record.get("trial_run", {}).items())
    return (f"{record['trials_per_method']} trials per method ("
            f"{'complete' if record['complete'] else 'incomplete'}) on seed "
            f"{record['tuning_seed']} (reported seeds "
            f"{', '.join(map(str, record['reported_seeds']))}), labeled {record['labeled']}, "
            f"objective: validation {record['objective']['metric']} of the reported model, "
            f"test never scored; sampler {record['sampler']['name']}, pruner "
            f"{record['pruner']['name']}" + (f"; trials ran with {run}" if run else ""))
