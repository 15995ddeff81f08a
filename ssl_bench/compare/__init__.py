"""Compare finished runs: one tidy table, per-method summaries, paired tests, plots.

``runs`` finds and reads finished runs into one table (one row per run per model) and
groups them by settings; ``groups`` says what sets settings groups apart; ``statistics``
holds the paired test, its 95% interval, the effect size and Holm's correction;
``summary`` turns the table into mean ± std per method with tests against a baseline and
between chosen pairs; ``render`` writes rich/markdown/CSV/LaTeX/JSON; ``plots`` draws PNGs;
``command`` is ``ssl-bench compare``.
"""

from __future__ import annotations

from .command import compare_command, parse_pairs
from .groups import describe_differences
from .plots import plot_learning_curves, plot_per_class
from .render import FORMATS, SUFFIX_FORMATS, pair_csv, print_summary, render
from .runs import ID_COLUMNS, MODELS, available_metrics, labeled_order, load_runs, settings_hash
from .statistics import (
                         CORRECTION_NAME,
                         FEW_PAIRS_NOTE,
                         TEST_NAME,
                         PairedResult,
                         holm,
                         paired_comparison,
)
from .summary import DEFAULT_BASELINE, DEFAULT_PAIRS, pair_table, summarize

__all__ = [
    "CORRECTION_NAME", "DEFAULT_BASELINE", "DEFAULT_PAIRS", "FEW_PAIRS_NOTE", "FORMATS",
    "ID_COLUMNS", "MODELS", "SUFFIX_FORMATS", "TEST_NAME", "PairedResult", "available_metrics",
    "compare_command", "describe_differences", "holm", "labeled_order", "load_runs",
    "pair_csv", "pair_table", "paired_comparison", "parse_pairs", "plot_learning_curves",
    "plot_per_class", "print_summary", "render", "settings_hash", "summarize",
]
