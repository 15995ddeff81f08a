"""Batched perturbations and the two-stream sampler."""

from __future__ import annotations

import numpy as np
import torch

from ssl_bench.data.images import ArrayImages
from ssl_bench.data.perturb import ImagePipeline, Perturbation
from ssl_bench.data.two_stream import TwoStreamSampler
from ssl_bench.method_kit.method import View
from ssl_bench.training.prepare import _train_stats
from ssl_bench.training.views import ViewMaker


def _pipeline(perturbation: Perturbation) -> ImagePipeline:
    return ImagePipeline(torch.zeros(3), torch.ones(3), perturbation, torch.device("cpu"))


def _views(pipeline: ImagePipeline, images: torch.Tensor,
           generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Two weak views through the engine's view maker (student, teacher)."""
    maker = ViewMaker({"student": View("weak"), "teacher": View("weak")}, pipeline, "test",
                      has_unlabeled=False)
    views = maker(images, len(images), generator)
    return views["student"], views["teacher"]


def test_views_are_independent_and_shaped():
    images = torch.randint(0, 256, (6, 20, 20, 3), dtype=torch.uint8)
    generator = torch.Generator().manual_seed(0)
    student, teacher = _views(_pipeline(Perturbation()), images, generator)
    assert student.shape == teacher.shape == (6, 3, 20, 20)
    assert not torch.allclose(student, teacher)


def test_identity_perturbation_is_exact():
    images = torch.randint(0, 256, (4, 8, 8, 1), dtype=torch.uint8)
    pipeline = ImagePipeline(torch.zeros(1), torch.ones(1),
                             Perturbation(rotation=0, translate=0, hflip=False),
                             torch.device("cpu"))
    student, teacher = _views(pipeline, images, torch.Generator().manual_seed(0))
    expected = images.permute(0, 3, 1, 2).float() / 255
    torch.testing.assert_close(student, expected)
    torch.testing.assert_close(teacher, expected)


def test_flip_only_mirrors_images():
    images = torch.arange(16, dtype=torch.uint8).view(1, 4, 4, 1).repeat(64, 1, 1, 1)
    pipeline = _pipeline(Perturbation(rotation=0, translate=0, hflip=True))
    pipeline.mean, pipeline.std = torch.zeros(1, 1, 1, 1), torch.ones(1, 1, 1, 1)
    out, _ = _views(pipeline, images, torch.Generator().manual_seed(1))
    base = images.permute(0, 3, 1, 2).float() / 255
    flipped = torch.flip(base, dims=[3])
    is_base = torch.isclose(out, base, atol=1e-5).flatten(1).all(1)
    is_flipped = torch.isclose(out, flipped, atol=1e-5).flatten(1).all(1)
    assert (is_base | is_flipped).all()
    assert 10 < int(is_flipped.sum()) < 54  # about half


def test_noise_changes_views_and_is_seeded():
    images = torch.full((2, 4, 4, 1), 128, dtype=torch.uint8)
    pipeline = ImagePipeline(torch.zeros(1), torch.ones(1),
                             Perturbation(0, 0, False, noise_std=0.5), torch.device("cpu"))
    a = _views(pipeline, images, torch.Generator().manual_seed(3))
    b = _views(pipeline, images, torch.Generator().manual_seed(3))
    torch.testing.assert_close(a[0], b[0])
    assert a[0].std() > 0.1


def test_train_stats_match_numpy_and_use_only_train_rows():
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, (50, 6, 6, 3), dtype=np.uint8)
    rows = np.arange(10, 40)
    mean, std = _train_stats(ArrayImages(array), rows)
    chosen = array[rows].reshape(-1, 3) / 255.0
    np.testing.assert_allclose(mean.numpy(), chosen.mean(0), rtol=1e-5)
    np.testing.assert_allclose(std.numpy(), chosen.std(0), rtol=1e-4)


def test_two_stream_sampler_covers_pools_and_restores_state():
    sampler = TwoStreamSampler(np.arange(10), np.arange(10, 40), 4, 6, seed=0)
    first_pass = np.concatenate([sampler.next()[:4] for _ in range(2)])
    assert len(set(first_pass.tolist())) == 8  # no repeats within a pass
    batch = sampler.next()
    assert len(batch) == 10 and (batch[:4] < 10).all() and (batch[4:] >= 10).all()
    state = sampler.state_dict()
    expected = [sampler.next() for _ in range(5)]
    sampler.load_state_dict(state)
    for want in expected:
        np.testing.assert_array_equal(sampler.next(), want)
