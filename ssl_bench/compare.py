"""Compare finished runs: one tidy table, per-method summaries, paired tests, plots.

Finding runs
    Every directory below the given folders that holds ``metrics.json`` is a finished run
    (the file is written last); one that holds ``config.json`` or ``checkpoint.pt`` but no
    ``metrics.json`` is unfinished and only counted. Sweep layouts
    (``results/<sweep>/<dataset>/<method>/labeled=<l>/seed=<s>/``) are not assumed.

Settings groups
    A run's *settings* are its resolved configuration minus what a comparison may vary
    (``config.VARIED_SETTINGS``: method, its options, the labeled amount, the seed, the split
    file) and minus machine-only keys (``config.MACHINE_SETTINGS``: where data and caches live,
    device, workers, AMP, memory layout, ...), plus the data set's content fingerprint
    from ``config.json``. Runs whose settings differ are never averaged together; each
    group is summarised on its own and :func:`describe_differences` says what differs.

Statistics
    Per data set x settings x method x labeled amount: mean and standard deviation
    (ddof=1) over seeds, the gain over the baseline method's mean, and a paired t-test
    (:func:`scipy.stats.ttest_rel`) against the baseline, pairing runs by seed (only
    seeds present in both); likewise ``srcmt`` against ``mt``. Runs repeated with the
    same seed and settings are averaged per seed first (and reported by
    :func:`load_runs`), so ``n`` counts distinct seeds. Undefined metric values (``None``
    in ``metrics.json``, e.g. an AUC with one class absent) are dropped and counted.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .atomic import atomic_write_bytes, atomic_write_text
from .config import comparison_settings
from .errors import UserError
from .labeled import labeled_tag, parse_labeled
from .run_dir import CHECKPOINT, CONFIG, FAILED, METRICS, SPLIT, RunDir
from .splits import load_split

#: ``reported``: the model each run reports (its ``report_model``; runs that predate it
#: reported ``best``).
MODELS: tuple[str, ...] = ("student", "teacher", "best", "reported")
FORMATS: tuple[str, ...] = ("md", "csv", "latex", "json")
SUFFIX_FORMATS: dict[str, str] = {
    ".md": "md", ".markdown": "md", ".csv": "csv", ".tex": "latex", ".json": "json",
}
TEST_NAME = "paired t-test"
FEW_PAIRS_NOTE = "fewer than 3 paired seeds: no test"

#: Columns of :func:`load_runs`'s table that are not metrics.
ID_COLUMNS: tuple[str, ...] = (
    "dataset", "method", "labeled", "labeled_tag", "seed", "model", "selected_model",
    "best_step", "path", "settings", "num_labeled", "n_test",
)


# --------------------------------------------------------------------------- loading


class _Corrupt(Exception):
    """A run whose files cannot be used (message names the file and the problem)."""


def _labeled_order(tag: str) -> tuple[int, float]:
    """Fractions first (ascending), then counts (ascending)."""
    number = float(tag)
    return (0 if "." in tag or number <= 1 else 1, number)


def _find_runs(folders: Sequence[Path]) -> tuple[list[Path], list[Path], list[Path]]:
    """Finished, unfinished and failed (diverged) run folders below ``folders``."""
    finished: dict[Path, None] = {}
    unfinished: dict[Path, None] = {}
    failed: dict[Path, None] = {}
    for folder in folders:
        for root, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
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
    settings["dataset_fingerprint"] = (dataset or {}).get("fingerprint")
    method = document.get("method")
    owned = method.get("defaults") if isinstance(method, dict) else None
    settings["_method_owned"] = sorted(owned) if isinstance(owned, dict) else []
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


def _read_run(path: Path) -> tuple[list[dict[str, Any]], str, dict[str, Any], list[str]]:
    """Rows (one per model) of one run, its settings hash and settings, its classes."""
    metrics_path = path / METRICS
    metrics = _read_json(metrics_path)
    _check_metrics(metrics_path, metrics)
    config_path = path / CONFIG
    document = _read_json(config_path)
    settings = _settings_config(config_path, document)
    _check_split_record(path, document, metrics)
    digest = settings_hash(settings)
    labeled = metrics["labeled"]
    base = {
        "dataset": metrics["dataset"], "method": metrics["method"], "labeled": labeled,
        "labeled_tag": labeled_tag(labeled), "seed": metrics["seed"], "path": str(path),
        "settings": digest, "num_labeled": metrics.get("num_labeled"),
    }
    rows = []
    classes: list[str] = []
    for model in MODELS:
        section = metrics.get(model)
        if model == "reported" and section is None:
            section = metrics.get("best")
        if section is None:
            continue
        test = section["test"]
        selected = section.get("model", model) if model in ("best", "reported") else model
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
    for path in sorted(finished):
        try:
            run_rows, digest, settings, run_classes = _read_run(path)
        except _Corrupt as exc:
            warnings.append(f"skipped corrupt run: {exc}")
            corrupt += 1
            continue
        rows.extend(run_rows)
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


# --------------------------------------------------------------------------- settings


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and (value or not prefix):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value}


_ABSENT = "<unset>"


def _show(value: Any) -> str:
    if value is _ABSENT:
        return _ABSENT
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def describe_differences(df: pd.DataFrame) -> dict[str, str]:
    """For data sets with several settings groups: settings hash -> what sets it apart.

    E.g. ``{"1a2b3c4d": "image_size=32, iterations=800", "5e6f...": "image_size=64,
    iterations=400"}``. Data sets with a single group are left out.
    """
    configs = df.attrs.get("settings_configs", {})
    notes: dict[str, str] = {}
    for _, group in df.groupby("dataset", sort=True):
        hashes = sorted(group["settings"].unique())
        if len(hashes) < 2:
            continue
        if not all(h in configs for h in hashes):
            for h in hashes:
                notes[h] = "settings differ (configurations not available)"
            continue
        flat = {h: _flatten(configs[h]) for h in hashes}
        keys = sorted(set().union(*flat.values()))
        differing = [k for k in keys
                     if len({_show(flat[h].get(k, _ABSENT)) for h in hashes}) > 1]
        for h in hashes:
            notes[h] = ", ".join(f"{k}={_show(flat[h].get(k, _ABSENT))}" for k in differing)
    return notes


# --------------------------------------------------------------------------- statistics


def _paired(a: pd.Series, b: pd.Series) -> tuple[float | None, float | None, int, str]:
    """Paired t-test of per-seed values ``a`` against ``b`` (indexed by seed)."""
    from scipy import stats

    common = a.index.intersection(b.index)
    n_pairs = len(common)
    if n_pairs < 3:
        return None, None, n_pairs, FEW_PAIRS_NOTE
    x = a.loc[common].to_numpy(dtype=float)
    y = b.loc[common].to_numpy(dtype=float)
    diff = x - y
    if np.all(diff == diff[0]):
        return None, None, n_pairs, "identical differences across seeds: t-test undefined"
    result = stats.ttest_rel(x, y)
    return float(result.statistic), float(result.pvalue), n_pairs, ""


def _method_order(methods: Iterable[str], baseline: str) -> list[str]:
    methods = sorted(set(methods))
    return ([baseline] if baseline in methods else []) + [m for m in methods if m != baseline]


def _check_labeled_counts(df: pd.DataFrame) -> None:
    """Refuse to average runs of one labeled amount that trained on different counts.

    Runs of the same data set version, fraction and seed get the same labeled set; so
    within a settings group every run of a fraction must report one ``num_labeled`` per
    seed, and seeds can differ only by rounding. A hand-edited or foreign split breaks that.
    """
    if "num_labeled" not in df or df["num_labeled"].isna().all():
        return
    keys = ["dataset", "settings", "labeled_tag", "seed"]
    for (dataset, settings, tag, seed), runs in df.groupby(keys, sort=True):
        counts = runs.dropna(subset=["num_labeled"]).groupby("num_labeled")["path"].first()
        if len(counts) > 1:
            shown = "; ".join(f"{int(n)} in {path}" for n, path in counts.items())
            raise UserError(
                f"{dataset} (settings {settings}), labeled {tag}, seed {seed}: runs trained "
                f"on different numbers of labeled images ({shown}); they cannot be compared")


def summarize(df: pd.DataFrame, metric: str = "auc", model: str = "reported",
              baseline: str = "supervised", pair: tuple[str, str] = ("srcmt", "mt"),
              ) -> pd.DataFrame:
    """Per data set x settings x method x labeled amount: mean, std, n, gain, tests.

    Columns: ``dataset, settings, method, labeled, labeled_tag, model, metric, mean, std,
    n, n_undefined, baseline, gain, test, statistic, p_value, n_pairs, test_note``, then
    ``srcmt_vs_mt_gain, _test, _statistic, _p_value, _n_pairs, _note`` (filled on the
    ``srcmt`` rows only) and ``settings_note`` (what sets this settings group apart, empty
    when the data set has one group). ``attrs["notes"]`` lists notes for the reader.
    """
    if model not in MODELS:
        raise UserError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    available = available_metrics(df)
    if metric not in available:
        raise UserError(f"unknown metric {metric!r}; available: {', '.join(available)}")
    first, second = pair
    prefix = f"{first}_vs_{second}_"
    notes: list[str] = []
    differences = describe_differences(df)
    for dataset, group in df.groupby("dataset", sort=True):
        absent = sorted(set(group["method"]) - set(group.loc[group["model"] == model, "method"]))
        if absent:
            notes.append(f"{dataset}: no {model} model for {', '.join(absent)}: rows absent")
    chosen = df[df["model"] == model]
    _check_labeled_counts(chosen)
    rows: list[dict[str, Any]] = []
    undefined_total = 0
    for (dataset, settings), group in chosen.groupby(["dataset", "settings"], sort=True):
        if group[metric].isna().all():
            notes.append(f"{dataset} (settings {settings}): no defined {metric} values "
                         "(not recorded or undefined): skipped")
            continue
        per_seed: dict[tuple[str, str], pd.Series] = {}
        cells: dict[tuple[str, str], dict[str, Any]] = {}
        for (method, tag), runs in group.groupby(["method", "labeled_tag"], sort=True):
            undefined = int(runs[metric].isna().sum())
            undefined_total += undefined
            values = runs.groupby("seed")[metric].mean().dropna()
            per_seed[(method, tag)] = values
            cells[(method, tag)] = {
                "labeled": runs["labeled"].iloc[0], "n_undefined": undefined,
            }
        tags = sorted({tag for _, tag in cells}, key=_labeled_order)
        methods = _method_order({m for m, _ in cells}, baseline)
        for tag in tags:
            for method in methods:
                if (method, tag) not in cells:
                    continue
                values = per_seed[(method, tag)]
                n = len(values)
                row: dict[str, Any] = {
                    "dataset": dataset, "settings": settings, "method": method,
                    "labeled": cells[(method, tag)]["labeled"], "labeled_tag": tag,
                    "model": model, "metric": metric,
                    "mean": float(values.mean()) if n else None,
                    "std": float(values.std(ddof=1)) if n >= 2 else None,
                    "n": n, "n_undefined": cells[(method, tag)]["n_undefined"],
                    "baseline": baseline,
                }
                row.update(_comparison(values, per_seed.get((baseline, tag)), method == baseline,
                                       baseline, ""))
                if method == first:
                    row.update(_comparison(values, per_seed.get((second, tag)), False, second,
                                           prefix))
                else:
                    row.update(_comparison(None, None, True, second, prefix, blank=True))
                row["settings_note"] = differences.get(settings, "")
                rows.append(row)
    missing_reference: dict[tuple[str, str, str], list[str]] = {}
    for row in rows:
        for key, name in (("test_note", baseline), (f"{prefix}note", second)):
            if row[key] == f"no {name} runs at this labeled amount":
                where = (row["dataset"], row["settings"], name)
                missing_reference.setdefault(where, []).append(row["labeled_tag"])
    for (dataset, settings, name), tags in missing_reference.items():
        tags = sorted(set(tags), key=_labeled_order)
        notes.append(f"{dataset} (settings {settings}): no {name} runs at labeled "
                     f"{', '.join(tags)}: no gain or test against {name} there")
    if undefined_total:
        notes.append(f"{undefined_total} undefined {metric} value(s) (None in {METRICS}) "
                     "dropped; see column n_undefined")
    if any(FEW_PAIRS_NOTE in (row["test_note"], row[f"{prefix}note"]) for row in rows):
        notes.append(f"p-values need at least 3 seeds paired with the compared method "
                     f"({FEW_PAIRS_NOTE})")
    columns = [
        "dataset", "settings", "method", "labeled", "labeled_tag", "model", "metric", "mean",
        "std", "n", "n_undefined", "baseline", "gain", "test", "statistic", "p_value",
        "n_pairs", "test_note", f"{prefix}gain", f"{prefix}test", f"{prefix}statistic",
        f"{prefix}p_value", f"{prefix}n_pairs", f"{prefix}note", "settings_note",
    ]
    summary = pd.DataFrame(rows, columns=columns)
    summary["labeled"] = pd.Series([row["labeled"] for row in rows], dtype=object)
    summary.attrs.update(metric=metric, model=model, baseline=baseline, pair=list(pair),
                         notes=notes, test=TEST_NAME, settings_notes=differences)
    return summary


def _comparison(values: pd.Series | None, reference: pd.Series | None, is_reference: bool,
                name: str, prefix: str, blank: bool = False) -> dict[str, Any]:
    keys = ("gain", "test", "statistic", "p_value", "n_pairs", "note" if prefix else "test_note")
    out: dict[str, Any] = {prefix + k: None for k in keys}
    note_key = prefix + keys[-1]
    if blank:
        return out
    if is_reference:
        out[note_key] = "baseline"
        return out
    if reference is None or len(reference) == 0:
        out[note_key] = f"no {name} runs at this labeled amount"
        return out
    assert values is not None
    if len(values):
        out[prefix + "gain"] = float(values.mean() - reference.mean())
    statistic, p_value, n_pairs, note = _paired(values, reference)
    out.update({prefix + "test": TEST_NAME, prefix + "statistic": statistic,
                prefix + "p_value": p_value, prefix + "n_pairs": n_pairs, note_key: note})
    return out


# --------------------------------------------------------------------------- rendering


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _value_cell(row: pd.Series) -> str:
    if _missing(row["mean"]):
        return "n/a"
    if _missing(row["std"]):
        return f"{row['mean']:.4f}"
    return f"{row['mean']:.4f} ± {row['std']:.4f}"


def _gain_cell(value: Any) -> str:
    return "" if _missing(value) else f"{value:+.4f}"


def _p_cell(row: pd.Series, prefix: str = "") -> str:
    note = row[prefix + ("note" if prefix else "test_note")]
    if _missing(row[prefix + "test"]):
        if note == "baseline" or _missing(note):
            return ""
        return "n/a"
    pairs = int(row[prefix + "n_pairs"])
    if _missing(row[prefix + "p_value"]):
        return f"n/a (n={pairs})"
    return f"{row[prefix + 'p_value']:.3g} (n={pairs})"


def _pair_prefix(summary: pd.DataFrame) -> tuple[str, str, str]:
    first, second = summary.attrs.get("pair", ["srcmt", "mt"])
    return first, second, f"{first}_vs_{second}_"


def _display(summary: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Header and text cells shared by the markdown and LaTeX tables."""
    metric = summary.attrs.get("metric") or _first(summary, "metric", "metric")
    model = summary.attrs.get("model") or _first(summary, "model", "model")
    baseline = summary.attrs.get("baseline") or _first(summary, "baseline", "baseline")
    first, second, prefix = _pair_prefix(summary)
    with_pair = bool(summary[prefix + "test"].notna().any()) if len(summary) else False
    header = ["dataset", "settings", "method", "labeled", f"{metric} ({model})", "n",
              f"gain vs {baseline}", f"p vs {baseline}"]
    if with_pair:
        header.append(f"p {first} vs {second}")
    body = []
    for _, row in summary.iterrows():
        cells = [str(row["dataset"]), str(row["settings"]), str(row["method"]),
                 str(row["labeled_tag"]), _value_cell(row), str(int(row["n"])),
                 _gain_cell(row["gain"]), _p_cell(row)]
        if with_pair:
            cells.append(_p_cell(row, prefix))
        body.append(cells)
    return header, body


def _first(summary: pd.DataFrame, column: str, default: str) -> str:
    return str(summary[column].iloc[0]) if len(summary) else default


def _notes(summary: pd.DataFrame) -> list[str]:
    metric = summary.attrs.get("metric") or _first(summary, "metric", "metric")
    model = summary.attrs.get("model") or _first(summary, "model", "model")
    lines = [f"{metric} of the {model} model on the test split: mean ± std (ddof=1) over "
             f"seeds; p: {TEST_NAME} across seeds, runs paired by seed (n = pairs)"]
    seen = set()
    for _, row in summary.iterrows():
        key = (row["dataset"], row["settings"])
        if row["settings_note"] and key not in seen:
            seen.add(key)
            lines.append(f"{row['dataset']} settings {row['settings']}: {row['settings_note']}")
    lines.extend(summary.attrs.get("notes", []))
    return lines


def _md_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}


def _latex_escape(text: str) -> str:
    out = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text.replace("\n", " "))
    return out.replace("±", r"$\pm$")


def _plain(value: Any) -> Any:
    """JSON-safe Python value: NaN/NA become None, numpy scalars Python ones."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def render(summary: pd.DataFrame, fmt: str) -> str:
    """The summary as ``md`` (markdown), ``csv``, ``latex`` (tabular) or ``json`` text."""
    if fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "csv":
        return summary.to_csv(index=False, lineterminator="\n")
    if fmt == "json":
        document = {
            "metric": summary.attrs.get("metric"), "model": summary.attrs.get("model"),
            "baseline": summary.attrs.get("baseline"), "test": TEST_NAME,
            "notes": _notes(summary),
            "rows": [{column: _plain(value) for column, value in row.items()}
                     for row in summary.to_dict(orient="records")],
        }
        return json.dumps(_plain(document), indent=2, allow_nan=False) + "\n"
    header, body = _display(summary)
    notes = _notes(summary)
    if fmt == "md":
        lines = ["| " + " | ".join(_md_escape(h) for h in header) + " |",
                 "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(_md_escape(c) for c in cells) + " |" for cells in body]
        lines += [""] + [f"- {_md_escape(note)}" for note in notes]
        return "\n".join(lines) + "\n"
    spec = "lllr" + "l" + "r" + "l" * (len(header) - 6)
    lines = [f"% {_latex_escape(note)}" for note in notes]
    lines += [rf"\begin{{tabular}}{{{spec}}}", r"\hline",
              " & ".join(_latex_escape(h) for h in header) + r" \\", r"\hline"]
    lines += [" & ".join(_latex_escape(c) for c in cells) + r" \\" for cells in body]
    lines += [r"\hline", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def print_summary(summary: pd.DataFrame, console: Any, metric: str | None = None,
                  model: str | None = None) -> None:
    """Rich tables, one per data set x settings group, with the notes below."""
    from rich.markup import escape
    from rich.table import Table

    metric = metric or summary.attrs.get("metric") or _first(summary, "metric", "metric")
    model = model or summary.attrs.get("model") or _first(summary, "model", "model")
    baseline = summary.attrs.get("baseline") or _first(summary, "baseline", "supervised")
    first, second, prefix = _pair_prefix(summary)
    if summary.empty:
        console.print(f"no {escape(metric)} values for the {escape(model)} model")
    for (dataset, settings), group in summary.groupby(["dataset", "settings"], sort=False):
        title = f"{dataset} (settings {settings})"
        note = group["settings_note"].iloc[0]
        table = Table(title=escape(title),
                      caption=escape(f"differs from the other groups: {note}") if note else None)
        with_pair = bool(group[prefix + "test"].notna().any())
        for name, justify in (("labeled", "right"), ("method", "left"),
                              (f"test {metric} ({model})", "right"), ("n", "right"),
                              (f"gain vs {baseline}", "right"), (f"p vs {baseline}", "right")):
            table.add_column(escape(name), justify=justify)  # type: ignore[arg-type]
        if with_pair:
            table.add_column(escape(f"p {first} vs {second}"), justify="right")
        previous = None
        for _, row in group.iterrows():
            if previous is not None and row["labeled_tag"] != previous:
                table.add_section()
            previous = row["labeled_tag"]
            cells = [row["labeled_tag"], row["method"], _value_cell(row), str(int(row["n"])),
                     _gain_cell(row["gain"]), _p_cell(row)]
            if with_pair:
                cells.append(_p_cell(row, prefix))
            table.add_row(*[escape(str(c)) for c in cells])
        console.print(table)
    for line in _notes(summary)[:1] + summary.attrs.get("notes", []):
        console.print(escape(line), highlight=False, soft_wrap=True)


# --------------------------------------------------------------------------- plots


def _figure(width: float, height: float) -> Any:
    # The object-oriented API renders with Agg without touching pyplot's global backend.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Any, path: Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return atomic_write_bytes(path, buffer.getvalue())


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "-", text).strip("-") or "x"


def _prepare_dir(out_dir: str | Path) -> Path:
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"plot folder {out_dir} exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def plot_learning_curves(df: pd.DataFrame, out_dir: str | Path, metric: str = "auc",
                         model: str = "reported") -> list[Path]:
    """``metric`` against the labeled amount, one line per method (error bars: std).

    One PNG per data set x settings group (and a separate one for labeled *counts* when
    a group mixes fractions and counts).
    """
    summary = summarize(df, metric=metric, model=model)
    out_dir = _prepare_dir(out_dir)
    paths = []
    for (dataset, settings), group in summary.groupby(["dataset", "settings"], sort=True):
        group = group[group["n"] > 0]
        is_count = group["labeled_tag"].map(lambda t: _labeled_order(t)[0] == 1)
        for counts, part in ((False, group[~is_count]), (True, group[is_count])):
            if part.empty:
                continue
            figure = _figure(6.4, 4.4)
            axes = figure.add_subplot()
            for method in _method_order(part["method"], summary.attrs.get("baseline", "")):
                rows = part[part["method"] == method]
                order = sorted(range(len(rows)),
                               key=lambda i: _labeled_order(rows["labeled_tag"].iloc[i]))
                rows = rows.iloc[order]
                x = rows["labeled_tag"].astype(float).to_numpy()
                y = rows["mean"].astype(float).to_numpy()
                err = rows["std"].astype(float).fillna(0.0).to_numpy()
                axes.errorbar(x, y, yerr=err, marker="o", capsize=3, label=method)
            ticks = sorted(set(part["labeled_tag"]), key=_labeled_order)
            axes.set_xticks([float(t) for t in ticks], ticks)
            axes.set_xlabel("labeled images (count)" if counts else "labeled fraction")
            axes.set_ylabel(f"test {metric} ({model})")
            title = f"{dataset}: {metric} vs labeled amount (settings {settings})"
            note = part["settings_note"].iloc[0]
            axes.set_title(title + (f"\n{note}" if note else ""), fontsize=9)
            axes.grid(alpha=0.3)
            axes.legend(fontsize=8)
            name = f"{dataset}_{settings}_{metric}_{model}_curve{'_counts' if counts else ''}"
            paths.append(_save(figure, out_dir / f"{_safe_name(name)}.png"))
    return paths


def _classes(df: pd.DataFrame, dataset: str, group: pd.DataFrame) -> list[str]:
    known = df.attrs.get("classes", {}).get(dataset)
    if known:
        return [c for c in known if f"auc_{c}" in group.columns]
    metrics = set(available_metrics(df))
    return [c[4:] for c in group.columns
            if c.startswith("auc_") and c in metrics and group[c].notna().any()]


def plot_per_class(df: pd.DataFrame, out_dir: str | Path, model: str = "reported",
                   fraction: str | float | int | None = None) -> list[Path]:
    """Grouped bars of per-class test AUC per method at one labeled amount (error: std).

    ``fraction`` defaults to the largest labeled fraction of each data set x settings
    group (the largest count when a group has no fractions). One PNG per group.
    """
    if model not in MODELS:
        raise UserError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    wanted = None if fraction is None else labeled_tag(parse_labeled(fraction))
    chosen = df[df["model"] == model]
    out_dir = _prepare_dir(out_dir)
    paths = []
    seen_tags: set[str] = set()
    baseline = "supervised"
    differences = describe_differences(df)
    for (dataset, settings), group in chosen.groupby(["dataset", "settings"], sort=True):
        classes = _classes(df, dataset, group)
        if not classes:
            continue
        tags = sorted(set(group["labeled_tag"]), key=_labeled_order)
        seen_tags.update(tags)
        if wanted is None:
            fractions = [t for t in tags if _labeled_order(t)[0] == 0]
            tag = (fractions or tags)[-1]
        elif wanted in tags:
            tag = wanted
        else:
            continue
        runs = group[group["labeled_tag"] == tag]
        methods = _method_order(runs["method"], baseline)
        figure = _figure(max(6.4, 0.6 * len(classes) * max(1, len(methods)) / 2 + 2), 4.4)
        axes = figure.add_subplot()
        width = 0.8 / len(methods)
        positions = np.arange(len(classes), dtype=float)
        for i, method in enumerate(methods):
            per_seed = runs[runs["method"] == method].groupby("seed")[
                [f"auc_{c}" for c in classes]].mean()
            means = per_seed.mean(skipna=True).to_numpy(dtype=float)
            stds = per_seed.std(ddof=1, skipna=True).to_numpy(dtype=float)
            stds = np.nan_to_num(stds, nan=0.0)
            offset = (i - (len(methods) - 1) / 2) * width
            axes.bar(positions + offset, np.nan_to_num(means, nan=0.0), width, yerr=stds,
                     capsize=2, label=f"{method} (n={len(per_seed)})")
            for position in positions[np.isnan(means)]:
                axes.text(position + offset, 0.02, "n/a", rotation=90, ha="center",
                          va="bottom", fontsize=7)
        axes.set_xticks(positions, classes, rotation=45, ha="right", fontsize=8)
        axes.set_ylim(0, 1.05)
        axes.set_ylabel(f"test AUC ({model})")
        title = f"{dataset}: per-class AUC at labeled={tag} (settings {settings})"
        diffs = differences.get(settings, "")
        axes.set_title(title + (f"\n{diffs}" if diffs else ""), fontsize=9)
        axes.axhline(0.5, color="grey", linewidth=0.8, linestyle="--")
        axes.legend(fontsize=8)
        name = f"{dataset}_{settings}_{model}_per_class_labeled={tag}"
        paths.append(_save(figure, out_dir / f"{_safe_name(name)}.png"))
    if wanted is not None and not paths:
        available = ", ".join(sorted(seen_tags, key=_labeled_order)) or "none"
        raise UserError(f"no {model} runs with per-class AUC at labeled={wanted}; "
                        f"labeled amounts present: {available}")
    return paths


# --------------------------------------------------------------------------- command


def compare_command(folders: Sequence[str | Path], metric: str = "auc", model: str = "reported",
                    fmt: str | None = None, output: str | Path | None = None,
                    plot_dir: str | Path | None = None,
                    fraction: str | float | int | None = None, console: Any = None) -> int:
    """``ssl-bench compare``: load, summarise, print/write, plot. Returns 0.

    With ``fmt`` and no ``output`` the chosen format goes to stdout (warnings to stderr);
    otherwise the rich tables are printed. ``output`` is written atomically in ``fmt`` or
    the format its suffix names. Problems raise :class:`UserError`.
    """
    from rich.console import Console

    console = console if console is not None else Console()
    if fmt is not None and fmt not in FORMATS:
        raise UserError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if output is not None:
        output = Path(output)
        if output.is_dir():
            raise UserError(f"output {output} is a folder; give a file name")
        if fmt is None:
            fmt_out = SUFFIX_FORMATS.get(output.suffix.lower())
            if fmt_out is None:
                raise UserError(f"cannot tell the format of {output} from its suffix; pass "
                                f"a format ({', '.join(FORMATS)})")
        else:
            fmt_out = fmt
    if plot_dir is not None and Path(plot_dir).exists() and not Path(plot_dir).is_dir():
        raise UserError(f"plot folder {plot_dir} exists and is not a folder")
    df, warnings = load_runs([Path(f) for f in folders])
    summary = summarize(df, metric=metric, model=model)
    if summary.empty:
        raise UserError(f"no {metric} values for the {model} model in the runs found"
                        + "".join(f"; {note}" for note in summary.attrs.get("notes", [])))
    to_stdout = fmt is not None and output is None
    messages = Console(stderr=True) if to_stdout else console
    for warning in warnings:
        messages.print(f"warning: {warning}", markup=False, highlight=False, soft_wrap=True)
    if to_stdout:
        console.out(render(summary, fmt), highlight=False, end="")
    else:
        print_summary(summary, console, metric, model)
    if output is not None:
        atomic_write_text(output, render(summary, fmt_out))
        messages.print(f"wrote {output}", markup=False, highlight=False)
    if plot_dir is not None:
        paths = plot_learning_curves(df, plot_dir, metric=metric, model=model)
        paths += plot_per_class(df, plot_dir, model=model, fraction=fraction)
        for path in paths:
            messages.print(f"wrote {path}", markup=False, highlight=False)
    return 0
