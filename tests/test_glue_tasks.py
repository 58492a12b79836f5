"""GLUE's remaining tasks with their own metrics: CoLA (Matthews correlation), MRPC (F1 and
accuracy), STS-B (regression, Pearson and Spearman). Config checks, scoring, the statistics'
corpus-metric bootstrap, the tables' metric per task, the GLUE TSV readers and the demo
stand-ins."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats as st

from lwob import tasks
from lwob.analysis import stats
from lwob.data import demo, formats
from lwob.data.sources import check_spec, materialize
from lwob.errors import ConfigError
from lwob.plan import config as cfg
from lwob.report import tables

from conftest import REPO

SCHEMA = REPO / "config/schemas/config.schema.yaml"


# --------------------------------------------------------------------------- config time

def _validate(config):
    return cfg.validate(config, SCHEMA, base_dir=REPO)


@pytest.mark.parametrize("task, key, value, match", [
    ("demo-cola", "metric", "mcc", r"^config key 'tasks\.demo-cola\.metric': unknown metric 'mcc' .*"
                                   r"\(known: accuracy, f1, matthews\)$"),
    ("demo-mrpc", "metrics", ["f1", "auc"], r"^config key 'tasks\.demo-mrpc\.metrics': unknown metric 'auc'.*"
                                           r"known: accuracy, f1, matthews"),
    ("demo-stsb", "metrics", ["pearson", "r2"], r"^config key 'tasks\.demo-stsb\.metrics': unknown metric 'r2'.*"
                                               r"\(known: pearson, spearman\)$"),
    ("demo-stsb", "metric", "accuracy", r"tasks\.demo-stsb\.metric': unknown metric 'accuracy'"),
    ("demo-stsb", "num_labels", 1, r"^config key 'tasks\.demo-stsb\.num_labels': a regression task has one output"),
    ("demo-mrpc", "metrics", [], r"tasks\.demo-mrpc\.metrics': expected a non-empty list"),
    ("demo-cola", "metrics", ["f1", "f1"], r"tasks\.demo-cola\.metrics': a metric is listed twice"),
])
def test_bad_metric_or_stsb_num_labels_fails_at_config_time(demo_config, task, key, value, match):
    entry = demo_config["tasks"][task]
    entry.pop("metric", None), entry.pop("metrics", None)
    entry[key] = value
    with pytest.raises(ConfigError, match=match) as e:
        _validate(demo_config)
    assert "\n" not in str(e.value)  # one clear line


def test_f1_needs_two_labels_and_one_metric_key(demo_config):
    demo_config["tasks"]["demo-mrpc"]["num_labels"] = 3
    with pytest.raises(ConfigError, match=r"tasks\.demo-mrpc\.metrics': f1 is the F1 of label 1 and needs num_labels 2"):
        _validate(demo_config)
    c = copy.deepcopy(demo_config)
    c["tasks"]["demo-cola"]["metrics"] = ["accuracy"]
    with pytest.raises(ConfigError, match=r"tasks\.demo-cola\.metric': give either 'metric' or 'metrics'"):
        _validate(c)


def test_task_metrics_and_defaults(demo_config):
    c = _validate(demo_config)
    assert cfg.task_metrics(c) == {"demo-sst2": "accuracy", "demo-rte": "accuracy", "demo-squad": "f1", "demo-squad-lm": "f1",
                                   "demo-cola": "matthews", "demo-mrpc": "f1", "demo-stsb": "pearson",
                                   "demo-viggo": "exact_match", "demo-sql": "exact_match",
                                   "demo-gsm8k": "flexible_accuracy"}
    assert tasks.get("regression").metrics({}) == ["pearson", "spearman"]
    assert tasks.get("classification").metrics(None) == ["accuracy"]


def test_unknown_generator_one_line(demo_config):
    demo_config["datasets"]["demo_sentiment"]["generator"] = "poetry"
    with pytest.raises(ConfigError, match=r"datasets\.demo_sentiment\.generator.*'poetry'.*acceptability.*similarity") as e:
        _validate(demo_config)
    assert "\n" not in str(e.value)


# --------------------------------------------------------------------------- scoring

def _features(labels, dtype=pa.int64()):
    return pa.table({"idx": pa.array(np.arange(len(labels)), type=pa.int64()), "labels": pa.array(labels, type=dtype)})


def test_classification_metrics_are_corpus_metrics():
    import torch

    labels = np.array([1, 1, 0, 0, 1, 0, 1, 1, 0, 1])
    preds = np.array([1, 0, 0, 1, 1, 0, 1, 1, 1, 1])
    logits = torch.nn.functional.one_hot(torch.from_numpy(preds), 2).float()
    kind = tasks.get("classification")
    m, p = kind.score({"logits": logits}, _features(labels), None, {"metrics": ["f1", "accuracy", "matthews"]})
    assert list(m) == ["f1", "accuracy", "matthews", "n"]
    tp, tn, fp, fn = 5, 2, 2, 1
    assert m["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert m["accuracy"] == pytest.approx(0.7)
    mcc = (tp * tn - fp * fn) / np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert m["matthews"] == pytest.approx(mcc)
    assert list(p.columns) == ["idx", "label", "pred", "prob", "correct"]
    # a task without metric keys scores exactly as before: accuracy and n only
    m0, _ = kind.score({"logits": logits}, _features(labels), None, {})
    assert m0 == {"accuracy": pytest.approx(0.7), "n": 10}
    # multi-class Matthews against its definition (Gorodkin): a perfect and a constant prediction
    y = np.array([0, 1, 2, 2, 1, 0])
    assert kind.METRICS["matthews"](y[None], y[None])[0] == pytest.approx(1.0)
    assert kind.METRICS["matthews"](y[None], np.zeros_like(y)[None])[0] == 0.0


def test_regression_scoring_and_head():
    import torch

    rng = np.random.default_rng(0)
    labels = rng.uniform(0, 5, 40)
    preds = labels + rng.normal(0, 1, 40)
    kind = tasks.get("regression")
    m, p = kind.score({"logits": torch.from_numpy(preds).float()[:, None]}, _features(labels, pa.float32()), None,
                      {"label_range": [0, 5]})
    y32, x32 = labels.astype(np.float32).astype(float), preds.astype(np.float32).astype(float)
    assert list(m) == ["pearson", "spearman", "n"]
    assert m["pearson"] == pytest.approx(st.pearsonr(x32, y32)[0], abs=1e-9)
    assert m["spearman"] == pytest.approx(st.spearmanr(x32, y32)[0], abs=1e-9)
    assert ((p["correct"] >= 0) & (p["correct"] <= 1)).all()
    assert p["correct"].to_numpy() == pytest.approx(np.clip(1 - np.abs(x32 - y32) / 5, 0, 1))
    assert kind.model_kwargs({"num_labels": None}) == {"num_labels": 1, "problem_type": "regression"}
    enc_df = pd.DataFrame({"sentence1": ["a b", "c"], "sentence2": ["d", "e f"], "label": [3.8, 0.0], "idx": [0, 1]})

    class Tok:
        def __call__(self, *texts, **kw):
            return {"input_ids": [[1, 2, 3]] * len(texts[0])}

    feats, _ = kind.encode(Tok(), enc_df, {"text_fields": ["sentence1", "sentence2"], "max_length": 8}, train=True)
    assert feats.column("labels").type == pa.float32()
    assert feats.column("labels").to_pylist() == pytest.approx([3.8, 0.0])


# --------------------------------------------------------------------------- statistics

def test_primary_metric_takes_the_task_metric():
    assert stats.primary_metric({"accuracy", "f1"}, "origin") == "accuracy"  # names alone: as before
    assert stats.primary_metric({"accuracy", "f1"}, "origin", task_metric="f1") == "f1"
    assert stats.primary_metric({"matthews"}, "adv", task_metric="matthews") == "matthews"
    assert stats.primary_metric({"pearson", "spearman"}, "origin") == "pearson"
    assert stats.primary_metric({"em", "f1", "adv_f1", "adv_em"}, "adv", task_metric="f1") == "adv_f1"
    assert stats.primary_metric({"em", "f1"}, "origin") == "f1"


def test_corpus_bootstrap_recomputes_the_metric():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 120)
    a = np.where(rng.random((2, 120)) < 0.85, y, 1 - y)
    b = np.where(rng.random((2, 120)) < 0.65, y, 1 - y)
    mcc = tasks.get("classification").METRICS["matthews"]
    bs = stats.paired_bootstrap_corpus(y, a, b, mcc, n_boot=2000, seed=0)
    expected = np.mean([mcc(y[None], a[s][None])[0] - mcc(y[None], b[s][None])[0] for s in range(2)])
    assert bs.diff == pytest.approx(expected)
    assert bs.low < bs.diff < bs.high and bs.p < 0.05 and bs.n_examples == 120 and bs.n_seeds == 2
    same = stats.paired_bootstrap_corpus(y, a, a, mcc, n_boot=500)
    assert same.diff == 0 and same.p == 1.0
    assert stats.corpus_metric("matthews") is mcc and stats.corpus_metric("accuracy") is None
    assert stats.corpus_metric("spearman") is tasks.get("regression").METRICS["spearman"]


def test_compare_to_reference_uses_the_task_metric_and_corpus_bootstrap():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 80)
    mcc = tasks.get("classification").METRICS["matthews"]
    rows, preds = [], {}
    for method, acc in (("fft", 0.9), ("lora", 0.7)):
        for seed in (0, 42):
            p = np.where(rng.random(80) < acc, y, 1 - y)
            preds[("m", "cola", method, seed)] = pd.DataFrame(
                {"eval_set": "origin", "idx": np.arange(80), "label": y, "pred": p, "correct": (p == y).astype(float)})
            for metric, value in (("matthews", mcc(y[None], p[None])[0]), ("accuracy", float((p == y).mean()))):
                rows.append({"model": "m", "task": "cola", "method": method, "seed": seed, "eval_set": "origin",
                             "kind": "origin", "column": "cola", "metric": metric, "value": value, "n": 80})
    metrics = pd.DataFrame(rows)
    out = stats.compare_to_reference(metrics, preds, n_boot=500, task_metrics={"cola": "matthews"})
    assert out["metric"].tolist() == ["matthews"]
    r = out.iloc[0]
    assert r["boot_diff"] == pytest.approx(r["diff"]) and r["n_examples"] == 80 and not r["note"]
    assert stats.compare_to_reference(metrics, preds, n_boot=50)["metric"].tolist() == ["accuracy"]
    stab = stats.stability(metrics, task_metrics={"cola": "matthews"})
    assert set(stab["metric"]) == {"matthews"}


# --------------------------------------------------------------------------- tables

def test_robustness_table_shows_each_tasks_metric(demo_config, tmp_path):
    c = _validate(demo_config)
    from lwob.plan.dependencies import presentation

    shown = presentation(c)
    study = {"layout": "robustness_table", "models": ["minilm"], "methods": ["fft"],
             "tasks": ["demo-cola", "demo-mrpc", "demo-stsb"]}
    cols = tables.robustness_layout(study, shown["tasks"])
    got = {(col.group, col.sub): col.sources for col in cols}
    assert got[("demo-cola", "origin")] == [("demo-cola", "origin", "matthews")]
    assert got[("demo-mrpc", "adv")] == [("demo-mrpc", "adv", "f1")]
    assert got[("demo-stsb", "origin")] == [("demo-stsb", "origin", "pearson")]
    rows = []
    for task, metric, value in (("demo-cola", "matthews", 0.41), ("demo-mrpc", "f1", 0.8), ("demo-mrpc", "accuracy", 0.7),
                                ("demo-stsb", "pearson", 0.9)):
        for es in ("origin", "adv"):
            rows.append({"model": "minilm", "task": task, "method": "fft", "eval_set": es, "kind": es, "column": task,
                         "metric": metric, "mean": value, "std": 0.01, "n": 2, "seeds": "0,42",
                         "values": f"{value - 0.01},{value + 0.01}"})
    latex, df = tables.study_table(pd.DataFrame(rows), study, shown["tasks"], shown["models"], shown["methods"],
                                   REPO / "reports/templates/robustness_table.tex.j2", tmp_path / "t.tex", tmp_path / "t.csv")
    cell = df[(df["column"] == "demo-mrpc") & (df["split"] == "origin")].iloc[0]
    assert cell["metric"] == "f1" and cell["mean"] == pytest.approx(80.0)
    assert "Matthews correlation for CoLA (demo)" in latex and "F1 for MRPC (demo)" in latex
    assert "Pearson correlation for STS-B (demo)" in latex and "Accuracy (" not in latex
    # the accuracy-only tables keep their legend
    acc = {"layout": "robustness_table", "models": ["minilm"], "methods": ["fft"], "tasks": ["demo-sst2"]}
    latex2, _ = tables.study_table(pd.DataFrame(rows), acc, shown["tasks"], shown["models"], shown["methods"],
                                   REPO / "reports/templates/robustness_table.tex.j2", tmp_path / "a.tex", tmp_path / "a.csv")
    assert "Accuracy (\\%)" in latex2


# --------------------------------------------------------------------------- GLUE's original files

COLA_TRAIN = ("gj04\t1\t\tOur friends won't buy this analysis, let alone the next one we propose.\n"
              "gj04\t1\t\tOne more pseudo generalization and I'm giving up.\n"
              "gj04\t0\t*\tThey drank the pub.\n")
COLA_TEST = "index\tsentence\n0\tBill whistled past the house.\n1\tThe car honked its way down the road.\n"
MRPC_TRAIN = ("\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
              "1\t702876\t702977\tAmrozi accused his brother , whom he called \" the witness \" , of deliberately "
              "distorting his evidence .\tReferring to him as only \" the witness \" , Amrozi accused his brother of "
              "deliberately distorting his evidence .\n"
              "0\t2108705\t2108831\tYucaipa owned Dominick 's before selling the chain to Safeway in 1998 for $ 2.5 "
              "billion .\tYucaipa bought Dominick 's in 1995 for $ 880 million , but sold it to Safeway for $ 1.8 "
              "billion in 1998 .\n")
STSB_TRAIN = ("index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
              "0\tmain-captions\tMSRvid\t2012test\t0001\tnone\tnone\tA plane is taking off.\tAn air plane is taking off.\t5.000\n"
              "1\tmain-captions\tMSRvid\t2012test\t0004\tnone\tnone\tA man is playing a large flute.\tA man is playing a flute.\t3.800\n"
              "2\tmain-captions\tMSRvid\t2012test\t0005\tnone\tnone\tA man is spreading shreded cheese on a pizza.\t"
              "A man is spreading shredded cheese on an uncooked pizza.\t3.800\n")
STSB_TEST = ("index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\n"
             "0\tmain-captions\tMSRvid\t2012test\t0024\tnone\tnone\tA girl is styling her hair.\tA girl is brushing her hair.\n")


def test_glue_original_tsvs(tmp_path):
    for name, text in (("CoLA/train.tsv", COLA_TRAIN), ("CoLA/test.tsv", COLA_TEST), ("MRPC/train.tsv", MRPC_TRAIN),
                       ("STS-B/train.tsv", STSB_TRAIN), ("STS-B/test.tsv", STSB_TEST)):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    cola = materialize("cola", {"source": "local", "format": "cola",
                                "files": {"train": "CoLA/train.tsv", "test": "CoLA/test.tsv"}}, tmp_path / "o1", tmp_path)
    train = pd.read_parquet(tmp_path / "o1/train.parquet")
    assert list(train.columns) == ["source", "original_mark", "sentence", "label", "idx"]
    assert train["label"].tolist() == [1, 1, 0] and train["sentence"][0].startswith("Our friends won't")
    assert pd.read_parquet(tmp_path / "o1/test.parquet")["label"].tolist() == [-1, -1]
    assert cola["files"]["train"]["records"] == 3
    materialize("mrpc", {"source": "local", "format": "mrpc", "files": {"train": "MRPC/train.tsv"}}, tmp_path / "o2", tmp_path)
    mrpc = pd.read_parquet(tmp_path / "o2/train.parquet")
    assert mrpc["label"].tolist() == [1, 0] and mrpc["label"].dtype == np.int64
    assert mrpc["sentence1"][0].count('"') == 2 and mrpc["id1"].tolist() == ["702876", "2108705"]
    materialize("stsb", {"source": "local", "format": "stsb",
                         "files": {"train": "STS-B/train.tsv", "test": "STS-B/test.tsv"}}, tmp_path / "o3", tmp_path)
    stsb = pd.read_parquet(tmp_path / "o3/train.parquet")
    assert stsb["label"].dtype == np.float64 and stsb["label"].tolist() == [5.0, 3.8, 3.8]
    assert stsb["sentence2"][1] == "A man is playing a flute."
    assert pd.read_parquet(tmp_path / "o3/test.parquet")["label"].tolist() == [-1]
    (tmp_path / "bad.tsv").write_text("gj04\t1\tOne field short.\n")
    with pytest.raises(Exception, match=r"CoLA line\(s\) \[1\] do not have 4 fields"):
        formats.read_table(tmp_path / "bad.tsv", "cola", "x")
    with pytest.raises(Exception, match="not an MRPC file"):
        formats.read_table(tmp_path / "CoLA/train.tsv", "mrpc", "x")


def test_hub_stsb_float_labels_normalise():
    df = pd.DataFrame({"sentence1": ["a", "b"], "sentence2": ["c", "d"], "label": np.array([4.2, 1.0], dtype=np.float32),
                       "idx": [0, 1]})
    out = formats.normalise(df, "glue_stsb", "train")
    assert out["label"].dtype == np.float64 and out["label"].tolist() == pytest.approx([4.2, 1.0])


def test_paper_config_pins_the_glue_tasks(paper_config):
    ds = paper_config["datasets"]
    for name, config in (("glue_cola", "cola"), ("glue_mrpc", "mrpc"), ("glue_stsb", "stsb")):
        assert ds[name]["path"] == "nyu-mll/glue" and ds[name]["name"] == config
        assert ds[name]["revision"] == ds["glue_sst2"]["revision"]
    t = paper_config["tasks"]
    assert t["cola"]["metric"] == "matthews" and t["mrpc"]["metrics"][0] == "f1" and t["stsb"]["kind"] == "regression"
    assert "num_labels" not in t["stsb"]


# --------------------------------------------------------------------------- demo stand-ins

@pytest.mark.parametrize("gen, cols", [("acceptability", ["sentence"]), ("paraphrase", ["sentence1", "sentence2"]),
                                       ("similarity", ["sentence1", "sentence2"])])
def test_demo_stand_ins(tmp_path, gen, cols):
    spec = {"source": "demo", "generator": gen, "seed": 5, "n_train": 120, "n_validation": 24, "n_test": 48}
    check_spec("d", spec)
    a = materialize("d", spec, tmp_path / "a")
    b = materialize("d", dict(spec), tmp_path / "b")
    assert a["files"] == b["files"] and a["revision"] == demo.GENERATOR_VERSION
    d = demo.generate(spec)
    assert [len(d[s]) for s in ("train", "validation", "test", "adv")] == [120, 24, 48, 48]
    assert list(d["adv"].columns) == [*cols, "perturbation", "label", "idx"]
    assert d["adv"]["label"].tolist() == d["test"]["label"].tolist()
    assert all((d["adv"][cols].to_numpy() != d["test"][cols].to_numpy()).any(axis=1))
    train = set(map(tuple, d["train"][cols].to_numpy().tolist()))
    assert not train & set(map(tuple, d["test"][cols].to_numpy().tolist()))
    if gen == "similarity":
        assert d["test"]["label"].dtype == np.float64
        assert sorted(d["test"]["label"].value_counts().to_dict().items()) == [(float(k), 8) for k in range(6)]
    else:
        assert d["test"]["label"].value_counts().to_dict() == {0: 24, 1: 24}


def test_similarity_score_follows_overlap():
    d = demo.generate({"generator": "similarity", "seed": 0, "n_train": 60, "n_validation": 6, "n_test": 6})["train"]
    overlap = [len(set(a.split()) & set(b.split())) / len(set(a.split()) | set(b.split()))
               for a, b in zip(d["sentence1"], d["sentence2"])]
    assert st.spearmanr(overlap, d["label"])[0] > 0.8


def _slot_values(sentence, slots):
    """The slot values of a similarity sentence, read left to right (`<v1> <v2> ... <v5> .`)."""
    rest, out = sentence, []
    for values in slots:
        v = next(v for v in values if rest.startswith(v + " "))
        out.append(v)
        rest = rest[len(v) + 1:]
    assert rest == "."
    return out


@pytest.mark.parametrize("seed", [0, 31])
def test_similarity_score_is_the_count_of_shared_slots(seed):
    # what makes the stand-in learnable: the score is read off the pair, slot by slot, word for word
    from lwob.data.demo import similarity

    d = demo.generate({"generator": "similarity", "seed": seed, "n_train": 240, "n_validation": 48, "n_test": 96})
    for split in ("train", "validation", "test"):
        for a, b, y in d[split][["sentence1", "sentence2", "label"]].itertuples(index=False):
            va, vb = _slot_values(a, similarity._SLOTS), _slot_values(b, similarity._SLOTS)
            assert sum(x == z for x, z in zip(va, vb)) == y, (a, b, y)
            # a changed slot shares no content word with the value it replaces (no partial overlap)
            stop = {"the", "a", "an", "my"}
            assert all(not (set(x.split()) & set(z.split())) - stop for x, z in zip(va, vb) if x != z)


@pytest.mark.parametrize("seed", [0, 29])
def test_paraphrase_label_follows_the_lexical_rule(seed):
    # label 1 iff sentence2 keeps the person, the thing and the verb (or its listed synonym) of
    # sentence1 and is not negated; a non-paraphrase breaks exactly one of these; place and day stay
    import re

    from lwob.data.demo import paraphrase

    verbs = {past: {past, part, *(f for syn in syns for f in syn)} for past, part, syns in paraphrase._VERBS}
    d = demo.generate({"generator": "paraphrase", "seed": seed, "n_train": 240, "n_validation": 48, "n_test": 96})
    assert d["train"]["label"].value_counts().to_dict() == {0: 120, 1: 120}  # no label noise by default
    for split in ("train", "validation", "test"):
        for a, b, y in d[split][["sentence1", "sentence2", "label"]].itertuples(index=False):
            m = re.fullmatch(r"(the \w+) (.+?) the (\w+) ((?:in|near|at|by|outside) the [\w ]+?) "
                             r"(on \w+|last week|yesterday|this morning) \.", a)
            assert m, a
            who, verb, thing, place, day = m.groups()
            kept = [f"{who} " in b or b.endswith(f"by {who} {day} ."),
                    f"the {thing} " in b,
                    any(re.search(rf"(?:^| ){re.escape(v)} (?:the|by) ", b) for v in verbs[verb]),
                    "never" not in b.split()]
            assert place in b and day in b
            assert (y == 1 and all(kept)) or (y == 0 and kept.count(False) == 1), (a, b, y, kept)


def test_generator_registry():
    assert {"sentiment", "entailment", "qa", "acceptability", "paraphrase", "similarity"} <= set(demo.known())
    streams = [demo.REGISTRY[g].stream for g in demo.known()]
    assert len(set(streams)) == len(streams)
    assert demo.REGISTRY["sentiment"].stream == 0 and demo.REGISTRY["qa"].stream == 2  # fixed: the rows depend on them
    with pytest.raises(ConfigError, match=r"generator: unknown demo generator 'x' \(known: acceptability, "):
        demo.resolve_spec({"generator": "x"})
    with pytest.raises(ConfigError, match=r"variants: only the qa generator"):
        demo.resolve_spec({"generator": "paraphrase", "variants": 2})
