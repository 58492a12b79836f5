"""Weight increments (Figure 1): what each method changed, the statistics, the selector, the figure."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

import torch  # noqa: E402 (a dependency: missing, the tests fail)

from lwob.analysis import increments as inc  # noqa: E402
from lwob import methods  # noqa: E402

META = {"num_labels": 2, "max_length": 16}
OPTIONS = {"lora": {"r": 4, "alpha": 8}, "adalora": {"init_r": 6, "target_r": 2},
           "prefix": {"num_virtual_tokens": 5}, "topk": {"k": 1}}
LAST_Q = "roberta.encoder.layer.1.attention.self.query"


@pytest.fixture(scope="module")
def tiny_roberta(tmp_path_factory):
    from transformers import RobertaConfig, RobertaForSequenceClassification

    cfg = RobertaConfig(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=66, pad_token_id=1, num_labels=2)
    d = tmp_path_factory.mktemp("roberta")
    torch.manual_seed(0)
    RobertaForSequenceClassification(cfg).save_pretrained(d)
    return d


def _base_state(model_dir) -> dict:
    """The pretrained weights as stored (the base model, no head initialisation)."""
    from safetensors.torch import load_file

    return load_file(str(model_dir / "model.safetensors"))


def _build(model_dir, method, seed=3, total_steps=40):
    from lwob.run.training import build_run_model

    model, *_ = build_run_model(model_dir=model_dir, meta=META, method_type=method,
                                method_options=OPTIONS.get(method, {}), seed=seed, total_steps=total_steps)
    return model


def _trained_run(model_dir, method, tmp_path, seed=3, scale=0.05, perturb=None):
    """Build, perturb the trainable tensors (a stand-in for training), save; return the
    trained in-memory model and the weights path."""
    model = _build(model_dir, method, seed)
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.requires_grad:
                if perturb and perturb(n, p, g):
                    continue
                p.add_(torch.randn(p.shape, generator=g) * scale)
    path = tmp_path / f"{method}.safetensors"
    methods.save_trained(model, path)
    return model, path


def _increments(model_dir, method, weights, seed=3, total_steps=40):
    return inc.run_increments(model_dir=model_dir, meta=META, method_type=method,
                              method_options=OPTIONS.get(method, {}), weights=weights, seed=seed,
                              total_steps=total_steps)


# --------------------------------------------------------------------------- increments per method


def _randomise_b(n, p, g):
    """LoRA B starts at zero: give it (and A) random values so the update is not zero."""
    if ".lora_B." in n or ".lora_A." in n:
        p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        return True
    return False


@pytest.mark.parametrize("method", ["lora", "adalora"])
def test_lora_increment_is_merged_minus_base(method, tiny_roberta, tmp_path):
    def perturb(n, p, g):
        if ".lora_E." in n:  # AdaLoRA's singular values start at zero as well
            p.copy_(torch.randn(p.shape, generator=g))
            return True
        return _randomise_b(n, p, g)

    model, weights = _trained_run(tiny_roberta, method, tmp_path, perturb=perturb)
    result = _increments(tiny_roberta, method, weights)
    merged = copy.deepcopy(model).merge_and_unload()
    merged_state = dict(merged.named_parameters())
    base = _base_state(tiny_roberta)
    adapted = [i for i in result.increments if i.part == "layer"]
    assert {i.submodule for i in adapted} == {"attention.self.query", "attention.self.value"}
    assert {i.param for i in adapted} == {"weight"} and len(adapted) == 4
    for i in adapted:
        expected = (merged_state[i.name] - base[i.name]).detach().numpy()
        assert np.abs(expected).max() > 1e-3
        np.testing.assert_allclose(i.value, expected, atol=1e-6, rtol=1e-5)
    if method == "lora":  # the definition: B A * alpha / r
        q = model.base_model.model.roberta.encoder.layer[1].attention.self.query
        manual = (q.lora_B["default"].weight @ q.lora_A["default"].weight * (8 / 4)).detach().numpy()
        np.testing.assert_allclose(result[LAST_Q + ".weight"].value, manual, rtol=1e-5, atol=1e-7)
        assert result.stats().set_index("name").loc[LAST_Q + ".weight", "effective_rank"] <= 4 + 1e-6
    # the head: trained minus its seeded initialisation, named as in the plain model
    head = [i for i in result.increments if i.part == "head"]
    assert {i.name for i in head} == {"classifier.dense.weight", "classifier.dense.bias",
                                      "classifier.out_proj.weight", "classifier.out_proj.bias"}
    fresh = dict(_build(tiny_roberta, method).named_parameters())
    trained = dict(model.named_parameters())
    key = "base_model.model.classifier.modules_to_save.default.out_proj.weight"
    np.testing.assert_allclose(result["classifier.out_proj.weight"].value,
                               (trained[key] - fresh[key]).detach().numpy(), atol=1e-7)


def test_bitfit_touches_only_biases(tiny_roberta, tmp_path):
    model, weights = _trained_run(tiny_roberta, "bitfit", tmp_path)
    result = _increments(tiny_roberta, "bitfit", weights)
    body = [i for i in result.increments if i.part != "head"]
    assert body and all(i.param == "bias" for i in body)
    assert all(np.abs(i.value).max() > 0 for i in body)
    base = _base_state(tiny_roberta)
    trained = dict(model.named_parameters())
    name = LAST_Q + ".bias"
    np.testing.assert_allclose(result[name].value, (trained[name] - base[name]).detach().numpy(), atol=1e-7)
    # the chosen module (last query) is changed in its bias only
    sel = result.select("last.query")
    assert set(sel) == {"bias"} and inc.shown_param(sel) == "bias"


def test_ia3_vectors_minus_one(tiny_roberta, tmp_path):
    model, weights = _trained_run(tiny_roberta, "ia3", tmp_path)
    result = _increments(tiny_roberta, "ia3", weights)
    trained = dict(model.named_parameters())
    body = [i for i in result.increments if i.part != "head"]
    assert {i.param for i in body} == {"ia3_l"}
    assert {i.submodule for i in body} == {"attention.self.key", "attention.self.value", "output.dense"}
    for i in body:
        raw = trained[f"base_model.model.{i.module}.ia3_l.default"]
        np.testing.assert_allclose(i.value, (raw - 1).detach().numpy().ravel(), atol=1e-7)
        assert i.value.ndim == 1
    assert result.select("last.query") == {}  # IA3 does not touch the query
    assert set(result.select("last.output.dense")) == {"ia3_l"}
    assert result["roberta.encoder.layer.1.output.dense.ia3_l"].value.shape == (64,)  # FFN: input side


@pytest.mark.parametrize("method", ["fft", "topk"])
def test_fft_and_topk_are_trained_minus_initial(method, tiny_roberta, tmp_path):
    model, weights = _trained_run(tiny_roberta, method, tmp_path)
    result = _increments(tiny_roberta, method, weights)
    base = _base_state(tiny_roberta)
    trained = dict(model.named_parameters())
    fresh = dict(_build(tiny_roberta, method).named_parameters())  # same seed: the same head init
    names = result.names()
    for name in names:
        init = base[name] if name in base else fresh[name]
        np.testing.assert_allclose(result[name].value, (trained[name] - init).detach().numpy(), atol=1e-7)
    if method == "fft":
        assert set(names) == {n for n, _ in model.named_parameters()}
        assert result["roberta.embeddings.word_embeddings.weight"].part == "other"
    else:
        assert {i.layer for i in result.increments if i.part == "layer"} == {1}
    assert set(result.select(None)) == {"weight", "bias"}
    assert result.select(None)["weight"].name == LAST_Q + ".weight"


def test_prefix_increments_are_the_learned_prefixes(tiny_roberta, tmp_path):
    model, weights = _trained_run(tiny_roberta, "prefix", tmp_path)
    result = _increments(tiny_roberta, "prefix", weights)
    emb = model.prompt_encoder["default"].embedding.weight.detach().view(5, 2 * 2, 32)
    for layer in (0, 1):
        for j, kv in enumerate(("key", "value")):
            i = result[f"roberta.encoder.layer.{layer}.prefix.{kv}"]
            assert i.part == "prefix" and i.layer == layer and i.value.shape == (5, 32)
            np.testing.assert_allclose(i.value, emb[:, 2 * layer + j].numpy())
    assert result.select("last.query") == {}
    assert list(result.select("last.prefix")) == ["key", "value"]
    assert list(result.select("-1.prefix:value")) == ["value"]


def test_untrained_lora_has_zero_update(tiny_roberta, tmp_path):
    model = _build(tiny_roberta, "lora")
    methods.save_trained(model, tmp_path / "w.safetensors")
    result = _increments(tiny_roberta, "lora", tmp_path / "w.safetensors")
    assert all(np.all(i.value == 0) for i in result.increments)
    row = result.stats().iloc[0]
    assert np.isnan(row["kurtosis"]) and np.isnan(row["effective_rank"]) and row["std"] == 0


# --------------------------------------------------------------------------- names and selector


def test_normalise_name():
    n = inc.normalise_name
    assert n("base_model.model.roberta.encoder.layer.1.attention.self.query.base_layer.weight") == \
        "roberta.encoder.layer.1.attention.self.query.weight"
    assert n("base_model.model.classifier.modules_to_save.default.dense.bias") == "classifier.dense.bias"
    assert n("base_model.model.roberta.encoder.layer.0.attention.self.key.ia3_l.default") == \
        "roberta.encoder.layer.0.attention.self.key.ia3_l"
    assert n("roberta.encoder.layer.0.output.dense.weight") == "roberta.encoder.layer.0.output.dense.weight"


def test_selector_parsing():
    p = inc.parse_selector
    assert inc.default_selector("roberta") == "last.query"
    assert inc.default_selector("opt") == "last.q_proj"
    assert inc.default_selector("unknown-family") == "last.query"
    assert p(None, 12, "roberta") == (11, "query", None)
    assert p("default", 24, "opt") == (23, "q_proj", None)
    assert p("-2.attention.self.value", 12) == (10, "attention.self.value", None)
    assert p("0.output.dense:bias", 12) == (0, "output.dense", "bias")
    assert p("classifier.out_proj", 12) == (None, "classifier.out_proj", None)
    with pytest.raises(ValueError, match="outside"):
        p("12.query", 12)
    with pytest.raises(ValueError, match="module path"):
        p("last", 12)


def test_selector_matching_and_ambiguity(tiny_roberta, tmp_path):
    _, weights = _trained_run(tiny_roberta, "fft", tmp_path)
    result = _increments(tiny_roberta, "fft", weights)
    assert result.select("0.attention.self.query")["weight"].name == \
        "roberta.encoder.layer.0.attention.self.query.weight"
    assert result.select("last.output.dense")["weight"].name == "roberta.encoder.layer.1.output.dense.weight"
    assert result.select("classifier.out_proj")["weight"].part == "head"
    assert list(result.select("last.query:bias")) == ["bias"]
    with pytest.raises(ValueError, match="ambiguous"):
        result.select("last.dense")


# --------------------------------------------------------------------------- statistics


def test_summary_stats_against_numpy_scipy():
    from scipy import stats

    rng = np.random.default_rng(0)
    x = rng.standard_t(5, size=(40, 30)).astype(np.float32)
    s = inc.summary_stats(x)
    flat = x.astype(np.float64).ravel()
    assert s["numel"] == 1200
    assert s["std"] == pytest.approx(np.std(flat))
    assert s["mean"] == pytest.approx(np.mean(flat))
    assert s["mean_abs"] == pytest.approx(np.mean(np.abs(flat)))
    assert s["kurtosis"] == pytest.approx(stats.kurtosis(flat))
    assert s["max_abs"] == pytest.approx(np.max(np.abs(flat)))
    assert s["frobenius"] == pytest.approx(np.linalg.norm(x.astype(np.float64)))
    sv = np.linalg.svd(flat.reshape(40, 30), compute_uv=False)
    p = sv / sv.sum()
    assert s["effective_rank"] == pytest.approx(np.exp(-(p * np.log(p)).sum()))
    v = inc.summary_stats(np.array([1.0, -2.0, 3.0, 0.5]))
    assert np.isnan(v["effective_rank"]) and v["kurtosis"] == pytest.approx(stats.kurtosis([1.0, -2.0, 3.0, 0.5]))
    assert np.isnan(inc.summary_stats(np.ones((3, 1)))["effective_rank"])  # a column vector is no matrix


def test_effective_rank_known_matrices():
    u, v = np.arange(1, 7, dtype=float), np.linspace(-1, 2, 5)
    assert inc.effective_rank(np.outer(u, v)) == pytest.approx(1.0, abs=1e-6)
    for n in (1, 4, 17, 100):  # 100: the fast Gram-matrix route for large matrices
        assert inc.effective_rank(np.eye(n)) == pytest.approx(n)
    rng = np.random.default_rng(2)
    assert inc.effective_rank(np.outer(rng.normal(size=300), rng.normal(size=200))) == pytest.approx(1.0, abs=1e-9)
    big = rng.normal(size=(300, 120))
    sv = np.linalg.svd(big, compute_uv=False)
    p = sv / sv.sum()
    assert inc.effective_rank(big) == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-10)
    assert inc.effective_rank(np.diag([1.0, 1.0, 0.0, 0.0])) == pytest.approx(2.0)
    assert np.isnan(inc.effective_rank(np.zeros((3, 3))))


def test_stats_table_and_csv(tiny_roberta, tmp_path):
    import pandas as pd

    _, weights = _trained_run(tiny_roberta, "bitfit", tmp_path)
    result = _increments(tiny_roberta, "bitfit", weights)
    df = result.stats(model="tiny", task="t", method="bitfit", seed=3, method_type="bitfit")
    assert list(df.columns) == inc.COLUMNS and len(df) == len(result.increments)
    assert (df["method"] == "bitfit").all() and (df["seed"] == 3).all()
    inc.write_stats_csv(df, tmp_path / "s.csv")
    back = pd.read_csv(tmp_path / "s.csv")
    assert back["name"].tolist() == df["name"].tolist()
    np.testing.assert_allclose(back["std"], df["std"], rtol=1e-8)


# --------------------------------------------------------------------------- file entry points and figure


def _fake_run(tiny_roberta, method, root, seed=3):
    run_dir = root / "runs" / method
    run_dir.mkdir(parents=True)
    perturb = _randomise_b if method in ("lora", "adalora") else None
    _, weights = _trained_run(tiny_roberta, method, run_dir, seed=seed, perturb=perturb)
    weights.rename(run_dir / "weights.safetensors")
    (run_dir / "train.json").write_text(json.dumps(
        {"model": "tiny", "task": "demo", "method": method, "seed": seed, "total_steps": 40}))
    return run_dir


def test_run_entry_and_figure(tiny_roberta, tmp_path):
    tok = tmp_path / "tok"
    tok.mkdir()
    (tok / "meta.json").write_text(json.dumps({**META, "kind": "classification"}))
    selected = {}
    for method in ("fft", "lora", "bitfit", "ia3", "prefix"):
        run_dir = _fake_run(tiny_roberta, method, tmp_path)
        out_csv, out_sel = tmp_path / "inc" / f"{method}.csv", tmp_path / "inc" / f"{method}.selected.safetensors"
        df = inc.write_run_increments(model_dir=tiny_roberta, tokenized_dir=tok, run_dir=run_dir,
                                      method_type=method, method_options=OPTIONS.get(method, {}),
                                      out_csv=out_csv, out_selected=out_sel)
        assert out_csv.is_file() and (df["method"] == method).all()
        tensors, md = inc.load_selected(out_sel)
        assert md["selector"] == "last.query" and md["method"] == method and md["seed"] == "3"
        expected = {"fft": {"weight", "bias"}, "lora": {"weight"}, "bitfit": {"bias"}, "ia3": set(), "prefix": set()}
        assert set(tensors) == expected[method]
        selected[method] = out_sel
    methods_cfg = {"fft": {"type": "fft"}, "lora": {"type": "lora"}, "bitfit": {"type": "bitfit"},
                   "ia3": {"type": "ia3"}, "prefix": {"type": "prefix"}}
    for layout in ("faceted", "overlay"):
        pdf, png = tmp_path / f"fig-{layout}.pdf", tmp_path / f"fig-{layout}.png"
        summary = inc.write_increment_figure(selected=selected, methods=methods_cfg, out_pdf=pdf, out_png=png,
                                             layout=layout, out_csv=tmp_path / f"fig-{layout}.csv")
        assert pdf.read_bytes().startswith(b"%PDF") and png.read_bytes().startswith(b"\x89PNG")
        assert summary["method"].tolist() == list(selected)
        s = summary.set_index("method")
        assert s.loc["lora", "label"] == "LoRA" and s.loc["bitfit", "param"] == "bias"
        assert s.loc["ia3", "n"] == 0 and np.isnan(s.loc["ia3", "std"])
        assert s.loc["fft", "n"] == 32 * 32
        # reproducible bytes
        inc.write_increment_figure(selected=selected, methods=methods_cfg, out_pdf=tmp_path / "again.pdf",
                                   out_png=tmp_path / "again.png", layout=layout)
        assert (tmp_path / "again.pdf").read_bytes() == pdf.read_bytes()
        assert (tmp_path / "again.png").read_bytes() == png.read_bytes()


def test_histograms_from_arrays(tmp_path):
    rng = np.random.default_rng(1)
    summary = inc.increment_histograms({"fft": rng.normal(0, 1e-3, 500), "lora": rng.normal(0, 1e-2, (20, 20)),
                                        "ia3": None}, tmp_path / "h.pdf", tmp_path / "h.png", module="q")
    assert (tmp_path / "h.pdf").stat().st_size > 0 and (tmp_path / "h.png").stat().st_size > 0
    assert summary.set_index("method").loc["lora", "n"] == 400
    assert summary.set_index("method").loc["fft", "std"] == pytest.approx(1e-3, rel=0.15)
