"""Issue 15, item 1: help and argument errors answer without torch, timm, pandas, matplotlib.

The command line reads what it needs about methods and data sets from the registry index
(:mod:`ssl_bench.plugins.index`); these tests check which modules a command imports (not
how fast it is: speed belongs in benchmarks/) and that the index is rebuilt whenever what
it describes changes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ssl_bench.plugins.index import Card, describe_entry, first_line
from ssl_bench.plugins.registry import Registry, dataset_registry, method_registry

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "timm", "pandas", "matplotlib", "scipy", "PIL", "numpy")

#: argv, expected exit code, text the output must contain.
CASES = [
    (["--help"], 0, "ssl-bench COMMAND --help"),
    (["run", "--help"], 0, "--relation-weight"),
    (["run", "--method", "fixmatch", "--help"], 0, "--threshold"),
    (["run", "--dataset", "csv", "--help"], 0, "--label-column"),
    (["run", "--bogus"], 2, "unrecognized arguments: --bogus"),
    (["run", "--labeled", "abc"], 2, "--labeled must be a fraction"),
    (["run", "--labeled", "1.5"], 2, "--labeled 1.5"),
    (["run", "--method", "nosuch"], 2, "unknown method 'nosuch'"),
    (["run", "--method", "fixmatch", "--threshold", "high"], 2, "threshold"),
    (["run", "--dataset", "isic", "--eval-split", "x"], 2, "must be one of random"),
    (["list", "--methods", "--datasets"], 0, "mean-teacher"),
    (["list", "--datasets", "isic2018"], 0, "licence: CC BY-NC 4.0"),
    (["sweep", "--help"], 0, "--jobs"),
    (["sweep", "--bogus"], 2, "unrecognized arguments: --bogus"),
    (["sweep", "nosuch.toml"], 2, "nosuch.toml does not exist"),
    (["split", "--help"], 0, "--split-ratios"),
    (["compare", "--help"], 0, "--pairs"),
    (["compare"], 2, "required: folders"),
    (["compare", "x", "--pairs", "a"], 2, "is not METHOD:METHOD"),
    (["predict", "--help"], 0, "--image-column"),
    (["predict", "run"], 2, "required: input"),
    (["export", "--help"], 0, "--opset"),
    (["export", "run", "--format", "tflite"], 2, "invalid choice: 'tflite'"),
    (["frobnicate"], 2, "unknown command 'frobnicate'"),
]

PROBE = textwrap.dedent("""
    import contextlib, io, json, sys
    from ssl_bench.cli.main import main
    results = []
    for argv, _, _ in json.loads(sys.argv[1]):
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                code = main(argv)
            except SystemExit as exc:
                code = exc.code
        results.append([code, out.getvalue()])
    heavy = [m for m in json.loads(sys.argv[2]) if m in sys.modules]
    print(json.dumps({"results": results, "heavy": heavy}))
""")


def _probe(cases: list, cache: Path) -> dict:
    env = {**os.environ, "SSL_BENCH_CACHE": str(cache),
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(cases), json.dumps(HEAVY)],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=1800)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_help_and_argument_errors_import_no_heavy_library(tmp_path):
    _probe([(["list"], 0, "")], tmp_path)  # a first command builds the index
    probe = _probe(CASES, tmp_path)
    for (argv, code, text), (got_code, output) in zip(CASES, probe["results"], strict=True):
        assert got_code == code, (argv, output)
        assert text in output, (argv, output)
        if code == 2:  # one line naming the problem, no traceback
            assert len(output.strip().splitlines()) == 1, (argv, output)
    assert probe["heavy"] == []


def test_without_an_index_the_answers_are_the_same(tmp_path):
    """A missing (or unwritable) cache only costs time: the entries are imported."""
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    probe = _probe(CASES[1:6], blocked)
    assert [r[0] for r in probe["results"]] == [c[1] for c in CASES[1:6]]
    assert "torch" in probe["heavy"]  # nothing could be cached, so the methods were imported


@pytest.mark.parametrize("registry", [method_registry, dataset_registry],
                         ids=["methods", "data sets"])
def test_every_card_survives_the_index(registry):
    """What the index stores reads back as the card described from the imported entry,
    for every method and data set, present and future."""
    for name, obj in registry.items():
        aliases = registry.card(name).aliases
        card = registry.describe(name, obj, aliases)
        assert Card.from_json(json.loads(json.dumps(card.to_json()))) == card
        assert card == registry.card(name)
        assert card.summary and "``" not in card.summary and ":class:" not in card.summary


def _toy_package(root: Path, default: int) -> None:
    package = root / "toy_index_pkg"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "alpha.py").write_text(textwrap.dedent(f"""
        from ssl_bench.data.datasets.base import dataset_options
        from ssl_bench.plugins.options import Option
        from toy_index_registry import REGISTRY

        @REGISTRY.register("alpha", aliases=("a",))
        @dataset_options(Option("size", int, {default}, "how big"))
        def alpha(root=None, size={default}):
            '''The :class:`alpha` data set (``toy``).'''
    """))
    (root / "toy_index_registry.py").write_text(textwrap.dedent("""
        from ssl_bench.plugins.registry import Registry
        from ssl_bench.plugins.index import describe_entry
        REGISTRY = Registry("toy", "toy_index_pkg", "ssl_bench.no-such-group", describe_entry)
    """))


def _fresh_registry() -> Registry:
    for name in [m for m in sys.modules if m.startswith("toy_index_")]:
        del sys.modules[name]
    import toy_index_registry

    return toy_index_registry.REGISTRY


def test_the_index_is_read_then_rebuilt_when_a_source_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("SSL_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.syspath_prepend(str(tmp_path))
    _toy_package(tmp_path, default=1)
    built = _fresh_registry().cards()
    assert built["alpha"].options[0].default == 1 and built["alpha"].aliases == ("a",)
    assert built["alpha"].summary == "The alpha data set (toy)."
    assert list((tmp_path / "cache" / "registry").glob("toy-*.json"))

    registry = _fresh_registry()
    assert registry.card("a") == built["alpha"]
    assert "toy_index_pkg.alpha" not in sys.modules  # answered from the index

    source = tmp_path / "toy_index_pkg" / "alpha.py"
    _toy_package(tmp_path, default=2)
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert _fresh_registry().card("alpha").options[0].default == 2  # rebuilt, not stale

    for index in (tmp_path / "cache" / "registry").glob("toy-*.json"):
        index.write_text("{ damaged")
    assert _fresh_registry().card("alpha").options[0].default == 2


def test_an_entry_registered_in_process_joins_the_cards(tmp_path, monkeypatch):
    monkeypatch.setenv("SSL_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.syspath_prepend(str(tmp_path))
    _toy_package(tmp_path, default=1)
    registry = _fresh_registry()
    assert registry.names() == ["alpha"]

    @registry.register("beta")
    def beta(root=None):
        """Beta."""

    assert registry.names() == ["alpha", "beta"]
    assert registry.card("beta") == describe_entry("beta", beta, ())


def test_first_line_drops_markup():
    assert first_line("A :class:`Method` with ``x``.\n\nMore.") == "A Method with x."
    assert first_line(None) == ""
