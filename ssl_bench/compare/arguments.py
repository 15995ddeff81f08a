"""What ``ssl-bench compare`` accepts: output formats, models, method pairs.

Kept apart from the table and plot code (pandas, matplotlib) so that the command line can
check its arguments, and print its help, without importing them.
"""

from __future__ import annotations

from typing import Any

from ssl_bench.core.errors import UserError

#: Table formats ``--format`` takes, and the file suffixes that imply one.
FORMATS: tuple[str, ...] = ("md", "csv", "latex", "json")
SUFFIX_FORMATS: dict[str, str] = {
    ".md": "md", ".markdown": "md", ".csv": "csv", ".tex": "latex", ".json": "json",
}
#: ``reported``: the model each run reports (its ``report_model``; runs that predate it
#: reported ``best``); ``last``: that model at its last evaluation, no best-step selection
#: (runs made with ``test_at = "every"`` only).
MODELS: tuple[str, ...] = ("student", "teacher", "best", "reported", "last")
#: The robustness views ``--views`` shows side by side (a README claim must hold in each).
VIEWS: tuple[str, ...] = ("reported", "student", "teacher", "last")
#: Bootstrap resamples over test images unless ``--bootstrap`` says otherwise.
BOOTSTRAP_RESAMPLES = 2000


def resamples(text: str) -> int:
    """``--bootstrap``: a count of resamples, 0 for none."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0 or 0 < value < 100:
        raise UserError(f"--bootstrap: {text!r} is not 0 (none) or a count of resamples "
                        "of at least 100")
    return value


def parse_pairs(text: str) -> list[tuple[str, str]]:
    """``"srcmt:mt,fixmatch:supervised"`` -> ``[("srcmt", "mt"), ("fixmatch", "supervised")]``
    (``""`` or ``"none"``: no pairs)."""
    if text.strip().lower() in ("", "none"):
        return []
    pairs = []
    for item in text.split(","):
        parts = [part.strip() for part in item.split(":")]
        if len(parts) != 2 or not all(parts):
            raise UserError(f"--pairs: {item.strip()!r} is not METHOD:METHOD "
                            "(e.g. --pairs srcmt:mt,fixmatch:supervised)")
        if parts[0] == parts[1]:
            raise UserError(f"--pairs: {item.strip()!r} compares a method with itself")
        pairs.append((parts[0], parts[1]))
    return pairs


def add_comparison_flags(parser: Any) -> None:
    """The flags ``compare`` and ``report`` share: what is compared and how it is tested."""
    parser.add_argument("--metric", default="auc",
                        help="any recorded test metric (auc, accuracy, f1_macro, auc_MEL, ...)")
    parser.add_argument("--model", default="reported", choices=MODELS,
                        help="reported (default: the model each run's --report-model names), "
                        "student, teacher, best (the one with the higher validation metric) or "
                        "last (the reported model at the last evaluation; test_at = every)")
    parser.add_argument("--views", action="store_true",
                        help="the table in every robustness view: reported, student only, "
                        "teacher only (the student for methods without one), last step; then "
                        "the means and each comparison's verdict across them")
    parser.add_argument("--error-bars", choices=("sd", "ci95"), default="sd",
                        help="error bars of the plots: sd (standard deviation over seeds; "
                        "default) or ci95 (95%% t-interval of the mean)")
    parser.add_argument("--baseline", help="method every other is tested against, runs "
                        "paired by seed, Holm-corrected (default: supervised)")
    parser.add_argument("--pairs", help="further paired tests, METHOD:METHOD,... "
                        "(default: srcmt:mt where both ran; 'none' for none)")
    parser.add_argument("--bootstrap", type=resamples, default=BOOTSTRAP_RESAMPLES,
                        metavar="N", help="bootstrap intervals over test images from the "
                        "runs' saved predictions, and paired bootstraps against the baseline "
                        f"and the pairs, with N resamples (default {BOOTSTRAP_RESAMPLES}; 0: "
                        "none)")
