"""Finding and reading finished runs into one tidy table (one row per run per model).

Every directory below the given folders that holds ``metrics.json`` is a finished run (the
file is written last); one that holds ``config.json`` or ``checkpoint.pt`` but no
``metrics.json`` is unfinished and only counted; one with ``failed.json`` diverged. Sweep
layouts (``results/<sweep>/<dataset>/<method>/labeled=<l>/seed=<s>/``) are not assumed.

A run's *settings* are its resolved configuration minus what a comparison may vary
(``config.VARIED_SETTINGS``) and minus machine-only keys (``config.MACHINE_SETTINGS``), plus
the data set's content fingerprint; settings a method declares as its own
(``Method.defaults``) are left out too. Runs whose settings hash differs are never averaged
together (:mod:`.groups` says what differs).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ssl_bench.compare.arguments import MODELS
from ssl_bench.compare.code_versions import (
    code_version,
    mixed_code_warnings,
    mixed_processor_warnings,
    processor,
)
from ssl_bench.config.budget import method_label, peaked_late
from ssl_bench.config.run_config import comparison_settings, parallel_settings
from ssl_bench.core.errors import UserError
from ssl_bench.data.labeled import labeled_tag
from ssl_bench.data.splits import load_split
from ssl_bench.runs.run_dir import CHECKPOINT, CONFIG, FAILED, METRICS, SPLIT, RunDir
from ssl_bench.tuning import STUDY_DB

#: Columns of :func:`load_runs`'s table that are not metrics.
ID_COLUMNS: tuple[str, ...] = (
    "dataset", "method", "labeled", "labeled_tag", "seed", "model", "selected_model",
    "best_step", "path", "settings", "num_labeled", "n_test", "labeled_seen", "labeled_budget",
    "max_steps", "peaked_late",
)


def labeled_order(tag: str) -> tuple[int, float]:
    """Sort key of labeled tags: fractions first (ascending), then counts (ascending)."""
    number = float(tag)
    return (0 if "." in tag or number <= 1 else 1, number)


# --------------------------------------------------------------------------- loading


class _Corrupt(Exception):
    """A run whose files cannot be used (message names the file and the problem)."""


def _find_runs(folders: Sequence[Path]) -> tuple[list[Path], list[Path], list[Path]]:
    """Finished, unfinished and failed (diverged) run folders below ``folders``."""
    finished: dict[Path, None] = {}
    unfinished: dict[Path, None] = {}
    failed: dict[Path, None] = {}
    for folder in folders:
        for root, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            if STUDY_DB in files:  # a tuning study's trials: never results
                dirs[:] = []
                continue
            path = Path(root)
            if METRICS in files:
                finished.setdefault(path.resolve(), None)
            elif FAILED in files:
                failed.setdefault(path.resolve(), None)
            elif CONFIG in files or CHECKPOINT in files:
                unfinished.setdefault(path.resolve(), None)
    return list(finished), list(unfinished), list(failed)


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise _Corrupt(f"{path}: missing (the run has {METRICS} but no {path.name})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise _Corrupt(f"{path}: not valid JSON ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _Corrupt(f"{path}: cannot be read ({exc})") from None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_metrics(path: Path, metrics: Any) -> None:
    if not isinstance(metrics, dict):
        raise _Corrupt(f"{path}: expected a JSON object, got {type(metrics).__name__}")
    for key in ("method", "dataset", "labeled", "seed", "student", "best"):
        if key not in metrics:
            raise _Corrupt(f"{path}: missing key {key!r}")
    for key in ("method", "dataset"):
        if not isinstance(metrics[key], str):
            raise _Corrupt(f"{path}: {key!r} must be a string, got {metrics[key]!r}")
    if not _is_number(metrics["labeled"]) or metrics["labeled"] <= 0:
        raise _Corrupt(f"{path}: 'labeled' must be a positive number, got "
                       f"{metrics['labeled']!r}")
    if not isinstance(metrics["seed"], int) or isinstance(metrics["seed"], bool):
        raise _Corrupt(f"{path}: 'seed' must be an integer, got {metrics['seed']!r}")
    for model in MODELS:
        if model not in metrics:
            continue
        section = metrics[model]
        if not isinstance(section, dict):
            raise _Corrupt(f"{path}: {model!r} must be an object")
        for key in ("best_step", "test"):
            if key not in section:
                raise _Corrupt(f"{path}: missing key {model}.{key}")
        if not isinstance(section["test"], dict):
            raise _Corrupt(f"{path}: {model}.test must be an object")
        if not section["test"]:
            raise _Corrupt(f"{path}: {model}.test is empty (a run made with an empty test "
                           "set, which ssl-bench now refuses); not averaged")
        if "val" in section and not isinstance(section["val"], (dict, type(None))):
            raise _Corrupt(f"{path}: {model}.val must be an object")


def _settings_config(path: Path, document: Any) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise _Corrupt(f"{path}: expected a JSON object, got {type(document).__name__}")
    if not isinstance(document.get("config"), dict):
        raise _Corrupt(f"{path}: missing key 'config'")
    dataset = document.get("dataset")
    if dataset is not None and not isinstance(dataset, dict):
        raise _Corrupt(f"{path}: 'dataset' must be an object")
    settings = comparison_settings(document["config"])
    settings.update(parallel_settings(document))  # (torchrun: the algorithm changes)
    settings["dataset_fingerprint"] = (dataset or {}).get("fingerprint")
    method = document.get("method")
    owned = method.get("defaults") if isinstance(method, dict) else None
    own = document["config"].get("own_settings") or []  # set by this method alone (tuned)
    settings["_method_owned"] = sorted({*(owned if isinstance(owned, dict) else ()), *own})
    return settings


def settings_hash(settings: dict[str, Any]) -> str:
    """Short stable hash of a settings dict (see the module docstring)."""
    text = json.dumps(settings, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


def _scalars(record: dict[str, Any], prefix: str) -> dict[str, float]:
    out = {}
    for key, value in record.items():
        if key == "n" or key.endswith("_per_class") or key == "missing_classes":
            continue
        if value is None or _is_number(value):
            out[prefix + key] = math.nan if value is None else float(value)
    return out


def _check_split_record(path: Path, document: Any, metrics: dict[str, Any]) -> None:
    """The run's ``split.json``, if it kept one, must be valid and the split it used."""
    if not (path / SPLIT).exists():
        return  # results shared without their split files: nothing to check against
    try:
        split = load_split(path / SPLIT)
    except UserError as exc:
        raise _Corrupt(str(exc)) from None
    recorded = (document.get("dataset") or {}).get("split_digest") if isinstance(
        document, dict) else None
    if recorded is not None and recorded != split.digest:
        raise _Corrupt(f"{path / SPLIT}: its ids (digest {split.digest}) are not the split "
                       f"the run recorded in {CONFIG} ({recorded})")
    if metrics.get("num_labeled") is not None and metrics["num_labeled"] != len(split.labeled):
        raise _Corrupt(f"{path / SPLIT}: {len(split.labeled)} labeled ids, but {METRICS} "
                       f"says num_labeled {metrics['num_labeled']}")


def run_label(document: dict[str, Any], metrics: dict[str, Any]) -> str:
    """The name a run is compared under: ``metrics.json``'s ``label``, or for runs that
    predate it the same rule (``supervised-labeled-batch`` for that baseline)."""
    if isinstance(metrics.get("label"), str):
        return metrics["label"]
    method = document.get("method") if isinstance(document, dict) else None
    batch = (document.get("config") or {}).get("supervised_batch")
    if isinstance(method, dict) and "uses_unlabeled" in method and batch:
        return method_label(metrics["method"], bool(method["uses_unlabeled"]), batch)
    return metrics["method"]


def exposure_and_budget(document: dict[str, Any], metrics: dict[str, Any],
                        ) -> tuple[float | None, float | None, float | None]:
    """(labeled images seen, labeled images its budget allowed, maximum steps) of a run;
    derived from ``config.json``'s schedule for runs that predate ``exposure``/``budget``
    in ``metrics.json``."""
    schedule = document.get("schedule") if isinstance(document, dict) else None
    schedule = schedule if isinstance(schedule, dict) else {}
    per_step = (metrics.get("exposure") or {}).get("labeled_per_step",
                                                   schedule.get("num_labeled_per_batch"))
    max_steps = (metrics.get("budget") or {}).get("max_steps", schedule.get("total_steps"))
    if not _is_number(per_step):
        return None, None, float(max_steps) if _is_number(max_steps) else None
    seen = per_step * metrics.get("steps", 0)
    allowed = per_step * max_steps if _is_number(max_steps) else None
    return float(seen), allowed, float(max_steps) if _is_number(max_steps) else None


def last_step_section(path: Path, model: str) -> dict[str, Any] | None:
    """The ``last`` view of a run: ``model``'s metrics at its last evaluation (no
    best-step selection), from ``history.csv``; None without test columns there (runs
    made without ``test_at = "every"``)."""
    history = path / "history.csv"
    if not history.is_file():
        return None
    try:
        table = pd.read_csv(history)
    except (OSError, ValueError, pd.errors.ParserError):
        return None
    if table.empty or "step" not in table:
        return None
    last = table.iloc[-1]

    def part(name: str) -> dict[str, Any]:
        prefix = f"{name}_{model}_"
        return {key[len(prefix):]: (None if pd.isna(value) else float(value))
                for key, value in last.items() if key.startswith(prefix)}

    test = part("test")
    if not test or all(value is None for value in test.values()):
        return None
    return {"model": model, "best_step": int(last["step"]), "val": part("val"), "test": test}


def _read_run(path: Path) -> tuple[list[dict[str, Any]], str, dict[str, Any], list[str]]:
    """Rows (one per model) of one run, its settings hash and settings (with its code
    version under ``_code``), its classes."""
    metrics_path = path / METRICS
    metrics = _read_json(metrics_path)
    _check_metrics(metrics_path, metrics)
    config_path = path / CONFIG
    document = _read_json(config_path)
    settings = _settings_config(config_path, document)
    _check_split_record(path, document, metrics)
    code = code_version(document)
    digest = settings_hash(settings)
    labeled = metrics["labeled"]
    seen, allowed, max_steps = exposure_and_budget(document, metrics)
    base = {
        "dataset": metrics["dataset"], "method": run_label(document, metrics),
        "labeled": labeled, "labeled_tag": labeled_tag(labeled), "seed": metrics["seed"],
        "path": str(path), "settings": digest, "num_labeled": metrics.get("num_labeled"),
        "labeled_seen": seen, "labeled_budget": allowed, "max_steps": max_steps,
        "peaked_late": peaked_late(
            (metrics.get("reported") or metrics.get("best") or {}).get("best_step"), max_steps),
    }
    rows = []
    classes: list[str] = []
    for model in MODELS:
        section = metrics.get(model)
        if model in ("reported", "last") and model not in metrics:
            section = metrics.get("reported") or metrics.get("best")
        if model == "last" and section is not None:
            section = last_step_section(path, section.get("model", "student"))
        if section is None:
            continue
        test = section["test"]
        selected = (section.get("model", model) if model in ("best", "reported", "last")
                    else model)
        row = dict(base, model=model, selected_model=selected,
                   best_step=section.get("best_step"), n_test=test.get("n"))
        row.update(_scalars(test, ""))
        row.update(_scalars(section.get("val") or {}, "val_"))
        per_class = test.get("auc_per_class") or {}
        if isinstance(per_class, dict):
            for name, value in per_class.items():
                row[f"auc_{name}"] = float(value) if _is_number(value) else math.nan
                if name not in classes:
                    classes.append(name)
        rows.append(row)
    settings["_code"] = code
    settings["_processor"] = processor(document)
    return rows, digest, settings, classes


def load_runs(folders: Iterable[str | Path]) -> tuple[pd.DataFrame, list[str]]:
    """Every finished run below ``folders``: one row per run per model, and warnings.

    Columns: :data:`ID_COLUMNS`, then every scalar test metric (``auc``, ``accuracy``,
    ...), ``val_<metric>`` for validation metrics and ``auc_<class>`` for per-class test
    AUC. ``selected_model`` is the network whose numbers a row holds (for ``best``: the
    one chosen on validation). ``df.attrs`` holds ``settings_configs`` (settings hash ->
    the compared configuration) and ``classes`` (data set -> class names).
    """
    folders = [Path(folder) for folder in folders]
    if not folders:
        raise UserError("compare needs at least one folder of runs")
    for folder in folders:
        if not folder.exists():
            raise UserError(f"folder {folder} does not exist")
        if not folder.is_dir():
            raise UserError(f"{folder} is not a folder")
    finished, unfinished, failed = _find_runs(folders)
    warnings: list[str] = []
    rows: list[dict[str, Any]] = []
    configs: dict[str, dict[str, Any]] = {}
    classes: dict[str, list[str]] = {}
    corrupt = 0
    per_run: dict[Path, dict[str, Any]] = {}
    code: dict[Path, tuple[str, bool]] = {}
    cpus: dict[Path, str] = {}
    for path in sorted(finished):
        try:
            run_rows, digest, settings, run_classes = _read_run(path)
        except _Corrupt as exc:
            warnings.append(f"skipped corrupt run: {exc}")
            corrupt += 1
            continue
        rows.extend(run_rows)
        code[path] = settings.pop("_code")
        cpus[path] = settings.pop("_processor")
        per_run[path] = settings
        known = classes.setdefault(run_rows[0]["dataset"], [])
        known.extend(name for name in run_classes if name not in known)
    # Settings a method declares as its own (Method.defaults, e.g. FixMatch's ramp-up)
    # are not compared across methods: they leave every run's settings hash.
    owned = sorted({key for settings in per_run.values()
                    for key in settings.pop("_method_owned", ())})
    for row in rows:
        settings = {k: v for k, v in per_run[Path(row["path"])].items() if k not in owned}
        row["settings"] = settings_hash(settings)
        configs[row["settings"]] = settings
    if owned:
        warnings.append(f"method-specific settings, not compared across methods: "
                        f"{', '.join(owned)} (declared by a method as its paper's default)")
    if unfinished:
        shown = ", ".join(str(p) for p in sorted(unfinished)[:3])
        more = ", ..." if len(unfinished) > 3 else ""
        warnings.insert(0, f"{len(unfinished)} unfinished run{'s' if len(unfinished) != 1 else ''}"
                           f" skipped (no {METRICS}): {shown}{more}")
    if failed:
        shown = "; ".join(f"{p}: {RunDir(p).failure_text()}" for p in sorted(failed)[:3])
        more = "; ..." if len(failed) > 3 else ""
        warnings.insert(0, f"{len(failed)} failed run{'s' if len(failed) != 1 else ''} "
                           f"(diverged, {FAILED}) not averaged: {shown}{more}")
    if not rows:
        names = ", ".join(str(f) for f in folders)
        raise UserError(
            f"no finished run ({METRICS}) found under {names}; seen {len(unfinished)} "
            f"unfinished, {len(failed)} failed and {corrupt} corrupt run(s)"
            + "".join(f"; {w}" for w in warnings if w.startswith("skipped corrupt"))
        )
    per_class = list(dict.fromkeys(f"auc_{c}" for names in classes.values() for c in names))
    frame = _frame(rows, per_class)
    frame.attrs["settings_configs"] = configs
    frame.attrs["classes"] = classes
    warnings.extend(_duplicate_warnings(frame))
    runs = frame.drop_duplicates("path")
    groups = list(runs.groupby(["dataset", "settings"], sort=True))
    warnings.extend(mixed_code_warnings(
        (f"{dataset} (settings {settings})", [code[Path(p)] for p in group["path"]])
        for (dataset, settings), group in groups))
    warnings.extend(mixed_processor_warnings(
        (f"{dataset} (settings {settings})", [cpus[Path(p)] for p in group["path"]])
        for (dataset, settings), group in groups))
    return frame, warnings


def _frame(rows: list[dict[str, Any]], per_class: list[str]) -> pd.DataFrame:
    test: list[str] = []
    val: list[str] = []
    for row in rows:
        for key in row:
            if key in ID_COLUMNS or key in test or key in val or key in per_class:
                continue
            (val if key.startswith("val_") else test).append(key)
    columns = [*ID_COLUMNS, *test, *val, *per_class]
    frame = pd.DataFrame([{c: row.get(c) for c in columns} for row in rows], columns=columns)
    frame["labeled"] = pd.Series([row["labeled"] for row in rows], dtype=object)
    for column in (*test, *val, *per_class):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    return frame


def _duplicate_warnings(frame: pd.DataFrame) -> list[str]:
    out = []
    student = frame[frame["model"] == "student"]
    keys = ["dataset", "settings", "method", "labeled_tag", "seed"]
    for key, group in student.groupby(keys, sort=True):
        if len(group) > 1:
            dataset, settings, method, tag, seed = key
            out.append(
                f"{len(group)} runs of {dataset}/{method} labeled={tag} seed={seed} with the "
                f"same settings ({settings}): averaged per seed: " + ", ".join(group["path"])
            )
    return out


def available_metrics(df: pd.DataFrame) -> list[str]:
    """Metric columns of a :func:`load_runs` table."""
    return [c for c in df.columns if c not in ID_COLUMNS]
