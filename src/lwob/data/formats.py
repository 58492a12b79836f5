"""Readers for local dataset files and the normalisation shared by every source.

A normalised classification split keeps the original text columns under their own names
and adds ``label`` (int64, -1 = unlabelled; float64 when the labels are real numbers, e.g.
STS-B similarity scores) and ``idx`` (int64 record id within the split).

GLUE's original TSV releases that pandas cannot read as plain ``tsv``: ``cola`` (no header:
source, label, original judgement mark, sentence; the test file's header ``index sentence``
gives unlabelled rows), ``mrpc`` (MSR Paraphrase / GLUE MRPC: header ``Quality #1 ID #2 ID
#1 String #2 String``, possibly with a byte-order mark; columns become ``label``, ``id1``,
``id2``, ``sentence1``, ``sentence2``) and ``stsb`` (header ``index genre filename year
old_index source1 source2 sentence1 sentence2 score``; ``score`` becomes ``label``, absent
in the test file; fields past the tenth are ignored).

A normalised extractive-QA split (SQuAD layout) has one row per question: ``id`` (str),
``title`` (str), ``context`` (str), ``question`` (str), ``answer_text`` (list of str),
``answer_start`` (list of int64, character offsets into ``context``) and ``idx`` (int64);
every gold answer is checked to be the text found in the context at its ``answer_start``.

An unlabelled text split (a dataset with ``labelled: false``: the generation track's ViGGO,
SQL and GSM8K, whose targets are text columns) keeps its columns in their order, text columns
as ``str`` (missing values stay null), and gets ``idx`` (int64) last; it has no ``label``.

Spider's original release (``spider``): ``train_spider.json`` / ``dev.json`` (a JSON list of
records with ``db_id``, ``question``, ``query``; ``query_toks``, ``sql`` etc. are dropped) read
with its ``tables.json`` (``read_spider_tables``) into the columns of sql-create-context:
``question``, ``context`` (the database's ``CREATE TABLE`` statements, ``spider_context``),
``answer`` (the ``query``) and ``db_id``.
"""

from __future__ import annotations

import csv
import json
import os
import re
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lwob.errors import DataError
from lwob.io import atomic_write_bytes

#: file extension -> format name (for ``{files: {split: path}}`` specs)
EXTENSIONS = {
    ".tsv": "tsv",
    ".csv": "csv",
    ".parquet": "parquet",
    ".json": "json",
    ".jsonl": "jsonl",
    ".zip": "squad",  # a zip holding one SQuAD JSON file (e.g. dev-v1.1.json.zip)
}
#: formats for ``{files: {split: path}}`` specs (``squad`` .json files need ``format: squad``;
#: ``spider`` needs the dataset's ``tables:`` file too, see ``read_spider``)
FILE_FORMATS = ("tsv", "csv", "parquet", "json", "jsonl", "squad", "cola", "mrpc", "stsb", "spider")
ALL_FORMATS = FILE_FORMATS + ("advglue",)


def format_from_path(path: str | os.PathLike) -> str | None:
    """Format name from a file's extension, or None when the extension is unknown."""
    return EXTENSIONS.get(Path(path).suffix.lower())


def _where(dataset: str, path: str | os.PathLike, split: str | None = None) -> str:
    s = f"dataset {dataset!r}"
    if split is not None:
        s += f", split {split!r}"
    return f"{s}, file {str(path)!r}"


def _records_frame(records: Any, where: str) -> pd.DataFrame:
    if not isinstance(records, list):
        raise DataError(f"{where}: expected a list of records, got {type(records).__name__}")
    if records and not all(isinstance(r, dict) for r in records):
        raise DataError(f"{where}: every record must be a JSON object")
    return pd.DataFrame.from_records(records)


def read_table(path: str | os.PathLike, fmt: str, dataset: str, split: str | None = None) -> pd.DataFrame:
    """Read one local file (tsv, csv, parquet, json, jsonl, squad) into a DataFrame.

    (``spider`` files need their schemas: ``read_spider``.)"""
    if fmt == "spider":
        raise DataError(f"{_where(dataset, path, split)}: format spider is read with its tables file "
                        f"(lwob.data.formats.read_spider)")
    if fmt == "squad":
        return read_squad(path, dataset, split)
    if fmt in GLUE_READERS:
        return read_glue_tsv(path, fmt, dataset, split)
    where = _where(dataset, path, split)
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{where}: file not found")
    try:
        if fmt == "tsv":
            # GLUE TSV files contain unbalanced quotes: never interpret them.
            return pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, keep_default_na=False,
                               na_values=[], dtype=str, encoding="utf-8")
        if fmt == "csv":
            return pd.read_csv(path, keep_default_na=False, na_values=[], dtype=str, encoding="utf-8")
        if fmt == "parquet":
            return pq.read_table(path).to_pandas()
        if fmt == "json":
            with open(path, encoding="utf-8") as f:
                obj = json.load(f)
            if isinstance(obj, dict) and "data" in obj:
                obj = obj["data"]
            return _records_frame(obj, where)
        if fmt == "jsonl":
            records = []
            with open(path, encoding="utf-8") as f:
                for lineno, line in enumerate(f, 1):
                    if line.strip():
                        try:
                            records.append(json.loads(line))
                        except json.JSONDecodeError as e:
                            raise DataError(f"{where}: line {lineno} is not valid JSON ({e})") from None
            return _records_frame(records, where)
    except DataError:
        raise
    except (ValueError, OSError, pa.ArrowException, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise DataError(f"{where}: cannot read as {fmt}: {e}") from None
    raise DataError(f"{where}: unknown format {fmt!r} (known: {', '.join(FILE_FORMATS)})")


def _tsv_lines(path: Path) -> list[list[str]]:
    """Tab-separated fields of every non-empty line (quotes are text, a byte-order mark is dropped)."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        return [line.rstrip("\r\n").split("\t") for line in f if line.strip("\r\n")]


def _read_cola(rows: list[list[str]], where: str) -> pd.DataFrame:
    if rows and rows[0][:2] == ["index", "sentence"]:  # the test file: no labels
        body = rows[1:]
        bad = [i + 2 for i, r in enumerate(body) if len(r) != 2]
        if bad:
            raise DataError(f"{where}: CoLA test line(s) {bad[:5]} do not have 2 fields (index, sentence)")
        return pd.DataFrame({"index": [r[0] for r in body], "sentence": [r[1] for r in body],
                             "label": [-1] * len(body)})
    bad = [i + 1 for i, r in enumerate(rows) if len(r) != 4]
    if bad:
        raise DataError(f"{where}: CoLA line(s) {bad[:5]} do not have 4 fields "
                        f"(source, label, original mark, sentence; the file has no header)")
    return pd.DataFrame({"source": [r[0] for r in rows], "label": [r[1] for r in rows],
                         "original_mark": [r[2] for r in rows], "sentence": [r[3] for r in rows]})


def _read_mrpc(rows: list[list[str]], where: str) -> pd.DataFrame:
    header = ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]
    if not rows or [h.strip() for h in rows[0][:5]] != header:
        got = rows[0] if rows else []
        raise DataError(f"{where}: not an MRPC file: expected the header {chr(9).join(header)!r}, got {got!r}")
    body = rows[1:]
    bad = [i + 2 for i, r in enumerate(body) if len(r) != 5]
    if bad:
        raise DataError(f"{where}: MRPC line(s) {bad[:5]} do not have 5 fields")
    return pd.DataFrame({"label": [r[0] for r in body], "id1": [r[1] for r in body], "id2": [r[2] for r in body],
                         "sentence1": [r[3] for r in body], "sentence2": [r[4] for r in body]})


_STSB_HEADER = ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2"]


def _read_stsb(rows: list[list[str]], where: str) -> pd.DataFrame:
    if not rows or rows[0][:9] != _STSB_HEADER:
        got = rows[0] if rows else []
        raise DataError(f"{where}: not an STS-B file: expected a header starting "
                        f"{chr(9).join(_STSB_HEADER)!r}, got {got!r}")
    scored = len(rows[0]) > 9 and rows[0][9] == "score"
    width = 10 if scored else 9
    body = rows[1:]
    bad = [i + 2 for i, r in enumerate(body) if len(r) < width]
    if bad:
        raise DataError(f"{where}: STS-B line(s) {bad[:5]} have fewer than {width} fields")
    out = pd.DataFrame({c: [r[j] for r in body] for j, c in enumerate(_STSB_HEADER)})
    out["label"] = [r[9] for r in body] if scored else [-1] * len(body)
    return out


GLUE_READERS = {"cola": _read_cola, "mrpc": _read_mrpc, "stsb": _read_stsb}


def read_glue_tsv(path: str | os.PathLike, fmt: str, dataset: str, split: str | None = None) -> pd.DataFrame:
    """One of GLUE's original TSV files (``cola``, ``mrpc``, ``stsb``: see the module docstring)."""
    where = _where(dataset, path, split)
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{where}: file not found")
    try:
        rows = _tsv_lines(path)
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{where}: cannot read as {fmt}: {e}") from None
    return GLUE_READERS[fmt](rows, where)


def read_advglue(path: str | os.PathLike, dataset: str) -> dict[str, pd.DataFrame]:
    """AdvGLUE ``dev.json``: one JSON object, task name -> list of records. Every key is a split."""
    where = _where(dataset, path)
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{where}: file not found")
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except (ValueError, OSError) as e:
        raise DataError(f"{where}: cannot read AdvGLUE JSON: {e}") from None
    if not isinstance(obj, dict) or not obj:
        raise DataError(f"{where}: expected a JSON object mapping task name -> list of records")
    return {str(k): _records_frame(v, f"{where}, task {k!r}") for k, v in obj.items()}


# --------------------------------------------------------------------------- Spider (text-to-SQL)

#: the columns ``read_spider`` gives (sql-create-context's, and the database)
SPIDER_COLUMNS = ("question", "context", "answer", "db_id")
#: Spider's column types -> the types of sql-create-context's ``CREATE TABLE`` statements, which
#: knows only these two; Spider's others (time, boolean, others) become VARCHAR
SPIDER_TYPES = {"text": "VARCHAR", "number": "INTEGER"}
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _sql_name(name: str) -> str:
    """A table or column name in a ``CREATE TABLE`` statement: bare when it is a plain word
    (as sql-create-context writes every name), else double-quoted (SQL's quoting)."""
    return name if _PLAIN_NAME.match(name) else '"' + name.replace('"', '""') + '"'


def _read_json_file(path: Path, where: str, what: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (ValueError, OSError) as e:  # ValueError covers JSONDecodeError and UnicodeDecodeError
        raise DataError(f"{where}: cannot read {what} JSON: {e}") from None


def spider_context(tables: list[str], columns: list[list[Any]], types: list[str]) -> str:
    """One database schema as sql-create-context's context: a ``CREATE TABLE name (column TYPE,
    ...)`` statement per table, in Spider's table and column order, joined with ", ".

    ``columns`` are Spider's ``column_names_original`` ([table index, name] pairs; the
    [-1, "*"] entry is skipped) and ``types`` its ``column_types`` (``SPIDER_TYPES``), e.g.
    ``CREATE TABLE department (Department_ID INTEGER, Name VARCHAR), CREATE TABLE head (age INTEGER)``.
    Unlike sql-create-context, whose contexts hold only the tables and columns its answer
    uses (types inferred from how the query uses them), this is the whole database: the
    schema a Spider model is given, which does not reveal the answer's columns.
    """
    per_table: list[list[str]] = [[] for _ in tables]
    for (t, name), typ in zip(columns, types):
        if t != -1:
            per_table[t].append(f"{_sql_name(name)} {SPIDER_TYPES.get(typ, 'VARCHAR')}")
    return ", ".join(f"CREATE TABLE {_sql_name(t)} ({', '.join(cols)})" for t, cols in zip(tables, per_table))


def read_spider_tables(path: str | os.PathLike, dataset: str) -> dict[str, str]:
    """Spider's ``tables.json`` (a list of schemas: ``db_id``, ``table_names_original``,
    ``column_names_original``, ``column_types``; keys are not used) -> {db_id: context}
    (``spider_context``). Every schema is checked; errors name the file and the schema."""
    where = f"dataset {dataset!r}, tables file {str(path)!r}"
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{where}: file not found")
    obj = _read_json_file(path, where, "Spider tables")
    if not isinstance(obj, list):
        raise DataError(f"{where}: expected a JSON list of database schemas (Spider's tables.json), "
                        f"got {type(obj).__name__}")
    out: dict[str, str] = {}
    for i, db in enumerate(obj):
        loc = f"schema {i}"
        if not isinstance(db, dict):
            raise DataError(f"{where}: {loc}: expected an object, got {type(db).__name__}")
        db_id = _field(db, "db_id", str, where, loc)
        loc = f"schema {i} (db_id {db_id!r})"
        if db_id in out:
            raise DataError(f"{where}: {loc}: duplicate db_id {db_id!r}")
        tables = _field(db, "table_names_original", list, where, loc)
        columns = _field(db, "column_names_original", list, where, loc)
        types = _field(db, "column_types", list, where, loc)
        if not tables:
            raise DataError(f"{where}: {loc}: no tables")
        bad = [t for t in tables if not isinstance(t, str) or not t]
        if bad:
            raise DataError(f"{where}: {loc}: table names must be non-empty strings, got {_short(bad[0], 40)}")
        if len(types) != len(columns):
            raise DataError(f"{where}: {loc}: {len(columns)} column_names_original but {len(types)} column_types")
        counts = [0] * len(tables)
        for j, (col, typ) in enumerate(zip(columns, types)):
            ok = (isinstance(col, list) and len(col) == 2 and isinstance(col[0], int)
                  and not isinstance(col[0], bool) and isinstance(col[1], str) and col[1] and isinstance(typ, str))
            if not ok:
                raise DataError(f"{where}: {loc}: column {j}: expected a [table index, name] pair and a type "
                                f"string, got {_short(col, 40)} and {_short(typ, 20)}")
            if col[0] == -1:
                continue
            if not 0 <= col[0] < len(tables):
                raise DataError(f"{where}: {loc}: column {j} {col[1]!r}: table index {col[0]} out of range "
                                f"({len(tables)} tables)")
            counts[col[0]] += 1
        empty = [t for t, n in zip(tables, counts) if n == 0]
        if empty:
            raise DataError(f"{where}: {loc}: table {empty[0]!r} has no columns")
        out[db_id] = spider_context(tables, columns, types)
    if not out:
        raise DataError(f"{where}: no database schemas in the file")
    return out


def read_spider(path: str | os.PathLike, contexts: dict[str, str], tables_path: str | os.PathLike,
                dataset: str, split: str | None = None) -> pd.DataFrame:
    """Spider's ``train_spider.json`` / ``dev.json`` (a JSON list of records with ``db_id``,
    ``question``, ``query``) -> the columns of ``SPIDER_COLUMNS``, one row per record in file
    order: ``context`` is the record's database schema (``contexts``, from
    ``read_spider_tables(tables_path)``) and ``answer`` its ``query``; the other fields
    (``query_toks``, ``sql``, ...) are dropped. Errors name the file and the record."""
    where = _where(dataset, path, split)
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{where}: file not found")
    obj = _read_json_file(path, where, "Spider")
    if not isinstance(obj, list):
        raise DataError(f"{where}: expected a JSON list of Spider records, got {type(obj).__name__}")
    rows: dict[str, list[str]] = {c: [] for c in SPIDER_COLUMNS}
    for i, rec in enumerate(obj):
        loc = f"record {i}"
        if not isinstance(rec, dict):
            raise DataError(f"{where}: {loc}: expected an object, got {type(rec).__name__}")
        if isinstance(rec.get("question"), str):
            loc += f" (question {_short(rec['question'], 60)})"
        db_id = _field(rec, "db_id", str, where, loc)
        question = _field(rec, "question", str, where, loc)
        query = _field(rec, "query", str, where, loc)
        if db_id not in contexts:
            raise DataError(f"{where}: {loc}: unknown db_id {db_id!r}: no such database in the tables file "
                            f"{str(tables_path)!r} ({len(contexts)} databases)")
        rows["question"].append(question)
        rows["context"].append(contexts[db_id])
        rows["answer"].append(query)
        rows["db_id"].append(db_id)
    if not rows["question"]:
        raise DataError(f"{where}: no records in the file")
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- SQuAD (extractive QA)

#: the normalised QA frame's columns, in order
QA_COLUMNS = ("id", "title", "context", "question", "answer_text", "answer_start", "idx")
_SHOWN = 5  # problems listed in one error message


def _short(v: Any, n: int = 80) -> str:
    r = repr(v)
    return r if len(r) <= n else r[: n - 3] + "..."


_TYPE_WORDS = {str: "a string", list: "a list", dict: "an object", int: "an integer"}


def _field(obj: dict, key: str, typ: type, where: str, loc: str) -> Any:
    if key not in obj:
        raise DataError(f"{where}: {loc}: missing field {key!r}")
    v = obj[key]
    if not isinstance(v, typ) or isinstance(v, bool):
        raise DataError(f"{where}: {loc}: field {key!r} must be {_TYPE_WORDS[typ]}, "
                        f"got {type(v).__name__} {_short(v, 40)}")
    return v


def _span_problem(qname: str, k: int, context: str, text: str, start: int) -> str | None:
    """None when ``context[start:start+len(text)] == text``; otherwise a description."""
    end = start + len(text)
    got = context[start:end]
    if got == text:
        return None
    beyond = f" (the context has {len(context)} characters)" if end > len(context) else ""
    return (f"{qname}, answer {k}: expected {_short(text)} at context[{start}:{end}], "
            f"the context holds {_short(got)}{beyond}")


def _mismatch_error(where: str, problems: list[str]) -> DataError:
    n = len(problems)
    more = f"; ... and {n - _SHOWN} more" if n > _SHOWN else ""
    return DataError(f"{where}: {n} gold answer(s) not found in the context at their answer_start "
                     f"(context[answer_start:answer_start+len(text)] must equal the answer text): "
                     f"{'; '.join(problems[:_SHOWN])}{more}")


def _read_squad_json(path: Path, where: str) -> tuple[Any, str]:
    """Parse a SQuAD .json file, or the single .json member of a .zip: (object, where)."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                names = [i.filename for i in z.infolist() if not i.is_dir()]
                members = [n for n in names if n.lower().endswith(".json")
                           and not n.startswith("__MACOSX/") and not PurePosixPath(n).name.startswith("._")]
                if len(members) != 1:
                    what = "no .json member" if not members else f"{len(members)} .json members"
                    listed = members if members else names
                    raise DataError(f"{where}: a SQuAD zip must hold exactly one .json file, found {what}: "
                                    f"{', '.join(map(repr, listed[:20]))}"
                                    f"{' ...' if len(listed) > 20 else ''}")
                raw = z.read(members[0])
                where = f"{where}, member {members[0]!r}"
        elif path.suffix.lower() == ".zip":
            raise DataError(f"{where}: not a valid zip archive")
        else:
            raw = path.read_bytes()
        return json.loads(raw), where
    except DataError:
        raise
    except (ValueError, OSError, RuntimeError, zipfile.BadZipFile, EOFError) as e:
        # ValueError covers JSONDecodeError and UnicodeDecodeError; RuntimeError: encrypted zip
        raise DataError(f"{where}: cannot read SQuAD JSON: {e}") from None


def read_squad(path: str | os.PathLike, dataset: str, split: str | None = None) -> pd.DataFrame:
    """Read one SQuAD v1.1 JSON file (or a zip holding exactly one) into the normalised QA frame.

    One row per question, in file order, with the columns of ``QA_COLUMNS``. Every field is
    checked (names the file, the question id and its article/paragraph on error); every
    gold answer must be the text found in the context at its ``answer_start``, and question
    ids must be unique within the file.
    """
    where = _where(dataset, path, split)
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{where}: file not found")
    obj, where = _read_squad_json(path, where)
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a SQuAD JSON object {{\"data\": [...]}}, got {type(obj).__name__}")
    data = _field(obj, "data", list, where, "top level")
    ids: list[str] = []
    titles: list[str] = []
    contexts: list[str] = []
    questions: list[str] = []
    texts: list[list[str]] = []
    starts: list[list[int]] = []
    seen: dict[str, str] = {}  # question id -> where it was first seen
    problems: list[str] = []
    for a, article in enumerate(data):
        aloc = f"article {a}"
        if not isinstance(article, dict):
            raise DataError(f"{where}: {aloc}: expected an object, got {type(article).__name__}")
        title = article.get("title", "")
        if not isinstance(title, str):
            raise DataError(f"{where}: {aloc}: field 'title' must be a string, got {type(title).__name__}")
        if title:
            aloc += f" {title!r}"
        paragraphs = _field(article, "paragraphs", list, where, aloc)
        for p, para in enumerate(paragraphs):
            ploc = f"{aloc}, paragraph {p}"
            if not isinstance(para, dict):
                raise DataError(f"{where}: {ploc}: expected an object, got {type(para).__name__}")
            context = _field(para, "context", str, where, ploc)
            qas = _field(para, "qas", list, where, ploc)
            for q, qa in enumerate(qas):
                qloc = f"{ploc}, question {q}"
                if not isinstance(qa, dict):
                    raise DataError(f"{where}: {qloc}: expected an object, got {type(qa).__name__}")
                qid = _field(qa, "id", str, where, qloc)
                qname = f"question id {qid!r} ({qloc})"
                if qid in seen:
                    raise DataError(f"{where}: duplicate question id {qid!r}: {seen[qid]} and {qloc}")
                seen[qid] = qloc
                question = _field(qa, "question", str, where, qname)
                answers = _field(qa, "answers", list, where, qname)
                if not answers:
                    v2 = " (SQuAD v2 unanswerable questions are not supported)" if qa.get("is_impossible") else ""
                    raise DataError(f"{where}: {qname}: empty 'answers' list; every question needs at least "
                                    f"one gold answer{v2}")
                q_texts, q_starts = [], []
                for k, ans in enumerate(answers):
                    kloc = f"{qname}, answer {k}"
                    if not isinstance(ans, dict):
                        raise DataError(f"{where}: {kloc}: expected an object, got {type(ans).__name__}")
                    text = _field(ans, "text", str, where, kloc)
                    start = _field(ans, "answer_start", int, where, kloc)
                    if not text:
                        raise DataError(f"{where}: {kloc}: empty answer text")
                    if start < 0:
                        raise DataError(f"{where}: {kloc}: negative answer_start {start}")
                    problem = _span_problem(qname, k, context, text, start)
                    if problem is not None:
                        problems.append(problem)
                    q_texts.append(text)
                    q_starts.append(int(start))
                ids.append(qid)
                titles.append(title)
                contexts.append(context)
                questions.append(question)
                texts.append(q_texts)
                starts.append(q_starts)
    if problems:
        raise _mismatch_error(where, problems)
    if not ids:
        raise DataError(f"{where}: no questions in the file")
    return pd.DataFrame({
        "id": ids, "title": titles, "context": contexts, "question": questions,
        "answer_text": texts, "answer_start": starts, "idx": np.arange(len(ids), dtype=np.int64),
    })


def is_qa_frame(df: pd.DataFrame) -> bool:
    """A frame in the normalised QA layout (it has ``answer_text`` and ``answer_start``)."""
    return "answer_text" in df.columns and "answer_start" in df.columns


def _is_hub_squad(df: pd.DataFrame) -> bool:
    """The HF hub SQuAD layout: ``answers`` = {text: [...], answer_start: [...]} per row."""
    return "answers" in df.columns and "label" not in df.columns and not is_qa_frame(df)


def _qname(df: pd.DataFrame, i: int) -> str:
    if "id" in df.columns:
        s = f"question id {str(df['id'].iat[i])!r} (row {i}"
        if "title" in df.columns:
            s += f", title {str(df['title'].iat[i])!r}"
        return s + ")"
    return f"row {i}"


def _is_sequence(v: Any) -> bool:
    return isinstance(v, (list, tuple, np.ndarray)) and not isinstance(v, str)


def _flatten_answers(df: pd.DataFrame, where: str) -> pd.DataFrame:
    """Hub SQuAD ``answers`` (a dict of lists per row, or a list of {text, answer_start})
    -> ``answer_text`` and ``answer_start`` columns in its place."""
    texts, starts = [], []
    for i, v in enumerate(df["answers"].tolist()):
        if isinstance(v, dict):
            missing = [k for k in ("text", "answer_start") if k not in v]
            if missing:
                raise DataError(f"{where}: {_qname(df, i)}: 'answers' lacks field(s) {missing}")
            t, s = v["text"], v["answer_start"]
        elif _is_sequence(v) and all(isinstance(x, dict) for x in v):
            missing = sorted({k for x in v for k in ("text", "answer_start") if k not in x})
            if missing:
                raise DataError(f"{where}: {_qname(df, i)}: an answer lacks field(s) {missing}")
            t, s = [x["text"] for x in v], [x["answer_start"] for x in v]
        else:
            raise DataError(f"{where}: {_qname(df, i)}: 'answers' must be {{text: [...], answer_start: [...]}} "
                            f"or a list of {{text, answer_start}} objects, got {type(v).__name__}")
        texts.append(t)
        starts.append(s)
    pos = list(df.columns).index("answers")
    out = df.drop(columns=["answers"])
    out.insert(pos, "answer_text", pd.Series(texts, index=df.index, dtype=object))
    out.insert(pos + 1, "answer_start", pd.Series(starts, index=df.index, dtype=object))
    return out


def _idx_column(df: pd.DataFrame, where: str) -> np.ndarray:
    if "idx" in df.columns:
        try:
            idx = _labels(df["idx"], where + " (column idx)", None)
        except DataError as e:
            raise DataError(str(e).replace("labels", "idx values")) from None
        if idx.dtype.kind == "f":
            raise DataError(f"{where}: non-integer idx values (e.g. {idx[np.mod(idx, 1) != 0][0]!r})")
        if pd.Index(idx).has_duplicates:
            raise DataError(f"{where}: duplicate values in column 'idx'")
        return idx
    return np.arange(len(df), dtype=np.int64)


def _normalise_qa(df: pd.DataFrame, where: str, label_map: dict[str, int] | None) -> pd.DataFrame:
    """Check and convert a QA frame: answer lists, answer spans, unique ids; add ``idx``."""
    if label_map:
        raise DataError(f"{where}: label_map does not apply to an extractive-QA dataset")
    df = df.reset_index(drop=True)
    for col in ("context", "question"):
        if col in df.columns:
            bad = [i for i, v in enumerate(df[col].tolist()) if not isinstance(v, str)]
            if bad:
                v = df[col].iat[bad[0]]
                raise DataError(f"{where}: {_qname(df, bad[0])}: {col!r} must be a string, got "
                                f"{type(v).__name__} {_short(v, 40)} ({len(bad)} such row(s))")
    texts, starts = [], []
    for i, (t, s) in enumerate(zip(df["answer_text"].tolist(), df["answer_start"].tolist())):
        if (_is_sequence(t) and _is_sequence(s) and len(t) == len(s) > 0
                and all(isinstance(x, str) and x for x in t)
                and all(isinstance(y, (int, np.integer)) and not isinstance(y, (bool, np.bool_)) and y >= 0
                        for y in s)):
            texts.append([str(x) for x in t])
            starts.append([int(y) for y in s])
            continue
        # something is wrong with this row: find what, and say so
        name = _qname(df, i)
        if not _is_sequence(t) or not _is_sequence(s):
            raise DataError(f"{where}: {name}: 'answer_text' and 'answer_start' must be lists, "
                            f"got {type(t).__name__} and {type(s).__name__}")
        if len(t) != len(s):
            raise DataError(f"{where}: {name}: {len(t)} answer text(s) but {len(s)} answer_start value(s)")
        if len(t) == 0:
            raise DataError(f"{where}: {name}: no gold answer (empty answer list)")
        row_t, row_s = [], []
        for k, (x, y) in enumerate(zip(t, s)):
            if not isinstance(x, str):
                raise DataError(f"{where}: {name}, answer {k}: text must be a string, got {type(x).__name__}")
            if isinstance(y, (bool, np.bool_)) or not isinstance(y, (int, np.integer)):
                raise DataError(f"{where}: {name}, answer {k}: answer_start must be an integer, "
                                f"got {type(y).__name__} {_short(y, 40)}")
            if not x:
                raise DataError(f"{where}: {name}, answer {k}: empty answer text")
            if y < 0:
                raise DataError(f"{where}: {name}, answer {k}: negative answer_start {int(y)}")
            row_t.append(str(x))
            row_s.append(int(y))
        texts.append(row_t)
        starts.append(row_s)
    if "context" in df.columns:
        problems = []
        for i, (c, t, s) in enumerate(zip(df["context"].tolist(), texts, starts)):
            for k, (x, y) in enumerate(zip(t, s)):
                if c[y:y + len(x)] != x:
                    problems.append(_span_problem(_qname(df, i), k, c, x, y))
        if problems:
            raise _mismatch_error(where, problems)
    if "id" in df.columns:
        ids = df["id"].map(str)
        dup = ids[ids.duplicated(keep=False)]
        if len(dup):
            first = dup.iat[0]
            rows = dup.index[dup == first].tolist()
            raise DataError(f"{where}: duplicate question id {first!r} (rows {rows}; "
                            f"{dup.nunique()} duplicated id(s) in all)")
    idx = _idx_column(df, where)
    out = df[[c for c in df.columns if c != "idx"]].copy()
    out["answer_text"] = pd.Series(texts, dtype=object)
    out["answer_start"] = pd.Series(starts, dtype=object)
    out["idx"] = pd.Series(idx, dtype="int64")
    return out


def _real_labels(values: pd.Series) -> np.ndarray | None:
    """float64 labels when every value is a finite number and some are not integers (a
    regression target such as an STS-B score); else None."""
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values.tolist()):
        if isinstance(v, bool):
            return None
        try:
            out[i] = float(v.strip()) if isinstance(v, str) else float(v)
        except (ValueError, TypeError):
            return None
    if not np.isfinite(out).all() or (np.mod(out, 1) == 0).all():
        return None
    return out


def _labels(values: pd.Series, where: str, label_map: dict[str, int] | None) -> np.ndarray:
    if label_map is not None:
        keys = values.map(lambda v: v if isinstance(v, str) else (None if pd.isna(v) else str(v)))
        unknown = sorted({k for k in keys if k not in label_map}, key=str)
        if unknown:
            shown = ", ".join(repr(u) for u in unknown[:10])
            raise DataError(f"{where}: labels not in label_map: {shown} "
                            f"(label_map keys: {', '.join(map(repr, label_map))})")
        return np.array([int(label_map[k]) for k in keys], dtype=np.int64)
    if values.isna().any():
        n = int(values.isna().sum())
        raise DataError(f"{where}: {n} missing label(s) (use -1 for unlabelled records)")
    if pd.api.types.is_bool_dtype(values):
        raise DataError(f"{where}: boolean labels need a label_map")
    if pd.api.types.is_integer_dtype(values):
        return values.to_numpy(dtype=np.int64)
    reals = _real_labels(values)
    if reals is not None:
        return reals
    # strings of digits (csv/tsv are read as text) or integral floats
    out = np.empty(len(values), dtype=np.int64)
    bad = []
    for i, v in enumerate(values.tolist()):
        try:
            if isinstance(v, str):
                iv = int(v.strip())
            elif isinstance(v, (int, np.integer)) and not isinstance(v, bool):
                iv = int(v)
            elif isinstance(v, (float, np.floating)) and float(v).is_integer():
                iv = int(v)
            else:
                raise ValueError
        except (ValueError, TypeError):
            bad.append(v)
            if len(bad) >= 5:
                break
            continue
        out[i] = iv
    if bad:
        shown = ", ".join(repr(b) for b in bad)
        raise DataError(f"{where}: non-integer labels ({shown}); give a label_map "
                        f"(string label -> int) in the dataset spec")
    return out


def _is_missing(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, (float, np.floating)) and np.isnan(v))


def _normalise_unlabelled(df: pd.DataFrame, where: str) -> pd.DataFrame:
    """An unlabelled text split: its columns in order (text columns as ``str``, missing values
    null; other columns, e.g. lists, as they are), then ``idx``. No ``label`` is looked for."""
    df = df.reset_index(drop=True)
    rest = [c for c in df.columns if c != "idx"]
    if not rest:
        raise DataError(f"{where}: no columns (columns: {list(df.columns)})")
    idx = _idx_column(df, where)
    out = df[rest].copy()
    for c in rest:
        col = out[c]
        if pd.api.types.is_string_dtype(col.dtype) and col.dtype != object:
            out[c] = col.astype("str")
            continue
        if col.dtype != object:
            continue
        values = col.tolist()
        if not any(isinstance(v, str) for v in values):
            continue
        other = [i for i, v in enumerate(values) if not isinstance(v, str) and not _is_missing(v)]
        if other:
            v = values[other[0]]
            raise DataError(f"{where}: column {c!r} mixes text and other values (row {other[0]}: "
                            f"{type(v).__name__} {_short(v, 40)}; {len(other)} such row(s))")
        out[c] = pd.Series([v if isinstance(v, str) else None for v in values], index=out.index, dtype="str")
    out["idx"] = pd.Series(idx, dtype="int64")
    return out


def normalise(df: pd.DataFrame, dataset: str, split: str, file: str | os.PathLike | None = None,
              label_map: dict[str, int] | None = None,
              columns: dict[str, str] | None = None, labelled: bool = True) -> pd.DataFrame:
    """Rename columns, convert ``label`` to int64 (via ``label_map`` if given), add/convert ``idx``.

    Column order: the other columns in their original order, then ``label``, ``idx``.

    Extractive-QA frames (with ``answer_text`` and ``answer_start`` columns, or the hub SQuAD
    ``answers`` column, which is flattened into those two) need no ``label``: their answers
    are checked (lists of str / int, every span found in ``context``, unique ``id``) and they
    keep their columns, with ``idx`` last.

    ``labelled=False`` (a dataset spec's ``labelled: false``: text generation data, whose
    targets are text columns): after renaming, the split keeps its columns in their order,
    text columns as ``str`` (missing values null; a column mixing text and other values is
    an error), and gets ``idx`` last; no ``label`` is needed or converted, and ``label_map``
    does not apply.
    """
    where = f"dataset {dataset!r}, split {split!r}" + (f", file {str(file)!r}" if file is not None else "")
    df = df.copy()
    df.columns = [str(c) for c in df.columns]
    if columns:
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise DataError(f"{where}: columns to rename not found: {missing} "
                            f"(columns: {list(df.columns)})")
        df = df.rename(columns=dict(columns))
        if df.columns.duplicated().any():
            raise DataError(f"{where}: duplicate columns after renaming: {list(df.columns)}")
    if not labelled:
        if label_map:
            raise DataError(f"{where}: label_map does not apply to an unlabelled dataset (labelled: false)")
        return _normalise_unlabelled(df, where)
    if _is_hub_squad(df):
        df = _flatten_answers(df, where)
    if is_qa_frame(df):
        return _normalise_qa(df, where, label_map)
    if "label" not in df.columns:
        hint = "; this looks like SQuAD JSON: set the dataset's format: squad" if "paragraphs" in df.columns else ""
        raise DataError(f"{where}: no 'label' column (columns: {list(df.columns)}); "
                        f"rename one with the spec's 'columns' map{hint}")
    labels = _labels(df["label"], where, label_map)
    if (labels < -1).any():
        raise DataError(f"{where}: negative labels other than -1 (unlabelled): "
                        f"{sorted(set(labels[labels < -1].tolist()))[:10]}")
    idx = _idx_column(df, where)
    rest = [c for c in df.columns if c not in ("label", "idx")]
    out = df[rest].reset_index(drop=True)
    out["label"] = pd.Series(labels, dtype="float64" if labels.dtype.kind == "f" else "int64")
    out["idx"] = pd.Series(idx, dtype="int64")
    return out


def write_parquet(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a DataFrame as Parquet atomically, without the pandas index or pandas metadata
    (so equal data gives byte-identical files)."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    table = table.replace_schema_metadata(None)
    write_table(table, path)


def write_table(table: pa.Table, path: str | os.PathLike) -> None:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    atomic_write_bytes(path, sink.getvalue().to_pybytes())
