"""``ssl-bench report``: one self-contained HTML page from a real (tiny) sweep.

The page must carry its figures inside it (``data:`` PNGs that decode), the comparison
and pair tables, every run's validation curves and the provenance its runs recorded; a
real headless browser (Chromium, when installed) must render it with every figure
loaded and no script error.
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import TINY_RUN
from PIL import Image

from ssl_bench.cli.main import main
from ssl_bench.sweeps.local import make_spec, plan, run_sweep

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory) -> Path:
    results = tmp_path_factory.mktemp("report") / "results"
    spec = make_spec({
        "name": "tiny", "methods": ["supervised", "mt"], "labeled": [0.1], "seeds": [0, 1],
        "run": {**TINY_RUN, "iterations": 6},
        "results": str(results), "keep_checkpoints": False}, "test spec")
    run_sweep(spec, plan(spec), quiet=True)
    return results / "tiny"


@pytest.fixture(scope="module")
def report(sweep_dir: Path) -> Path:
    out = sweep_dir.parent / "report.html"
    assert main(["report", str(sweep_dir), "-o", str(out), "--pairs", "mt:supervised"]) == 0
    return out


def test_the_page_holds_tables_figures_and_provenance(report, sweep_dir):
    page = report.read_text()
    images = re.findall(r'<img alt="([^"]*)" src="([^"]*)"', page)
    # learning curve, per-class AUC, reliability diagram, confusion matrices, validation
    # curves (one fraction)
    assert len(images) == 5
    for alt, source in images:
        assert source.startswith("data:image/png;base64,"), alt
        with Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))) as image:
            assert image.format == "PNG" and image.size[0] > 300
    assert [a for a, _ in images if "validation auc during training" in a]
    assert [a for a, _ in images if a.startswith("reliability diagram (reported model)")]
    assert "<h2>Calibration: reliability of the test probabilities</h2>" in page
    assert [a for a, _ in images if a.startswith("confusion matrices (reported model)")]
    assert "<h3>Bootstrap over test images</h3>" in page and "95% bootstrap CI" in page
    assert not re.search(r'(src|href)="(?!data:)', page)  # nothing outside the file
    for text in ("<h2>Comparison</h2>", "gain vs supervised", "<h3>Pairs</h3>",
                 "mt vs supervised", "paired t-test", "<h2>Settings and provenance</h2>",
                 "<h3>Across the views</h3>", "in every view</th>"):
        assert text in page, text
    record = json.loads(next(sweep_dir.rglob("config.json")).read_text())
    commit = (record["environment"]["git"]["commit"] or "unknown")[:12]
    assert f"{commit}" in page and "(4 runs)" in page
    assert f"<td>torch</td><td>{record['environment']['versions']['torch']} (4 runs)" in page
    assert f"<td>{record['dataset']['fingerprint']} (4 runs)</td>" in page
    assert f"<td>processor</td><td>{record['environment']['processor']} (4 runs)</td>" in page
    assert "<td>image_size</td><td>16</td>" in page


def test_bad_arguments_are_one_line_errors_and_write_nothing(tmp_path, capsys, sweep_dir):
    out = tmp_path / "r.html"
    assert main(["report", str(tmp_path), "-o", str(out)]) == 2
    assert capsys.readouterr().err.startswith("ssl-bench: error: ")
    assert main(["report", str(sweep_dir), "-o", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main(["report", str(sweep_dir), "-o", str(out), "--pairs", "mt"]) == 2
    assert "--pairs" in capsys.readouterr().err
    assert not out.exists()


def test_a_headless_browser_renders_it_with_every_figure_and_no_error(report):
    browser = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if browser is None:
        pytest.skip("no Chromium installed (CI installs one: apt-get install chromium)")
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
         "--v=0", "--virtual-time-budget=10000", "--dump-dom", report.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    body = re.search(r"<body[^>]*>", done.stdout)
    assert body is not None, done.stdout[:500]
    assert 'data-figures="5/5"' in body.group(0) and 'data-errors="0"' in body.group(0), (
        body.group(0))
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console


def test_calibration_is_compared_as_lower_is_better(sweep_dir, capsys):
    assert main(["compare", str(sweep_dir), "--metric", "ece", "--pairs", "none",
                 "--format", "md"]) == 0
    out = capsys.readouterr().out
    assert "ece (reported)" in out and "ece: lower is better" in out
    metrics = json.loads(next(sweep_dir.rglob("metrics.json")).read_text())
    test = metrics["reported"]["test"]
    assert 0 <= test["ece"] <= 1 and 0 <= test["brier"] <= 2
    assert sum(test["reliability"]["count"]) == test["n"]
