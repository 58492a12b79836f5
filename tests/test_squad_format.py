"""lwob.data.formats.read_squad, QA normalisation (local SQuAD JSON / zip, hub layout) and the
real SQuAD v1.1 dev and Adversarial SQuAD (AddSent) files."""

from __future__ import annotations

import copy
import json
import re
import zipfile

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lwob.data import formats
from lwob.data.sources import check_spec, load, materialize
from lwob.errors import ConfigError, DataError
from lwob.io import sha256_file

CTX0 = "The cat sat on the mat. It was a sunny day in Paris."
CTX1 = "Rust is a systems language. It was first released in 2015."

SQUAD = {
    "version": "1.1",
    "data": [
        {"title": "Cats", "paragraphs": [
            {"context": CTX0, "qas": [
                {"id": "q1", "question": "Where did the cat sit?",
                 "answers": [{"text": "on the mat", "answer_start": 12}, {"text": "the mat", "answer_start": 15}]},
                {"id": "q2", "question": "Where was it sunny?", "answers": [{"text": "Paris", "answer_start": 46}]},
            ]},
        ]},
        {"title": "Rust", "paragraphs": [
            {"context": CTX1, "qas": [
                {"id": "q3", "question": "When was Rust released?", "answers": [{"text": "2015", "answer_start": 53}]},
            ]},
        ]},
    ],
}
COLUMNS = ["id", "title", "context", "question", "answer_text", "answer_start", "idx"]


def _squad() -> dict:
    return copy.deepcopy(SQUAD)


def _write(tmp_path, obj, name="dev.json"):
    f = tmp_path / name
    f.write_text(json.dumps(obj))
    return f


def _qa0(obj, a=0, p=0, q=0) -> dict:
    return obj["data"][a]["paragraphs"][p]["qas"][q]


def test_fixture_offsets_are_right():
    for art in SQUAD["data"]:
        for para in art["paragraphs"]:
            for qa in para["qas"]:
                for ans in qa["answers"]:
                    s = ans["answer_start"]
                    assert para["context"][s:s + len(ans["text"])] == ans["text"]


def test_read_squad_frame(tmp_path):
    f = _write(tmp_path, SQUAD)
    df = formats.read_squad(f, "sq", "validation")
    assert list(df.columns) == COLUMNS
    assert df["id"].tolist() == ["q1", "q2", "q3"]
    assert df["title"].tolist() == ["Cats", "Cats", "Rust"]
    assert df["context"].tolist() == [CTX0, CTX0, CTX1]
    assert df["question"].iloc[2] == "When was Rust released?"
    assert df["answer_text"].tolist() == [["on the mat", "the mat"], ["Paris"], ["2015"]]
    assert df["answer_start"].tolist() == [[12, 15], [46], [53]]
    assert df["idx"].tolist() == [0, 1, 2] and df["idx"].dtype == "int64"


def test_materialize_squad_parquet_round_trip(tmp_path):
    f = _write(tmp_path, SQUAD)
    spec = {"source": "local", "format": "squad", "files": {"validation": f.name}}
    check_spec("sq", spec, tmp_path)
    m = materialize("sq", spec, tmp_path / "out", base_dir=tmp_path)
    assert m["files"]["validation"]["records"] == 3
    assert m["source_files"] == {"dev.json": sha256_file(f)}
    schema = pq.read_schema(tmp_path / "out" / "validation.parquet")
    assert schema.names == COLUMNS
    assert schema.field("answer_text").type == pa.list_(pa.string())
    assert schema.field("answer_start").type == pa.list_(pa.int64())
    assert schema.field("idx").type == pa.int64()
    df = pd.read_parquet(tmp_path / "out" / "validation.parquet")
    assert [list(x) for x in df["answer_text"]] == [["on the mat", "the mat"], ["Paris"], ["2015"]]
    assert [list(x) for x in df["answer_start"]] == [[12, 15], [46], [53]]
    assert "label" not in df.columns


def test_json_without_format_squad_is_not_squad(tmp_path):
    """A .json path means JSON records unless format: squad is set; the error says so."""
    f = _write(tmp_path, SQUAD)
    with pytest.raises(DataError, match=r"(?s)no 'label' column.*format: squad"):
        materialize("sq", {"source": "local", "files": {"validation": f.name}}, tmp_path / "o", base_dir=tmp_path)


def test_zip(tmp_path):
    z = tmp_path / "dev-v1.1.json.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("dev-v1.1.json", json.dumps(SQUAD))
        zf.writestr("__MACOSX/._dev-v1.1.json", b"\x00\x05\x16\x07")  # macOS metadata is ignored
        zf.writestr("README.txt", "not json")
    assert formats.format_from_path(z) == "squad"
    assert formats.read_squad(z, "sq")["id"].tolist() == ["q1", "q2", "q3"]
    spec = {"source": "local", "files": {"validation": z.name}}  # .zip -> squad without 'format'
    check_spec("sq", spec, tmp_path)
    m = materialize("sq", spec, tmp_path / "out", base_dir=tmp_path)
    assert m["files"]["validation"]["records"] == 3
    assert m["source_files"] == {z.name: sha256_file(z)}


def test_zip_member_errors(tmp_path):
    z = tmp_path / "two.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("a.json", json.dumps(SQUAD))
        zf.writestr("sub/b.json", json.dumps(SQUAD))
    with pytest.raises(DataError, match=r"two\.zip.*exactly one \.json.*2 \.json members.*'a\.json'.*'sub/b\.json'"):
        formats.read_squad(z, "sq")
    z = tmp_path / "none.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("a.txt", "x")
    with pytest.raises(DataError, match=r"none\.zip.*no \.json member.*'a\.txt'"):
        formats.read_squad(z, "sq")
    bad = tmp_path / "bad.zip"
    bad.write_text("not a zip")
    with pytest.raises(DataError, match=r"bad\.zip.*not a valid zip"):
        formats.read_squad(bad, "sq")


def test_error_names_zip_member(tmp_path):
    obj = _squad()
    _qa0(obj)["answers"] = []
    z = tmp_path / "d.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("inner.json", json.dumps(obj))
    with pytest.raises(DataError, match=r"d\.zip.*member 'inner\.json'.*'q1'.*empty 'answers'"):
        formats.read_squad(z, "sq")


def test_not_json(tmp_path):
    f = tmp_path / "dev.json"
    f.write_text("{ nope")
    with pytest.raises(DataError, match=r"dev\.json.*cannot read SQuAD JSON"):
        formats.read_squad(f, "sq")
    with pytest.raises(DataError, match=r"missing\.json.*not found"):
        formats.read_squad(tmp_path / "missing.json", "sq")


# (mutation of SQUAD, message regex): each message must also name the dataset, split and file
CASES = [
    (lambda o: o.pop("data"), r"top level: missing field 'data'"),
    (lambda o: o.update(data={"x": 1}), r"field 'data' must be a list, got dict"),
    (lambda o: o["data"].__setitem__(0, "str"), r"article 0: expected an object, got str"),
    (lambda o: o["data"][0].pop("paragraphs"), r"article 0 'Cats': missing field 'paragraphs'"),
    (lambda o: o["data"][0].update(title=3), r"article 0: field 'title' must be a string, got int"),
    (lambda o: o["data"][1]["paragraphs"][0].pop("context"), r"article 1 'Rust', paragraph 0: missing field 'context'"),
    (lambda o: o["data"][1]["paragraphs"][0].update(context=["x"]), r"'Rust', paragraph 0: field 'context' must be a string, got list"),
    (lambda o: o["data"][0]["paragraphs"][0].pop("qas"), r"paragraph 0: missing field 'qas'"),
    (lambda o: o["data"][0]["paragraphs"][0].update(qas={}), r"field 'qas' must be a list, got dict"),
    (lambda o: _qa0(o, q=1).pop("id"), r"article 0 'Cats', paragraph 0, question 1: missing field 'id'"),
    (lambda o: _qa0(o, q=1).update(id=7), r"paragraph 0, question 1: field 'id' must be a string, got int"),
    (lambda o: _qa0(o, q=1).pop("question"), r"question id 'q2' \(article 0 'Cats', paragraph 0, question 1\): missing field 'question'"),
    (lambda o: _qa0(o, q=1).update(question=None), r"'q2'.*field 'question' must be a string, got NoneType"),
    (lambda o: _qa0(o, q=1).pop("answers"), r"'q2'.*missing field 'answers'"),
    (lambda o: _qa0(o, q=1).update(answers={"text": "Paris"}), r"'q2'.*field 'answers' must be a list, got dict"),
    (lambda o: _qa0(o, q=1).update(answers=[]), r"'q2'.*empty 'answers' list"),
    (lambda o: _qa0(o, q=1).update(answers=[], is_impossible=True), r"'q2'.*empty 'answers'.*SQuAD v2"),
    (lambda o: _qa0(o, q=1).update(answers=["Paris"]), r"'q2'.*answer 0: expected an object, got str"),
    (lambda o: _qa0(o)["answers"][1].pop("text"), r"'q1'.*answer 1: missing field 'text'"),
    (lambda o: _qa0(o)["answers"][1].pop("answer_start"), r"'q1'.*answer 1: missing field 'answer_start'"),
    (lambda o: _qa0(o)["answers"][1].update(answer_start="15"), r"'q1'.*answer 1: field 'answer_start' must be an integer, got str"),
    (lambda o: _qa0(o)["answers"][1].update(answer_start=15.0), r"'q1'.*field 'answer_start' must be an integer, got float"),
    (lambda o: _qa0(o)["answers"][1].update(answer_start=True), r"'q1'.*field 'answer_start' must be an integer, got bool"),
    (lambda o: _qa0(o)["answers"][1].update(text=15), r"'q1'.*field 'text' must be a string, got int"),
    (lambda o: _qa0(o)["answers"][1].update(text=""), r"'q1'.*answer 1: empty answer text"),
    (lambda o: _qa0(o)["answers"][1].update(answer_start=-1), r"'q1'.*answer 1: negative answer_start -1"),
    (lambda o: _qa0(o, a=1).update(id="q1"),
     r"duplicate question id 'q1': article 0 'Cats', paragraph 0, question 0 and article 1 'Rust', paragraph 0, question 0"),
]


@pytest.mark.parametrize("mutate, pattern", CASES)
def test_read_squad_errors_name_file_and_question(tmp_path, mutate, pattern):
    obj = _squad()
    mutate(obj)
    f = _write(tmp_path, obj, "bad-squad.json")
    with pytest.raises(DataError) as e:
        formats.read_squad(f, "sq", "validation")
    msg = str(e.value)
    assert str(f) in msg and "'sq'" in msg and "'validation'" in msg
    assert re.search(pattern, msg), msg


def test_answer_start_mismatch_shows_expected_and_found(tmp_path):
    obj = _squad()
    _qa0(obj)["answers"][1]["answer_start"] = 14  # " the ma"
    _qa0(obj, a=1)["answers"][0]["answer_start"] = 56  # runs past the context's end
    f = _write(tmp_path, obj)
    with pytest.raises(DataError) as e:
        formats.read_squad(f, "sq", "validation")
    msg = str(e.value)
    assert str(f) in msg and "2 gold answer(s) not found in the context" in msg
    assert "question id 'q1' (article 0 'Cats', paragraph 0, question 0), answer 1" in msg
    assert "expected 'the mat' at context[14:21], the context holds ' the ma'" in msg
    assert "question id 'q3'" in msg and "expected '2015' at context[56:60], the context holds '5.'" in msg
    assert f"(the context has {len(CTX1)} characters)" in msg
    # the same file through materialize: still an error (strict), manifest not written
    with pytest.raises(DataError, match="'q1'"):
        materialize("sq", {"source": "local", "format": "squad", "files": {"v": f.name}}, tmp_path / "o",
                    base_dir=tmp_path)
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_many_mismatches_are_counted_not_all_listed(tmp_path):
    ctx = "abcdefghij"
    obj = {"data": [{"title": "t", "paragraphs": [{"context": ctx, "qas": [
        {"id": f"m{i}", "question": "?", "answers": [{"text": "zz", "answer_start": 0}]} for i in range(8)]}]}]}
    with pytest.raises(DataError) as e:
        formats.read_squad(_write(tmp_path, obj), "sq")
    msg = str(e.value)
    assert "8 gold answer(s)" in msg and "'m4'" in msg and "'m5'" not in msg and "and 3 more" in msg


def test_empty_file_is_an_error(tmp_path):
    with pytest.raises(DataError, match=r"dev\.json.*no questions"):
        formats.read_squad(_write(tmp_path, {"data": []}), "sq")


def test_checksum_mismatch_shows_both_hashes(tmp_path):
    f = _write(tmp_path, SQUAD)
    actual = sha256_file(f)
    spec = {"source": "local", "format": "squad", "files": {"validation": f.name},
            "sha256": {"validation": "a" * 64}}
    check_spec("sq", spec, tmp_path)
    with pytest.raises(DataError) as e:
        materialize("sq", spec, tmp_path / "o", base_dir=tmp_path)
    msg = str(e.value)
    assert "a" * 64 in msg and actual in msg and "dev.json" in msg and "'sq'" in msg and "checksum mismatch" in msg
    assert not (tmp_path / "o" / "manifest.json").exists()
    spec["sha256"] = {"dev.json": actual}
    assert materialize("sq", spec, tmp_path / "o", base_dir=tmp_path)["files"]["validation"]["records"] == 3


def test_squad_format_config_errors(tmp_path):
    _write(tmp_path, SQUAD)
    with pytest.raises(ConfigError, match=r"datasets\.sq\.format.*single 'file' needs format: advglue"):
        check_spec("sq", {"source": "local", "format": "squad", "file": "dev.json"}, tmp_path)
    with pytest.raises(ConfigError, match=r"datasets\.sq\.files\.validation.*nope\.json"):
        check_spec("sq", {"source": "local", "format": "squad", "files": {"validation": "nope.json"}}, tmp_path)


# ----------------------------------------------------------------------- hub layout


def _hub_frame() -> pd.DataFrame:
    """What ``datasets.Dataset.to_pandas()`` gives for rajpurkar/squad: ``answers`` is a dict
    of numpy arrays per row."""
    rows = []
    for art in SQUAD["data"]:
        for para in art["paragraphs"]:
            for qa in para["qas"]:
                rows.append({"id": qa["id"], "title": art["title"], "context": para["context"],
                             "question": qa["question"],
                             "answers": {"text": np.array([a["text"] for a in qa["answers"]], dtype=object),
                                         "answer_start": np.array([a["answer_start"] for a in qa["answers"]],
                                                                  dtype=np.int32)}})
    return pd.DataFrame(rows)


def test_hub_layout_normalises_to_the_same_frame(tmp_path):
    hub = formats.normalise(_hub_frame(), "squad", "validation")
    local = formats.normalise(formats.read_squad(_write(tmp_path, SQUAD), "squad"), "squad", "validation")
    assert list(hub.columns) == COLUMNS
    pd.testing.assert_frame_equal(hub, local)
    assert all(type(x) is int for xs in hub["answer_start"] for x in xs)
    formats.write_parquet(hub, tmp_path / "h.parquet")
    formats.write_parquet(local, tmp_path / "l.parquet")
    assert sha256_file(tmp_path / "h.parquet") == sha256_file(tmp_path / "l.parquet")


def test_hub_layout_through_load(tmp_path, monkeypatch):
    from lwob.data import sources

    monkeypatch.setattr(sources, "_load_hub", lambda name, spec: {"validation": _hub_frame()})
    spec = {"source": "hub", "path": "rajpurkar/squad", "name": None, "revision": "abc", "splits": ["validation"]}
    frames, source_files, revision = load("squad", spec)
    assert list(frames["validation"].columns) == COLUMNS and revision == "abc"
    assert frames["validation"]["answer_text"].tolist() == [["on the mat", "the mat"], ["Paris"], ["2015"]]


def test_hub_layout_list_of_answer_objects():
    df = _hub_frame()
    df["answers"] = [[{"text": t, "answer_start": s} for t, s in zip(a["text"], a["answer_start"])]
                     for a in df["answers"]]
    assert formats.normalise(df, "squad", "train")["answer_start"].tolist() == [[12, 15], [46], [53]]


def test_hub_layout_mismatch_names_question():
    df = _hub_frame()
    df.at[1, "answers"] = {"text": np.array(["Paris"]), "answer_start": np.array([45])}
    with pytest.raises(DataError) as e:
        formats.normalise(df, "squad", "validation")
    msg = str(e.value)
    assert "dataset 'squad', split 'validation'" in msg
    assert "question id 'q2' (row 1, title 'Cats'), answer 0: expected 'Paris' at context[45:50]" in msg
    assert "the context holds ' Pari'" in msg


@pytest.mark.parametrize("answers, pattern", [
    ({"text": np.array(["Paris"])}, r"'q2'.*'answers' lacks field\(s\) \['answer_start'\]"),
    ({"text": np.array(["Paris", "x"]), "answer_start": np.array([46])}, r"'q2'.*2 answer text\(s\) but 1 answer_start"),
    ({"text": np.array([], dtype=object), "answer_start": np.array([], dtype=np.int64)}, r"'q2'.*no gold answer"),
    ({"text": np.array(["Paris"]), "answer_start": np.array([46.0])}, r"'q2'.*answer_start must be an integer, got float"),
    ("Paris", r"'q2'.*'answers' must be"),
])
def test_hub_layout_errors(answers, pattern):
    df = _hub_frame()
    df.at[1, "answers"] = answers
    with pytest.raises(DataError, match=pattern):
        formats.normalise(df, "squad", "validation")


def test_qa_frame_duplicate_ids_and_label_map():
    df = _hub_frame()
    df.loc[2, "id"] = "q1"
    with pytest.raises(DataError, match=r"duplicate question id 'q1' \(rows \[0, 2\]"):
        formats.normalise(df, "squad", "validation")
    with pytest.raises(DataError, match="label_map does not apply"):
        formats.normalise(_hub_frame(), "squad", "validation", label_map={"a": 0})


def test_qa_frame_keeps_columns_and_idx():
    """A QA frame from JSON records / Parquet: no label needed, extra columns kept, idx last."""
    df = pd.DataFrame({"idx": [5, 9], "context": ["ab cd", "ef"], "question": ["?", "?"], "extra": [1, 2],
                       "answer_text": [["cd"], ["ef"]], "answer_start": [[3], [0]]})
    out = formats.normalise(df, "qa", "train")
    assert list(out.columns) == ["context", "question", "extra", "answer_text", "answer_start", "idx"]
    assert out["idx"].tolist() == [5, 9] and out["idx"].dtype == "int64"
    df.loc[1, "answer_start"] = [1]
    with pytest.raises(DataError, match=r"row 1, answer 0: expected 'ef' at context\[1:3\]"):
        formats.normalise(df, "qa", "train")


def test_classification_frames_unchanged():
    df = pd.DataFrame({"sentence": ["a", "b"], "answers": ["x", "y"], "label": ["1", "0"]})
    out = formats.normalise(df, "c", "train")
    assert list(out.columns) == ["sentence", "answers", "label", "idx"] and out["label"].tolist() == [1, 0]
    with pytest.raises(DataError, match="no 'label' column"):
        formats.normalise(pd.DataFrame({"sentence": ["a"]}), "c", "train")


# ----------------------------------------------------------------------- real files


def test_real_squad_v11_dev_zip(shared_data, tmp_path):
    spec = {"source": "local", "files": {"validation": "squad_v1.1/dev-v1.1.json.zip"}}
    check_spec("squad", spec, shared_data)
    m = materialize("squad", spec, tmp_path / "o", base_dir=shared_data)
    assert m["files"]["validation"]["records"] == 10570
    t = pq.read_table(tmp_path / "o" / "validation.parquet")
    assert t.column_names == COLUMNS
    assert t.schema.field("answer_text").type == pa.list_(pa.string())
    assert t.schema.field("answer_start").type == pa.list_(pa.int64())
    df = t.to_pandas()
    assert df["id"].is_unique and df["title"].nunique() == 48
    assert df["idx"].tolist() == list(range(10570))
    assert df["answer_text"].map(len).min() >= 1


def test_real_adversarial_squad_addsent(shared_data, tmp_path):
    spec = {"source": "local", "format": "squad",
            "files": {"addsent": "adversarial_squad/sample1k-HCVerifyAll.json"}}
    check_spec("addsent", spec, shared_data)
    m = materialize("addsent", spec, tmp_path / "o", base_dir=shared_data)
    assert m["files"]["addsent"]["records"] == 3560
    df = pd.read_parquet(tmp_path / "o" / "addsent.parquet")
    adversarial = df["id"].str.contains("-high-conf-turk")
    assert int(adversarial.sum()) == 2560 and int((~adversarial).sum()) == 1000
