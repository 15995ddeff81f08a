"""Configuration precedence and validation; the registry and plug-in discovery."""

from __future__ import annotations

import importlib.metadata

import pytest

from ssl_bench.config.resolve import read_config_file, resolve_config
from ssl_bench.config.run_config import PRESETS
from ssl_bench.core.errors import UserError
from ssl_bench.data.splits import parse_labeled
from ssl_bench.plugins.registry import Registry, create_dataset, list_datasets


def test_defaults_are_the_cpu_preset():
    config = resolve_config({}, {})
    assert config.preset == "cpu" and config.backbone == "resnet10t"
    assert config.iterations == 400 and config.epochs is None


def test_paper_preset_has_the_paper_settings():
    config = resolve_config({}, {"preset": "paper"})
    assert (config.backbone, config.image_size, config.batch_size) == (
        "densenet121.tv_in1k", 224, 48)
    assert (config.labeled_batch_size, config.lr, config.ema_decay) == (12, 1e-4, 0.99)
    assert config.pretrained and config.epochs == 100 and config.iterations is None
    assert config.weight_decay == 5e-4 and config.rampup == 0.3
    assert set(PRESETS) == {"cpu", "paper"}


def test_precedence_file_then_flags_and_iterations_vs_epochs():
    config = resolve_config({"lr": 0.01, "epochs": 3}, {"lr": 0.02})
    assert config.lr == 0.02 and config.epochs == 3 and config.iterations is None
    config = resolve_config({"epochs": 3}, {"iterations": 7})
    assert config.iterations == 7 and config.epochs is None
    config = resolve_config({"preset": "paper"}, {"iterations": 5})
    assert config.backbone == "densenet121.tv_in1k" and config.iterations == 5


@pytest.mark.parametrize("values,message", [
    ({"batch_size": 1}, "batch_size"),
    ({"labeled_batch_size": 100}, "labeled_batch_size"),
    ({"ema_decay": 1.0}, "ema_decay"),
    ({"rampup": 2.0}, "rampup"),
    ({"lr": 0}, "lr"),
    ({"split_ratios": (0.5, 0.3, 0.3)}, "sum to 1"),
    ({"lr_schedule": "step"}, "lr_schedule"),
    ({"preset": "gpu"}, "unknown preset"),
    ({"labeled": 0}, "--labeled"),
    # types and finiteness, checked once for flags and files alike (issue 9, item 11)
    ({"lr": float("nan")}, r"lr \(--lr\) must be a finite number, got nan"),
    ({"lr": float("inf")}, "finite"),
    ({"epochs": float("nan")}, r"epochs \(--epochs\) must be a finite number"),
    ({"consistency_weight": float("nan")}, "consistency_weight.*finite"),
    ({"seed": -1}, r"seed \(--seed\) must be >= 0"),
    ({"lr": "fast"}, "lr .*must be a number, got 'fast'"),
    ({"iterations": "ten"}, "iterations .*must be an integer"),
    ({"iterations": 10.5}, "iterations .*must be an integer"),
    ({"seed": "abc"}, "seed .*must be an integer"),
    ({"split_ratios": 0.5}, "split_ratios .*three finite numbers"),
    ({"pretrained": "yes"}, "pretrained .*true or false"),
    ({"split_file": 3}, r"split_file \(--split\) must be a string"),
])
def test_invalid_settings(values, message):
    with pytest.raises(UserError, match=message):
        config = resolve_config({}, values)
        from ssl_bench.data.splits.record import check_ratios as _check_ratios

        _check_ratios(config.split_ratios)


def test_config_file_errors_name_the_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("lr = 0.1\nbogus = 1\n")
    with pytest.raises(UserError, match=f"{path}.*bogus"):
        read_config_file(path)
    path.write_text("image-size = 64\n")
    assert read_config_file(path) == {"image_size": 64}


@pytest.mark.parametrize("text,value", [("0.2", 0.2), ("1", 1.0), ("1.0", 1.0), ("50", 50),
                                        ("250", 250)])
def test_parse_labeled(text, value):
    parsed = parse_labeled(text)
    assert parsed == value and type(parsed) is type(value)


def test_registry_suggests_the_closest_name():
    with pytest.raises(UserError, match="Did you mean 'digits'"):
        create_dataset("digts")
    assert {"digits", "digits-multilabel"} <= set(list_datasets())


def test_entry_point_plugins_are_loaded_and_failures_are_loud(monkeypatch):
    good = importlib.metadata.EntryPoint(
        name="good", value="tests_plugin_target:register", group="ssl_bench.methods")
    bad = importlib.metadata.EntryPoint(
        name="bad", value="no_such_module_xyz:thing", group="ssl_bench.methods")
    loaded = []

    import sys
    import types

    module = types.ModuleType("tests_plugin_target")
    module.register = lambda: None
    sys.modules["tests_plugin_target"] = module
    registry = Registry("method", "ssl_bench.methods", "ssl_bench.methods")

    def fake_entry_points(group):
        loaded.append(group)
        return [good]

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    registry.names()
    assert set(loaded) == {"ssl_bench.methods"}

    registry = Registry("method", "ssl_bench.methods", "ssl_bench.methods")
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [bad])
    with pytest.raises(UserError, match="plug-in 'bad'.*failed to import"):
        registry.names()


@pytest.mark.parametrize("line, message", [
    ('lr = "fast"', "lr must be a number, got 'fast'"),
    ('iterations = "ten"', "iterations must be an integer"),
    ('seed = "abc"', "seed must be an integer"),
    ("split_ratios = 0.5", None),
])
def test_config_file_values_of_the_wrong_type_name_the_file(tmp_path, line, message):
    path = tmp_path / "run.toml"
    path.write_text(line + "\n")
    with pytest.raises(UserError) as info:
        resolve_config(read_config_file(path), {})
    text = str(info.value)
    assert "\n" not in text
    assert (str(path) in text and message in text) if message else "split_ratios" in text
