"""The fast path's switches (lwob.fastpath): resolved per device, recorded, reused by evaluation."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from lwob import fastpath
from lwob.errors import ConfigError
from lwob.fastpath import FastPath
from lwob.training import make_optimizer, resolve_hyperparameters

from test_training import HP, _train, tokenized  # noqa: F401 - the tokenized fixture


def test_auto_precision_follows_the_hardware(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(fastpath, "cpu_has_native_bf16", lambda: True)
    assert FastPath.resolve({"precision": "auto"}, cpu).precision == "bf16"
    monkeypatch.setattr(fastpath, "cpu_has_native_bf16", lambda: False)
    assert FastPath.resolve({}, cpu).precision == "fp32"
    assert FastPath.resolve({"precision": "bf16"}, cpu).precision == "bf16"  # asked for: kept


@pytest.mark.parametrize("key, value", [("precision", "fp16"), ("compile", "yes"), ("tf32", 1)])
def test_bad_switch_names_the_key(key, value):
    with pytest.raises(ConfigError, match=f"training.{key}"):
        resolve_hyperparameters({key: value})


def test_fused_optimizer_switch():
    model = torch.nn.Linear(4, 2)
    hp = resolve_hyperparameters({})
    assert make_optimizer(model, hp, torch.device("cpu")).defaults["fused"] is True
    hp = resolve_hyperparameters({"fused_optimizer": False})
    assert not make_optimizer(model, hp, torch.device("cpu")).defaults["fused"]


def test_records_without_a_fast_path_are_fp32():
    assert FastPath.from_record({"provenance": {}}).precision == "fp32"
    rec = {"provenance": {"fast_path": {"precision": "bf16", "tf32": False, "fused_optimizer": True, "compile": False}}}
    assert FastPath.from_record(rec) == FastPath("bf16", False, True, False)


def test_bf16_keeps_fp32_master_weights_and_is_recorded(tokenized, tmp_path):  # noqa: F811
    bf16 = _train(tokenized, tmp_path / "bf16", method="fft", options={}, hp={"precision": "bf16"})
    fp32 = _train(tokenized, tmp_path / "fp32", method="fft", options={}, hp={"precision": "fp32"})
    assert bf16["provenance"]["fast_path"]["precision"] == "bf16"
    assert fp32["provenance"]["fast_path"]["precision"] == "fp32"
    assert json.loads((tmp_path / "bf16" / "train.json").read_text())["provenance"]["fast_path"] == bf16["provenance"]["fast_path"]
    w16, w32 = load_file(tmp_path / "bf16" / "weights.safetensors"), load_file(tmp_path / "fp32" / "weights.safetensors")
    assert all(t.dtype == torch.float32 for t in w16.values())  # master weights stay fp32
    # the same training, computed at another precision: close, not equal
    assert any(not torch.equal(w16[k], w32[k]) for k in w16)
    diff = max((w16[k] - w32[k]).abs().max().item() for k in w16)
    assert diff < 5e-3
    # the same validation metric within noise (16 validation examples)
    assert abs(bf16["best_val_score"] - fp32["best_val_score"]) <= 0.25
