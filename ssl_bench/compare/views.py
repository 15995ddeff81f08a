"""Robustness views: the same comparison read off four models, so a claim can be checked
against the choice of the reported model and of its step.

``reported`` is the model each run reports at its best validation step; ``student`` and
``teacher`` take one network only (methods without a teacher show their student there,
and a note says so); ``last`` is the reported model at the last evaluation, no best-step
selection at all (it needs test metrics at every evaluation, ``test_at = "every"``).
Each view is a full :func:`~.summary.summarize` table: mean ± sd over seeds, paired
differences with their 95% interval, p and Holm-adjusted p.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ssl_bench.compare.arguments import VIEWS
from ssl_bench.compare.summary import summarize

#: What a view shows when no run has what it needs.
NOT_AVAILABLE = {
    "last": "not available: runs made without test_at = every (no test metric at their "
            "last evaluation)",
    "teacher": "not available: no run has a teacher",
}


def view_frame(df: pd.DataFrame, view: str) -> tuple[pd.DataFrame, list[str]]:
    """The rows of ``view`` (as model ``view``), and notes on what stands in for what."""
    if view != "teacher":
        return df, []
    has_teacher = set(df.loc[df["model"] == "teacher", "path"])
    stand_in = df[(df["model"] == "student") & ~df["path"].isin(has_teacher)].copy()
    notes = []
    if len(stand_in):
        stand_in["model"] = "teacher"
        notes.append("teacher view: methods without a teacher show their student ("
                     + ", ".join(sorted(set(stand_in["method"]))) + ")")
    frame = pd.concat([df, stand_in], ignore_index=True)
    frame.attrs = dict(df.attrs)
    return frame, notes


def summarize_views(df: pd.DataFrame, metric: str, baseline: str | None,
                    pairs: Sequence[tuple[str, str]] | None,
                    views: Sequence[str] = VIEWS) -> list[tuple[str, pd.DataFrame | None, str]]:
    """(view, its summary or None, a note) for every view."""
    out: list[tuple[str, pd.DataFrame | None, str]] = []
    for view in views:
        frame, notes = view_frame(df, view)
        if not (frame["model"] == view).any():
            out.append((view, None, NOT_AVAILABLE.get(view, f"not available: no {view} rows")))
            continue
        summary = summarize(frame, metric=metric, model=view, baseline=baseline, pairs=pairs)
        summary.attrs["notes"] = notes + summary.attrs.get("notes", [])
        out.append((view, summary, "; ".join(notes)))
    return out
