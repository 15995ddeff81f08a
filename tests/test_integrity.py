"""Checkpoints check themselves: a damaged one is refused with a way out, never resumed."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from conftest import tiny_config

from ssl_bench.core.errors import UserError
from ssl_bench.runs.integrity import KEY, content_digest, load_verified, with_digest
from ssl_bench.training.runner import run


def _state() -> dict:
    return {"step": 3, "w": torch.arange(6, dtype=torch.float32).reshape(2, 3),
            "half": torch.ones(2, dtype=torch.bfloat16), "rng": np.arange(4),
            "history": [{"loss": 0.5, "auc": None}], "nested": {"t": (1, "a")}}


def test_digest_covers_every_value_and_ignores_its_own_record():
    state = _state()
    digest = content_digest(state)
    assert digest == content_digest(with_digest(state)) == content_digest(_state())
    changes = [("step", 4), ("history", [{"loss": 0.5000001, "auc": None}]),
               ("nested", {"t": (1, "b")}), ("rng", np.arange(1, 5))]
    for key, value in changes:
        assert content_digest({**state, key: value}) != digest, key
    flipped = state["w"].clone()
    flipped.view(torch.int32)[1, 1] ^= 1  # one bit of one float
    assert content_digest({**state, "w": flipped}) != digest
    assert content_digest({**state, "w": state["w"].reshape(3, 2)}) != digest  # same bytes
    assert content_digest({**state, "w": state["w"].double()}) != digest
    odd = torch.arange(6.0).reshape(1, 6)[:, 0].clone()  # one element, non-unit stride
    assert content_digest({"t": odd}) == content_digest({"t": torch.tensor([0.0])})


def test_round_trip_and_refusals(tmp_path):
    path = tmp_path / "c.pt"
    torch.save(with_digest(_state()), path)
    loaded = load_verified(path)
    assert KEY not in loaded and torch.equal(loaded["w"], _state()["w"])
    torch.save(_state(), path)  # no record
    with pytest.raises(UserError, match="no integrity record.*--overwrite"):
        load_verified(path)
    forged = with_digest(_state())
    forged["w"] = forged["w"] + 1
    torch.save(forged, path)
    with pytest.raises(UserError, match="does not match the checksum"):
        load_verified(path)


def _garble_middle(path):
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.seek(size // 2)
        handle.write(os.urandom(256))


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


@pytest.mark.parametrize("damage", [_garble_middle, _truncate])
def test_a_damaged_checkpoint_is_refused_and_overwrite_is_the_way_out(tmp_path, damage):
    out = tmp_path / "run"
    config = tiny_config(method="mt", iterations=4, eval_every=2)
    run(config, out, quiet=True, stop_after=2)
    checkpoint = out / "checkpoint.pt"
    damage(checkpoint)
    before = checkpoint.read_bytes()
    with pytest.raises(UserError, match=r"checkpoint.pt is damaged.*--overwrite") as caught:
        run(tiny_config(method="mt", iterations=4, eval_every=2), out, quiet=True,
            resume=True)
    assert "\n" not in str(caught.value)
    assert checkpoint.read_bytes() == before  # refused, nothing touched
    metrics = run(tiny_config(method="mt", iterations=4, eval_every=2), out, quiet=True,
                  overwrite=True)
    assert metrics["finished"]
    best = load_verified(out / "best.pt")  # best.pt carries its record too
    assert set(best) >= {"student", "teacher", "steps"}
