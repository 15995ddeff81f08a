"""``ssl-bench tune``: the same tuning budget for every method, chosen on validation only.

A study per method (Optuna, seeded TPE, median pruning) over the shared engine space and
the method's own (:mod:`ssl_bench.method_kit.search_space`), all stored in one SQLite file, so a
killed study continues where it stopped. Every method gets the same number of counted
trials (finished, pruned or diverged), run round-robin in one process so an interrupted
study is balanced too, or one study per process (``--jobs``, submitit jobs:
:mod:`.execution`); each trial is an ordinary run on a tuning seed no reported result uses,
with test never scored. The chosen settings become ``tuned.toml``, a sweep spec whose
``[method_options]`` and ``[method_run]`` tables hold them.

This package's top level imports neither torch nor Optuna: ``compare`` reads its names.
"""

from __future__ import annotations

#: The folder of a sweep's tuning study: ``<results>/<name>/tuning/``.
TUNING_DIR = "tuning"
#: The Optuna storage (one study per method), in :data:`TUNING_DIR`.
STUDY_DB = "study.db"
#: The record of every trial and each method's choice.
TUNING_JSON = "tuning.json"
#: The sweep spec with the chosen settings.
TUNED_TOML = "tuned.toml"
