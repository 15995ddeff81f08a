"""The Python API: runs, sweeps, comparisons and trained models from a notebook or script.

The command line's work, returned as Python objects instead of printed:

* :func:`run` trains (or resumes) one run and returns its ``metrics.json``;
* :func:`sweep` runs a sweep spec and returns each run's outcome;
* :func:`compare` returns the comparison table as a :class:`pandas.DataFrame`;
* :func:`load_model` turns a finished run folder into a :class:`Predictor` (the reported
  network, its preprocessing and class names) for inference (defined in
  :mod:`ssl_bench.inference.model`, which ``ssl-bench predict`` and ``export`` use too).

Settings are :class:`~ssl_bench.config.run_config.RunConfig` fields by name (``method="mt"``,
``labeled=0.1``, ``image_size=64``, ...), resolved and checked exactly as the command
line's flags are, so a run made here records the same ``config.json``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ssl_bench.core.errors import UserError
from ssl_bench.inference.model import Predictor, load_model

__all__ = ["Predictor", "compare", "load_model", "run", "sweep"]


def run(output: str | Path, *, config_file: str | Path | None = None, resume: bool = False,
        overwrite: bool = False, quiet: bool = True, **settings: Any) -> dict[str, Any]:
    """Train one run into ``output`` and return its metrics (``metrics.json``).

    ``settings`` are run settings by field name over the ``config_file``'s (a TOML run
    configuration, as ``ssl-bench run --config``); ``resume`` continues an interrupted run
    from its checkpoint; ``overwrite`` starts again in a folder that holds a run.
    """
    from ssl_bench.config.resolve import read_config_file, resolve_config
    from ssl_bench.training.runner import run as run_config

    config = resolve_config(read_config_file(config_file) if config_file else {}, settings)
    metrics = run_config(config, output, resume=resume, overwrite=overwrite, quiet=quiet)
    assert metrics is not None  # (None only for a test's stop_after)
    return metrics


def sweep(spec: str | Path | dict[str, Any], *, jobs: int = 1, threads: int | None = None,
          quiet: bool = True, allow_uncommitted: bool = False) -> dict[str, dict[str, Any]]:
    """Run every run of a sweep ``spec`` (a TOML file, or its values as a dict) not
    finished yet, as ``ssl-bench sweep SPEC --jobs N`` does (finished runs are skipped,
    interrupted ones resume); each run's outcome by its key (``method/labeled=f/seed=s``).
    """
    from ssl_bench.sweeps.local import run_sweep
    from ssl_bench.sweeps.plan import code_provenance, make_spec, plan, read_spec

    if jobs < 1:
        raise UserError(f"jobs must be at least 1, got {jobs}")
    values = dict(spec) if isinstance(spec, dict) else read_spec(spec)
    if "name" not in values:
        raise UserError("a sweep given as a dict needs a 'name'")
    made = make_spec(values, str(spec) if not isinstance(spec, dict) else "sweep values")
    runs = plan(made)
    provenance = code_provenance(made, allow_uncommitted)
    result = run_sweep(made, runs, jobs=jobs, threads=threads, quiet=quiet,
                       provenance=provenance)
    return dict(result.status)


def compare(folders: str | Path | Iterable[str | Path], *, metric: str = "auc",
            model: str = "reported", baseline: str | None = None,
            pairs: Sequence[tuple[str, str]] | None = None) -> Any:
    """The comparison of every finished run below ``folders`` as ``ssl-bench compare``
    computes it: a :class:`pandas.DataFrame`, one row per data set x settings group x
    method x labeled amount (mean, std, n, gain, paired difference and interval, the test
    with Holm's correction, labeled images seen, converged); ``attrs`` holds the chosen
    pairs, the notes and the warnings about skipped runs."""
    from ssl_bench.compare.runs import load_runs
    from ssl_bench.compare.summary import summarize

    if isinstance(folders, (str, Path)):
        folders = [folders]
    df, warnings = load_runs(folders)
    if df.empty:
        raise UserError(f"no finished run below {', '.join(map(str, folders))}")
    table = summarize(df, metric, model, baseline, pairs)
    table.attrs["warnings"] = list(warnings)
    return table
