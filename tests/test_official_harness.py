"""benchmarks/official_vs_ours.py: the harness that times the official SRC-MT code beside
ours. Its patches and data files are checked here; the whole dry run needs a checkout of
the official code (SSL_BENCH_OFFICIAL_SRCMT=DIR), which the suite never downloads."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from fixtures import write_isic

REPO = Path(__file__).parents[1]
_PATH = REPO / "benchmarks" / "official_vs_ours.py"
_spec = importlib.util.spec_from_file_location("official_vs_ours", _PATH)
harness = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(harness)

#: The official lines the patches anchor on (github.com/liuquande/SRC-MT, code/).
OFFICIAL = {
    "networks/models.py": "self.densenet121 = densenet.densenet121(pretrained=True, "
                          "drop_rate=drop_rate)\n",
    "utils/metrics.py": "from sklearn.metrics.ranking import roc_auc_score\n",
    "train_SRC_MT.py": ("def main():\n"
                        "    unlabeled_idxs = list(range(args.labeled_num, 7000))\n"
                        "    transforms.Resize((224, 224)),\n"
                        "    DataLoader(num_workers=8)\n"
                        "    for epoch in range(3):\n"
                        "        for i in range(3):\n"
                        "            iter_num = iter_num + 1\n"),
}


def _official(tmp_path: Path) -> Path:
    code = tmp_path / "code"
    for name, text in OFFICIAL.items():
        (code / name).parent.mkdir(parents=True, exist_ok=True)
        (code / name).write_text(text)
    return code


def test_the_patches_change_only_what_the_harness_says(tmp_path):
    code = _official(tmp_path)
    harness.patch_official(code, warmup=3, iterations=5, size=32, workers=2)
    assert "pretrained=False" in (code / "networks/models.py").read_text()
    assert "from sklearn.metrics import roc_auc_score" in (code / "utils/metrics.py").read_text()
    train = (code / "train_SRC_MT.py").read_text()
    assert "range(args.labeled_num, len(train_dataset))" in train
    assert "Resize((32, 32))" in train and "num_workers=2" in train
    assert "if iter_num == 3 + 5:" in train and harness.TIMING in train
    compile(train, "train_SRC_MT.py", "exec")  # the timer leaves valid Python


def test_another_version_of_the_official_code_is_one_clear_error(tmp_path):
    code = _official(tmp_path)
    (code / "networks/models.py").write_text("densenet121(weights='DEFAULT')\n")
    with pytest.raises(SystemExit, match="has no 'densenet121\\(pretrained=True'"):
        harness.patch_official(code, 1, 1, 224, 8)


def test_both_codes_read_the_same_images_and_the_official_csvs_hold_7_classes(tmp_path):
    fixture = write_isic(tmp_path / "isic", n_per_class=3, size=24)
    root = harness.subset_root(fixture.root, tmp_path / "scratch", images=10)
    images = sorted(p.stem for p in (root / harness.INPUT).iterdir())
    assert len(images) == 10 and all((root / harness.INPUT / f"{i}.jpg").is_file()
                                     for i in images)
    assert harness.write_csvs(root, tmp_path) == 10
    table = pd.read_csv(tmp_path / "training.csv")  # as the official CheXpertDataset does
    labels = table.iloc[:, 1:-1].values.astype(int)
    assert labels.shape == (10, 7) and (labels.sum(axis=1) == 1).all()
    assert sorted(table["image"]) == images


@pytest.mark.skipif(not os.environ.get("SSL_BENCH_OFFICIAL_SRCMT"),
                    reason="set SSL_BENCH_OFFICIAL_SRCMT to a checkout of liuquande/SRC-MT")
def test_a_dry_run_times_both_codes(tmp_path):
    done = subprocess.run(
        [sys.executable, str(_PATH), "--official", os.environ["SSL_BENCH_OFFICIAL_SRCMT"],
         "--data-root", str(write_isic(tmp_path / "isic", n_per_class=12, size=24).root),
         "--dry-run", "--out", str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "official_vs_ours.json").read_text())
    assert report["official"]["seconds_per_iteration"] > 0
    assert report["rate_ours_fp32_over_official"] > 0
