"""Named training-view augmentations, drawn batched on the device in [0, 1] pixel space.

A method names the views it trains on (FixMatch: ``{"weak": "weak", "strong": "strong"}``);
the engine turns uint8 images into float [0, 1] pixels (B x C x H x W, C = 1 or 3), calls
the named :class:`Augmentation` as ``aug(images, generator)`` and then normalises. Built-ins:

* ``none`` -- identity.
* ``weak`` -- SRC-MT's perturbation, :meth:`ssl_bench.data.perturb.Perturbation.affine` unchanged:
  rotation (+-10 degrees), translation (2%) and horizontal flip, zero fill.
* ``strong`` -- FixMatch/USB's RandAugment with random magnitude, then Cutout, after the
  ``weak`` flip/shift/rotation (strong = weak + RandAugment, as in FixMatch).

Every random choice -- op, magnitude, Cutout box, flip -- is drawn per image from the
``torch.Generator`` passed in; nothing reads the global torch RNG, so an output depends on
the images and the generator's state alone, and ``torch.manual_seed`` has no effect.

Why this formulation rather than ``kornia.augmentation.auto.RandAugment``: kornia's picks one
op sequence for the whole batch (from the global RNG, at a fixed magnitude), while FixMatch
draws the ops and their magnitudes per image. Here each of the ``n`` rounds draws one op and
one magnitude per image. With the generator on a GPU every op runs once over the whole batch,
with the identity parameter for the images that did not draw it, and ``torch.where`` keeps
its result only where drawn: batched, branch-free, fixed shapes, no host sync. With a CPU
generator the choices are already on the host, so each op runs on the images that drew it
alone (``index_select``/``index_copy``, 2-3x faster on CPU); both give the same images.
The photometric ops are kornia's maintained, tested, batched kernels with
per-sample parameters, chosen for their PIL semantics (FixMatch and USB use PIL):
``adjust_brightness_accumulative`` (PIL Brightness), ``adjust_saturation_with_gray_subtraction``
(PIL Color), ``adjust_contrast_with_mean_subtraction`` (PIL Contrast), ``sharpness``,
``equalize``, ``posterize`` and ``solarize``. The five geometric ops of a round share one
per-image affine matrix and one ``grid_sample`` (the affine_grid/grid_sample that kornia's
``warp_affine`` wraps, in PIL's coordinates). Autocontrast (kornia's min-max turns a flat
channel black; PIL leaves it) and Cutout (kornia's ``RandomErasing`` draws an area and aspect
ratio from the global RNG; FixMatch draws a square's side) are a few lines of torch here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import kornia.enhance as KE
import torch
import torch.nn.functional as F

from ssl_bench.core.errors import UserError
from ssl_bench.data.perturb import Perturbation
from ssl_bench.plugins.options import Option, coerce_options
from ssl_bench.plugins.registry import augmentation_registry

T = TypeVar("T")
Tensor = torch.Tensor


class Augmentation(ABC):
    """A random batched image transform: float [B, C, H, W] in [0, 1] -> same, in [0, 1].

    Each image gets its own draws from ``generator`` (on any device; draws are moved to the
    images' device) and from nothing else: same generator state, same output, whatever the
    global torch RNG. The result is a new tensor of the input's shape, dtype and device.
    """

    #: declared options, as for methods: coerced and checked by :func:`create_augmentation`
    options: ClassVar[tuple[Option, ...]] = ()

    @abstractmethod
    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor: ...


def register_augmentation(name: str, aliases: tuple[str, ...] = ()) -> Callable[[T], T]:
    """Decorator: make an :class:`Augmentation` class (or factory) available by name."""
    return augmentation_registry.register(name, aliases=aliases)


def augmentation_option_specs(name: str) -> tuple[Option, ...]:
    """The declared options of augmentation ``name`` (empty when it has none)."""
    return tuple(getattr(augmentation_registry.get(name), "options", ()))


def create_augmentation(name: str, **options: Any) -> Augmentation:
    """Build the augmentation registered as ``name``; unknown names or options are UserErrors."""
    key = augmentation_registry.resolve(name)
    values = coerce_options(augmentation_option_specs(key), options, f"augmentation {key!r}")
    return augmentation_registry.get(key)(**values)


def list_augmentations() -> list[str]:
    return augmentation_registry.names()


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise UserError(message)


@register_augmentation("none", aliases=("identity",))
class NoAugmentation(Augmentation):
    """The clean view: images unchanged (a copy, clamped to [0, 1])."""

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        return images.clamp(0.0, 1.0)


_WEAK_OPTIONS = (
    Option("rotation", float, 10.0, "largest rotation, degrees (uniform in +-rotation)"),
    Option("translate", float, 0.02, "largest shift, fraction of the image (uniform in +-)"),
    Option("hflip", bool, True, "flip horizontally with probability 0.5"),
)


def _perturbation(rotation: float, translate: float, hflip: bool) -> Perturbation:
    _check(0 <= rotation <= 180, f"augmentation rotation must be in [0, 180], got {rotation}")
    _check(0 <= translate <= 1, f"augmentation translate must be in [0, 1], got {translate}")
    return Perturbation(rotation=rotation, translate=translate, hflip=hflip)


@register_augmentation("weak", aliases=("srcmt",))
class WeakAugmentation(Augmentation):
    """SRC-MT's affine perturbation (rotate, shift, flip; zero fill): ``Perturbation.affine``."""

    options = _WEAK_OPTIONS

    def __init__(self, rotation: float = 10.0, translate: float = 0.02, hflip: bool = True):
        self.perturbation = _perturbation(rotation, translate, hflip)

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        return self.perturbation.affine(images, generator).clamp(0.0, 1.0)


# -- RandAugment operations ------------------------------------------------------------------

#: name -> (identity value, low, high) of each op's parameter. At full magnitude a value is
#: drawn uniformly in [low, high], as USB's ``augment_list`` (FixMatch's Table 12); a magnitude
#: fraction f draws ``identity + f * (uniform(low, high) - identity)`` instead.
RANDAUGMENT_OPS: dict[str, tuple[float, float, float]] = {
    "autocontrast": (0.0, 1.0, 1.0),  # weight of the processed image in a blend
    "brightness": (1.0, 0.05, 0.95),  # PIL enhance factor: 1 = unchanged
    "color": (1.0, 0.05, 0.95),
    "contrast": (1.0, 0.05, 0.95),
    "equalize": (0.0, 1.0, 1.0),  # blend weight, as autocontrast
    "identity": (0.0, 0.0, 0.0),
    "posterize": (8.0, 4.0, 8.0),  # bits kept, floored
    "rotate": (0.0, -30.0, 30.0),  # degrees, counter-clockwise
    "sharpness": (1.0, 0.05, 0.95),
    "shear_x": (0.0, -0.3, 0.3),  # PIL's affine shear, about the top-left corner
    "shear_y": (0.0, -0.3, 0.3),
    "solarize": (256.0, 0.0, 256.0),  # threshold on the 0..255 scale: invert pixels >= it
    "translate_x": (0.0, -0.3, 0.3),  # fraction of the width
    "translate_y": (0.0, -0.3, 0.3),  # fraction of the height
}
_OP_NAMES = tuple(RANDAUGMENT_OPS)
_GEOMETRIC = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")


def _per_image(values: Tensor) -> Tensor:
    return values.view(-1, 1, 1, 1)


def _autocontrast(images: Tensor, weight: Tensor) -> Tensor:
    """PIL autocontrast (each channel stretched to [0, 1]; flat ones kept), blended by weight."""
    low = images.amin(dim=(-2, -1), keepdim=True)
    span = images.amax(dim=(-2, -1), keepdim=True) - low
    stretched = torch.where(span > 0, (images - low) / span.clamp_min(1e-12), images)
    return torch.lerp(images, stretched, _per_image(weight))


def _equalize(images: Tensor, weight: Tensor) -> Tensor:
    """PIL equalize (kornia's, per channel), blended with the image by weight."""
    return torch.lerp(images, KE.equalize(images), _per_image(weight))


def _posterize(images: Tensor, bits: Tensor) -> Tensor:
    return KE.posterize(images, bits.floor().clamp(1, 8).to(torch.int64))


def _solarize(images: Tensor, threshold: Tensor) -> Tensor:
    return KE.solarize(images, threshold / 255.0)


_PHOTOMETRIC: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "autocontrast": _autocontrast,
    "brightness": KE.adjust_brightness_accumulative,
    "color": KE.adjust_saturation_with_gray_subtraction,  # identity on 1 channel
    "contrast": KE.adjust_contrast_with_mean_subtraction,
    "equalize": _equalize,
    "posterize": _posterize,
    "sharpness": KE.sharpness,
    "solarize": _solarize,
}


def _affine(images: Tensor, params: Tensor) -> Tensor:
    """Warp each image by PIL's rotate/shear/translate with per-image parameters, zero fill.

    ``params`` is B x 5: each image's value of every op in ``_GEOMETRIC`` (0 = identity), at
    most one of which is not 0. PIL maps output pixel p to input ``A p + b`` in pixel units
    from the top-left corner; with D = diag(W/2, H/2), grid_sample's [-1, 1] coordinates map
    u to ``D^-1 A D u + D^-1 A D 1 + D^-1 b - 1``.
    """
    height, width = images.shape[-2:]
    cx, cy = width / 2, height / 2  # D; Python numbers, so no host-to-device copy
    params = params.to(images.device, images.dtype)
    degrees, shear_x, shear_y, shift_x, shift_y = params.unbind(-1)
    angle = -torch.deg2rad(degrees)  # PIL: counter-clockwise
    cos, sin = torch.cos(angle), torch.sin(angle)
    # A = rotation + shear (one of them is the identity); b turns about the centre and shifts.
    a01, a10 = sin + shear_x, -sin + shear_y
    b_x = cx - (cos * cx + sin * cy) + shift_x * width
    b_y = cy - (-sin * cx + cos * cy) + shift_y * height
    theta_a = torch.stack(
        [torch.stack([cos, a01 * cy / cx], -1), torch.stack([a10 * cx / cy, cos], -1)], -2
    )
    theta_b = theta_a.sum(-1) + torch.stack([b_x / cx, b_y / cy], -1) - 1
    theta = torch.cat([theta_a, theta_b[..., None]], dim=-1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def apply_op(name: str, images: Tensor, values: Tensor) -> Tensor:
    """Apply RandAugment op ``name`` to every image with per-image parameters ``values`` (B,)."""
    if name in _PHOTOMETRIC:
        return _PHOTOMETRIC[name](images, values)
    if name in _GEOMETRIC:
        params = torch.zeros(len(values), len(_GEOMETRIC), device=values.device)
        params[:, _GEOMETRIC.index(name)] = values
        return _affine(images, params)
    _check(name == "identity", f"unknown RandAugment op {name!r}")
    return images.clone()


#: Compute an op on the chosen images only when the choices are on the host (a CPU generator;
#: with GPU images the indices are then copied over); otherwise, and when False, the masked
#: full-batch path runs, which never syncs a GPU.
SUBSET_ON_HOST = True


def _apply_to(
    images: Tensor, chosen: Tensor, op: Callable[[Tensor, Tensor], Tensor], values: Tensor
) -> Tensor:
    """``op(images, values)`` where ``chosen`` (B, bool) holds; the other images unchanged."""
    if SUBSET_ON_HOST and chosen.device.type == "cpu":
        index = chosen.nonzero().squeeze(1)
        if index.numel() == 0:
            return images
        on_device = index.to(images.device)
        result = op(images.index_select(0, on_device), values.index_select(0, index))
        return images.index_copy(0, on_device, result)
    chosen = _per_image(chosen.to(images.device))
    return torch.where(chosen, op(images, values.to(images.device)), images)


def _cutout(images: Tensor, draws: Tensor, largest: float) -> Tensor:
    """Grey (0.5) squares of up to ``largest`` x the shorter side in pixels, clipped at edges.

    Per image: side ``floor(u0 * largest * min(H, W))``, centred at (u1 W, u2 H).
    """
    height, width = images.shape[-2:]
    draws = draws.to(images.device, images.dtype)
    side = (draws[:, 0] * largest * min(height, width)).floor()
    left = (draws[:, 1] * width - side / 2).floor()
    top = (draws[:, 2] * height - side / 2).floor()
    xs = torch.arange(width, device=images.device, dtype=images.dtype)
    ys = torch.arange(height, device=images.device, dtype=images.dtype)
    inside_x = (xs >= left[:, None]) & (xs < (left + side)[:, None])
    inside_y = (ys >= top[:, None]) & (ys < (top + side)[:, None])
    box = (inside_y[:, :, None] & inside_x[:, None, :])[:, None]
    return torch.where(box, torch.full_like(images[:1, :, :1, :1], 0.5), images)


@register_augmentation("strong", aliases=("randaugment",))
class RandAugment(Augmentation):
    """FixMatch's strong view: weak affine, then ``n`` random ops per image, then Cutout."""

    options = (
        Option("n", int, 2, "RandAugment ops per image, each drawn uniformly with replacement"),
        Option("magnitude", float, 10.0, "largest magnitude, 0..10; each op draws up to it"),
        Option("cutout", float, 0.5, "largest Cutout side, fraction of the image (0 = off)"),
        *_WEAK_OPTIONS,
    )

    def __init__(
        self,
        n: int = 2,
        magnitude: float = 10.0,
        cutout: float = 0.5,
        rotation: float = 10.0,
        translate: float = 0.02,
        hflip: bool = True,
    ) -> None:
        _check(0 <= n <= 16, f"augmentation strong: n must be in [0, 16], got {n}")
        _check(
            0 <= magnitude <= 10,
            f"augmentation strong: magnitude must be in [0, 10], got {magnitude}",
        )
        _check(0 <= cutout <= 1, f"augmentation strong: cutout must be in [0, 1], got {cutout}")
        self.n, self.fraction, self.cutout = n, magnitude / 10, cutout
        self.perturbation = _perturbation(rotation, translate, hflip)
        self._constants: dict[torch.device, tuple[Tensor, Tensor]] = {}

    def _device_constants(self, device: torch.device) -> tuple[Tensor, Tensor]:
        """The (identity, low, high) table and the geometric ops' indices, cached per device
        (a host-to-device copy would make a GPU wait for its queue on every call)."""
        if device not in self._constants:
            table = torch.tensor(list(RANDAUGMENT_OPS.values())).T
            geometric = torch.tensor([_OP_NAMES.index(name) for name in _GEOMETRIC])
            self._constants[device] = (table.to(device), geometric.to(device))
        return self._constants[device]

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        images = self.perturbation.affine(images, generator)
        n = self.n
        # One draw per image for each op, magnitude and the Cutout box, on the generator's
        # device: there (on the CPU) the op choices need no copy to pick the images.
        draws = torch.rand(images.shape[0], 2 * n + 3, generator=generator, device=generator.device)
        ops = (draws[:, :n] * len(_OP_NAMES)).long().clamp_max(len(_OP_NAMES) - 1)
        for step in range(n):
            images = self._round(images, ops[:, step], draws[:, n + step])
        if self.cutout > 0:
            images = _cutout(images, draws[:, 2 * n :], self.cutout)
        return images.clamp(0.0, 1.0)

    def _round(self, images: Tensor, ops: Tensor, uniform: Tensor) -> Tensor:
        """Apply each image's op at ``identity + f * (uniform(low, high) - identity)``."""
        (identity, low, high), geometric = self._device_constants(ops.device)
        drawn = low[ops] + (high[ops] - low[ops]) * uniform
        values = identity[ops] + self.fraction * (drawn - identity[ops])
        # B x 5: the value of each geometric op an image drew, 0 (identity) for the others.
        params = torch.where(ops[:, None] == geometric, values[:, None], 0.0)
        images = _apply_to(images, torch.isin(ops, geometric), _affine, params)
        for name, op in _PHOTOMETRIC.items():
            index = _OP_NAMES.index(name)
            value = torch.where(ops == index, values, identity[index])
            images = _apply_to(images, ops == index, op, value)
        return images


__all__ = [
    "RANDAUGMENT_OPS",
    "Augmentation",
    "NoAugmentation",
    "RandAugment",
    "WeakAugmentation",
    "apply_op",
    "augmentation_option_specs",
    "augmentation_registry",
    "create_augmentation",
    "list_augmentations",
    "register_augmentation",
]
