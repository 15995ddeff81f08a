"""Backbones: the (features, logits) contract, weight loading, and offline behaviour."""

from __future__ import annotations

import socket

import pytest
import timm
import torch
from safetensors.torch import save_file

from ssl_bench.core.errors import UserError
from ssl_bench.models.backbones import Backbone, create_backbone, list_backbones

# densenet121 is the SRC-MT paper's backbone; the others cover the other head layouts
# (plain pool+fc, norm-in-head, conv head before the classifier, token pooling).
ARCHS = [
    "resnet10t",
    "densenet121",
    "convnext_atto",
    "mobilenetv3_small_050",
    "vit_tiny_patch16_224",
]

_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def _batch(in_chans: int = 3, size: int = 32) -> torch.Tensor:
    return torch.randn(2, in_chans, size, size, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def resnet_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return timm.create_model("resnet10t", num_classes=1000).state_dict()


# ------------------------------------------------------------------------ the contract


@pytest.mark.parametrize("arch", ARCHS)
def test_features_and_logits_are_timms_own_split(arch):
    torch.manual_seed(0)
    backbone = create_backbone(arch, num_classes=5, img_size=32).eval()
    model = backbone.model
    x = _batch()
    with torch.no_grad():
        features, logits = backbone(x)
        split = model.forward_head(model.forward_features(x))
        whole = model(x)
    assert features.shape == (2, backbone.num_features)
    assert logits.shape == (2, backbone.num_classes) == (2, 5)
    assert torch.equal(logits, split)
    assert torch.equal(logits, whole)
    assert backbone.name == arch and backbone.pretrained is False and backbone.in_chans == 3


def test_wrapper_adds_no_parameters():
    teacher = create_backbone("resnet10t", num_classes=3, drop_rate=0.2)
    student = create_backbone("resnet10t", num_classes=3, drop_rate=0.2)
    own, inner = list(teacher.parameters()), list(teacher.model.parameters())
    assert len(own) == len(inner) and all(p is q for p, q in zip(own, inner, strict=True))
    assert list(teacher.state_dict()) == [f"model.{k}" for k in teacher.model.state_dict()]
    shapes = [(n, p.shape) for n, p in teacher.named_parameters()]
    assert shapes == [(n, p.shape) for n, p in student.named_parameters()]


@pytest.mark.parametrize("in_chans", [1, 3])
def test_in_chans(in_chans):
    backbone = create_backbone("resnet10t", num_classes=4, in_chans=in_chans).eval()
    with torch.no_grad():
        features, logits = backbone(_batch(in_chans))
    assert features.shape == (2, 512) and logits.shape == (2, 4)
    assert backbone.in_chans == in_chans
    config = backbone.data_config
    assert config["input_size"][0] == in_chans
    assert len(config["mean"]) == len(config["std"]) == in_chans


def test_drop_rate_applies_to_features_in_train_mode_only():
    torch.manual_seed(0)
    backbone = create_backbone("resnet10t", num_classes=3, drop_rate=0.5)
    x = _batch()
    backbone.train()
    with torch.no_grad():  # dropout is on in train mode, gradients or not
        (f1, l1), (f2, _) = backbone(x), backbone(x)
    assert not torch.equal(f1, f2)  # post-dropout features, as SRC-MT uses them
    assert (f1 == 0).any()
    assert torch.allclose(l1, backbone.model.get_classifier()(f1))
    backbone.eval()
    with torch.no_grad():
        (f1, _), (f2, _) = backbone(x), backbone(x)
    assert torch.equal(f1, f2)


def test_channels_last_and_autocast():
    torch.manual_seed(0)
    backbone = create_backbone("resnet10t", num_classes=3).eval()
    x = _batch()
    with torch.no_grad():
        ref_features, ref_logits = backbone(x)
        backbone = backbone.to(memory_format=torch.channels_last)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        features, logits = backbone(x_cl)
        assert torch.allclose(logits, ref_logits, atol=1e-4)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            features, logits = backbone(x_cl)
    assert features.shape == ref_features.shape and logits.shape == ref_logits.shape
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits.float()).all()
    assert torch.allclose(logits.float(), ref_logits, atol=0.1, rtol=0.1)


def test_fixed_size_architectures_take_img_size():
    backbone = create_backbone("vit_tiny_patch16_224", num_classes=2, in_chans=1, img_size=32)
    assert backbone.data_config["input_size"] == (1, 32, 32)
    with torch.no_grad():
        assert backbone(_batch(1))[1].shape == (2, 2)


# ------------------------------------------------------------------- names and listing


def test_unknown_name_suggests_close_matches():
    with pytest.raises(UserError, match="resnet10t") as info:
        create_backbone("resnet10", num_classes=2)
    assert "ssl-bench list --backbones" in str(info.value)


@pytest.mark.parametrize(
    "kwargs",
    [dict(num_classes=0), dict(num_classes=2, in_chans=0), dict(num_classes=2, drop_rate=1)],
)
def test_bad_sizes_are_user_errors(kwargs):
    with pytest.raises(UserError):
        create_backbone("resnet10t", **kwargs)


def test_list_backbones():
    assert "resnet10t" in list_backbones("resnet1")
    assert "resnet10t" in list_backbones("resnet1*")
    assert "densenet121" not in list_backbones("resnet1")
    assert "resnet10t.c3_in1k" in list_backbones("resnet10t", pretrained_only=True)
    assert len(list_backbones()) > 500


# ---------------------------------------------------------------------- local weights


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_local_weights_adapt_classifier_and_channels(tmp_path, resnet_state, suffix):
    path = tmp_path / f"resnet10t{suffix}"
    if suffix == ".safetensors":
        save_file(resnet_state, str(path))
    else:
        torch.save(resnet_state, path)
    backbone = create_backbone("resnet10t", num_classes=7, in_chans=1, weights=path)
    model = backbone.model
    assert backbone.pretrained and backbone.weights == path.resolve()
    assert model.fc.weight.shape == (7, 512)
    stem = resnet_state["conv1.0.weight"].sum(dim=1, keepdim=True)
    assert torch.allclose(model.conv1[0].weight, stem)
    assert torch.equal(model.layer1[0].conv1.weight, resnet_state["layer1.0.conv1.weight"])
    assert torch.equal(model.layer4[0].bn2.running_var, resnet_state["layer4.0.bn2.running_var"])


def test_local_weights_of_another_architecture(tmp_path):
    path = tmp_path / "mobilenet.pth"
    torch.save(timm.create_model("mobilenetv3_small_050").state_dict(), path)
    with pytest.raises(UserError, match="mobilenet.pth"):
        create_backbone("resnet10t", num_classes=7, weights=path)


def test_missing_weights_file(tmp_path):
    with pytest.raises(UserError, match="nowhere.safetensors"):
        create_backbone("resnet10t", num_classes=7, weights=tmp_path / "nowhere.safetensors")


@pytest.mark.parametrize("name", ["corrupt.pth", "corrupt.safetensors", "notes.txt"])
def test_unloadable_weights_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"not a checkpoint" * 8)
    with pytest.raises(UserError, match=name):
        create_backbone("resnet10t", num_classes=7, weights=path)


# -------------------------------------------------------------- timm's published weights


def _count_connections(monkeypatch) -> list[tuple]:
    """Record every outgoing connection attempt (and refuse it): no network in tests."""
    attempts: list[tuple] = []

    def refuse(address, *args, **kwargs):
        attempts.append(address)
        raise ConnectionRefusedError(f"test: no network ({address})")

    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


def test_pretrained_not_cached_offline(offline_env, monkeypatch):
    attempts = _count_connections(monkeypatch)
    with pytest.raises(UserError) as info:
        create_backbone("resnet10t", num_classes=7, pretrained=True)
    assert attempts == []  # offline means no attempt at all (hence no wait)
    message = str(info.value)
    assert "resnet10t" in message and "not in the local cache" in message
    assert "--weights" in message and "HF_HOME" in message and "pretrained off" in message


def test_pretrained_hub_unreachable_fails_fast(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    from huggingface_hub import constants  # read HF_HUB_OFFLINE (set by conftest) at import

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for var in _PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    with socket.socket() as sock:  # a local port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    attempts = _count_connections(monkeypatch)
    with pytest.raises(UserError, match="hub is unreachable.*--weights"):
        create_backbone("resnet10t", num_classes=7, pretrained=True)
    assert 1 <= len(attempts) <= 2  # one probe, then gives up: no retry loop


def test_pretrained_from_cache_without_network(offline_env, resnet_state):
    repo = offline_env / "hub" / "models--timm--resnet10t.c3_in1k"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    save_file(resnet_state, str(snapshot / "model.safetensors"))
    backbone = create_backbone("resnet10t", num_classes=7, pretrained=True)
    assert isinstance(backbone, Backbone) and backbone.pretrained
    weight = backbone.model.layer1[0].conv1.weight
    assert torch.equal(weight, resnet_state["layer1.0.conv1.weight"])


def test_unknown_pretrained_tag(offline_env):
    with pytest.raises(UserError, match="c3_in1k"):
        create_backbone("resnet10t.nope", num_classes=7, pretrained=True)


def test_local_weights_need_no_network(offline_env, tmp_path, resnet_state):
    path = tmp_path / "w.pth"
    torch.save({"state_dict": resnet_state, "epoch": 3}, path)
    backbone = create_backbone("resnet10t", num_classes=2, pretrained=True, weights=path)
    assert torch.equal(backbone.model.conv1[0].weight, resnet_state["conv1.0.weight"])
