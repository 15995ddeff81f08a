"""The augmentation registry and the built-in views: none, weak (SRC-MT) and strong (FixMatch)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image, ImageEnhance, ImageOps
from torchvision.transforms import InterpolationMode

from ssl_bench.core.errors import UserError
from ssl_bench.data import augmentations as aug_module
from ssl_bench.data.augmentations import (
    RANDAUGMENT_OPS,
    Augmentation,
    apply_op,
    augmentation_registry,
    create_augmentation,
    list_augmentations,
    register_augmentation,
)
from ssl_bench.data.perturb import Perturbation

ALL = list_augmentations()
#: augmentations that draw nothing: exempt from the "differs per image / per seed" checks
DETERMINISTIC = {"none"}
RANDOM = [name for name in ALL if name not in DETERMINISTIC]


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    array = np.array(image, dtype=np.float32) / 255
    return torch.from_numpy(array).permute(2, 0, 1)[None]


@pytest.fixture
def pil_image() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8))


def test_builtins_are_registered_with_aliases():
    assert {"none", "weak", "strong"} <= set(ALL)
    assert isinstance(create_augmentation("RandAugment"), aug_module.RandAugment)
    assert isinstance(create_augmentation("srcmt"), aug_module.WeakAugmentation)


# -- checks every registered augmentation must pass ------------------------------------------


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("channels", [1, 3])
def test_shape_dtype_device_and_range_kept(name, channels):
    images = torch.rand(6, channels, 16, 16)
    before = images.clone()
    out = create_augmentation(name)(images, generator(0))
    assert out.shape == images.shape and out.dtype == torch.float32
    assert out.device == images.device
    assert out.min() >= 0 and out.max() <= 1
    assert out is not images and torch.equal(images, before)  # input untouched


@pytest.mark.parametrize("name", ALL)
def test_each_image_gets_its_own_draw(name):
    images = torch.rand(1, 3, 16, 16).expand(8, -1, -1, -1).contiguous()
    out = create_augmentation(name)(images, generator(0))
    rows = out.flatten(1)
    same = (rows[:, None] == rows[None]).all(-1)
    if name in DETERMINISTIC:
        assert same.all()
    else:
        assert same.sum() == len(rows), "two images drew the same augmentation"


@pytest.mark.parametrize("name", ALL)
def test_determined_by_the_generator_alone(name):
    images = torch.rand(6, 3, 16, 16)
    aug = create_augmentation(name)
    torch.manual_seed(1)
    first = aug(images, generator(5))
    global_state = torch.get_rng_state()
    torch.manual_seed(2)
    second = aug(images, generator(5))
    assert torch.equal(first, second)
    torch.manual_seed(1)
    assert torch.equal(torch.get_rng_state(), global_state), "the global RNG was used"


@pytest.mark.parametrize("name", RANDOM)
def test_different_seeds_differ(name):
    images = torch.rand(6, 3, 16, 16)
    aug = create_augmentation(name)
    assert not torch.equal(aug(images, generator(0)), aug(images, generator(1)))


# -- registry --------------------------------------------------------------------------------


def test_unknown_name_suggests_the_closest():
    with pytest.raises(UserError, match=r"unknown augmentation 'strnog'\. Did you mean 'strong'\?"):
        create_augmentation("strnog")


def test_options_are_declared_and_checked():
    with pytest.raises(UserError, match="has no option"):
        create_augmentation("strong", magnitud=5)
    with pytest.raises(UserError, match="magnitude must be in"):
        create_augmentation("strong", magnitude=11)
    with pytest.raises(UserError, match="expects int"):
        create_augmentation("strong", n="two")
    assert create_augmentation("strong", n="3", cutout="0").n == 3  # CLI strings coerced


def test_plugins_register_new_pipelines_by_name():
    @register_augmentation("test_invert", aliases=("test_negative",))
    class Invert(Augmentation):
        def __call__(self, images, generator):
            return 1 - images

    try:
        assert "test_invert" in list_augmentations()
        images = torch.rand(2, 1, 4, 4)
        assert torch.equal(create_augmentation("test_negative")(images, generator(0)), 1 - images)
    finally:
        augmentation_registry.unregister("test_invert")
    assert "test_invert" not in list_augmentations()


# -- weak ------------------------------------------------------------------------------------


@pytest.mark.parametrize("options", [{}, {"rotation": 30.0, "translate": 0.1, "hflip": False}])
def test_weak_is_the_srcmt_perturbation_bit_for_bit(options):
    images = torch.rand(8, 3, 16, 16)
    expected = Perturbation(**options).affine(images, generator(3))
    assert torch.equal(create_augmentation("weak", **options)(images, generator(3)), expected)


# -- strong ----------------------------------------------------------------------------------

NO_WEAK = {"rotation": 0.0, "translate": 0.0, "hflip": False}


@pytest.mark.parametrize("channels", [1, 3])
def test_strong_at_magnitude_zero_is_the_identity(channels):
    """Every op at its identity value is exact, but a geometric op's identity warp goes
    through grid_sample, which rounds at 1e-6; cutout 0 and no weak pre-stage add nothing."""
    images = torch.rand(32, channels, 16, 16)
    strong = create_augmentation("strong", magnitude=0, cutout=0, **NO_WEAK)
    torch.testing.assert_close(strong(images, generator(0)), images, atol=4e-6, rtol=0)


@pytest.mark.parametrize("name", list(RANDAUGMENT_OPS))
def test_each_op_at_its_identity_value(name):
    images = torch.rand(4, 3, 16, 16)
    values = torch.full((4,), RANDAUGMENT_OPS[name][0])
    out = apply_op(name, images, values)
    if name in aug_module._GEOMETRIC:
        torch.testing.assert_close(out, images, atol=2e-6, rtol=0)
    else:
        assert torch.equal(out, images)


def test_strong_magnitude_changes_images():
    images = torch.rand(32, 3, 16, 16)
    strong = create_augmentation("strong", magnitude=10, cutout=0, **NO_WEAK)
    changed = ((strong(images, generator(0)) - images).abs().flatten(1).amax(1) > 1e-3).sum()
    assert changed >= 24  # only images that drew identity twice may stay (1 in 196)


def test_strong_cutout_is_a_grey_square():
    images = torch.rand(64, 3, 16, 16)
    out = create_augmentation("strong", n=0, cutout=0.5, **NO_WEAK)(images, generator(0))
    grey = (out != images).any(1)  # B x H x W
    assert torch.all(out.masked_select(grey[:, None].expand_as(out)) == 0.5)
    sides = []
    for mask in grey:
        if mask.any():
            rows, cols = mask.any(1).nonzero(), mask.any(0).nonzero()
            box = mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
            assert box.all(), "the grey region is not a rectangle"
            inside = rows.min() > 0 and cols.min() > 0 and rows.max() < 15 and cols.max() < 15
            assert len(box) == len(box[0]) or not inside, "an unclipped box is not square"
            sides.append(max(len(box), len(box[0])))
    assert len(sides) > 40 and max(sides) <= 8  # side <= 0.5 x 16, some clipped by the edge


def test_strong_rounds_pick_ops_per_image():
    """With one op per image, the drawn ops cover most of the 14 at batch 200."""
    images = torch.rand(1, 3, 16, 16).expand(200, -1, -1, -1)
    out = create_augmentation("strong", n=1, cutout=0, **NO_WEAK)(images, generator(0))
    unchanged = (out == images).flatten(1).all(1).float().mean()
    assert 0.02 < unchanged < 0.2  # identity is 1 of 14 ops; everything else changes pixels


def test_masked_and_subset_paths_agree(monkeypatch):
    """A CPU generator computes each op on the images that drew it; a GPU generator computes
    it on the whole batch and selects with torch.where. Both give the same images."""
    images = torch.rand(16, 3, 16, 16)
    strong = create_augmentation("strong", n=3)
    subset = strong(images, generator(4))
    monkeypatch.setattr(aug_module, "SUBSET_ON_HOST", False)
    torch.testing.assert_close(strong(images, generator(4)), subset, atol=1e-6, rtol=0)


# -- each op against PIL (FixMatch/USB's implementation) or torchvision ------------------------


def test_solarize_and_brightness_by_hand():
    images = torch.tensor([0.1, 0.4, 0.6, 0.9]).view(1, 1, 2, 2)
    solarized = apply_op("solarize", images, torch.tensor([127.5]))
    assert torch.allclose(solarized.flatten(), torch.tensor([0.1, 0.4, 0.4, 0.1]))
    assert torch.allclose(apply_op("solarize", images, torch.tensor([0.0])), 1 - images)
    darker = apply_op("brightness", images, torch.tensor([0.5]))
    assert torch.allclose(darker.flatten(), torch.tensor([0.05, 0.2, 0.3, 0.45]))


@pytest.mark.parametrize("bits", [4, 5, 6, 7, 8])
def test_posterize_equals_pil_on_every_level(bits):
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    images = torch.from_numpy(levels).float().div(255).view(1, 1, 16, 16)
    expected = np.array(ImageOps.posterize(Image.fromarray(levels), bits), dtype=np.float32)
    out = apply_op("posterize", images, torch.tensor([bits + 0.7]))  # bits are floored
    assert torch.equal(out[0, 0].mul(255).round(), torch.from_numpy(expected))


@pytest.mark.parametrize("threshold", [0, 100, 128, 256])
def test_solarize_equals_pil_on_every_level(threshold):
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    images = torch.from_numpy(levels).float().div(255).view(1, 1, 16, 16)
    expected = np.array(ImageOps.solarize(Image.fromarray(levels), threshold), dtype=np.float32)
    out = apply_op("solarize", images, torch.tensor([float(threshold)]))
    assert torch.equal(out[0, 0].mul(255).round(), torch.from_numpy(expected))


@pytest.mark.parametrize(
    "name, reference",
    [
        ("brightness", lambda im: ImageEnhance.Brightness(im).enhance(0.3)),
        ("color", lambda im: ImageEnhance.Color(im).enhance(0.3)),
        ("contrast", lambda im: ImageEnhance.Contrast(im).enhance(0.3)),
        ("sharpness", lambda im: ImageEnhance.Sharpness(im).enhance(0.3)),
        ("autocontrast", ImageOps.autocontrast),
        ("equalize", ImageOps.equalize),
    ],
)
def test_photometric_ops_match_pil(pil_image, name, reference):
    """PIL rounds to uint8 at each step; within 1.5 levels of 255 (equalize: exact)."""
    value = 1.0 if name in ("autocontrast", "equalize") else 0.3
    out = apply_op(name, pil_to_tensor(pil_image), torch.tensor([value]))
    atol = 1e-6 if name == "equalize" else 1.5 / 255
    torch.testing.assert_close(out, pil_to_tensor(reference(pil_image)), atol=atol, rtol=0)


def test_color_is_the_identity_on_one_channel():
    images = torch.rand(3, 1, 8, 8)
    assert torch.equal(apply_op("color", images, torch.tensor([0.1, 0.5, 0.9])), images)


@pytest.mark.parametrize(
    "name, value, data",
    [
        ("rotate", 90.0, None),
        ("rotate", 180.0, None),
        ("translate_x", 0.3, (1, 0, 3, 0, 1, 0)),
        ("translate_y", -2 / 6, (1, 0, 0, 0, 1, -2)),
        ("shear_x", 2.0, (1, 2, 0, 0, 1, 0)),  # samples fall on pixel centres: no interpolation
        ("shear_y", 2.0, (1, 0, 0, 2, 1, 0)),
    ],
)
def test_geometric_ops_match_pil_where_pixels_align(name, value, data):
    rng = np.random.default_rng(1)
    size = (10, 10) if name == "rotate" and value == 90 else (10, 6)  # W x H
    image = Image.fromarray(rng.integers(0, 256, size[::-1] + (3,), dtype=np.uint8))
    expected = image.rotate(value) if data is None else image.transform(size, Image.AFFINE, data)
    out = apply_op(name, pil_to_tensor(image), torch.tensor([value]))
    torch.testing.assert_close(out, pil_to_tensor(expected), atol=2e-6, rtol=0)


@pytest.mark.parametrize("name, value", [("rotate", 23.0), ("shear_x", 0.3), ("shear_y", -0.2)])
def test_geometric_ops_match_torchvision_bilinear(name, value):
    """torchvision's RandAugment ops (PIL semantics, shear about the corner), bilinear."""
    images = torch.rand(2, 3, 12, 10)
    if name == "rotate":
        expected = TF.rotate(images, value, interpolation=InterpolationMode.BILINEAR)
    else:
        degrees = math.degrees(math.atan(value))
        shear = [degrees, 0.0] if name == "shear_x" else [0.0, degrees]
        expected = TF.affine(
            images, angle=0.0, translate=[0, 0], scale=1.0, shear=shear,
            interpolation=InterpolationMode.BILINEAR, center=[0, 0],
        )  # fmt: skip
    out = apply_op(name, images, torch.full((2,), value))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_op_values_are_per_image():
    images = torch.rand(1, 3, 8, 8).expand(2, -1, -1, -1)
    out = apply_op("brightness", images, torch.tensor([0.2, 0.8]))
    assert torch.allclose(out[0], images[0] * 0.2) and torch.allclose(out[1], images[1] * 0.8)
