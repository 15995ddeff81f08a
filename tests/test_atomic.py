"""Atomic writes and the clean-up of temporaries that killed processes leave behind."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from ssl_bench.core.atomic import atomic_write_text, process_alive, remove_stale_temporaries


def _dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_atomic_write_names_its_temporary_after_the_process(tmp_path, monkeypatch):
    seen = []
    real = os.replace

    def spy(src, dst):
        seen.append(os.path.basename(src))
        real(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    atomic_write_text(tmp_path / "a.json", "{}")
    assert seen and seen[0].startswith(f".a.json.{os.getpid()}.") and seen[0].endswith(".tmp")
    assert (tmp_path / "a.json").read_text() == "{}"


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    dead, alive = _dead_pid(), os.getppid()
    assert not process_alive(dead) and process_alive(alive)
    stale = [tmp_path / f".best.pt.{dead}.k3j9x_2a.tmp",
             tmp_path / f".checkpoint.pt.{dead}.abcdefgh.tmp",
             tmp_path / f"isic-64px-3ch-0123.npy.partial-{dead}"]
    kept = [tmp_path / f".best.pt.{alive}.zzzzzzzz.tmp",  # a live writer's file
            tmp_path / f"isic-64px-3ch-0123.npy.partial-{os.getpid()}",
            tmp_path / "best.pt", tmp_path / "metrics.json",
            tmp_path / ".notes.tmp"]  # not one of ours: no pid
    for path in stale + kept:
        path.write_bytes(b"x")
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted(stale)
    assert all(p.exists() for p in kept) and not any(p.exists() for p in stale)
    assert remove_stale_temporaries(tmp_path / "missing") == []


def test_a_run_and_a_cache_open_clean_up_after_killed_processes(tmp_path):
    from conftest import tiny_config
    from test_cache import _dataset, _write_images

    from ssl_bench.data.cache import load_images
    from ssl_bench.training.runner import run

    dead = _dead_pid()
    out = tmp_path / "run"
    out.mkdir()
    leftover = out / f".best.pt.{dead}.abcdefgh.tmp"
    leftover.write_bytes(b"half a checkpoint")
    # Only a killed writer's temporary in the folder: it is removed and the run starts.
    run(tiny_config(method="supervised"), out, quiet=True)
    assert not leftover.exists() and (out / "metrics.json").is_file()

    cache = tmp_path / "cache"
    cache.mkdir()
    partial = cache / f"fixture-16px-3ch-0123.npy.partial-{dead}"
    np.save(cache / "scratch.npy", np.zeros(3))
    os.replace(cache / "scratch.npy", partial)
    load_images(_dataset(_write_images(tmp_path / "img")), 16, 3, cache, quiet=True)
    assert not partial.exists()
