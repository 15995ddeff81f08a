"""Runs a list of runs on every rank of a torchrun job, for tests/test_distributed.py.

``torchrun --standalone --nproc_per_node 2 tests/ddp_driver.py JOBS.json`` joins the
process group (gloo on CPU), then runs each job of ``JOBS.json`` -- ``{"name",
"config", "output", "stop_after", "resume", "plugins", "expect_runtime_error"}`` -- in
the same processes, as ``ssl-bench run`` would under torchrun, and the first rank
writes ``{name: {"error": message} or {"metrics": ...}}`` to ``JOBS.json``'s
``.out.json``. One launch for many runs keeps the test under a minute (starting
Python, torch and timm is most of a tiny run's time).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ssl_bench.config.resolve import resolve_config
from ssl_bench.core import distributed
from ssl_bench.core.errors import UserError
from ssl_bench.plugins.registry import load_plugin
from ssl_bench.training.runner import run


def main(jobs_file: str) -> int:
    jobs = json.loads(Path(jobs_file).read_text())
    world = distributed.setup("cpu")
    results: dict[str, dict] = {}
    loaded: set[str] = set()
    try:
        for job in jobs:
            for plugin in set(job.get("plugins", [])) - loaded:
                load_plugin(plugin)
                loaded.add(plugin)
            config = resolve_config({}, job["config"])
            try:
                metrics = run(config, job["output"], quiet=True, resume=job.get("resume", False),
                              stop_after=job.get("stop_after"))
                results[job["name"]] = {"metrics": metrics}
            except UserError as exc:
                results[job["name"]] = {"error": str(exc)}
            except RuntimeError as exc:
                if not job.get("expect_runtime_error"):  # a real failure ends the launch
                    raise
                # (raised alike on every rank by a collective check)
                results[job["name"]] = {"error": str(exc)}
    finally:
        distributed.teardown()
    if world.is_main:
        Path(jobs_file).with_suffix(".out.json").write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
