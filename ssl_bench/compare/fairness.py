"""What makes one comparison cell fair to read: the baselines it is tested against, the
labeled exposure of its runs, and whether they converged within their budget."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from ssl_bench.config.budget import LABELED_BATCH_SUFFIX, LATE_FRACTION

#: The supervised baselines: the same labeled stream as the SSL methods, and fully
#: labeled batches (:func:`ssl_bench.config.budget.method_label`), in order of preference.
BASELINES: tuple[str, ...] = ("supervised", "supervised" + LABELED_BATCH_SUFFIX)
#: Runs of one cell whose labeled exposure differs by more than this are flagged.
EXPOSURE_TOLERANCE = 0.01


def default_baseline(present: set[str]) -> str:
    """The same-stream baseline where it ran, else the labeled-batch one."""
    return next((name for name in BASELINES if name in present), BASELINES[0])


def second_baseline_pairs(present: set[str], baseline: str) -> list[tuple[str, str]]:
    """Every other method against the other supervised baseline, when both ran."""
    if baseline not in BASELINES or not set(BASELINES) <= present:
        return []
    other = next(name for name in BASELINES if name != baseline)
    return [(method, other) for method in sorted(present) if method not in BASELINES]


def cell_facts(runs: pd.DataFrame) -> dict[str, Any]:
    """Mean labeled images seen (fewer than the budget allowed when early stopping ended a
    run), mean labeled images the budget allowed, and ``converged``: ``yes``, or
    ``no (k/n late)`` when at least half of the runs had their reported model's best step
    in the last 10% of the budget (``unknown`` when no run says)."""
    distinct = runs.drop_duplicates("path")
    seen = distinct["labeled_seen"].dropna() if "labeled_seen" in distinct else pd.Series([])
    allowed = (distinct["labeled_budget"].dropna() if "labeled_budget" in distinct
               else pd.Series([]))
    late = distinct["peaked_late"].dropna() if "peaked_late" in distinct else pd.Series([])
    if len(late) == 0:
        converged = "unknown"
    else:
        count = int(late.astype(bool).sum())
        converged = "yes" if 2 * count < len(late) else f"no ({count}/{len(late)} late)"
    return {"labeled_seen": float(seen.mean()) if len(seen) else None,
            "labeled_budget": float(allowed.mean()) if len(allowed) else None,
            "converged": converged}


def exposure_notes(rows: Iterable[dict[str, Any]]) -> list[str]:
    """One line per (data set, settings, labeled amount) whose methods' budgets allowed
    different numbers of labeled images (by more than :data:`EXPOSURE_TOLERANCE`; what
    early stopping left unused does not count)."""
    cells: dict[tuple[str, str, str], dict[str, float]] = {}
    for row in rows:
        if row.get("labeled_budget") is not None:
            key = (row["dataset"], row["settings"], row["labeled_tag"])
            cells.setdefault(key, {})[row["method"]] = row["labeled_budget"]
    notes = []
    for (dataset, settings, tag), seen in sorted(cells.items()):
        low, high = min(seen.values()), max(seen.values())
        if low > 0 and high / low > 1 + EXPOSURE_TOLERANCE:
            shown = ", ".join(f"{m} {v:,.0f}" for m, v in sorted(seen.items(),
                                                                 key=lambda i: -i[1]))
            notes.append(f"{dataset} (settings {settings}), labeled {tag}: unequal labeled "
                         f"exposure ({shown} labeled images in the budget, "
                         f"{high / low:.1f}x): set the budget in labeled epochs, or read both "
                         "supervised baselines")
    return notes


def convergence_notes(rows: Iterable[dict[str, Any]]) -> list[str]:
    """One line naming the cells flagged not converged."""
    flagged = [f"{r['method']} at {r['labeled_tag']} {r['converged'][3:]}" for r in rows
               if str(r.get("converged", "")).startswith("no")]
    if not flagged:
        return []
    return [f"not converged (reported model's best validation step in the last "
            f"{round((1 - LATE_FRACTION) * 100)}% of the budget in at least half of the runs):"
            f" {', '.join(flagged)}"]
