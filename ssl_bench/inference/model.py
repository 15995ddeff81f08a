"""A finished run's network as a :class:`Predictor`: its weights and its preprocessing.

:func:`load_model` reads ``config.json``, ``metrics.json`` and ``best.pt`` of a finished
run and rebuilds the reported network (or the student or the teacher) at its best
validation step. The :class:`Predictor` applies the preprocessing the run's evaluation
applied -- decode, resize straight to ``image_size`` (bilinear), ``channels``, scale to
[0, 1], normalise by the run's mean and std -- so its probabilities on a run's own test
images are the run's test predictions (on the CPU to the last bit: the network runs in
the memory format the run evaluated in; on a GPU in float32, where a CUDA run evaluated
under mixed precision). torch is imported only when a model is loaded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ssl_bench.core.errors import UserError

__all__ = ["Predictor", "activation_of", "image_array", "load_model", "probabilities"]

#: How the pixels are resized, as ``Predictor.transform`` (and the run's cache) does.
RESIZE = "bilinear"


def activation_of(multilabel: bool) -> str:
    """``"sigmoid"`` (one probability per finding) or ``"softmax"`` (over the classes)."""
    return "sigmoid" if multilabel else "softmax"


def probabilities(logits: Any, multilabel: bool) -> Any:
    """Class probabilities from ``[N, classes]`` logits, as the run's evaluation computes
    them (the one definition :meth:`Predictor.predict` and the exported models share)."""
    import torch

    return torch.sigmoid(logits) if multilabel else logits.softmax(1)


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
    #: Whether the run evaluated in channels-last memory format (``--channels-last``):
    #: predicting in the same format gives its evaluation's numbers to the last bit.
    channels_last: bool = False
    #: The run folder, its method and backbone (recorded beside an exported model).
    run: Path | None = None
    method: str = ""
    backbone: str = ""

    @property
    def activation(self) -> str:
        return activation_of(self.multilabel)

    @property
    def device(self) -> Any:
        """Where the network's weights are (the CPU after :func:`load_model`)."""
        return next(self.network.parameters()).device

    def to(self, device: Any) -> Predictor:
        """Move the network to ``device`` (a ``torch.device`` or its name); returns self."""
        self.network.to(device)
        return self

    def transform(self, images: Iterable[Any]) -> Any:
        """A float ``[N, C, H, W]`` batch of ``images`` (on the CPU)."""
        import numpy as np
        import torch

        arrays = [image_array(image, self.image_size, self.channels) for image in images]
        if not arrays:
            raise UserError("predict needs at least one image")
        batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255.0)
        return (batch - self.mean.view(1, -1, 1, 1)) / self.std.view(1, -1, 1, 1)

    def predict(self, images: Iterable[Any]) -> Any:
        """Class probabilities as a ``[N, classes]`` numpy array."""
        import torch

        batch = self.transform(images).to(self.device)
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            _, logits = self.network(batch)
            return probabilities(logits, self.multilabel).float().cpu().numpy()


def load_model(run_folder: str | Path, model: str = "reported") -> Predictor:
    """The network a finished run reports (``model="reported"``), or its ``student`` or
    ``teacher``, at its best validation step, from ``best.pt`` (on the CPU, eval mode).

    A folder that is no run, a failed or unfinished run, or one that kept no weights is
    refused with one line naming the folder and the file that is missing.
    """
    import json

    import torch

    from ssl_bench.config.run_config import with_field_defaults
    from ssl_bench.models.backbones import create_backbone
    from ssl_bench.plugins.registry import create_method
    from ssl_bench.runs.run_dir import BEST, CONFIG, FAILED, METRICS

    folder = Path(run_folder)
    if not (folder / CONFIG).is_file():
        raise UserError(f"{folder} is not a run folder: no {CONFIG}")
    if (folder / FAILED).is_file():
        raise UserError(f"{folder} is a failed run ({FAILED}): it has no model to use")
    for name, why in ((METRICS, "is not a finished run"),
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
    channels_last = bool(config.get("channels_last", False))
    if channels_last:  # (as training.build did: the same convolution kernels, same numbers)
        network.to(memory_format=torch.channels_last)
    normalisation = schedule["normalisation"]
    return Predictor(network=network, classes=classes, image_size=config["image_size"],
                     channels=schedule["in_chans"], mean=torch.tensor(normalisation["mean"]),
                     std=torch.tensor(normalisation["std"]),
                     multilabel=record["dataset"].get("kind") == "multi", model=chosen,
                     step=int(weights["steps"][chosen]), channels_last=channels_last, run=folder,
                     method=config["method"], backbone=config["backbone"])


def image_array(image: Any, size: int, channels: int) -> Any:
    """One image as the ``[size, size, channels]`` uint8 array the run's cache holds; a
    file that cannot be decoded is a one-line :class:`UserError` naming it."""
    import io

    import numpy as np
    from PIL import Image

    from ssl_bench.data.images import decode_image, decode_stream, describe_error

    if isinstance(image, (str, Path)):
        try:
            return decode_image(image, size, channels)
        except Exception as exc:  # PIL raises OSError, ValueError, SyntaxError, ...
            raise UserError(f"{image}: {describe_error(exc)}") from None
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
