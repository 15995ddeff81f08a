"""What a tracking outage costs a run, case by case (issue 28, item 7).

Each case runs ``ssl-bench run --method mt --dataset digits --log mlflow`` (16 px, CPU)
in a fresh process with MLflow's own HTTP defaults (no ``MLFLOW_HTTP_*`` variable set),
and reads its merged output line by line as it comes:

* ``unreachable``: ``MLFLOW_TRACKING_URI`` at a loopback port nothing listens on;
* ``read-only``: a SQLite store in a read-only folder (as root: without the capability
  that writes read-only files, through ``setpriv``);
* ``truncated`` / ``overwritten``: ``mlflow.db`` cut to a quarter / replaced by text;
* ``server-killed``: a real ``mlflow server`` (uvicorn, one worker, SQLite) on loopback,
  SIGKILLed once the run has evaluated once (``history.csv`` written);
* ``server-hung``: the same server SIGSTOPped instead (connections open, no answers);
* ``resume-lost``: a run stopped by SIGINT after its first evaluation, its ``mlflow.db``
  then lost (a new, empty store in its place), resumed with ``--resume``.
* ``baseline``: a working SQLite store, for the time a run needs to start and finish.

It prints, per case, when the first line about the problem came (seconds from the start,
or from the kill/stop for the two server cases), when the process ended, its exit code,
the lines it printed (a working run prints its start line and result table), whether
training ran to its end (``metrics.json``) and that first line. ``--repo`` runs another
checkout's code (e.g. a worktree of the code before the fix); ``--limit`` bounds each
case. Example::

    python benchmarks/tracking_outages.py
    python benchmarks/tracking_outages.py --repo /tmp/wt-b --cases unreachable --limit 400
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: A run of seconds, long enough (60 steps, an evaluation every 10) to outlive a kill.
RUN_FLAGS = ["--method", "mt", "--dataset", "digits", "--image-size", "16", "--iterations",
             "60", "--eval-every", "10", "--batch-size", "16", "--labeled-batch-size", "4",
             "--eval-batch-size", "600", "--drop-rate", "0"]
#: What marks a line as being about the problem.
PROBLEM_MARKS = ("error", "warning", "traceback", "exception")


@dataclass
class Outcome:
    """What one case's process did, timed from its start (or from the fault)."""

    case: str
    first_problem: float | None = None
    ended: float | None = None
    code: int | None = None
    lines: list[tuple[float, str]] = field(default_factory=list)
    trained: bool = False
    fault_at: float | None = None

    def problem_line(self) -> tuple[float, str] | None:
        """The first line about the problem (after the fault, where there is one)."""
        for at, line in self.lines:
            if any(mark in line.lower() for mark in PROBLEM_MARKS) and (
                    self.fault_at is None or at >= self.fault_at):
                return at, line
        return None


def free_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def environment(repo: Path, uri: str) -> dict[str, str]:
    """The run's environment: MLflow's defaults, ``uri`` as the store, ``repo``'s code."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(MLFLOW_TRACKING_URI=uri, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               PYTHONPATH=str(repo) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return env


def watch(case: str, command: list[str], env: dict[str, str], cwd: Path, limit: float,
          during: Callable[[Outcome, float], None] | None = None) -> Outcome:
    """Run ``command``, timestamping each output line; ``during`` is called every 0.2 s
    with (outcome, seconds since start) to inject a fault."""
    outcome = Outcome(case)
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=env, cwd=cwd, bufsize=1)

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            outcome.lines.append((time.monotonic() - started, line.rstrip("\n")))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    while process.poll() is None and time.monotonic() - started < limit:
        if during is not None:
            during(outcome, time.monotonic() - started)
        time.sleep(0.2)
    if process.poll() is None:
        process.kill()
    process.wait()
    reader.join(5)
    outcome.ended, outcome.code = time.monotonic() - started, process.returncode
    outcome.trained = (cwd / "run" / "metrics.json").is_file()
    return outcome


def run_command(extra: tuple[str, ...] = ()) -> list[str]:
    return [sys.executable, "-m", "ssl_bench", "run", *RUN_FLAGS, "--log", "mlflow", "-o",
            "run", *extra]


def start_server(folder: Path) -> tuple[subprocess.Popen, str]:
    """A real ``mlflow server`` on a free loopback port, once it answers ``/health``."""
    port = free_port()
    server = subprocess.Popen(
        ["mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
         "--artifacts-destination", str(folder / "artifacts")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2):
                return server, uri
        except OSError:
            time.sleep(0.5)
    server.kill()
    raise RuntimeError("mlflow server did not start")


def stop_server(server: subprocess.Popen) -> None:
    """End the server this script started (its own process group)."""
    try:
        os.killpg(server.pid, signal.SIGCONT)
        os.killpg(server.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    server.wait()


def mlflow_db(folder: Path) -> Path:
    """A real MLflow SQLite store with an experiment and a run in it."""
    import logging

    from mlflow.tracking import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # (its table-creation lines)
    path = folder / "mlflow.db"
    client = MlflowClient(f"sqlite:///{path}")
    client.create_run(client.create_experiment("earlier"))
    return path


def case_start(case: str, repo: Path, folder: Path, limit: float) -> Outcome:
    """A store that cannot be used when the run starts."""
    prefix: list[str] = []
    if case == "unreachable":
        uri = f"http://127.0.0.1:{free_port()}"
    elif case == "read-only":
        (folder / "ro").mkdir()
        (folder / "ro").chmod(0o555)
        uri = f"sqlite:///{folder / 'ro' / 'mlflow.db'}"
        if os.geteuid() == 0:
            prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner"]
    elif case == "baseline":
        uri = f"sqlite:///{folder / 'ok' / 'mlflow.db'}"
    else:
        path = mlflow_db(folder)
        data = path.read_bytes()
        path.write_bytes(data[:len(data) // 4] if case == "truncated"
                         else b"not a database " * (len(data) // 15))
        uri = f"sqlite:///{path}"
    try:
        return watch(case, [*prefix, *run_command()], environment(repo, uri), folder, limit)
    finally:
        if (folder / "ro").exists():
            (folder / "ro").chmod(0o755)


def case_server(case: str, repo: Path, folder: Path, limit: float) -> Outcome:
    """A real server that dies (SIGKILL) or hangs (SIGSTOP) after the first evaluation."""
    server, uri = start_server(folder)

    def fault(outcome: Outcome, now: float) -> None:
        if outcome.fault_at is None and (folder / "run" / "history.csv").is_file():
            os.killpg(server.pid, signal.SIGKILL if case == "server-killed" else signal.SIGSTOP)
            outcome.fault_at = now

    try:
        return watch(case, run_command(), environment(repo, uri), folder, limit, fault)
    finally:
        stop_server(server)


def case_resume(repo: Path, folder: Path, limit: float) -> Outcome:
    """A run stopped after its first evaluation, its store lost, then resumed."""
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    env = environment(repo, uri)
    process = subprocess.Popen(run_command(), env=env, cwd=folder,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + limit
    while not (folder / "run" / "history.csv").is_file() and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)  # a clean stop with a checkpoint
    process.wait()
    (folder / "mlflow.db").unlink()  # the store is lost; a new one starts in its place
    return watch("resume-lost", run_command(("--resume",)), env, folder, limit)


CASES = ("baseline", "unreachable", "read-only", "truncated", "overwritten", "server-killed",
         "server-hung", "resume-lost")


def measure(case: str, repo: Path, limit: float) -> Outcome:
    """One case in a fresh temporary folder."""
    folder = Path(tempfile.mkdtemp(prefix=f"outage-{case}-"))
    try:
        if case.startswith("server"):
            return case_server(case, repo, folder, limit)
        if case == "resume-lost":
            return case_resume(repo, folder, limit)
        return case_start(case, repo, folder, limit)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def report(outcomes: list[Outcome]) -> None:
    """One row per case and its first problem line."""
    print(f"{'case':<14} {'1st problem line':>17} {'exit at':>8} {'code':>5} "
          f"{'lines':>6} {'trained':>7}")
    for outcome in outcomes:
        found = outcome.problem_line()
        start = outcome.fault_at or 0.0
        first = f"{found[0] - start:.1f} s" + (" after" if outcome.fault_at else "") \
            if found else "-"
        print(f"{outcome.case:<14} {first:>17} {outcome.ended:>6.1f} s {outcome.code:>5} "
              f"{len(outcome.lines):>6} {'yes' if outcome.trained else 'no':>7}")
    print()
    for outcome in outcomes:
        found = outcome.problem_line()
        text = found[1] if found else "(none)"
        print(f"{outcome.case}: {text[:240]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=REPO, help="the checkout whose code runs")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--limit", type=float, default=600, help="seconds per case at most")
    args = parser.parse_args()
    outcomes = [measure(case, args.repo.resolve(), args.limit) for case in args.cases]
    report(outcomes)


if __name__ == "__main__":
    main()
