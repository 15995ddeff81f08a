"""The official SRC-MT training code beside ours at identical settings (issue 32, item 2).

Both train SRC-MT with DenseNet-121 from random weights (nothing downloads) at 224 px,
batches of 48 with 12 labeled, on the same ISIC images. The official code
(github.com/liuquande/SRC-MT, a checkout given with ``--official``; nothing of it is in
this repository) is copied to a scratch folder and patched minimally: no ImageNet download
(``pretrained=False``), a no-op TensorBoard writer when ``tensorboardX`` is missing (and
imbalanced-learn's two validation metrics, never reached, when it is), its
hard-coded 7,000 training images replaced by the CSV's length, ``sklearn.metrics.ranking``
(gone since scikit-learn 0.24) by ``sklearn.metrics``, and a timer that stops it after
``--warmup`` + ``--iterations`` iterations. Its own data path is kept: JPEG decoding
and torchvision transforms in 8 DataLoader workers, fp32. Ours runs ``--preset paper``
(decoded-image cache, device-side perturbations, channels-last), in fp32 and in bf16.

Reported: seconds per iteration (wall clock over ``--iterations`` after ``--warmup``,
synchronised), images per second and peak GPU memory of each, and ours' iteration rate
over the official one. Example, on a GPU::

    python benchmarks/official_vs_ours.py --official ~/SRC-MT \\
        --data-root ../shared/data/isic2018-mini --out results/

``--dry-run`` runs both on the CPU at 32 px with batches of 8 (2 labeled) for 2
iterations: it checks the harness and the patches, not speed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TIMING = "OFFICIAL_TIMING "
STUB = '''class SummaryWriter:  # ssl-bench harness: tensorboardX is not installed
    def __init__(self, *args, **kwargs): pass
    def __getattr__(self, name): return lambda *args, **kwargs: None
'''
#: imblearn's two metrics, used by the official validation only (never reached: the timer
#: stops training first), where imbalanced-learn is not installed.
IMBLEARN_STUB = '''def _never(*args, **kwargs):  # ssl-bench harness stub
    raise NotImplementedError("imbalanced-learn is not installed")
sensitivity_score = specificity_score = _never
'''
#: Run as the official script's ``__main__``; on a CPU, ``.cuda()`` becomes a no-op.
RUNNER = '''import runpy, sys, torch
if {cpu}:
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.nn.Module.cuda = lambda self, *a, **k: self
sys.argv = ["train_SRC_MT.py", *{argv!r}]
runpy.run_path("train_SRC_MT.py", run_name="__main__")
'''
#: Inserted after the official loop's ``iter_num = iter_num + 1``.
TIMER = '''
            if iter_num == {warmup}:
                if torch.cuda.is_available(): torch.cuda.synchronize()
                _timer_start = time.time()
            if iter_num == {warmup} + {iterations}:
                if torch.cuda.is_available(): torch.cuda.synchronize()
                print("{tag}" + __import__("json").dumps({{
                    "seconds_per_iteration": (time.time() - _timer_start) / {iterations},
                    "peak_memory_mib": torch.cuda.max_memory_allocated() / 2**20
                    if torch.cuda.is_available() else None}}), flush=True)
                sys.exit(0)'''


def _replace(text: str, old: str, new: str, where: str) -> str:
    if old not in text:
        raise SystemExit(f"error: the official {where} has no {old!r}: another version of "
                         "the code; update the patches in benchmarks/official_vs_ours.py")
    return text.replace(old, new)


def patch_official(code: Path, warmup: int, iterations: int, size: int,
                   workers: int) -> None:
    """The minimal patches (module docstring) applied to a copy of the official code."""
    models = code / "networks" / "models.py"
    models.write_text(_replace(models.read_text(), "densenet121(pretrained=True",
                               "densenet121(pretrained=False", "networks/models.py"))
    metrics = code / "utils" / "metrics.py"  # (sklearn.metrics.ranking went in 0.24)
    metrics.write_text(_replace(metrics.read_text(), "from sklearn.metrics.ranking import",
                                "from sklearn.metrics import", "utils/metrics.py"))
    train = code / "train_SRC_MT.py"
    text = train.read_text()
    text = _replace(text, "range(args.labeled_num, 7000)",
                    "range(args.labeled_num, len(train_dataset))", "train_SRC_MT.py")
    timer = TIMER.format(warmup=warmup, iterations=iterations, tag=TIMING)
    text = _replace(text, "            iter_num = iter_num + 1\n",
                    "            iter_num = iter_num + 1" + timer + "\n", "train_SRC_MT.py")
    if size != 224:
        text = _replace(text, "Resize((224, 224))", f"Resize(({size}, {size}))",
                        "train_SRC_MT.py")
    if workers != 8:
        text = _replace(text, "num_workers=8", f"num_workers={workers}", "train_SRC_MT.py")
    train.write_text(text)
    try:
        import tensorboardX  # noqa: F401
    except ModuleNotFoundError:
        (code / "tensorboardX.py").write_text(STUB)
    try:
        import imblearn  # noqa: F401
    except ModuleNotFoundError:
        (code / "imblearn").mkdir()
        (code / "imblearn" / "__init__.py").write_text("")
        (code / "imblearn" / "metrics.py").write_text(IMBLEARN_STUB)


GROUND_TRUTH = "ISIC2018_Task3_Training_GroundTruth.csv"
INPUT = "ISIC2018_Task3_Training_Input"
METADATA = "HAM10000_metadata.csv"


def subset_root(data_root: Path, folder: Path, images: int) -> Path:
    """An ISIC folder of the first ``images`` images of ``data_root`` (all for 0): links to
    the same files and the matching rows of its CSVs, which both codes then read."""
    with open(data_root / GROUND_TRUTH) as handle:
        rows = list(csv.reader(handle))
    body = rows[1:images + 1] if images else rows[1:]
    root = folder / "isic"
    (root / INPUT).mkdir(parents=True)
    keep = {row[0] for row in body}
    for name in sorted(keep):
        (root / INPUT / f"{name}.jpg").symlink_to((data_root / INPUT / f"{name}.jpg").resolve())
    with open(root / GROUND_TRUTH, "w", newline="") as handle:
        csv.writer(handle).writerows([rows[0], *body])
    if (data_root / METADATA).is_file():
        with open(data_root / METADATA) as handle:
            meta = list(csv.reader(handle))
        column = meta[0].index("image_id")
        with open(root / METADATA, "w", newline="") as handle:
            csv.writer(handle).writerows([meta[0], *(r for r in meta[1:] if r[column] in keep)])
    return root


def write_csvs(root: Path, folder: Path) -> int:
    """The official code's CSVs of ``root``'s images: image, the 7 one-hot columns, and a
    last column it drops (``iloc[:, 1:-1]``); validation and testing are never reached."""
    with open(root / GROUND_TRUTH) as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    for name, part in (("training", body), ("validation", body[:16]), ("testing", body[:16])):
        with open(folder / f"{name}.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow([*header, "unused"])
            writer.writerows([*row, 0] for row in part)
    return len(body)


def run_official(args: argparse.Namespace, root: Path, scratch: Path) -> dict:
    code = scratch / "code"
    shutil.copytree(args.official / "code", code)
    size, batch, labeled = (32, 8, 2) if args.dry_run else (224, 48, 12)
    patch_official(code, args.warmup, args.iterations, size, 2 if args.dry_run else 8)
    count = write_csvs(root, scratch)
    argv = ["--root_path", f"{root / INPUT}/", "--csv_file_train", str(scratch / "training.csv"),
            "--csv_file_val", str(scratch / "validation.csv"), "--csv_file_test",
            str(scratch / "testing.csv"), "--exp", "speed", "--batch_size", str(batch),
            "--labeled_bs", str(labeled), "--labeled_num", str(int(count * args.labeled)),
            "--gpu", "0"]
    (code / "run.py").write_text(RUNNER.format(cpu=args.device == "cpu", argv=argv))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "run.py"], cwd=code, capture_output=True,
                          text=True, timeout=args.timeout)
    line = next((x for x in done.stdout.splitlines() if x.startswith(TIMING)), None)
    if line is None:
        return {"status": "failed", "returncode": done.returncode,
                "stderr_tail": done.stderr[-2000:]}
    return {"status": "ok", **json.loads(line[len(TIMING):]), "images": count,
            "batch_size": batch, "wall_s": round(time.perf_counter() - started, 1)}


def measure_ours(args: argparse.Namespace, amp: bool) -> dict:
    """Ours in this process: seconds per SRC-MT step over the same iterations."""
    import torch

    from ssl_bench.config.resolve import resolve_config
    from ssl_bench.training.prepare import prepare
    from ssl_bench.training.trainer import Trainer

    size, batch, labeled = (32, 8, 2) if args.dry_run else (224, 48, 12)
    config = resolve_config({}, {
        "preset": "paper", "method": "srcmt", "dataset": "isic",
        "data_root": str(args.data_root), "pretrained": False, "backbone": "densenet121",
        "image_size": size, "batch_size": batch, "labeled_batch_size": labeled,
        "labeled": args.labeled, "device": args.device, "amp": amp, "threads": 0})
    trainer = Trainer(prepare(config, quiet=True))
    cuda = trainer.device.type == "cuda"
    for _ in range(args.warmup):
        trainer.train_step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for _ in range(args.iterations):
        trainer.train_step()
    if cuda:
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - started) / args.iterations
    return {"status": "ok", "amp": amp, "seconds_per_iteration": seconds,
            "peak_memory_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
            "batch_size": batch}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", type=Path, required=True,
                        help="a checkout of github.com/liuquande/SRC-MT")
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data/isic2018-mini"))
    parser.add_argument("--images", type=int, default=0, help="first N images (0: all)")
    parser.add_argument("--labeled", type=float, default=0.2)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--timeout", type=float, default=400, help="seconds, official run")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")))
    parser.add_argument("--dry-run", action="store_true", help="tiny, on the CPU")
    parser.add_argument("--ours", choices=("fp32", "bf16"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.dry_run:
        args.device, args.iterations, args.warmup = "cpu", 2, 1
    if args.ours:  # (a child process: its own CUDA context and memory peak)
        print(json.dumps(measure_ours(args, amp=args.ours == "bf16")))
        return 0
    if not (args.official / "code" / "train_SRC_MT.py").is_file():
        parser.error(f"--official {args.official} holds no code/train_SRC_MT.py")
    report: dict = {"settings": {k: str(v) for k, v in vars(args).items()}}
    with tempfile.TemporaryDirectory() as scratch:
        root = subset_root(args.data_root, Path(scratch), args.images)
        report["official"] = run_official(args, root, Path(scratch))
        for precision in ("fp32", "bf16"):
            done = subprocess.run(
                [sys.executable, __file__, *(argv or sys.argv[1:]), "--data-root", str(root),
                 "--ours", precision], capture_output=True, text=True, timeout=args.timeout)
            report[f"ours_{precision}"] = json.loads(done.stdout.splitlines()[-1]) \
                if done.returncode == 0 else {"status": "failed",
                                              "stderr_tail": done.stderr[-2000:]}
    official = report["official"].get("seconds_per_iteration")
    for precision in ("fp32", "bf16"):
        ours = report[f"ours_{precision}"].get("seconds_per_iteration")
        if official and ours:
            report[f"rate_ours_{precision}_over_official"] = round(official / ours, 3)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "official_vs_ours.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0 if all(report[k].get("status") == "ok"
                    for k in ("official", "ours_fp32", "ours_bf16")) else 1


if __name__ == "__main__":
    raise SystemExit(main())
