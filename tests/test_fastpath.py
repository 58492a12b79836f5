"""The fast path's switches (lwob.run.fastpath): resolved per device, recorded, reused by evaluation."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from lwob.run import fastpath
from lwob.errors import ConfigError
from lwob.run.fastpath import FastPath
from lwob.run.training import make_optimizer, resolve_hyperparameters

from training_data import _train


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


def test_bf16_keeps_fp32_master_weights_and_is_recorded(tokenized, tmp_path):
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


@pytest.mark.parametrize("method, options", [("lora", None), ("ia3", {}), ("bitfit", {})])
def test_frozen_weights_stored_in_bf16_change_nothing(tokenized, tmp_path, monkeypatch, method, options):
    """Under bf16 the frozen linear weights are stored in bf16 once instead of being cast by
    autocast in every forward: the same training, bit for bit."""
    cast = _train(tokenized, tmp_path / "cast", method=method, options=options, hp={"precision": "bf16"})
    monkeypatch.setattr(fastpath, "cast_frozen_linear_weights", lambda model, dtype=None: 0)
    plain = _train(tokenized, tmp_path / "plain", method=method, options=options, hp={"precision": "bf16"})
    assert cast["epochs"] == plain["epochs"]
    wa, wb = load_file(tmp_path / "cast" / "weights.safetensors"), load_file(tmp_path / "plain" / "weights.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert all(t.dtype == torch.float32 for t in wa.values())  # trainable tensors: fp32


def test_large_buffers_kept_on_the_heap_change_nothing(tokenized, tmp_path, monkeypatch):
    """The training loop keeps large buffers on the heap (glibc) and says so in its record; the
    same FFT without it trains the same weights, bit for bit; a GPU's memory is left alone."""
    import contextlib

    import lwob.run.training as lt

    heap = _train(tokenized, tmp_path / "heap", method="fft", options={}, hp={"precision": "bf16"})
    assert heap["provenance"]["heap_allocations"] is True  # glibc on this Linux
    monkeypatch.setattr(fastpath, "heap_allocations", lambda device: contextlib.nullcontext(False))
    plain = _train(tokenized, tmp_path / "plain", method="fft", options={}, hp={"precision": "bf16"})
    assert plain["provenance"]["heap_allocations"] is False and heap["epochs"] == plain["epochs"]
    assert heap["weights_sha256"] == plain["weights_sha256"]
    monkeypatch.undo()
    with fastpath.heap_allocations(torch.device("cuda")) as applied:
        assert applied is False
    with fastpath.heap_allocations(torch.device("cpu")) as applied:  # and it can be entered again
        assert applied is True and lt.torch.ones(1 << 24).sum() == 1 << 24


def test_cast_frozen_linear_weights_leaves_trainable_ones():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 2))
    model[0].requires_grad_(False)
    model[1].requires_grad_(False)
    assert fastpath.cast_frozen_linear_weights(model) == 2
    assert model[0].weight.dtype == torch.bfloat16 and model[0].bias.dtype == torch.bfloat16
    assert model[1].weight.dtype == torch.float32  # layer norms run in fp32 under autocast
    assert model[2].weight.dtype == torch.float32


def test_evaluation_scores_at_the_recorded_precision(tokenized, tmp_path):
    """A bf16 run is evaluated under bf16 (its linear weights stored in bf16 once): the
    validation part scored as an eval set gives exactly the validation score training saw."""
    import shutil

    from lwob.run.evaluation import evaluate_run
    from lwob.io import write_json
    from training_data import MINILM

    options = {"r": 4, "alpha": 8, "dropout": 0.1}
    record = _train(tokenized, tmp_path / "run", method="lora", options=options, hp={"precision": "bf16"})
    val_dir = tmp_path / "valset"
    val_dir.mkdir()
    shutil.copy(tokenized / "validation.parquet", val_dir / "validation.parquet")
    write_json(val_dir / "validation.json", {"eval_set": "validation", "kind": "origin", "column": "c", "scoring": {}})
    out = evaluate_run(model_dir=MINILM, tokenized_dir=tokenized, run_dir=tmp_path / "run", method_type="lora",
                       method_options=options, eval_parts=[val_dir / "validation.json"], out_json=tmp_path / "e.json",
                       out_predictions=tmp_path / "e.parquet", threads=1)
    assert record["provenance"]["fast_path"]["precision"] == "bf16"
    assert out["metrics"]["validation"]["accuracy"] == record["best_val_score"]


# --------------------------------------------------------------------------- first position only

FIRST_POSITION_METHODS = [("fft", {}), ("lora", {"r": 4}), ("ia3", {}), ("bitfit", {}),
                          ("adalora", {"init_r": 4, "target_r": 2})]


def _logits_and_grads(model, batch: dict) -> tuple[torch.Tensor, dict]:
    model.eval()  # no dropout: the two computations are then the same function, to rounding
    out = model(**batch)
    out.loss.backward()
    return out.logits.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


def _padded_batch(vocab: int) -> dict:
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab, (4, 12), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 7:] = mask[3, 3:] = 0
    return {"input_ids": ids.masked_fill(mask == 0, 0), "attention_mask": mask, "labels": torch.tensor([0, 1, 1, 0])}


def _assert_same(full, first):
    (logits_a, grads_a), (logits_b, grads_b) = full, first
    torch.testing.assert_close(logits_b, logits_a, rtol=1e-5, atol=1e-6)
    assert grads_a.keys() == grads_b.keys() and grads_a
    scale = max(g.abs().max().item() for g in grads_a.values())
    for name, g in grads_a.items():
        # attention key biases: their true gradient is zero (softmax ignores a shift); what is
        # computed is rounding noise either way, hence a tolerance on the gradients' scale
        torch.testing.assert_close(grads_b[name], g, rtol=1e-4, atol=1e-5 * scale, msg=name)


@pytest.mark.parametrize("method, options", FIRST_POSITION_METHODS)
def test_the_last_layer_computing_only_the_first_position_changes_no_logit_or_gradient(method, options):
    """MiniLM (BERT) classifies from [CLS]: its last layer computing only that position gives
    the same logits and gradients, padded rows included, for every method it applies to."""
    from lwob import tasks
    from lwob.run.training import build_run_model

    from training_data import MINILM

    meta = {"kind": "classification", "num_labels": 2, "max_length": 32}
    batch = _padded_batch(2000)
    runs = []
    for first in (False, True):
        model, *_ = build_run_model(model_dir=MINILM, meta=meta, method_type=method, method_options=options, seed=0,
                                    total_steps=10)
        if first:
            assert fastpath.first_position_last_layer(model, tasks.get("classification")) is None
        runs.append(_logits_and_grads(model, batch))
    _assert_same(*runs)


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_first_position_only_on_roberta_with_either_attention(attention):
    from transformers import RobertaConfig, RobertaForSequenceClassification

    from lwob import tasks

    config = RobertaConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=64, max_position_embeddings=40, num_labels=2)
    runs = []
    for first in (False, True):
        torch.manual_seed(0)
        model = RobertaForSequenceClassification(config)
        model.config._attn_implementation = attention
        if first:
            assert fastpath.first_position_last_layer(model, tasks.get("classification")) is None
        runs.append(_logits_and_grads(model, _padded_batch(100)))
    _assert_same(*runs)


def test_first_position_only_is_left_out_where_the_head_reads_more(tokenized, tmp_path):
    from lwob import tasks
    from lwob.run.training import build_run_model

    from training_data import MINILM

    def why_not(kind, method="lora", options=None, meta=None):
        model, *_ = build_run_model(model_dir=MINILM, meta=meta or {"kind": kind, "num_labels": 2, "max_length": 32},
                                    method_type=method, method_options=options or {}, seed=0, total_steps=10)
        return fastpath.first_position_last_layer(model, tasks.get(kind))

    assert "every position" in why_not("extractive_qa", meta={"kind": "extractive_qa", "max_length": 32})
    assert "prompt learning" in why_not("classification", "prefix", {"num_virtual_tokens": 2})
    # and a run records whether its last layer did
    assert _train(tokenized, tmp_path / "lora")["batching"]["last_layer_first_position_only"] is True
    assert _train(tokenized, tmp_path / "prefix", method="prefix",
                  options={"num_virtual_tokens": 2})["batching"]["last_layer_first_position_only"] is False
