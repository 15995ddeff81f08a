"""mkdocs hook: pages kept outside ``docs/`` become pages of the site.

Each reference sweep's reading lives beside its records (``results/<sweep>/README.md``)
and the developer guide at the top (``CONTRIBUTING.md``); both are published as they are,
with the plots of ``results/``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
#: A reST cross-reference role before an inline code span (the docstrings' ``:func:`run```,
#: rendered by mkdocstrings as ``:func:<code>run</code>``).
SPHINX_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|data|attr|exc|obj|const):"
                         r"<code>~?")


def on_files(files: Files, config: Any) -> Files:
    files.append(File.generated(config, "contributing.md",
                                abs_src_path=str(ROOT / "CONTRIBUTING.md")))
    results = ROOT / "results"
    for path in sorted([*results.glob("*/README.md"), *results.rglob("*.png")]):
        files.append(File.generated(config, path.relative_to(ROOT).as_posix(),
                                    abs_src_path=str(path)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """A page in ``docs/`` links a sweep as ``../results/...`` (right on GitHub); on the
    site that page sits beside ``results/``."""
    if page.file.generated_by is None:
        return markdown.replace("](../results/", "](results/")
    return markdown


def on_page_content(html: str, page: Any, config: Any, files: Files) -> str:
    """The API reference shows a docstring's ``:func:`name``` as the code ``name``."""
    return SPHINX_ROLE.sub("<code>", html)
