"""lwob.data.sources / formats: local formats, checksums, errors, hub loading (offline)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from lwob.data import formats
from lwob.data.sources import check_spec, is_available, materialize
from lwob.errors import ConfigError, DataError
from lwob.io import read_json, sha256_file

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(),
                                  reason=f"real dataset copies not found at {SHARED} (../shared/data)")


def _split(out: Path, split: str) -> pd.DataFrame:
    return pd.read_parquet(out / f"{split}.parquet")


def test_tsv_with_quotes(tmp_path):
    f = tmp_path / "a.tsv"
    f.write_text('sentence\tlabel\nit \'s a "great" film\t1\n" unbalanced quote\t0\n')
    m = materialize("t", {"source": "local", "files": {"train": "a.tsv"}}, tmp_path / "out", base_dir=tmp_path)
    df = _split(tmp_path / "out", "train")
    assert list(df.columns) == ["sentence", "label", "idx"]
    assert df["sentence"].tolist() == ['it \'s a "great" film', '" unbalanced quote']
    assert df["label"].dtype == "int64" and df["idx"].dtype == "int64"
    assert df["idx"].tolist() == [0, 1]
    assert m["files"]["train"] == {"path": "train.parquet", "sha256": sha256_file(tmp_path / "out/train.parquet"),
                                  "records": 2}
    assert m["source_files"] == {"a.tsv": sha256_file(f)}
    assert read_json(tmp_path / "out/manifest.json") == json.loads(json.dumps(m))
    assert m["dataset"] == "t" and m["source"] == "local" and m["revision"] is None


def test_csv_json_jsonl_parquet_label_map_and_columns(tmp_path):
    (tmp_path / "a.csv").write_text("text,gold\nfine,pos\nbad,neg\n")
    (tmp_path / "b.json").write_text(json.dumps({"data": [{"text": "x", "gold": "neg", "idx": 7}]}))
    (tmp_path / "c.jsonl").write_text('{"text": "y", "gold": "pos"}\n\n{"text": "z", "gold": "neg"}\n')
    pd.DataFrame({"text": ["p"], "gold": ["pos"]}).to_parquet(tmp_path / "d.parquet")
    (tmp_path / "e.json").write_text(json.dumps([{"text": "w", "gold": "pos"}]))
    spec = {"source": "local", "files": {"a": "a.csv", "b": "b.json", "c": "c.jsonl", "d": "d.parquet", "e": "e.json"},
            "label_map": {"neg": 0, "pos": 1}, "columns": {"gold": "label"}}
    check_spec("x", spec, tmp_path)
    m = materialize("x", spec, tmp_path / "out", base_dir=tmp_path)
    assert {k: v["records"] for k, v in m["files"].items()} == {"a": 2, "b": 1, "c": 2, "d": 1, "e": 1}
    assert _split(tmp_path / "out", "a")["label"].tolist() == [1, 0]
    b = _split(tmp_path / "out", "b")
    assert b["idx"].tolist() == [7] and b["label"].tolist() == [0] and list(b.columns) == ["text", "label", "idx"]
    assert _split(tmp_path / "out", "c")["text"].tolist() == ["y", "z"]


def test_string_labels_without_label_map(tmp_path):
    (tmp_path / "a.csv").write_text("sentence,label\nfine,pos\n")
    with pytest.raises(DataError, match=r"(?s)'x'.*a\.csv.*non-integer labels.*label_map"):
        materialize("x", {"source": "local", "files": {"train": "a.csv"}}, tmp_path / "o", base_dir=tmp_path)


def test_missing_label_column(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"sentence": "x"}\n')
    with pytest.raises(DataError, match=r"(?s)'x'.*a\.jsonl.*no 'label' column"):
        materialize("x", {"source": "local", "files": {"train": "a.jsonl"}}, tmp_path / "o", base_dir=tmp_path)


def test_unknown_label_in_label_map(tmp_path):
    (tmp_path / "a.csv").write_text("sentence,label\nfine,meh\n")
    with pytest.raises(DataError, match="meh"):
        materialize("x", {"source": "local", "files": {"train": "a.csv"}, "label_map": {"pos": 1}},
                    tmp_path / "o", base_dir=tmp_path)


def test_checksum_mismatch_shows_both_hashes(tmp_path):
    f = tmp_path / "a.tsv"
    f.write_text("sentence\tlabel\nx\t1\n")
    actual = sha256_file(f)
    spec = {"source": "local", "files": {"train": "a.tsv"}, "sha256": {"train": "0" * 64}}
    with pytest.raises(DataError) as e:
        materialize("x", spec, tmp_path / "o", base_dir=tmp_path)
    msg = str(e.value)
    assert "0" * 64 in msg and actual in msg and "a.tsv" in msg and "'x'" in msg
    assert not (tmp_path / "o" / "manifest.json").exists()
    spec["sha256"] = {"a.tsv": actual}  # keyed by file name also works
    assert materialize("x", spec, tmp_path / "o", base_dir=tmp_path)["source_files"] == {"a.tsv": actual}


def test_check_spec_missing_file_names_key_and_path(tmp_path):
    spec = {"source": "local", "files": {"train": "nope/train.tsv"}}
    with pytest.raises(ConfigError, match=r"datasets\.x\.files\.train.*nope/train\.tsv"):
        check_spec("x", spec, tmp_path)
    with pytest.raises(DataError, match=r"'x'.*nope/train\.tsv.*not found"):
        materialize("x", spec, tmp_path / "o", base_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"datasets\.adv\.file.*dev\.json"):
        check_spec("adv", {"source": "local", "format": "advglue", "file": "dev.json"}, tmp_path)


@pytest.mark.parametrize("spec, pattern", [
    ({"source": "ftp"}, r"datasets\.x\.source"),
    ({"source": "local", "files": {"train": "a.xlsx"}}, r"datasets\.x\.files\.train.*extension"),
    ({"source": "local", "files": {"train": "a.tsv"}, "format": "xml"}, r"datasets\.x\.format"),
    ({"source": "local", "file": "a.json"}, r"datasets\.x\.format"),
    ({"source": "local"}, r"datasets\.x"),
    ({"source": "hub", "path": "a/b", "splits": ["train"]}, r"datasets\.x\.revision"),
    ({"source": "demo", "generator": "poetry"}, r"datasets\.x.*generator"),
    ({"source": "local", "files": {"train": "a.tsv"}, "sha256": {"test": "0" * 64}}, r"datasets\.x\.sha256\.test"),
    ({"source": "local", "files": {"train": "a.tsv"}, "optional": "yes"}, r"datasets\.x\.optional.*true or false"),
    ({"source": "hub", "path": "a/b", "revision": "r", "splits": ["train"], "optional": True},
     r"datasets\.x\.optional.*only local"),
    ({"source": "local", "files": {"train": "a.json"}, "format": "squad", "optional": True, "sha256": {"dev": "0" * 64}},
     r"datasets\.x\.sha256\.dev"),
])
def test_check_spec_config_errors(tmp_path, spec, pattern):
    with pytest.raises(ConfigError, match=pattern):
        check_spec("x", spec, tmp_path)


@pytest.mark.parametrize("spec, pattern", [
    # issue 13: a misspelt key used to be ignored (no checksum; the default count)
    ({"source": "local", "files": {"train": "a.tsv"}, "sha265": {"train": "0" * 64}},
     r"datasets\.x\.sha265: unknown key for a local dataset \(did you mean 'sha256'\?\); allowed: columns, file, "
     r"files, format, label_map, labelled, optional, sha256, source, split_off, tables"),
    ({"source": "demo", "generator": "sentiment", "n_trian": 50},
     r"datasets\.x\.n_trian: unknown key for a demo dataset \(did you mean 'n_train'\?\); allowed: adversaries, "),
    ({"source": "hub", "path": "a/b", "revision": "r", "splits": ["train"], "sha256": {"train": "0" * 64}},
     r"datasets\.x\.sha256: unknown key for a hub dataset \(only local datasets take checksums"),
    ({"source": "local", "files": {"../up": "a.tsv"}}, r"datasets\.x\.files\.\.\./up: invalid split name '\.\./up'"),
])
def test_each_source_takes_only_its_own_keys(tmp_path, spec, pattern):
    (tmp_path / "a.tsv").write_text("sentence\tlabel\nfine\t1\n")
    with pytest.raises(ConfigError, match=pattern):
        check_spec("x", spec, tmp_path)
    with pytest.raises(ConfigError, match=pattern):  # materialising it directly refuses it too
        materialize("x", spec, tmp_path / "out", base_dir=tmp_path)
    assert not (tmp_path / "out").exists()


def test_optional_dataset_missing_files(tmp_path):
    """optional: true -> a missing file is not a config error; is_available says False."""
    spec = {"source": "local", "format": "squad", "optional": True, "files": {"adv": "user/addsent.json"}}
    check_spec("adv", spec, tmp_path)  # no error
    assert is_available("adv", spec, tmp_path) is False
    with pytest.raises(DataError, match=r"'adv'.*addsent\.json.*not found.*optional.*is_available"):
        materialize("adv", spec, tmp_path / "o", base_dir=tmp_path)
    # the same spec without optional: the ConfigError naming the key, as before
    required = {k: v for k, v in spec.items() if k != "optional"}
    with pytest.raises(ConfigError, match=r"datasets\.adv\.files\.adv.*user/addsent\.json"):
        check_spec("adv", required, tmp_path)
    assert is_available("adv", required, tmp_path) is True  # not skippable: load reports the error
    assert is_available("adv", dict(spec, optional=False), tmp_path) is True
    # a partly present optional dataset is not available
    (tmp_path / "user").mkdir()
    (tmp_path / "user/addsent.json").write_text("{}")
    two = dict(spec, files={"adv": "user/addsent.json", "adv2": "user/other.json"})
    check_spec("adv", two, tmp_path)
    assert is_available("adv", two, tmp_path) is False
    assert is_available("adv", spec, tmp_path) is True
    with pytest.raises(ConfigError, match=r"datasets\.adv\.source"):  # structure is still checked
        is_available("adv", dict(spec, source="ftp"), tmp_path)


def test_optional_dataset_present_loads(tmp_path):
    (tmp_path / "a.tsv").write_text("sentence\tlabel\nx\t1\n")
    spec = {"source": "local", "optional": True, "files": {"train": "a.tsv"}}
    check_spec("x", spec, tmp_path)
    assert is_available("x", spec, tmp_path) is True
    assert materialize("x", spec, tmp_path / "o", base_dir=tmp_path)["files"]["train"]["records"] == 1
    for source_spec in ({"source": "demo", "generator": "sentiment"},
                        {"source": "hub", "path": "a/b", "revision": "r", "splits": ["train"]}):
        assert is_available("x", source_spec, tmp_path) is True


def test_format_from_path():
    assert formats.format_from_path("a/dev-v1.1.json.zip") == "squad"
    assert formats.format_from_path("a/dev.JSON") == "json"
    assert formats.format_from_path("a/b.xlsx") is None
    assert "squad" in formats.FILE_FORMATS and "advglue" not in formats.FILE_FORMATS


def test_relative_paths_resolve_against_cwd_by_default(tmp_path, monkeypatch):
    (tmp_path / "a.tsv").write_text("sentence\tlabel\nx\t1\n")
    monkeypatch.chdir(tmp_path)
    check_spec("x", {"source": "local", "files": {"train": "a.tsv"}})
    assert materialize("x", {"source": "local", "files": {"train": "a.tsv"}}, Path("out"))["files"]["train"]["records"] == 1


def test_advglue_format_small(tmp_path):
    (tmp_path / "dev.json").write_text(json.dumps({
        "sst2": [{"idx": 0, "sentence": "a", "label": 1}, {"idx": 3, "sentence": "b", "label": 0}],
        "mnli-mm": [{"idx": 0, "premise": "p", "hypothesis": "h", "label": 2}],
    }))
    m = materialize("adv", {"source": "local", "format": "advglue", "file": "dev.json"}, tmp_path / "o",
                    base_dir=tmp_path)
    assert {k: v["records"] for k, v in m["files"].items()} == {"sst2": 2, "mnli-mm": 1}
    assert list(_split(tmp_path / "o", "mnli-mm").columns) == ["premise", "hypothesis", "label", "idx"]


def test_hub_source_with_local_dataset_dir(tmp_path, monkeypatch):
    """The hub code path, run against a local Parquet folder (datasets supports that)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "ds"
    src.mkdir()
    pd.DataFrame({"sentence": ["a", "b", "c"], "label": [0, 1, -1], "idx": [0, 1, 2]}).to_parquet(src / "train.parquet")
    pd.DataFrame({"sentence": ["d"], "label": [1], "idx": [0]}).to_parquet(src / "validation.parquet")
    spec = {"source": "hub", "path": str(src), "name": None, "revision": "main", "splits": ["train", "validation"]}
    check_spec("h", spec)
    m = materialize("h", spec, tmp_path / "out")
    assert m["revision"] == "main" and m["source"] == "hub"
    assert {k: v["records"] for k, v in m["files"].items()} == {"train": 3, "validation": 1}
    df = _split(tmp_path / "out", "train")
    assert df["label"].tolist() == [0, 1, -1] and df["label"].dtype == "int64"


def test_hub_errors_are_data_errors(tmp_path, monkeypatch):
    import datasets

    def boom(*a, **k):
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", boom)
    spec = {"source": "hub", "path": "nyu-mll/glue", "name": "sst2", "revision": "abc", "splits": ["train"]}
    with pytest.raises(DataError, match=r"'g'.*nyu-mll/glue.*sst2.*abc.*offline"):
        materialize("g", spec, tmp_path / "o")


def test_write_parquet_deterministic(tmp_path):
    df = pd.DataFrame({"sentence": ["a", "b"], "label": [0, 1], "idx": [0, 1]})
    formats.write_parquet(df, tmp_path / "a.parquet")
    formats.write_parquet(df.copy(), tmp_path / "b.parquet")
    assert sha256_file(tmp_path / "a.parquet") == sha256_file(tmp_path / "b.parquet")


# ----------------------------------------------------------------------- real files

@needs_shared
def test_real_advglue(tmp_path):
    m = materialize("advglue", {"source": "local", "format": "advglue", "file": str(SHARED / "advglue/dev.json")},
                    tmp_path / "o")
    counts = {k: v["records"] for k, v in m["files"].items()}
    assert counts == {"sst2": 148, "qqp": 78, "mnli": 121, "mnli-mm": 162, "qnli": 148, "rte": 81}
    rte = _split(tmp_path / "o", "rte")
    assert list(rte.columns) == ["sentence1", "sentence2", "label", "idx"]
    assert set(rte["label"]) <= {0, 1}


@needs_shared
def test_real_sst2_dev_tsv(tmp_path):
    m = materialize("sst2", {"source": "local", "files": {"validation": "glue/SST-2/dev.tsv"}}, tmp_path / "o",
                    base_dir=SHARED)
    assert m["files"]["validation"]["records"] == 872
    df = _split(tmp_path / "o", "validation")
    assert set(df["label"]) == {0, 1} and df["sentence"].str.len().min() > 0


@needs_shared
def test_real_rte_parquet(tmp_path):
    spec = {"source": "local", "files": {"train": "glue/RTE/train.parquet", "validation": "glue/RTE/validation.parquet"}}
    check_spec("rte", spec, SHARED)
    m = materialize("rte", spec, tmp_path / "o", base_dir=SHARED)
    assert {k: v["records"] for k, v in m["files"].items()} == {"train": 2490, "validation": 277}
    assert _split(tmp_path / "o", "train")["idx"].dtype == "int64"
