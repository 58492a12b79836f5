"""The generation track's data (Table 1: ViGGO, SQL generation, GSM8K): unlabelled text datasets
(``labelled: false``) read from small files in the original releases' formats, through dataset
specs as a user writes them (lwob.data.sources, lwob.data.formats)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from lwob.data import formats, sources
from lwob.data.sources import check_spec, is_available, materialize
from lwob.errors import ConfigError, DataError
from lwob.io import read_json, sha256_file
from lwob.plan import config as cfg

ROOT = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------- original formats

# ViGGO's release (viggo-{train,valid,test}.csv): header mr,ref; fields with commas are quoted,
# quotes inside doubled.
VIGGO_TRAIN = (
    'mr,ref\n'
    '"inform(name[Tomb Raider], rating[good], genres[action-adventure])",'
    '"Tomb Raider is a good action-adventure game, with ""puzzles"" too."\n'
    'request(specifier[interesting]),Is there an interesting game you like?\n'
)
VIGGO_VALID = 'mr,ref\n"give_opinion(name[Portal 2], rating[excellent])","Portal 2 is excellent, I think."\n'
VIGGO_TEST = '\ufeffmr,ref\n"verify_attribute(name[Doom], esrb[M (for Mature)])","Doom, the M-rated one?"\n'

SQL = [
    {"question": "How many heads of the departments are older than 56 ?",
     "context": "CREATE TABLE head (age INTEGER)", "answer": "SELECT COUNT(*) FROM head WHERE age > 56"},
    {"question": "What is the nationality of Ken Hall?",
     "context": "CREATE TABLE table_name_12 (nationality VARCHAR, player VARCHAR)",
     "answer": 'SELECT nationality FROM table_name_12 WHERE player = "Ken Hall"'},
]

# Spider: tables.json (two databases; department_management has three tables) and records that
# carry the fields the reader drops (query_toks, sql, ...).
SPIDER_TABLES = [
    {"db_id": "department_management",
     "table_names_original": ["department", "head", "management"],
     "table_names": ["department", "head", "management"],
     "column_names_original": [[-1, "*"], [0, "Department_ID"], [0, "Name"], [0, "Budget_in_Billions"],
                               [1, "head_ID"], [1, "name"], [1, "age"],
                               [2, "department_ID"], [2, "head_ID"], [2, "temporary_acting"]],
     "column_names": [[-1, "*"], [0, "department id"], [0, "name"], [0, "budget in billions"],
                      [1, "head id"], [1, "name"], [1, "age"],
                      [2, "department id"], [2, "head id"], [2, "temporary acting"]],
     "column_types": ["text", "number", "text", "number", "number", "text", "number", "number", "number", "text"],
     "primary_keys": [1, 4, 7], "foreign_keys": [[8, 4], [7, 1]]},
    {"db_id": "concert_singer",
     "table_names_original": ["singer"],
     "table_names": ["singer"],
     "column_names_original": [[-1, "*"], [0, "Singer_ID"], [0, "Song release year"], [0, "Is_male"],
                               [0, "Joined"]],
     "column_names": [[-1, "*"], [0, "singer id"], [0, "song release year"], [0, "is male"], [0, "joined"]],
     "column_types": ["text", "number", "text", "boolean", "time"],
     "primary_keys": [1], "foreign_keys": []},
]
DEPARTMENT_CONTEXT = ("CREATE TABLE department (Department_ID INTEGER, Name VARCHAR, Budget_in_Billions INTEGER), "
                      "CREATE TABLE head (head_ID INTEGER, name VARCHAR, age INTEGER), "
                      "CREATE TABLE management (department_ID INTEGER, head_ID INTEGER, temporary_acting VARCHAR)")
SINGER_CONTEXT = 'CREATE TABLE singer (Singer_ID INTEGER, "Song release year" VARCHAR, Is_male VARCHAR, Joined VARCHAR)'


def _spider_record(db_id: str, question: str, query: str) -> dict:
    return {"db_id": db_id, "question": question, "query": query,
            "query_toks": query.split(), "query_toks_no_value": query.lower().split(),
            "question_toks": question.split(), "sql": {"select": [False, []], "from": {"table_units": []}}}


SPIDER_DEV = [
    _spider_record("department_management", "How many heads of the departments are older than 56 ?",
                   "SELECT count(*) FROM head WHERE age  >  56"),
    _spider_record("concert_singer", "How many singers do we have?", "SELECT count(*) FROM singer"),
]
SPIDER_TRAIN = [_spider_record("concert_singer", "List the singers' ids.", "SELECT Singer_ID FROM singer")]

GSM8K_TRAIN = [
    {"question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips "
                 "in May. How many clips did Natalia sell altogether in April and May?",
     "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips "
               "altogether in April and May.\n#### 72"},
    {"question": "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. "
                 "How much did she earn?",
     "answer": "Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\nWorking 50 minutes, she earned "
               "0.2 x 50 = $<<0.2*50=10>>10.\n#### 10"},
]
GSM8K_TEST = [{"question": "Janet has 3 apples and buys 2 more. How many apples does she have?",
               "answer": "3 + 2 = <<3+2=5>>5\n#### 5"}]


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def _split(out: Path, split: str) -> pd.DataFrame:
    return pd.read_parquet(out / f"{split}.parquet")


def _one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg, msg
    return msg


@pytest.fixture()
def spider_files(tmp_path):
    base = tmp_path / "data/external/spider"
    _write(base / "tables.json", json.dumps(SPIDER_TABLES))
    _write(base / "dev.json", json.dumps(SPIDER_DEV, indent=2))
    _write(base / "train_spider.json", json.dumps(SPIDER_TRAIN))
    return base


def _spider_spec(**extra) -> dict:
    spec = {"source": "local", "format": "spider", "labelled": False,
            "tables": "data/external/spider/tables.json",
            "files": {"train": "data/external/spider/train_spider.json",
                      "validation": "data/external/spider/dev.json"}}
    spec.update(extra)
    return spec


# --------------------------------------------------------------------------- ViGGO

def test_viggo_original_csv(tmp_path):
    base = tmp_path / "data/external/viggo"
    files = {"train": _write(base / "viggo-train.csv", VIGGO_TRAIN),
             "validation": _write(base / "viggo-valid.csv", VIGGO_VALID),
             "test": _write(base / "viggo-test.csv", VIGGO_TEST)}
    spec = {"source": "local", "labelled": False,
            "files": {s: f"data/external/viggo/{p.name}" for s, p in files.items()}}
    check_spec("viggo", spec, tmp_path)
    m = materialize("viggo", spec, tmp_path / "out", base_dir=tmp_path)
    train = _split(tmp_path / "out", "train")
    assert list(train.columns) == ["mr", "ref", "idx"]
    assert train["mr"].tolist() == ["inform(name[Tomb Raider], rating[good], genres[action-adventure])",
                                    "request(specifier[interesting])"]
    assert train["ref"].tolist() == ['Tomb Raider is a good action-adventure game, with "puzzles" too.',
                                     "Is there an interesting game you like?"]
    assert train["idx"].tolist() == [0, 1] and train["idx"].dtype == "int64"
    assert all(isinstance(v, str) for v in train["mr"].tolist() + train["ref"].tolist())
    test = _split(tmp_path / "out", "test")  # a byte-order mark does not reach the header
    assert list(test.columns) == ["mr", "ref", "idx"]
    assert test["mr"].tolist() == ["verify_attribute(name[Doom], esrb[M (for Mature)])"]
    assert {k: v["records"] for k, v in m["files"].items()} == {"train": 2, "validation": 1, "test": 1}
    assert m["source_files"] == {f"data/external/viggo/{p.name}": sha256_file(p) for p in files.values()}
    assert "label" not in train.columns and m["spec"] == spec


def test_viggo_hub_layout_through_the_hub_code_path(tmp_path, monkeypatch):
    """GEM/viggo as its loading script gives it (gem_id, meaning_representation, target,
    references), renamed to mr/ref; read by the hub code path from a local Parquet folder."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "viggo"
    src.mkdir()
    mr = "inform(name[Tomb Raider], rating[good])"
    pd.DataFrame({"gem_id": ["viggo-train-0"], "meaning_representation": [mr],
                  "target": ["Tomb Raider is good."], "references": [["Tomb Raider is good."]]}
                 ).to_parquet(src / "train.parquet")
    spec = {"source": "hub", "path": str(src), "revision": "main", "splits": ["train"], "labelled": False,
            "columns": {"meaning_representation": "mr", "target": "ref"}}
    check_spec("viggo", spec)
    m = materialize("viggo", spec, tmp_path / "out")
    df = _split(tmp_path / "out", "train")
    assert list(df.columns) == ["gem_id", "mr", "ref", "references", "idx"]
    assert df["mr"].tolist() == [mr] and df["ref"].tolist() == ["Tomb Raider is good."]
    assert list(df["references"].iat[0]) == ["Tomb Raider is good."]
    assert m["revision"] == "main" and m["source_files"] == {}


# --------------------------------------------------------------------------- SQL

def test_sql_create_context_json_list(tmp_path):
    f = _write(tmp_path / "sql_create_context_v4.json", json.dumps(SQL))
    spec = {"source": "local", "format": "json", "labelled": False, "files": {"train": "sql_create_context_v4.json"}}
    check_spec("sql", spec, tmp_path)
    m = materialize("sql", spec, tmp_path / "out", base_dir=tmp_path)
    df = _split(tmp_path / "out", "train")
    assert list(df.columns) == ["question", "context", "answer", "idx"]
    assert df.drop(columns="idx").to_dict("records") == SQL
    assert df["idx"].tolist() == [0, 1]
    assert m["source_files"] == {"sql_create_context_v4.json": sha256_file(f)}


def test_spider_original_release(tmp_path, spider_files):
    spec = _spider_spec()
    check_spec("spider", spec, tmp_path)
    assert is_available("spider", dict(spec, optional=True), tmp_path) is True
    m = materialize("spider", spec, tmp_path / "out", base_dir=tmp_path)
    dev = _split(tmp_path / "out", "validation")
    assert list(dev.columns) == ["question", "context", "answer", "db_id", "idx"]
    assert dev["context"].tolist() == [DEPARTMENT_CONTEXT, SINGER_CONTEXT]
    assert dev["answer"].tolist() == [r["query"] for r in SPIDER_DEV]
    assert dev["question"].tolist() == [r["question"] for r in SPIDER_DEV]
    assert dev["db_id"].tolist() == ["department_management", "concert_singer"]
    assert dev["idx"].tolist() == [0, 1] and dev["idx"].dtype == "int64"
    train = _split(tmp_path / "out", "train")
    assert train.to_dict("records") == [{"question": "List the singers' ids.", "context": SINGER_CONTEXT,
                                         "answer": "SELECT Singer_ID FROM singer", "db_id": "concert_singer",
                                         "idx": 0}]
    # the tables file is one of the dataset's source files
    assert m["source_files"] == {
        "data/external/spider/train_spider.json": sha256_file(spider_files / "train_spider.json"),
        "data/external/spider/dev.json": sha256_file(spider_files / "dev.json"),
        "data/external/spider/tables.json": sha256_file(spider_files / "tables.json"),
    }
    assert sources.local_paths(spec) == [spec["files"]["train"], spec["files"]["validation"], spec["tables"]]
    assert sources.split_names(spec) == ["train", "validation"]
    assert sources.split_names({"source": "hub", "splits": ["train"]}) == ["train"]
    assert sources.split_names({"source": "demo", "generator": "sql"}) is None
    assert sources.local_paths({"source": "hub", "path": "a/b"}) == []


def test_spider_tables_checksum(tmp_path, spider_files):
    digest = sha256_file(spider_files / "tables.json")
    for key in ("tables", "tables.json", "data/external/spider/tables.json"):
        check_spec("spider", _spider_spec(sha256={key: digest}), tmp_path)
    materialize("spider", _spider_spec(sha256={"tables": digest}), tmp_path / "ok", base_dir=tmp_path)
    with pytest.raises(DataError) as e:
        materialize("spider", _spider_spec(sha256={"tables": "0" * 64}), tmp_path / "o", base_dir=tmp_path)
    assert re.search(r"'spider', tables file '.*tables\.json': checksum mismatch", _one_line(e))


def test_spider_context_of_one_schema():
    db = SPIDER_TABLES[0]
    assert formats.spider_context(db["table_names_original"], db["column_names_original"],
                                  db["column_types"]) == DEPARTMENT_CONTEXT


# --------------------------------------------------------------------------- GSM8K

def test_gsm8k_original_jsonl(tmp_path):
    base = tmp_path / "data/external/gsm8k"
    _write(base / "train.jsonl", _jsonl(GSM8K_TRAIN))
    _write(base / "test.jsonl", _jsonl(GSM8K_TEST))
    spec = {"source": "local", "labelled": False,
            "files": {"train": "data/external/gsm8k/train.jsonl", "test": "data/external/gsm8k/test.jsonl"}}
    check_spec("gsm8k", spec, tmp_path)
    m = materialize("gsm8k", spec, tmp_path / "out", base_dir=tmp_path)
    train = _split(tmp_path / "out", "train")
    assert list(train.columns) == ["question", "answer", "idx"]
    assert train.drop(columns="idx").to_dict("records") == GSM8K_TRAIN
    assert train["answer"].str.rsplit("#### ", n=1).str[1].tolist() == ["72", "10"]
    assert _split(tmp_path / "out", "test")["idx"].tolist() == [0]
    assert set(m["source_files"]) == {"data/external/gsm8k/train.jsonl", "data/external/gsm8k/test.jsonl"}


# --------------------------------------------------------------------------- the config's entries

GENERATION = ("viggo", "sql_create_context", "gsm8k", "viggo_original", "spider", "gsm8k_original")


def test_config_entries(tmp_path):
    """The config's generation datasets: pinned hub entries, and the original releases read
    from data/external/ exactly as configured (here under tmp_path)."""
    datasets = cfg.load_yaml(ROOT / "config/config.yaml")["datasets"]
    for name in GENERATION:
        spec = datasets[name]
        assert spec["labelled"] is False, name
        check_spec(name, spec, tmp_path)
        if spec["source"] == "hub":
            assert re.fullmatch(r"[0-9a-f]{40}", spec["revision"]), name
        else:
            assert spec["optional"] is True and is_available(name, spec, tmp_path) is False, name
    assert datasets["gsm8k"]["name"] == "main" and datasets["gsm8k"]["splits"] == ["train", "test"]
    assert datasets["viggo"]["splits"] == ["train", "validation", "test"]
    assert datasets["sql_create_context"]["splits"] == ["train"]
    # the original releases, where the config says they go
    for p, text in (("viggo/viggo-train.csv", VIGGO_TRAIN), ("viggo/viggo-valid.csv", VIGGO_VALID),
                    ("viggo/viggo-test.csv", VIGGO_TEST), ("gsm8k/train.jsonl", _jsonl(GSM8K_TRAIN)),
                    ("gsm8k/test.jsonl", _jsonl(GSM8K_TEST)), ("spider/tables.json", json.dumps(SPIDER_TABLES)),
                    ("spider/dev.json", json.dumps(SPIDER_DEV)),
                    ("spider/train_spider.json", json.dumps(SPIDER_TRAIN))):
        _write(tmp_path / "data/external" / p, text)
    columns = {"viggo_original": ["mr", "ref", "idx"], "spider": ["question", "context", "answer", "db_id", "idx"],
               "gsm8k_original": ["question", "answer", "idx"]}
    for name, cols in columns.items():
        spec = copy.deepcopy(datasets[name])
        assert is_available(name, spec, tmp_path) is True
        m = materialize(name, spec, tmp_path / "out" / name, base_dir=tmp_path)
        assert set(m["files"]) == set(spec["files"])
        for split in spec["files"]:
            assert list(_split(tmp_path / "out" / name, split).columns) == cols
        assert read_json(tmp_path / "out" / name / "manifest.json")["source_files"] == m["source_files"]


# --------------------------------------------------------------------------- the key and its checks

def test_hub_spec_with_labelled_false_passes_check_spec():
    check_spec("gsm8k", {"source": "hub", "path": "openai/gsm8k", "name": "main", "revision": "a" * 40,
                         "splits": ["train", "test"], "labelled": False})
    check_spec("g", {"source": "hub", "path": "a/b", "revision": "r", "splits": ["train"], "labelled": True})


@pytest.mark.parametrize("spec, pattern", [
    ({"source": "local", "files": {"train": "a.csv"}, "labelled": "no"},
     r"datasets\.x\.labelled: expected true or false"),
    ({"source": "local", "files": {"train": "a.csv"}, "labelled": False, "label_map": {"a": 0}},
     r"datasets\.x\.label_map: a dataset with labelled: false has no labels"),
    ({"source": "local", "files": {"train": "a.csv"}, "labelled": False, "columns": {"mr": "text", "ref": "text"}},
     r"datasets\.x\.columns: columns \['mr', 'ref'\] are all renamed to 'text'"),
    ({"source": "demo", "generator": "sql", "labelled": False},
     r"datasets\.x\.labelled: unknown key for a demo dataset"),
    ({"source": "local", "format": "spider", "labelled": False, "files": {"validation": "dev.json"}},
     r"datasets\.x\.tables: required for format: spider"),
    ({"source": "local", "format": "json", "labelled": False, "tables": "tables.json", "files": {"train": "a.csv"}},
     r"datasets\.x\.tables: only format: spider takes a tables file"),
    ({"source": "local", "format": "spider", "tables": "tables.json", "files": {"validation": "dev.json"}},
     r"datasets\.x\.labelled: format: spider gives unlabelled text-to-SQL data.*set labelled: false"),
    ({"source": "hub", "path": "a/b", "revision": "r", "splits": ["train"], "tables": "t.json"},
     r"datasets\.x\.tables: unknown key for a hub dataset"),
])
def test_config_errors(tmp_path, spec, pattern):
    for f in ("a.csv", "dev.json", "tables.json"):
        _write(tmp_path / f, "mr,ref\na,b\n")
    with pytest.raises(ConfigError, match=pattern) as e:
        check_spec("x", spec, tmp_path)
    _one_line(e)
    with pytest.raises(ConfigError, match=pattern):
        materialize("x", spec, tmp_path / "out", base_dir=tmp_path)
    assert not (tmp_path / "out").exists()


def test_rename_collision_is_an_error(tmp_path):
    _write(tmp_path / "viggo-train.csv", VIGGO_TRAIN)
    spec = {"source": "local", "labelled": False, "files": {"train": "viggo-train.csv"}, "columns": {"mr": "ref"}}
    check_spec("viggo", spec, tmp_path)  # a rename onto a column of the file: only the data tells
    with pytest.raises(DataError) as e:
        materialize("viggo", spec, tmp_path / "out", base_dir=tmp_path)
    assert re.search(r"'viggo', split 'train', file '.*viggo-train\.csv': duplicate columns after renaming: "
                     r"\['ref', 'ref'\]", _one_line(e))
    spec["columns"] = {"meaning_representation": "mr"}
    with pytest.raises(DataError, match=r"viggo-train\.csv.*columns to rename not found: \['meaning_representation'\]"):
        materialize("viggo", spec, tmp_path / "out", base_dir=tmp_path)


def test_spider_unknown_db_id(tmp_path, spider_files):
    records = SPIDER_DEV + [_spider_record("world_1", "How many countries are there?", "SELECT count(*) FROM country")]
    _write(spider_files / "dev.json", json.dumps(records))
    with pytest.raises(DataError) as e:
        materialize("spider", _spider_spec(), tmp_path / "out", base_dir=tmp_path)
    msg = _one_line(e)
    assert re.search(r"dataset 'spider', split 'validation', file '.*dev\.json': record 2 \(question 'How many "
                     r"countries are there\?'\): unknown db_id 'world_1': no such database in the tables file "
                     r"'.*tables\.json' \(2 databases\)", msg), msg


def test_spider_missing_tables_file(tmp_path, spider_files):
    (spider_files / "tables.json").unlink()
    with pytest.raises(ConfigError) as e:
        check_spec("spider", _spider_spec(), tmp_path)
    assert re.search(r"datasets\.spider\.tables: file not found: 'data/external/spider/tables\.json'", _one_line(e))
    assert is_available("spider", _spider_spec(optional=True), tmp_path) is False
    check_spec("spider", _spider_spec(optional=True), tmp_path)
    with pytest.raises(DataError) as e:
        materialize("spider", _spider_spec(), tmp_path / "out", base_dir=tmp_path)
    assert re.search(r"dataset 'spider', tables file '.*tables\.json': file not found", _one_line(e))


@pytest.mark.parametrize("mutate, pattern", [
    (lambda dev, tables: dev[1].pop("query"), r"dev\.json': record 1 \(question 'How many singers do we have\?'\): "
                                              r"missing field 'query'"),
    (lambda dev, tables: dev[0].update(db_id=7), r"dev\.json': record 0 .*field 'db_id' must be a string"),
    (lambda dev, tables: tables[1]["column_types"].pop(), r"tables file '.*tables\.json': schema 1 "
                                                           r"\(db_id 'concert_singer'\): 5 column_names_original "
                                                           r"but 4 column_types"),
    (lambda dev, tables: (tables[0]["column_names_original"].append([3, "x"]),
                          tables[0]["column_types"].append("text")),
     r"tables\.json': schema 0 \(db_id 'department_management'\): column 10 'x': table index 3 out of range"),
    (lambda dev, tables: tables.append(dict(tables[1])), r"tables\.json': schema 2 .*duplicate db_id 'concert_singer'"),
    (lambda dev, tables: tables[0].pop("table_names_original"),
     r"tables\.json': schema 0 \(db_id 'department_management'\): missing field 'table_names_original'"),
])
def test_spider_bad_records(tmp_path, spider_files, mutate, pattern):
    dev, tables = copy.deepcopy(SPIDER_DEV), copy.deepcopy(SPIDER_TABLES)
    mutate(dev, tables)
    _write(spider_files / "dev.json", json.dumps(dev))
    _write(spider_files / "tables.json", json.dumps(tables))
    with pytest.raises(DataError) as e:
        materialize("spider", _spider_spec(), tmp_path / "out", base_dir=tmp_path)
    assert re.search(pattern, _one_line(e)), str(e.value)


def test_unlabelled_frames(tmp_path):
    _write(tmp_path / "mixed.jsonl", _jsonl([{"question": "a", "answer": "5"}, {"question": "b", "answer": 6}]))
    spec = {"source": "local", "labelled": False, "files": {"train": "mixed.jsonl"}}
    with pytest.raises(DataError) as e:
        materialize("g", spec, tmp_path / "o", base_dir=tmp_path)
    assert re.search(r"mixed\.jsonl': column 'answer' mixes text and other values \(row 1: int 6", _one_line(e))
    _write(tmp_path / "empty.json", "[{}, {}]")
    with pytest.raises(DataError, match=r"empty\.json': no columns"):
        materialize("g", dict(spec, files={"train": "empty.json"}), tmp_path / "o", base_dir=tmp_path)
    # an idx column is kept (and checked, as for labelled data); a missing text value stays null;
    # a label column is an ordinary column
    _write(tmp_path / "idx.jsonl", _jsonl([{"idx": 5, "question": "a", "label": "x"}, {"idx": 9, "label": "y"}]))
    m = materialize("g", dict(spec, files={"train": "idx.jsonl"}), tmp_path / "o", base_dir=tmp_path)
    df = _split(tmp_path / "o", "train")
    assert list(df.columns) == ["question", "label", "idx"] and m["files"]["train"]["records"] == 2
    assert df["idx"].tolist() == [5, 9] and df["question"].iat[0] == "a" and pd.isna(df["question"].iat[1])
    assert df["label"].tolist() == ["x", "y"]
    _write(tmp_path / "dup.jsonl", _jsonl([{"idx": 1, "q": "a"}, {"idx": 1, "q": "b"}]))
    with pytest.raises(DataError, match=r"dup\.jsonl': duplicate values in column 'idx'"):
        materialize("g", dict(spec, files={"train": "dup.jsonl"}), tmp_path / "o", base_dir=tmp_path)
    with pytest.raises(DataError, match=r"label_map does not apply to an unlabelled dataset"):
        formats.normalise(pd.DataFrame({"q": ["a"]}), "g", "train", label_map={"a": 0}, labelled=False)


def test_labelled_true_is_the_default(tmp_path):
    """labelled: true reads exactly what a spec without the key reads (the same bytes)."""
    _write(tmp_path / "a.csv", 'sentence,label\n"fine, really",1\nbad,0\n')
    a = materialize("x", {"source": "local", "files": {"train": "a.csv"}}, tmp_path / "a", base_dir=tmp_path)
    b = materialize("x", {"source": "local", "files": {"train": "a.csv"}, "labelled": True}, tmp_path / "b",
                    base_dir=tmp_path)
    assert a["files"] == b["files"]
    assert list(_split(tmp_path / "a", "train").columns) == ["sentence", "label", "idx"]
    # without the key the CSV still needs its label column
    _write(tmp_path / "v.csv", VIGGO_TRAIN)
    with pytest.raises(DataError, match=r"no 'label' column"):
        materialize("x", {"source": "local", "files": {"train": "v.csv"}}, tmp_path / "c", base_dir=tmp_path)


def test_split_off_carves_fixed_disjoint_splits_from_train(tmp_path):
    """sql-create-context ships one train split: `split_off` draws validation and test from it,
    the same rows every time, disjoint, each keeping its row id."""
    rows = [{"question": f"q{i}", "context": "CREATE TABLE t (a VARCHAR)", "answer": f"SELECT a FROM t WHERE a = {i}"}
            for i in range(200)]
    (tmp_path / "sql.json").write_text(json.dumps(rows))
    spec = {"source": "local", "format": "json", "files": {"train": "sql.json"}, "labelled": False,
            "split_off": {"validation": 0.05, "test": 0.1}}
    check_spec("sql", spec, tmp_path)
    assert sources.split_names(spec) == ["train", "validation", "test"]
    first = materialize("sql", spec, tmp_path / "a", base_dir=tmp_path)
    again = materialize("sql", spec, tmp_path / "b", base_dir=tmp_path)
    assert {s: f["records"] for s, f in first["files"].items()} == {"train": 170, "validation": 10, "test": 20}
    assert first["files"] == again["files"]  # byte-identical splits
    parts = {s: pd.read_parquet(tmp_path / "a" / f"{s}.parquet") for s in ("train", "validation", "test")}
    ids = [set(p["idx"]) for p in parts.values()]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2]) and len(set().union(*ids)) == 200
    assert (parts["test"]["question"] == [f"q{i}" for i in parts["test"]["idx"]]).all()
    for bad, pattern in [({"train": 0.5}, r"split_off\.train: the dataset already has"),
                         ({"test": 1.5}, r"split_off\.test: expected a fraction"),
                         ({"a": 0.6, "b": 0.5}, r"split_off: the fractions sum to 1\.1")]:
        with pytest.raises(ConfigError, match=pattern):
            check_spec("sql", {**spec, "split_off": bad}, tmp_path)


# --------------------------------------------------------------------------- columns at config time


def test_known_columns_before_loading(tmp_path, spider_files):
    base = tmp_path / "data/external"
    _write(base / "viggo/viggo-test.csv", VIGGO_TEST)  # with a byte-order mark
    _write(base / "gsm8k/train.jsonl", _jsonl(GSM8K_TRAIN))
    viggo = {"source": "local", "files": {"test": "data/external/viggo/viggo-test.csv"}}
    assert sources.known_columns(viggo, tmp_path) == ["mr", "ref"]
    assert sources.known_columns({**viggo, "columns": {"ref": "sentence"}}, tmp_path) == ["mr", "sentence"]
    gsm = {"source": "local", "files": {"train": "data/external/gsm8k/train.jsonl"}}
    assert sources.known_columns(gsm, tmp_path) == ["question", "answer"]
    assert sources.known_columns({"source": "local", "format": "spider", "files": {}}, tmp_path) == [
        "question", "context", "answer", "db_id"]
    assert sources.known_columns({"source": "demo", "generator": "meaning"}) == ["mr", "ref"]
    absent = {"source": "local", "files": {"train": "data/external/none.csv"}}
    for unknown in (absent, {"source": "hub", "path": "openai/gsm8k"}, {"source": "demo", "generator": "sentiment"}):
        assert sources.known_columns(unknown, tmp_path) is None


@pytest.mark.parametrize("edit, pattern", [
    ({"template": "Sentence: {sentence}\nMeaning representation:"},
     r"config key 'tasks.demo-viggo.template': dataset 'demo_meaning' \(train\) has no column\(s\) \['sentence'\]"),
    ({"completion": "meaning"}, r"config key 'tasks.demo-viggo.completion': .*\['meaning'\]"),
])
def test_a_task_naming_a_column_its_dataset_lacks_fails_at_config_time(demo_config, edit, pattern):
    demo_config["tasks"]["demo-viggo"].update(edit)
    with pytest.raises(ConfigError, match=pattern):
        cfg.validate(demo_config, ROOT / "config/schemas/config.schema.yaml", base_dir=ROOT)


def test_a_local_csv_with_other_columns_fails_at_config_time(demo_config, tmp_path):
    _write(tmp_path / "viggo-train.csv", VIGGO_TRAIN.replace("mr,ref", "meaning,text", 1))
    demo_config["datasets"]["demo_meaning"] = {"source": "local", "labelled": False,
                                               "files": {"train": str(tmp_path / "viggo-train.csv")}}
    task = demo_config["tasks"]["demo-viggo"]
    task["validation"], task["eval_sets"] = {"holdout": 0.5}, {"test": {"dataset": "demo_meaning", "split": "train",
                                                                          "kind": "origin"}}
    with pytest.raises(ConfigError, match=r"tasks.demo-viggo.template': dataset 'demo_meaning' \(train\) has no "
                                          r"column\(s\) \['ref', 'mr'\] \(its columns: meaning, text; rename with "
                                          r"datasets.demo_meaning.columns\)"):
        cfg.validate(copy.deepcopy(demo_config), ROOT / "config/schemas/config.schema.yaml", base_dir=ROOT)
    demo_config["datasets"]["demo_meaning"]["columns"] = {"meaning": "mr", "text": "ref"}
    cfg.validate(demo_config, ROOT / "config/schemas/config.schema.yaml", base_dir=ROOT)
