"""Sweep planning: the spec (methods x fractions x seeds, shared run settings, method
options), the planned runs with their resolved configurations, and the fairness checks
-- before running (every run agrees on everything but its method, options, fraction and
seed) and afterwards (one (fraction, seed) means the same split for every method)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssl_bench.config.budget import batch_split, method_label
from ssl_bench.config.resolve import read_toml, resolve_config
from ssl_bench.config.run_config import (
    FIELD_NAMES,
    VARIED_SETTINGS,
    RunConfig,
    comparison_settings,
    parallel_settings,
)
from ssl_bench.core.errors import UserError
from ssl_bench.data.labeled import labeled_tag, parse_labeled
from ssl_bench.runs.run_dir import CONFIG, SPLIT

#: Settings a sweep varies, and settings that only say where/how a run executes.
#: What a sweep varies itself ([run] may not set them).
VARIED = ("method", "method_options", "labeled", "seed")
#: Outcomes of a run in a sweep, in the order the summary shows them (the last two only
#: in a sweep stopped by a signal).
STATUSES = ("done", "resumed", "skipped", "busy", "failed", "interrupted", "pending")
SPEC_KEYS = ("name", "description", "methods", "labeled", "seeds", "run", "method_options",
             "method_run", "baselines", "results", "keep_checkpoints", "reference", "tune",
             "tuned_by")
#: Keys of a spec's ``[tune]`` table (read by :mod:`ssl_bench.tuning.settings`).
TUNE_KEYS = ("trials", "seed", "labeled", "pruner", "run")
#: The supervised batches (``supervised_batch``) a sweep may run its labeled-only methods
#: on, each a baseline of its own (:func:`ssl_bench.config.budget.method_label`).
BASELINES = ("two-stream", "labeled")


@dataclass
class SweepSpec:
    """What to run: methods x labeled x seeds with one table of shared run settings."""

    name: str
    methods: list[str]
    labeled: list[float | int]
    seeds: list[int]
    run: dict[str, Any] = field(default_factory=dict)
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Engine settings one method sets for itself (``[method_run.<method>]``, e.g. the
    #: learning rate ``ssl-bench tune`` chose for it): recorded as its ``own_settings``.
    method_run: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The batches labeled-only methods run on, one baseline each (default: the run
    #: settings' ``supervised_batch``, i.e. ``two-stream``).
    baselines: list[str] = field(default_factory=list)
    results: str = "results"
    keep_checkpoints: bool = True
    description: str = ""
    #: A reference sweep (results the README or a paper reports) starts only from a tree
    #: without uncommitted changes to the engine or the methods (:func:`code_provenance`).
    reference: bool = False
    #: ``[tune]``: how ``ssl-bench tune`` tunes this spec (:mod:`ssl_bench.tuning`).
    tune: dict[str, Any] = field(default_factory=dict)
    #: The ``tuning.json`` whose choices a tuned spec (``tuned.toml``) holds.
    tuned_by: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in SPEC_KEYS}


@dataclass
class PlannedRun:
    method: str
    labeled: float | int
    seed: int
    config: RunConfig
    output: Path

    #: The name it is compared under (``supervised-labeled-batch`` for that baseline).
    label: str = ""

    @property
    def key(self) -> str:
        return f"{self.label or self.method}/labeled={labeled_tag(self.labeled)}/seed={self.seed}"


def _as_list(value: Any, what: str, source: str) -> list[Any]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not value:
        raise UserError(f"{source}: {what} must be a non-empty list")
    return value


def make_spec(values: dict[str, Any], source: str) -> SweepSpec:
    """Validate a spec dict (from TOML or the command line) into a :class:`SweepSpec`."""
    unknown = sorted(set(values) - set(SPEC_KEYS))
    if unknown:
        raise UserError(f"{source}: unknown key(s) {', '.join(unknown)}; "
                        f"a sweep spec has {', '.join(SPEC_KEYS)}")
    for key in ("name", "methods", "labeled", "seeds"):
        if key not in values:
            raise UserError(f"{source}: missing {key!r}")
    name = str(values["name"])
    if not name or "/" in name or name.startswith("."):
        raise UserError(f"{source}: name {name!r} must be a plain folder name")
    methods = [str(m) for m in _as_list(values["methods"], "methods", source)]
    labeled = [parse_labeled(v) for v in _as_list(values["labeled"], "labeled", source)]
    try:
        seeds = [int(s) for s in _as_list(values["seeds"], "seeds", source)]
    except (TypeError, ValueError):
        raise UserError(f"{source}: seeds must be integers") from None
    run = {k.replace("-", "_"): v for k, v in dict(values.get("run", {})).items()}
    bad = sorted(set(run) - set(FIELD_NAMES))
    if bad:
        raise UserError(f"{source}: unknown run setting(s) {', '.join(bad)}")
    varied = sorted(set(run) & set(VARIED))
    if varied:
        raise UserError(f"{source}: [run] may not set {', '.join(varied)}: a sweep varies "
                        "them (use methods/labeled/seeds and [method_options.<method>])")
    options = _method_tables(values.get("method_options", {}), "method_options", methods,
                             source)
    method_run = _method_tables(values.get("method_run", {}), "method_run", methods, source)
    for method, table in method_run.items():
        bad = sorted(k for k in table if k not in FIELD_NAMES or k in VARIED_SETTINGS)
        if bad:
            raise UserError(f"{source}: [method_run.{method}] may set engine settings only, "
                            f"not {', '.join(bad)}")
    baselines = [str(b) for b in _as_list(values.get("baselines", ["-"]), "baselines", source)]
    if baselines == ["-"]:
        baselines = []
    wrong = [b for b in baselines if b not in BASELINES]
    if wrong or ("supervised_batch" in run and baselines):
        raise UserError(f"{source}: baselines must list {' and/or '.join(BASELINES)} (and "
                        "replaces [run] supervised_batch)" + (f", got {wrong[0]!r}" if wrong
                                                              else ""))
    for what, items in (("methods", methods), ("labeled", labeled), ("seeds", seeds),
                        ("baselines", baselines)):
        if len(set(map(str, items))) != len(items):
            raise UserError(f"{source}: {what} lists a value twice")
    reference = _as_bool(values.get("reference", False), "reference", source)
    tune = values.get("tune", {})
    if not isinstance(tune, dict) or sorted(set(tune) - set(TUNE_KEYS)):
        raise UserError(f"{source}: [tune] must be a table with keys among "
                        f"{', '.join(TUNE_KEYS)}")
    if reference:
        _fix_reporting(run, source)
    return SweepSpec(name=name, methods=methods, labeled=labeled, seeds=seeds, run=run,
                     method_options=options, method_run=method_run, baselines=baselines,
                     results=str(values.get("results", "results")),
                     keep_checkpoints=bool(values.get("keep_checkpoints", True)),
                     description=str(values.get("description", "")),
                     reference=reference, tune=dict(tune),
                     tuned_by=str(values.get("tuned_by", "")))


def _fix_reporting(run: dict[str, Any], source: str) -> None:
    """A reference sweep names its reported model before it runs and scores test at
    every evaluation, so every robustness view (student, teacher, last step) exists."""
    if "report_model" not in run:
        raise UserError(f"{source}: a reference sweep (reference = true) names the model it "
                        "reports before it runs: set report_model in [run] (best, student "
                        "or teacher)")
    if run.setdefault("test_at", "every") != "every":
        raise UserError(f"{source}: a reference sweep scores test at every evaluation (for "
                        f"the robustness views); [run] test_at = {run['test_at']!r} must be "
                        "'every' or left out")


def _method_tables(tables: Any, key: str, methods: list[str],
                   source: str) -> dict[str, dict[str, Any]]:
    """``[key.<method>]`` tables, each for a method the sweep runs."""
    if not isinstance(tables, dict) or not all(isinstance(v, dict) for v in tables.values()):
        raise UserError(f"{source}: {key} must be tables [{key}.<method>]")
    strays = sorted(set(tables) - set(methods))
    if strays:
        raise UserError(f"{source}: {key} for {', '.join(strays)}, which the sweep does not "
                        "run")
    return {m: {k.replace("-", "_"): v for k, v in t.items()} for m, t in tables.items()}


def _as_bool(value: Any, what: str, source: str) -> bool:
    if not isinstance(value, bool):
        raise UserError(f"{source}: {what} must be true or false, got {value!r}")
    return value


def code_provenance(spec: SweepSpec, allow_uncommitted: bool,
                    path: Path | None = None) -> dict[str, Any]:
    """The code a sweep runs (commit, uncommitted code files, digest), for ``sweep.json``.

    A reference sweep refuses to start when the engine's or the methods' files have
    uncommitted changes, unless ``allow_uncommitted`` (``--allow-uncommitted``, recorded).
    """
    from ssl_bench.core.provenance import (
        checkout,
        code_digest,
        code_elsewhere,
        git_commit,
        uncommitted_code,
    )

    elsewhere = code_elsewhere() if path is None else []
    if spec.reference and elsewhere:
        raise UserError(f"sweep {spec.name} is a reference sweep (reference = true) and "
                        f"{'; '.join(elsewhere)}, not from {checkout()}: install that "
                        "checkout in its own environment (python -m venv --system-site-"
                        "packages ENV && ENV/bin/pip install --no-deps -e CHECKOUT) and run "
                        "its ssl-bench")
    changed = uncommitted_code(path)
    if spec.reference and changed and not allow_uncommitted:
        shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more"
                                          if len(changed) > 3 else "")
        raise UserError(f"sweep {spec.name} is a reference sweep (reference = true) and the "
                        f"code has uncommitted changes ({shown}): commit them and run from a "
                        "clean checkout or worktree, or pass --allow-uncommitted (recorded "
                        "in sweep.json)")
    return {"reference": spec.reference, "git": git_commit(path), "uncommitted_code": changed,
            "allow_uncommitted": allow_uncommitted, "code": code_digest(path)}


def read_spec(path: str | Path) -> dict[str, Any]:
    """The raw values of a TOML sweep spec (``name`` defaults to the file's stem)."""
    path = Path(path)
    values = read_toml(path, "sweep spec")
    values.setdefault("name", path.stem)
    return values


def fairness_key(config: dict[str, Any], owned: Iterable[str] = ()) -> dict[str, Any]:
    """The settings every run of a sweep must share: all but the varied and machine-only
    ones, and ``owned`` (settings some method declares as its own, ``Method.defaults``)."""
    skip = set(owned)
    return {k: v for k, v in comparison_settings(config).items() if k not in skip}


def _differences(a: dict[str, Any], b: dict[str, Any]) -> str:
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return "; ".join(f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in keys)


def plan(spec: SweepSpec, config_file: dict[str, Any] | None = None) -> list[PlannedRun]:
    """Resolve every run's configuration and check the sweep is fair; no file is written."""
    from ssl_bench.plugins.registry import create_method, method_registry

    # Unknown names and bad options fail before anything runs; options are resolved with
    # their defaults, as a run records them (so a re-run matches its stored config.json).
    options = {method: create_method(method, **spec.method_options.get(method, {})).option_values
               for method in spec.methods}
    runs = []
    for labeled in spec.labeled:
        for seed in spec.seeds:
            for method in spec.methods:
                card = method_registry.card(method)
                name = card.name
                own = spec.method_run.get(method, {})
                for batch in _baselines_of(spec, card.facts.get("unlabeled") == "yes"):
                    values = {"experiment": spec.name,  # the tracker's (--log) experiment
                              **spec.run, **own, **batch, "method": name, "labeled": labeled,
                              "seed": seed, "method_options": options[method],
                              "own_settings": sorted(own)}
                    config = resolve_config(config_file or {}, values)
                    label = method_label(name, card.facts.get("unlabeled") == "yes",
                                         config.supervised_batch)
                    output = (Path(spec.results) / spec.name / config.dataset / label
                              / f"labeled={labeled_tag(labeled)}" / f"seed={seed}")
                    runs.append(PlannedRun(name, labeled, seed, config, output, label))
    # Settings a method declares as its paper's own (Method.defaults) or sets for itself
    # ([method_run]) may differ between methods; everything else must not.
    owned = {key for method in spec.methods for key in method_registry.card(method).defaults}
    owned |= {key for table in spec.method_run.values() for key in table}
    reference = fairness_key(runs[0].config.to_dict(), owned)
    for planned in runs[1:]:
        other = fairness_key(planned.config.to_dict(), owned)
        if other != reference:
            raise UserError(f"unfair sweep: {planned.key} differs from {runs[0].key} in "
                            f"{_differences(reference, other)}")
    for planned in runs:
        stored_path = planned.output / CONFIG
        if stored_path.is_file():
            try:
                stored = json.loads(stored_path.read_text(encoding="utf-8"))["config"]
            except (OSError, ValueError, KeyError):
                continue  # an unreadable partial run is simply run again
            wanted = {**fairness_key(planned.config.to_dict()),
                      "label": planned.label, "own_settings": planned.config.own_settings}
            uses_unlabeled = method_registry.card(planned.method).facts.get("unlabeled") == "yes"
            have = {**fairness_key(stored), "own_settings": stored.get("own_settings", []),
                    "label": method_label(planned.method, uses_unlabeled,
                                          stored.get("supervised_batch", "labeled"))}
            if have != wanted or stored.get("method_options") != planned.config.method_options:
                have = {**have, "method_options": stored.get("method_options")}
                wanted = {**wanted, "method_options": planned.config.method_options}
                raise UserError(
                    f"{planned.output} holds a run made with other settings "
                    f"({_differences(have, wanted)}); change the sweep name or remove it")
    return runs


def _baselines_of(spec: SweepSpec, uses_unlabeled: bool) -> list[dict[str, Any]]:
    """The ``supervised_batch`` settings a method runs under: one per baseline for a
    labeled-only method, none of its own for an SSL method (it has one batch)."""
    if uses_unlabeled or not spec.baselines:
        return [{}]
    return [{"supervised_batch": batch} for batch in spec.baselines]


def exposure_notes(runs: list[PlannedRun]) -> list[str]:
    """Warnings for a sweep whose methods see different labeled exposure: labeled images
    per step x steps, unless the budget is in labeled epochs (equal by construction)."""
    from ssl_bench.plugins.registry import method_registry

    seen: dict[str, tuple[int, int | None]] = {}
    for planned in runs:
        config = planned.config
        if config.labeled_epochs is not None:
            continue
        uses_unlabeled = method_registry.card(planned.method).facts.get("unlabeled") == "yes"
        per_step, _ = batch_split(config, uses_unlabeled, 0 if config.labeled == 1.0 else 1)
        seen.setdefault(planned.label or planned.method, (per_step, config.iterations))
    if len({per_step * (steps or 1) for per_step, steps in seen.values()}) < 2:
        return []
    low = min(per_step * (steps or 1) for per_step, steps in seen.values())
    parts = [f"{label} {per_step} per step" + (f" x {steps} steps" if steps else "")
             + f" ({per_step * (steps or 1) / low:.1f}x)"
             for label, (per_step, steps) in sorted(seen.items())]
    return [f"unequal labeled exposure: {', '.join(parts)}; set labeled_epochs "
            "(--labeled-epochs) for equal exposure, or report both supervised baselines "
            "(baselines = [\"two-stream\", \"labeled\"])"]


def overridden_defaults(spec: SweepSpec) -> list[str]:
    """One line per method whose own engine default (``Method.defaults``, its paper's value)
    the spec's shared settings override, so a sweep author sees it before hours of runs."""
    from ssl_bench.plugins.registry import method_registry

    notes = []
    for method in spec.methods:
        card = method_registry.card(method)
        for key, own in card.defaults.items():
            if key in spec.run and spec.run[key] != own:
                notes.append(f"{key} = {spec.run[key]!r} in [run] (or its flag) overrides "
                             f"{card.name}'s own default {key} = {own!r}; leave it "
                             "out to use each method's paper value")
    return notes


# -- executing one run (in this process or a worker process) -----------------------------


def check_same_splits(runs: list[PlannedRun]) -> list[str]:
    """Problems where methods of one (fraction, seed) did not get the same split.

    A run that started (``config.json`` exists) must have a readable, valid
    ``split.json``: an unreadable one is a problem, not a run to leave out.
    """
    problems = []
    by_cell: dict[tuple[str, int], dict[str, str]] = {}
    for planned in runs:
        if not (planned.output / CONFIG).is_file():
            continue  # never started (or failed before writing its records)
        try:
            from ssl_bench.data.splits import load_split

            digest = load_split(planned.output / SPLIT).digest
        except UserError as exc:
            problems.append(f"{planned.key}: {exc}")
            continue
        by_cell.setdefault((labeled_tag(planned.labeled), planned.seed), {})[
            planned.method] = digest
    for (tag, seed), digests in sorted(by_cell.items()):
        if len(set(digests.values())) > 1:
            problems.append(f"labeled={tag} seed={seed}: methods got different splits "
                            f"({', '.join(f'{m}={d}' for m, d in sorted(digests.items()))})")
    return problems


def check_same_parallelism(runs: list[PlannedRun]) -> list[str]:
    """A problem if the sweep's started runs ran on different process counts or
    batch-norm scopes (:func:`ssl_bench.config.run_config.parallel_settings`): such runs are not
    one comparison, however alike their configurations."""
    import json

    seen: dict[tuple[int, str], list[str]] = {}
    for planned in runs:
        try:
            document = json.loads((planned.output / CONFIG).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # never started; an unreadable record is check_same_splits' problem
        if isinstance(document, dict):
            how = parallel_settings(document)
            seen.setdefault((how["processes"], how["batch_norm"]), []).append(planned.key)
    if len(seen) < 2:
        return []
    groups = "; ".join(f"{processes} process(es), batch norm {scope}: {len(keys)} run(s) "
                       f"(e.g. {keys[0]})" for (processes, scope), keys in sorted(seen.items()))
    return [f"runs were made with different process counts or batch-norm scopes ({groups}); "
            "under torchrun each process mixes and normalises its own shard, so they are "
            "not one comparison: run them again the same way (--overwrite)"]
