"""Batched image perturbations on the training device.

The SRC-MT paper's perturbations -- random affine rotation (+-10 degrees), translation
(2%) and horizontal flip -- plus optional Gaussian noise, drawn independently per image
and applied to a whole batch in one ``affine_grid``/``grid_sample`` call instead of per
image on the CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Perturbation:
    """Random affine + flip (on [0, 1] pixels, zero fill) then normalise, then noise."""

    rotation: float = 10.0
    translate: float = 0.02
    hflip: bool = True
    noise_std: float = 0.0

    @property
    def is_identity(self) -> bool:
        return self.rotation == 0 and self.translate == 0 and not self.hflip

    def affine(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Rotate, translate and flip each image of ``images`` (B x C x H x W, float)."""
        if self.is_identity:
            return images
        batch = images.shape[0]
        device = images.device
        draws = torch.rand(batch, 4, generator=generator, device=generator.device).to(device)
        angle = (draws[:, 0] * 2 - 1) * math.radians(self.rotation)
        # grid coordinates span [-1, 1]: a shift of f of the width is 2f there.
        shift = (draws[:, 1:3] * 2 - 1) * (2 * self.translate)
        flip = torch.where(draws[:, 3] < 0.5, -1.0, 1.0) if self.hflip else torch.ones_like(angle)
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.stack(
            [
                torch.stack([cos * flip, -sin, shift[:, 0]], dim=1),
                torch.stack([sin * flip, cos, shift[:, 1]], dim=1),
            ],
            dim=1,
        ).to(images.dtype)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        return F.grid_sample(
            images, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )

    def noise(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.noise_std <= 0:
            return images
        noise = torch.randn(
            images.shape, generator=generator, device=generator.device, dtype=images.dtype
        )
        return images + self.noise_std * noise.to(images.device)


class ImagePipeline:
    """uint8 NHWC batches -> normalised float NCHW images (views: ``ssl_bench.training.views``)."""

    def __init__(
        self,
        mean: torch.Tensor,
        std: torch.Tensor,
        perturbation: Perturbation,
        device: torch.device,
        channels_last: bool = False,
    ) -> None:
        self.mean = mean.to(device).view(1, -1, 1, 1)
        self.std = std.to(device).view(1, -1, 1, 1)
        self.perturbation = perturbation
        self.device = device
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def to_float(self, images_uint8: torch.Tensor) -> torch.Tensor:
        """uint8 [B, H, W, C] (any device) -> float [B, C, H, W] in [0, 1] on the device."""
        images = images_uint8.to(self.device, non_blocking=True).permute(0, 3, 1, 2)
        return images.float().div_(255.0).contiguous(memory_format=self.memory_format)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.mean) / self.std

    def clean(self, images_uint8: torch.Tensor) -> torch.Tensor:
        """Evaluation view: no perturbation."""
        return self.normalise(self.to_float(images_uint8))
