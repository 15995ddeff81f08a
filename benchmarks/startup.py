"""Start-up time of the command line: help, usage errors and `list`, in fresh processes.

Issue 15 asked for `ssl-bench --help` and a usage error under 0.5 s on an idle 2-core
machine. Each command runs in a new interpreter (as a user types it), the median of
``--repeats`` after one warm-up (which also builds the registry index); several
checkouts (``--checkout PATH``, e.g. an older commit in a worktree) are measured in
interleaved rounds so machine noise is shared. ``--importtime`` prints the slowest imports
of one command (``python -X importtime``).

    python benchmarks/startup.py
    python benchmarks/startup.py --checkout /tmp/old-checkout --checkout . --repeats 7
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = {
    "ssl-bench --help": ["--help"],
    "ssl-bench run --help": ["run", "--help"],
    "ssl-bench run --method srcmt --help": ["run", "--method", "srcmt", "--help"],
    "usage error: run --labeled abc": ["run", "--labeled", "abc"],
    "usage error: run --bogus": ["run", "--bogus"],
    "ssl-bench list --methods": ["list", "--methods"],
    "ssl-bench compare --help": ["compare", "--help"],
    "ssl-bench sweep --help": ["sweep", "--help"],
}


def _run(checkout: Path, argv: list[str], cache: Path, importtime: bool = False
         ) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": str(checkout), "SSL_BENCH_CACHE": str(cache)}
    flags = ["-X", "importtime"] if importtime else []
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *flags, "-m", "ssl_bench", *argv], env=env,
                          capture_output=True, text=True, cwd=checkout, check=False)
    return time.perf_counter() - start, done.stderr


def slowest_imports(stderr: str, count: int = 8) -> list[tuple[float, str]]:
    """The ``count`` top-level imports with the largest cumulative time (ms)."""
    rows = []
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = line[12:].split("|")
            if cumulative.strip().isdigit() and not name.startswith("  "):  # top level
                rows.append((int(cumulative) / 1000, name.strip()))
    return sorted(rows, reverse=True)[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", action="append", type=Path,
                        help="source tree to measure (repeatable; default: this one)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--importtime", action="store_true",
                        help="also show the slowest imports of `run --labeled abc`")
    args = parser.parse_args()
    checkouts = args.checkout or [Path(__file__).resolve().parents[1]]
    with tempfile.TemporaryDirectory() as tmp:
        caches = {c: Path(tmp) / str(i) for i, c in enumerate(checkouts)}
        for checkout in checkouts:  # warm-up: file caches, and the registry index
            _run(checkout, ["list"], caches[checkout])
        seconds: dict[tuple[Path, str], list[float]] = {}
        for _ in range(args.repeats):
            for name, argv in COMMANDS.items():
                for checkout in checkouts:
                    elapsed, _ = _run(checkout, argv, caches[checkout])
                    seconds.setdefault((checkout, name), []).append(elapsed)
        width = max(map(len, COMMANDS))
        print(f"{'command':<{width}}  " + "  ".join(f"{str(c)[-24:]:>24}" for c in checkouts))
        for name in COMMANDS:
            cells = "  ".join(f"{statistics.median(seconds[(c, name)]):>22.2f} s"
                              for c in checkouts)
            print(f"{name:<{width}}  {cells}")
        if args.importtime:
            for checkout in checkouts:
                _, stderr = _run(checkout, COMMANDS["usage error: run --labeled abc"],
                                 caches[checkout], importtime=True)
                top = ", ".join(f"{n} {ms:.0f} ms" for ms, n in slowest_imports(stderr))
                print(f"slowest imports of a usage error ({checkout}): {top}")


if __name__ == "__main__":
    main()
