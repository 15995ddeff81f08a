"""The Python API: runs, sweeps, comparisons and trained models from a notebook or script.

The command line's work, returned as Python objects instead of printed:

* :func:`run` trains (or resumes) one run and returns its ``metrics.json``;
* :func:`sweep` runs a sweep spec and returns each run's outcome;
* :func:`compare` returns the comparison table as a :class:`pandas.DataFrame`;
* :func:`load_model` turns a finished run folder into a :class:`Predictor` (the reported
  network, its preprocessing and class names) for inference.

Settings are :class:`~ssl_bench.config.run_config.RunConfig` fields by name (``method="mt"``,
``labeled=0.1``, ``image_size=64``, ...), resolved and checked exactly as the command
line's flags are, so a run made here records the same ``config.json``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ssl_bench.core.errors import UserError

__all__ = ["Predictor", "compare", "load_model", "run", "sweep"]


def run(output: str | Path, *, config_file: str | Path | None = None, resume: bool = False,
        overwrite: bool = False, quiet: bool = True, **settings: Any) -> dict[str, Any]:
    """Train one run into ``output`` and return its metrics (``metrics.json``).

    ``settings`` are run settings by field name over the ``config_file``'s (a TOML run
    configuration, as ``ssl-bench run --config``); ``resume`` continues an interrupted run
    from its checkpoint; ``overwrite`` starts again in a folder that holds a run.
    """
    from ssl_bench.config.resolve import read_config_file, resolve_config
    from ssl_bench.training.runner import run as run_config

    config = resolve_config(read_config_file(config_file) if config_file else {}, settings)
    metrics = run_config(config, output, resume=resume, overwrite=overwrite, quiet=quiet)
    assert metrics is not None  # (None only for a test's stop_after)
    return metrics


def sweep(spec: str | Path | dict[str, Any], *, jobs: int = 1, threads: int | None = None,
          quiet: bool = True, allow_uncommitted: bool = False) -> dict[str, dict[str, Any]]:
    """Run every run of a sweep ``spec`` (a TOML file, or its values as a dict) not
    finished yet, as ``ssl-bench sweep SPEC --jobs N`` does (finished runs are skipped,
    interrupted ones resume); each run's outcome by its key (``method/labeled=f/seed=s``).
    """
    from ssl_bench.sweeps.local import run_sweep
    from ssl_bench.sweeps.plan import code_provenance, make_spec, plan, read_spec

    if jobs < 1:
        raise UserError(f"jobs must be at least 1, got {jobs}")
    values = dict(spec) if isinstance(spec, dict) else read_spec(spec)
    if "name" not in values:
        raise UserError("a sweep given as a dict needs a 'name'")
    made = make_spec(values, str(spec) if not isinstance(spec, dict) else "sweep values")
    runs = plan(made)
    provenance = code_provenance(made, allow_uncommitted)
    result = run_sweep(made, runs, jobs=jobs, threads=threads, quiet=quiet,
                       provenance=provenance)
    return dict(result.status)


def compare(folders: str | Path | Iterable[str | Path], *, metric: str = "auc",
            model: str = "reported", baseline: str | None = None,
            pairs: Sequence[tuple[str, str]] | None = None) -> Any:
    """The comparison of every finished run below ``folders`` as ``ssl-bench compare``
    computes it: a :class:`pandas.DataFrame`, one row per data set x settings group x
    method x labeled amount (mean, std, n, gain, paired difference and interval, the test
    with Holm's correction, labeled images seen, converged); ``attrs`` holds the chosen
    pairs, the notes and the warnings about skipped runs."""
    from ssl_bench.compare.runs import load_runs
    from ssl_bench.compare.summary import summarize

    if isinstance(folders, (str, Path)):
        folders = [folders]
    df, warnings = load_runs(folders)
    if df.empty:
        raise UserError(f"no finished run below {', '.join(map(str, folders))}")
    table = summarize(df, metric, model, baseline, pairs)
    table.attrs["warnings"] = list(warnings)
    return table


@dataclass
class Predictor:
    """A trained network ready for inference, with the preprocessing its run used.

    ``transform`` turns images (file paths, PIL images or ``[H, W, C]`` uint8 arrays) into
    the normalised batch the network was evaluated on: resized straight to the run's
    ``image_size`` (bilinear), its channel count, scaled to [0, 1] and normalised by the
    run's mean and std. :meth:`predict` returns class probabilities (softmax, or one
    sigmoid per finding for a multi-label data set), one row per image.
    """

    network: Any
    classes: list[str]
    image_size: int
    channels: int
    mean: Any
    std: Any
    multilabel: bool
    model: str
    step: int

    def transform(self, images: Iterable[Any]) -> Any:
        """A float ``[N, C, H, W]`` batch of ``images``."""
        import numpy as np
        import torch

        arrays = [_as_array(image, self.image_size, self.channels) for image in images]
        if not arrays:
            raise UserError("predict needs at least one image")
        batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255.0)
        return (batch - self.mean.view(1, -1, 1, 1)) / self.std.view(1, -1, 1, 1)

    def predict(self, images: Iterable[Any]) -> Any:
        """Class probabilities as a ``[N, classes]`` numpy array."""
        import torch

        with torch.no_grad():
            _, logits = self.network(self.transform(images))
            probabilities = torch.sigmoid(logits) if self.multilabel else logits.softmax(1)
        return probabilities.numpy()


def load_model(run_folder: str | Path, model: str = "reported") -> Predictor:
    """The network a finished run reports (``model="reported"``), or its ``student`` or
    ``teacher``, at its best validation step, from ``best.pt`` (on the CPU, eval mode)."""
    import json

    import torch

    from ssl_bench.config.run_config import with_field_defaults
    from ssl_bench.models.backbones import create_backbone
    from ssl_bench.plugins.registry import create_method
    from ssl_bench.runs.run_dir import BEST, CONFIG, METRICS

    folder = Path(run_folder)
    for name, why in ((CONFIG, "is not a run folder"), (METRICS, "is not a finished run"),
                      (BEST, "kept no weights (its sweep had keep_checkpoints = false)")):
        if not (folder / name).is_file():
            raise UserError(f"{folder} {why}: no {name}")
    record = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
    metrics = json.loads((folder / METRICS).read_text(encoding="utf-8"))
    config = with_field_defaults(record["config"])
    chosen = metrics["reported"]["model"] if model == "reported" else model
    weights = torch.load(folder / BEST, map_location="cpu", weights_only=True)
    if chosen not in weights.get("steps", {}):  # (steps: each network's best step)
        known = sorted(weights.get("steps", {}))
        raise UserError(f"{folder / BEST}: no {chosen!r} network; it has {', '.join(known)}")
    classes = list(record["dataset"]["classes"])
    schedule = record["schedule"]
    backbone = create_backbone(config["backbone"], num_classes=len(classes),
                               in_chans=schedule["in_chans"], pretrained=False,
                               drop_rate=config["drop_rate"], img_size=config["image_size"],
                               frozen_groups=config["frozen_groups"])
    method = create_method(config["method"], **config.get("method_options", {}))
    network = method.build_model(backbone)
    network.load_state_dict(weights[chosen])
    network.eval()
    normalisation = schedule["normalisation"]
    return Predictor(network=network, classes=classes, image_size=config["image_size"],
                     channels=schedule["in_chans"], mean=torch.tensor(normalisation["mean"]),
                     std=torch.tensor(normalisation["std"]),
                     multilabel=record["dataset"].get("kind") == "multi", model=chosen,
                     step=int(weights["steps"][chosen]))


def _as_array(image: Any, size: int, channels: int) -> Any:
    """One image as the ``[size, size, channels]`` uint8 array the run's cache holds."""
    import io

    import numpy as np
    from PIL import Image

    from ssl_bench.data.images import decode_image, decode_stream

    if isinstance(image, (str, Path)):
        return decode_image(image, size, channels)
    if isinstance(image, Image.Image):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        buffer.seek(0)
        return decode_stream(buffer, size, channels)
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim not in (2, 3):
        raise UserError(f"an image array must be uint8 [H, W] or [H, W, C], got "
                        f"{array.dtype} {list(array.shape)}")
    buffer = io.BytesIO()
    Image.fromarray(array if array.ndim == 2 or array.shape[2] != 1 else array[..., 0]).save(
        buffer, format="PNG")
    buffer.seek(0)
    return decode_stream(buffer, size, channels)
