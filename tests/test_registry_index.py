"""The registry index (issue items 10a and 4): a file of the wrong shape is rebuilt, never
trusted; an edit that keeps a file's size and modification time still rebuilds it; and a
run's option defaults and own settings come from the imported method class, never from a
card of the index."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_startup import REPO, _fresh_registry, _toy_package

from ssl_bench.plugins.index import Card, read_index

Record = dict[str, Any]


def _card(record: Record, **changes: Any) -> Record:
    """The index ``record`` with its one card (alpha) changed."""
    card = dict(record["cards"]["alpha"], **changes)
    return {"stamp": record["stamp"], "cards": {"alpha": card}}


def _option(record: Record, **changes: Any) -> Record:
    option = dict(record["cards"]["alpha"]["options"][0], **changes)
    return _card(record, options=[option])


#: Index contents of the wrong shape, made from a good index record.
BAD_SHAPES: dict[str, Callable[[Record], Any]] = {
    "null": lambda r: None,
    "a list": lambda r: [1, 2],
    "a string": lambda r: "index",
    "a number": lambda r: 3,
    "no cards": lambda r: {"stamp": r["stamp"]},
    "cards a list": lambda r: {"stamp": r["stamp"], "cards": []},
    "cards null": lambda r: {"stamp": r["stamp"], "cards": None},
    "a card a number": lambda r: {"stamp": r["stamp"], "cards": {"alpha": 1}},
    "a card a list": lambda r: {"stamp": r["stamp"], "cards": {"alpha": ["alpha"]}},
    "a card a string": lambda r: {"stamp": r["stamp"], "cards": {"alpha": "alpha"}},
    "a card missing a field": lambda r: {"stamp": r["stamp"], "cards": {"alpha": {
        k: v for k, v in r["cards"]["alpha"].items() if k != "facts"}}},
    "a card's name another": lambda r: _card(r, name="beta"),
    "name a number": lambda r: _card(r, name=5),
    "aliases a string": lambda r: _card(r, aliases="ab"),
    "aliases of numbers": lambda r: _card(r, aliases=[1]),
    "summary null": lambda r: _card(r, summary=None),
    "options an object": lambda r: _card(r, options={"size": 1}),
    "an option a number": lambda r: _card(r, options=[1]),
    "an option a list": lambda r: _card(r, options=[["size", "int", 1, "", None]]),
    "an option's type unknown": lambda r: _option(r, type="complex"),
    "an option's type a list": lambda r: _option(r, type=["int"]),
    "an option's default of another type": lambda r: _option(r, default="big"),
    "an option's choices a string": lambda r: _option(r, choices="abc"),
    "an option's help a number": lambda r: _option(r, help=3),
    "defaults a list of pairs": lambda r: _card(r, defaults=["ab"]),
    "facts of numbers": lambda r: _card(r, facts={"teacher": 1}),
    "nested too deep": lambda r: "[" * 100_000 + "]" * 100_000,
}


def _write(path: Path, content: Any) -> None:
    if isinstance(content, str) and content.startswith("["):
        path.write_text(content)  # already JSON text
    else:
        path.write_text(json.dumps(content))


@pytest.mark.parametrize("shape", list(BAD_SHAPES), ids=list(BAD_SHAPES))
def test_an_index_of_the_wrong_shape_is_rebuilt(tmp_path, monkeypatch, shape):
    monkeypatch.setenv("SSL_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.syspath_prepend(str(tmp_path))
    _toy_package(tmp_path, default=1)
    built = _fresh_registry().cards()
    [index] = (tmp_path / "cache" / "registry").glob("toy-*.json")
    good = json.loads(index.read_text())
    _write(index, BAD_SHAPES[shape](good))
    assert read_index(index, good["stamp"]) is None
    assert _fresh_registry().cards() == built  # rebuilt from the imported entries ...
    assert json.loads(index.read_text()) == good  # ... and written again


def test_the_index_reads_back_unicode_and_binary_damage_as_missing(tmp_path):
    path = tmp_path / "index.json"
    path.write_bytes(b"\xff\xfe{")
    assert read_index(path, "s") is None
    path.unlink()
    path.mkdir()
    assert read_index(path, "s") is None


def test_real_cards_pass_the_shape_check():
    """Every card the built-ins and test plug-ins describe reads back as itself."""
    from ssl_bench.plugins.registry import dataset_registry, method_registry

    for registry in (method_registry, dataset_registry):
        for name, obj in registry.items():
            card = registry.describe(name, obj, registry.card(name).aliases)
            assert Card.from_json(json.loads(json.dumps(card.to_json()))) == card


def test_an_edit_keeping_size_and_mtime_rebuilds_the_index(tmp_path, monkeypatch):
    """``cp -p`` and ``rsync -a`` keep a file's modification time: the stamp reads content."""
    monkeypatch.setenv("SSL_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # no .pyc keyed by mtime either
    _toy_package(tmp_path, default=1)
    source = tmp_path / "toy_index_pkg" / "alpha.py"
    before = source.stat()
    assert _fresh_registry().card("alpha").options[0].default == 1
    text = source.read_text()
    source.write_text(text.replace("int, 1,", "int, 2,").replace("size=1", "size=2"))
    os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = source.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert _fresh_registry().card("alpha").options[0].default == 2


PROBE = textwrap.dedent("""
    import contextlib, io, json, sys
    from ssl_bench.cli.main import main
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            code = main(sys.argv[1:])
        except SystemExit as exc:
            code = exc.code
    print(json.dumps({"code": code, "output": out.getvalue()}))
""")

RESOLVE = textwrap.dedent("""
    import json
    from ssl_bench.config.resolve import resolve_config
    from ssl_bench.plugins.registry import method_registry
    indexed = method_registry.card("fixmatch")
    config = resolve_config({}, {"method": "fixmatch"})
    cls = method_registry.get("fixmatch")
    print(json.dumps({
        "indexed": [indexed.options[0].default, indexed.defaults["rampup"]],
        "run": [config.method_options["threshold"], config.rampup],
        "class": [cls.options[0].default, cls.defaults["rampup"]],
        "card": [method_registry.card("fixmatch").options[0].default,
                 method_registry.card("fixmatch").defaults["rampup"]]}))
""")


def _python(cache: Path, *args: str) -> dict[str, Any]:
    env = {**os.environ, "SSL_BENCH_CACHE": str(cache),
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=900)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def built_cache(tmp_path_factory) -> Path:
    """A cache folder holding the indexes a first ``ssl-bench list`` writes."""
    cache = tmp_path_factory.mktemp("registry") / "cache"
    assert _python(cache, PROBE, "list")["code"] == 0
    return cache


def _method_index(cache: Path) -> Path:
    [index] = (cache / "registry").glob("method-*.json")
    return index


def _copy_of(built_cache: Path, cache: Path) -> Path:
    """A cache folder holding a copy of the built registry indexes (tests edit the copy)."""
    (cache / "registry").mkdir(parents=True)
    for index in (built_cache / "registry").glob("*.json"):
        (cache / "registry" / index.name).write_text(index.read_text())
    return cache


@pytest.mark.parametrize("shape", ["null", "[1, 2]", "cards a list", "a card a number"])
def test_list_works_with_a_method_index_of_the_wrong_shape(built_cache, tmp_path, shape):
    cache = _copy_of(built_cache, tmp_path / "cache")
    index = _method_index(cache)
    good = json.loads(index.read_text())
    bad = {"null": None, "[1, 2]": [1, 2],
           "cards a list": {"stamp": good["stamp"], "cards": []},
           "a card a number": {"stamp": good["stamp"], "cards": {"fixmatch": 1}}}[shape]
    index.write_text(json.dumps(bad))
    for argv in (["--help"], ["list", "--methods"]):  # (--help leaves the index as it is)
        result = _python(cache, PROBE, *argv)
        assert result["code"] == 0, result["output"]
        assert "Traceback" not in result["output"]
    assert "fixmatch" in result["output"]
    assert json.loads(index.read_text()) == good  # rewritten by the listing


def test_a_run_takes_its_defaults_from_the_class_not_a_stale_card(built_cache, tmp_path):
    """An index card whose defaults are not the class's (however it got stale) changes
    nothing a run uses: its option values and own settings are the class's."""
    cache = _copy_of(built_cache, tmp_path / "cache")
    index = _method_index(cache)
    record = json.loads(index.read_text())
    card = record["cards"]["fixmatch"]
    assert card["options"][0]["name"] == "threshold"
    card["options"][0]["default"] = 0.5
    card["defaults"]["rampup"] = 0.7
    index.write_text(json.dumps(record))
    result = _python(cache, RESOLVE)
    assert result["indexed"] == [0.5, 0.7]  # the stale card was read ...
    assert result["run"] == result["class"] == [0.95, 0.0]  # ... and not used by the run
    assert result["card"] == result["class"]  # once imported, cards describe the classes
