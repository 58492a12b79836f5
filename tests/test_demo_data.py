"""lwob.data.demo: deterministic offline demo tasks."""

from __future__ import annotations

import pytest

from lwob.data import demo
from lwob.data.demo import sentiment
from lwob.data.sources import check_spec, materialize
from lwob.errors import ConfigError


@pytest.mark.parametrize("gen", ["sentiment", "entailment"])
def test_demo_deterministic_bytes(tmp_path, gen):
    spec = {"source": "demo", "generator": gen, "seed": 3}
    a = materialize("d", spec, tmp_path / "a")
    b = materialize("d", dict(spec), tmp_path / "b")
    assert a["files"] == b["files"]
    assert set(a["files"]) == {"train", "validation", "test", "adv"}
    c = materialize("d", {**spec, "seed": 4}, tmp_path / "c")
    assert c["files"]["train"]["sha256"] != a["files"]["train"]["sha256"]
    assert a["revision"] == demo.GENERATOR_VERSION


@pytest.mark.parametrize("gen, cols", [("sentiment", ["sentence"]), ("entailment", ["sentence1", "sentence2"])])
def test_demo_shapes_balance_and_adv(gen, cols):
    d = demo.generate({"generator": gen, "seed": 1, "n_train": 300, "n_validation": 60, "n_test": 80})
    assert [len(d[s]) for s in ("train", "validation", "test", "adv")] == [300, 60, 80, 80]
    for s in ("validation", "test", "adv"):
        assert d[s]["label"].value_counts().to_dict() == {0: len(d[s]) // 2, 1: len(d[s]) // 2}
    assert abs(d["train"]["label"].mean() - 0.5) <= 0.05  # 5% label noise on balanced labels
    assert list(d["test"].columns) == [*cols, "label", "idx"]
    assert list(d["adv"].columns) == [*cols, "perturbation", "label", "idx"]
    # adv: one perturbed variant per test example, same idx and label, different text
    assert d["adv"]["idx"].tolist() == d["test"]["idx"].tolist()
    assert d["adv"]["label"].tolist() == d["test"]["label"].tolist()
    assert all((d["adv"][cols].to_numpy() != d["test"][cols].to_numpy()).any(axis=1))
    assert set(d["adv"]["perturbation"]) == set(demo.PERTURBATIONS)
    # held-out test sentences never appear in train; short sentences
    train = set(map(tuple, d["train"][cols].to_numpy().tolist()))
    assert not train & set(map(tuple, d["test"][cols].to_numpy().tolist()))
    assert max(len(t.split()) for c in cols for t in d["adv"][c]) <= 30


def test_synonyms_are_held_out():
    d = demo.generate({"generator": "sentiment", "seed": 0, "perturbations": ["synonym"]})
    vocab = {w for s in ("train", "validation", "test") for t in d[s]["sentence"] for w in t.split()}
    rare = {w for syns in sentiment._SYN.values() for w in syns}
    assert not vocab & rare
    adv_words = {w for t in d["adv"]["sentence"] for w in t.split()}
    assert adv_words & rare
    assert set(d["adv"]["perturbation"]) == {"synonym"}


def test_only_listed_perturbations():
    d = demo.generate({"generator": "entailment", "seed": 0, "n_test": 50, "perturbations": ["typo"]})
    assert set(d["adv"]["perturbation"]) <= {"typo", "distractor"}  # distractor only as a fallback


@pytest.mark.parametrize("bad", [{"generator": "x"}, {"generator": "sentiment", "n_train": -1},
                                 {"generator": "sentiment", "perturbations": ["paraphrase"]},
                                 {"generator": "sentiment", "label_noise": 0.7}])
def test_demo_bad_spec(bad):
    with pytest.raises(ConfigError):
        demo.resolve_spec(bad)
    with pytest.raises(ConfigError, match=r"datasets\.d"):
        check_spec("d", {"source": "demo", **bad})
