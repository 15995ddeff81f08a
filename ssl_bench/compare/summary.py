"""Per data set x settings x method x labeled amount: mean ± std over seeds and paired tests.

Every method is tested against one *baseline* (``supervised`` unless told otherwise), runs
paired by seed, with a Holm correction over the methods of one (data set, settings,
labeled amount) cell; chosen *pairs* (``srcmt`` against ``mt`` unless told otherwise) are
tested the same way in a table of their own, Holm-corrected over the pairs of a cell.
Runs repeated with one seed and the same settings are averaged per seed first, so ``n``
counts distinct seeds; undefined metric values (``None`` in ``metrics.json``) are dropped
and counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from ssl_bench.compare.fairness import (
    cell_facts,
    convergence_notes,
    default_baseline,
    exposure_notes,
    second_baseline_pairs,
)
from ssl_bench.compare.groups import describe_differences
from ssl_bench.compare.runs import MODELS, available_metrics, labeled_order
from ssl_bench.compare.statistics import (
    CORRECTION_NAME,
    FEW_PAIRS_NOTE,
    TEST_NAME,
    PairedResult,
    holm,
    paired_comparison,
)
from ssl_bench.core.errors import UserError
from ssl_bench.runs.run_dir import METRICS

#: The baseline when none is named and none of the supervised baselines ran.
DEFAULT_BASELINE = "supervised"
DEFAULT_PAIRS: tuple[tuple[str, str], ...] = (("srcmt", "mt"),)
#: Columns of a comparison against a reference (the baseline, or a pair's second method).
COMPARISON_COLUMNS = ("gain", "n_pairs", "paired_diff", "ci_low", "ci_high", "effect_size",
                      "test", "statistic", "p_value", "p_holm")
SUMMARY_COLUMNS = ("dataset", "settings", "method", "labeled", "labeled_tag", "model",
                   "metric", "mean", "std", "n", "n_undefined", "labeled_seen", "labeled_budget",
                   "converged",
                   "baseline",
                   *COMPARISON_COLUMNS, "test_note", "settings_note")
PAIR_COLUMNS = ("dataset", "settings", "labeled", "labeled_tag", "first", "second",
                "mean_first", "mean_second", *COMPARISON_COLUMNS, "note")


def method_order(methods: Iterable[str], baseline: str) -> list[str]:
    """The baseline first, then the other methods alphabetically."""
    methods = sorted(set(methods))
    return ([baseline] if baseline in methods else []) + [m for m in methods if m != baseline]


def _canonical(name: str, present: set[str], what: str) -> str:
    """``name`` as the runs record it (a registry alias becomes its method's name)."""
    if name in present:
        return name
    try:
        from ssl_bench.plugins.registry import method_registry

        registered = method_registry.card(name).name
    except UserError:
        registered = name
    if registered not in present:
        raise UserError(f"{what}: no runs of method {name!r}; methods present: "
                        f"{', '.join(sorted(present))}")
    return registered


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


def _compare(values: pd.Series, reference: pd.Series | None, name: str) -> dict[str, Any]:
    """Gain over ``reference`` (means over all seeds) and the paired test on shared seeds."""
    if reference is None or len(reference) == 0:
        return {**PairedResult(0).to_dict(), "gain": None,
                "note": f"no {name} runs at this labeled amount"}
    gain = float(values.mean() - reference.mean()) if len(values) else None
    return {**paired_comparison(values, reference).to_dict(), "gain": gain}


def _apply_holm(rows: list[dict[str, Any]], cell_keys: Sequence[str]) -> None:
    """Holm-adjust ``p_value`` into ``p_holm`` within each cell (rows sharing cell_keys)."""
    cells: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        cells.setdefault(tuple(row[k] for k in cell_keys), []).append(row)
    for family in cells.values():
        for row, adjusted in zip(family, holm([r["p_value"] for r in family]), strict=True):
            row["p_holm"] = adjusted


def summarize(df: pd.DataFrame, metric: str = "auc", model: str = "reported",
              baseline: str | None = None,
              pairs: Sequence[tuple[str, str]] | None = None) -> pd.DataFrame:
    """One row per data set x settings x method x labeled amount (:data:`SUMMARY_COLUMNS`).

    ``gain`` is the difference of means over all seeds; ``paired_diff``, its 95% interval
    ``ci_low``/``ci_high``, ``effect_size`` (d_z) and the test use the seeds both methods
    have (equal to ``gain`` when every seed is paired). ``baseline``/``pairs`` given
    explicitly must name methods present in the runs; the defaults are used where present.
    ``attrs``: ``pairs`` (rows of :data:`PAIR_COLUMNS`), ``notes`` for the reader, and the
    names of the test, correction, metric, model and baseline.
    """
    if model not in MODELS:
        raise UserError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    available = available_metrics(df)
    if metric not in available:
        raise UserError(f"unknown metric {metric!r}; available: {', '.join(available)}")
    present = set(df["method"])
    if baseline is None:
        baseline = default_baseline(present)
    else:
        baseline = _canonical(baseline, present, "--baseline")
    if pairs is None:
        pairs = [pair for pair in DEFAULT_PAIRS if set(pair) <= present]
        pairs += second_baseline_pairs(present, baseline)
    else:
        pairs = [(_canonical(a, present, "--pairs"), _canonical(b, present, "--pairs"))
                 for a, b in pairs]
    notes: list[str] = []
    differences = describe_differences(df)
    for dataset, group in df.groupby("dataset", sort=True):
        absent = sorted(set(group["method"]) - set(group.loc[group["model"] == model, "method"]))
        if absent:
            notes.append(f"{dataset}: no {model} model for {', '.join(absent)}: rows absent")
    chosen = df[df["model"] == model]
    _check_labeled_counts(chosen)
    rows: list[dict[str, Any]] = []
    pair_rows: list[dict[str, Any]] = []
    absent_at: dict[tuple[str, str, str], list[str]] = {}  # (dataset, settings, method)
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
            per_seed[(method, tag)] = runs.groupby("seed")[metric].mean().dropna()
            cells[(method, tag)] = {"labeled": runs["labeled"].iloc[0],
                                    "n_undefined": undefined, **cell_facts(runs)}
        where = {"dataset": dataset, "settings": settings,
                 "settings_note": differences.get(settings, "")}
        for tag in sorted({tag for _, tag in cells}, key=labeled_order):
            methods = [m for m in method_order({m for m, _ in cells}, baseline)
                       if (m, tag) in cells]
            labeled = cells[(methods[0], tag)]["labeled"]
            for method in methods:
                values = per_seed[(method, tag)]
                n = len(values)
                row: dict[str, Any] = {
                    **where, "method": method, "labeled": labeled, "labeled_tag": tag,
                    "model": model, "metric": metric,
                    "mean": float(values.mean()) if n else None,
                    "std": float(values.std(ddof=1)) if n >= 2 else None,
                    "n": n, "n_undefined": cells[(method, tag)]["n_undefined"],
                    "labeled_seen": cells[(method, tag)]["labeled_seen"],
                    "labeled_budget": cells[(method, tag)]["labeled_budget"],
                    "converged": cells[(method, tag)]["converged"],
                    "baseline": baseline,
                }
                if method == baseline:
                    row.update({**PairedResult(0).to_dict(), "gain": None, "note": "baseline"})
                else:
                    row.update(_compare(values, per_seed.get((baseline, tag)), baseline))
                    if (baseline, tag) not in per_seed:
                        absent_at.setdefault((dataset, settings, baseline), []).append(tag)
                row["test_note"] = row.pop("note")
                rows.append(row)
            for first, second in pairs:
                if (first, tag) not in cells and (second, tag) not in cells:
                    continue
                a, b = per_seed.get((first, tag)), per_seed.get((second, tag))
                missing = first if a is None else second if b is None else None
                pair = {**where, "labeled": labeled, "labeled_tag": tag, "first": first,
                        "second": second,
                        "mean_first": float(a.mean()) if a is not None and len(a) else None,
                        "mean_second": float(b.mean()) if b is not None and len(b) else None}
                if missing is not None:
                    pair.update({**PairedResult(0).to_dict(), "gain": None,
                                 "note": f"no {missing} runs at this labeled amount"})
                    absent_at.setdefault((dataset, settings, missing), []).append(tag)
                else:
                    pair.update(_compare(a, b, second))
                pair_rows.append(pair)
    _apply_holm(rows, ("dataset", "settings", "labeled_tag"))
    _apply_holm(pair_rows, ("dataset", "settings", "labeled_tag"))
    for (dataset, settings, name), tags in absent_at.items():
        shown = ", ".join(sorted(set(tags), key=labeled_order))
        notes.append(f"{dataset} (settings {settings}): no {name} runs at labeled {shown}: "
                     f"no gain or test against {name} there")
    notes.extend(exposure_notes(rows) + convergence_notes(rows))
    if undefined_total:
        notes.append(f"{undefined_total} undefined {metric} value(s) (None in {METRICS}) "
                     "dropped; see column n_undefined")
    if any(FEW_PAIRS_NOTE in (r.get("test_note"), r.get("note")) for r in rows + pair_rows):
        notes.append(f"p-values need at least 3 seeds paired with the compared method "
                     f"({FEW_PAIRS_NOTE})")
    summary = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    summary["labeled"] = pd.Series([row["labeled"] for row in rows], dtype=object)
    summary.attrs.update(
        metric=metric, model=model, baseline=baseline, pairs=[list(p) for p in pairs],
        pair_rows=[{k: row.get(k) for k in PAIR_COLUMNS} for row in pair_rows],
        notes=notes, test=TEST_NAME, correction=CORRECTION_NAME,
        settings_notes=differences)
    return summary


def pair_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The pairs tested beside a :func:`summarize` table, one row per pair and cell."""
    return pd.DataFrame(summary.attrs.get("pair_rows", []), columns=list(PAIR_COLUMNS))
