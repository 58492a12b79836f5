"""Readers for local dataset files and the normalisation shared by every source.

A normalised split keeps the original text columns under their own names and adds
``label`` (int64, -1 = unlabelled) and ``idx`` (int64 record id within the split).
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
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
}
FILE_FORMATS = tuple(EXTENSIONS.values())
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
    """Read one local file (tsv, csv, parquet, json, jsonl) into a DataFrame."""
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


def normalise(df: pd.DataFrame, dataset: str, split: str, file: str | os.PathLike | None = None,
              label_map: dict[str, int] | None = None,
              columns: dict[str, str] | None = None) -> pd.DataFrame:
    """Rename columns, convert ``label`` to int64 (via ``label_map`` if given), add/convert ``idx``.

    Column order: the other columns in their original order, then ``label``, ``idx``.
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
    if "label" not in df.columns:
        raise DataError(f"{where}: no 'label' column (columns: {list(df.columns)}); "
                        f"rename one with the spec's 'columns' map")
    labels = _labels(df["label"], where, label_map)
    if (labels < -1).any():
        raise DataError(f"{where}: negative labels other than -1 (unlabelled): "
                        f"{sorted(set(labels[labels < -1].tolist()))[:10]}")
    if "idx" in df.columns:
        try:
            idx = _labels(df["idx"], where + " (column idx)", None)
        except DataError as e:
            raise DataError(str(e).replace("labels", "idx values")) from None
        if pd.Index(idx).has_duplicates:
            raise DataError(f"{where}: duplicate values in column 'idx'")
    else:
        idx = np.arange(len(df), dtype=np.int64)
    rest = [c for c in df.columns if c not in ("label", "idx")]
    out = df[rest].reset_index(drop=True)
    out["label"] = pd.Series(labels, dtype="int64")
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
