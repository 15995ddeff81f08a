"""The settings of a tuning study: a spec's ``[tune]`` table, overridden by flags."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ssl_bench.config.run_config import FIELD_NAMES, VARIED_SETTINGS
from ssl_bench.core.errors import UserError
from ssl_bench.data.labeled import parse_labeled
from ssl_bench.sweeps.plan import TUNE_KEYS, VARIED, SweepSpec

#: Counted trials per method when neither ``[tune] trials`` nor ``--trials`` says.
DEFAULT_TRIALS = 20
PRUNERS = ("median", "none")


@dataclass
class TuneSettings:
    """How many trials, on which seed and labeled amount, pruned how."""

    trials: int
    seed: int
    labeled: float | int
    pruner: str = "median"
    #: Run settings for trials only (a shorter budget, say), recorded in tuning.json.
    run: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"trials": self.trials, "seed": self.seed, "labeled": self.labeled,
                "pruner": self.pruner, "run": dict(self.run)}


def tune_settings(spec: SweepSpec, table: dict[str, Any], flags: dict[str, Any],
                  source: str) -> TuneSettings:
    """Validate ``[tune]`` + flags against the spec they tune.

    The tuning seed must not be one of the seeds results are reported on (by default it
    is the largest plus one); the labeled amount defaults to the spec's only one.
    """
    unknown = sorted(set(table) - set(TUNE_KEYS))
    if unknown:
        raise UserError(f"{source}: unknown [tune] key(s) {', '.join(unknown)}; [tune] has "
                        f"{', '.join(TUNE_KEYS)}")
    values = {**table, **{k: v for k, v in flags.items() if v is not None}}
    trials = values.get("trials", DEFAULT_TRIALS)
    if not isinstance(trials, int) or isinstance(trials, bool) or trials < 1:
        raise UserError(f"{source}: tune trials must be a whole number >= 1, got {trials!r}")
    seed = values.get("seed", max(spec.seeds) + 1)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise UserError(f"{source}: the tuning seed must be an integer, got {seed!r}")
    if seed in spec.seeds:
        raise UserError(f"{source}: tuning seed {seed} is one of the reported seeds "
                        f"({', '.join(map(str, spec.seeds))}); tune on a seed no result "
                        "is reported on (default: the largest plus one)")
    if "labeled" in values:
        labeled = parse_labeled(values["labeled"])
    elif len(spec.labeled) == 1:
        labeled = spec.labeled[0]
    else:
        raise UserError(f"{source}: the spec lists {len(spec.labeled)} labeled amounts; name "
                        "the one to tune at ([tune] labeled or --labeled)")
    pruner = values.get("pruner", "median")
    if pruner not in PRUNERS:
        raise UserError(f"{source}: tune pruner must be one of {', '.join(PRUNERS)}, "
                        f"got {pruner!r}")
    run = values.get("run", {})
    if not isinstance(run, dict):
        raise UserError(f"{source}: [tune.run] must be a table of run settings")
    run = {k.replace("-", "_"): v for k, v in run.items()}
    bad = sorted(k for k in run if k not in FIELD_NAMES or k in VARIED_SETTINGS
                 or k in VARIED)
    if bad:
        raise UserError(f"{source}: [tune.run] may set shared run settings only, not "
                        f"{', '.join(bad)}")
    return TuneSettings(trials=trials, seed=seed, labeled=labeled, pruner=pruner, run=run)
