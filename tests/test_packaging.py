"""How ssl-bench installs: every package is declared, and the built-in methods live under
the package's own name (issue 29, item 7)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_installed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {".".join(p.parent.relative_to(ROOT).parts)
               for p in (ROOT / "ssl_bench").rglob("__init__.py")}
    assert set(config["packages"]) == folders | {"ssl_bench.methods"}
    assert config["package-dir"] == {"ssl_bench.methods": "methods"}


def test_the_builtin_methods_are_ssl_bench_methods():
    import ssl_bench.methods.mt as mt
    from ssl_bench.plugins.registry import get_method_class

    assert Path(mt.__file__).parts[-2:] == ("methods", "mt.py")  # (the folder, mapped)
    assert get_method_class("mt") is mt.MeanTeacher
    assert get_method_class("mt").__module__ == "ssl_bench.methods.mt"


def test_a_top_level_methods_import_is_refused_with_the_name_to_use():
    done = subprocess.run([sys.executable, "-c", "import methods.mt"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: the built-in methods are ssl_bench.methods")
    assert "from ssl_bench.methods.mt import MeanTeacher" in last
