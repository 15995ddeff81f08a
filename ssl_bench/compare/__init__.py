"""Compare finished runs: one tidy table, per-method summaries, paired tests, plots.

``runs`` finds and reads finished runs into one table (one row per run per model) and
groups them by settings; ``groups`` says what sets settings groups apart; ``statistics``
holds the paired test, its 95% interval, the effect size and Holm's correction;
``summary`` turns the table into mean ± std per method with tests against a baseline and
between chosen pairs; ``tables`` renders rich/markdown/CSV/LaTeX/JSON; ``plots`` draws PNGs,
``curves`` every run's validation curve; ``command`` is ``ssl-bench compare``, ``report``
``ssl-bench report`` (one HTML page); ``arguments`` what both accept.

The names below are imported on first use (PEP 562), so that ``ssl-bench compare --help``
and its argument errors need neither pandas nor matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public name -> the submodule that defines it.
_EXPORTS: dict[str, str] = {
    "FORMATS": "arguments", "MODELS": "arguments", "SUFFIX_FORMATS": "arguments",
    "parse_pairs": "arguments", "compare_command": "command", "build_report": "report",
    "plot_validation_curves": "curves",
    "describe_differences": "groups", "plot_learning_curves": "plots",
    "plot_per_class": "plots", "pair_csv": "tables", "print_summary": "tables",
    "render": "tables", "ID_COLUMNS": "runs", "available_metrics": "runs",
    "labeled_order": "runs", "load_runs": "runs", "settings_hash": "runs",
    "CORRECTION_NAME": "statistics", "FEW_PAIRS_NOTE": "statistics",
    "TEST_NAME": "statistics", "PairedResult": "statistics", "holm": "statistics",
    "paired_comparison": "statistics", "DEFAULT_BASELINE": "summary",
    "DEFAULT_PAIRS": "summary", "pair_table": "summary", "summarize": "summary",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
