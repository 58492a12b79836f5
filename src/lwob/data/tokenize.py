"""Tokenise one classification task for one model: ``data/tokenized/{model}/{task}/``.

Parts ``train``, ``validation`` and one per eval set name, each ``{part}.parquet`` with
columns ``idx`` (int64), ``label`` (int64), ``input_ids`` (list<int32>, unpadded, with
special tokens) and, when the tokenizer returns them, ``token_type_ids`` (list<int32>);
plus ``meta.json``::

    {task, model, tokenizer_path, pad_token_id, max_length, num_labels,
     parts: {name: {records, sha256, kind, column, source: {dataset, split}}},
     raw_manifests: {dataset: sha256}}

``kind`` is ``train`` / ``validation`` for the first two parts and the eval set's kind
(``origin`` / ``adv``) otherwise; ``column`` is null for train and validation.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from lwob.data.formats import write_table
from lwob.errors import ConfigError, DataError
from lwob.io import read_json, sha256_file, write_json

DATA_SEED = 1234  # fixed: the holdout and the train subsample never depend on the run seed
EVAL_KINDS = ("origin", "adv")
RESERVED_PARTS = ("train", "validation")


# --------------------------------------------------------------------------- splitting

def holdout_split(labels: np.ndarray, frac: float, seed: int = DATA_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Stratified holdout: (train positions, validation positions), both sorted.

    Per label (in sorted order) ``round(frac * n_label)`` rows go to validation, at least one
    when the label has two or more rows, never all of them.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    val = []
    for lab in np.unique(labels):
        pos = np.flatnonzero(labels == lab)
        k = int(round(frac * len(pos)))
        if len(pos) >= 2:
            k = min(max(k, 1), len(pos) - 1)
        else:
            k = 0
        if k:
            val.append(rng.permutation(pos)[:k])
    val_pos = np.sort(np.concatenate(val)) if val else np.array([], dtype=np.int64)
    mask = np.ones(len(labels), dtype=bool)
    mask[val_pos] = False
    return np.flatnonzero(mask), val_pos


def subsample(n: int, k: int, seed: int = DATA_SEED) -> np.ndarray:
    """Deterministic subsample of k out of n positions (sorted); all when k >= n."""
    if k >= n:
        return np.arange(n)
    rng = np.random.default_rng([seed, 1])
    return np.sort(rng.choice(n, size=k, replace=False))


# --------------------------------------------------------------------------- helpers

def _raw_dir(task_name: str, key: str, dataset: str, raw_dirs: dict) -> Path:
    if dataset not in raw_dirs:
        raise ConfigError(f"tasks.{task_name}.{key}.dataset: dataset {dataset!r} was not materialised "
                          f"(known: {', '.join(sorted(raw_dirs)) or 'none'})")
    return Path(raw_dirs[dataset])


def _load_split(task_name: str, key: str, ref: dict, raw_dirs: dict, manifests: dict) -> pd.DataFrame:
    if not isinstance(ref, dict) or "dataset" not in ref or "split" not in ref:
        raise ConfigError(f"tasks.{task_name}.{key}: expected {{dataset, split}}, got {ref!r}")
    dataset, split = ref["dataset"], ref["split"]
    d = _raw_dir(task_name, key, dataset, raw_dirs)
    mpath = d / "manifest.json"
    if not mpath.is_file():
        raise DataError(f"task {task_name!r}, part {key!r}: manifest of dataset {dataset!r} not found: {mpath}")
    if dataset not in manifests:
        manifests[dataset] = (read_json(mpath), sha256_file(mpath))
    manifest = manifests[dataset][0]
    files = manifest.get("files", {})
    if split not in files:
        raise ConfigError(f"tasks.{task_name}.{key}.split: dataset {dataset!r} has no split {split!r} "
                          f"(splits: {', '.join(sorted(files))})")
    path = d / files[split]["path"]
    if not path.is_file():
        raise DataError(f"task {task_name!r}, part {key!r}: file of dataset {dataset!r} split {split!r} "
                        f"not found: {path}")
    return pd.read_parquet(path)


def _check_frame(df: pd.DataFrame, task_name: str, part: str, ref: dict, text_fields: list[str],
                 num_labels: int) -> None:
    where = f"task {task_name!r}, part {part!r} (dataset {ref['dataset']!r}, split {ref['split']!r})"
    missing = [c for c in [*text_fields, "label", "idx"] if c not in df.columns]
    if missing:
        raise DataError(f"{where}: missing column(s) {missing} (columns: {list(df.columns)}); "
                        f"check tasks.{task_name}.text_fields or the dataset's 'columns' map")
    labels = df["label"].to_numpy()
    if (labels == -1).any():
        raise DataError(f"{where}: {int((labels == -1).sum())} unlabelled row(s) (label -1) cannot be "
                        f"used for training or scored; use a labelled split")
    bad = (labels < 0) | (labels >= num_labels)
    if bad.any():
        raise DataError(f"{where}: labels outside 0..{num_labels - 1} "
                        f"(tasks.{task_name}.num_labels = {num_labels}): {sorted(set(labels[bad].tolist()))[:10]}")
    for c in text_fields:
        if df[c].isna().any():
            raise DataError(f"{where}: {int(df[c].isna().sum())} missing value(s) in text column {c!r}")


def _list_array(seqs: list[list[int]]) -> pa.Array:
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int32, count=len(seqs))
    offsets = np.zeros(len(seqs) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.fromiter((t for s in seqs for t in s), dtype=np.int32, count=int(offsets[-1]))
    return pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), pa.array(flat, type=pa.int32()))


def _tokenize(tokenizer, df: pd.DataFrame, text_fields: list[str], max_length: int) -> pa.Table:
    texts = [df[c].astype(str).tolist() for c in text_fields]
    enc = tokenizer(*texts, truncation=True, max_length=max_length, padding=False,
                    add_special_tokens=True)
    cols = {
        "idx": pa.array(df["idx"].to_numpy(dtype=np.int64), type=pa.int64()),
        "label": pa.array(df["label"].to_numpy(dtype=np.int64), type=pa.int64()),
        "input_ids": _list_array(enc["input_ids"]),
    }
    if "token_type_ids" in enc:
        cols["token_type_ids"] = _list_array(enc["token_type_ids"])
    return pa.table(cols)


# --------------------------------------------------------------------------- main

def prepare_task(task_name: str, task: dict, raw_dirs: dict[str, Path], tokenizer_path: Path,
                 model_name: str, out_dir: Path) -> dict:
    """Tokenise train / validation / eval sets of a classification task; returns meta.json."""
    if task.get("kind", "classification") != "classification":
        raise ConfigError(f"tasks.{task_name}.kind: prepare_task handles classification, got {task.get('kind')!r}")
    text_fields = task.get("text_fields")
    if (not isinstance(text_fields, list) or not 1 <= len(text_fields) <= 2
            or not all(isinstance(t, str) for t in text_fields)):
        raise ConfigError(f"tasks.{task_name}.text_fields: expected a list of 1 or 2 column names, got {text_fields!r}")
    num_labels = task.get("num_labels")
    if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 2:
        raise ConfigError(f"tasks.{task_name}.num_labels: expected an integer >= 2, got {num_labels!r}")
    max_length = task.get("max_length")
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 4:
        raise ConfigError(f"tasks.{task_name}.max_length: expected an integer >= 4, got {max_length!r}")
    eval_sets = task.get("eval_sets") or {}
    if not isinstance(eval_sets, dict) or not eval_sets:
        raise ConfigError(f"tasks.{task_name}.eval_sets: at least one eval set is needed")
    for name, es in eval_sets.items():
        if name in RESERVED_PARTS:
            raise ConfigError(f"tasks.{task_name}.eval_sets.{name}: the name is reserved for a part")
        if not isinstance(es, dict) or es.get("kind") not in EVAL_KINDS:
            raise ConfigError(f"tasks.{task_name}.eval_sets.{name}.kind: expected one of {EVAL_KINDS}, "
                              f"got {es.get('kind') if isinstance(es, dict) else es!r}")

    raw_dirs = {k: Path(v) for k, v in raw_dirs.items()}
    manifests: dict[str, tuple[dict, str]] = {}
    train_ref = task.get("train") or {}
    train_df = _load_split(task_name, "train", train_ref, raw_dirs, manifests)
    _check_frame(train_df, task_name, "train", train_ref, text_fields, num_labels)

    val_spec = task.get("validation")
    if isinstance(val_spec, dict) and "holdout" in val_spec:
        frac = val_spec["holdout"]
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 < frac < 1:
            raise ConfigError(f"tasks.{task_name}.validation.holdout: expected a fraction in (0, 1), got {frac!r}")
        tr_pos, va_pos = holdout_split(train_df["label"].to_numpy(), float(frac))
        if len(va_pos) == 0 or len(tr_pos) == 0:
            raise DataError(f"task {task_name!r}: train split of {train_ref['dataset']!r} is too small "
                            f"for a {frac} holdout ({len(train_df)} rows)")
        val_df = train_df.iloc[va_pos].reset_index(drop=True)
        train_df = train_df.iloc[tr_pos].reset_index(drop=True)
        val_ref = {"dataset": train_ref["dataset"], "split": train_ref["split"]}
    elif isinstance(val_spec, dict) and "dataset" in val_spec:
        val_ref = {"dataset": val_spec["dataset"], "split": val_spec.get("split")}
        val_df = _load_split(task_name, "validation", val_spec, raw_dirs, manifests)
        _check_frame(val_df, task_name, "validation", val_ref, text_fields, num_labels)
    else:
        raise ConfigError(f"tasks.{task_name}.validation: expected {{holdout: frac}} or {{dataset, split}}, "
                          f"got {val_spec!r}")

    max_examples = train_ref.get("max_examples")
    if max_examples is not None:
        if isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 1:
            raise ConfigError(f"tasks.{task_name}.train.max_examples: expected a positive integer, "
                              f"got {max_examples!r}")
        train_df = train_df.iloc[subsample(len(train_df), max_examples)].reset_index(drop=True)

    parts: dict[str, tuple[pd.DataFrame, dict, str, str | None]] = {
        "train": (train_df, {"dataset": train_ref["dataset"], "split": train_ref["split"]}, "train", None),
        "validation": (val_df, val_ref, "validation", None),
    }
    for name, es in eval_sets.items():
        df = _load_split(task_name, f"eval_sets.{name}", es, raw_dirs, manifests)
        ref = {"dataset": es["dataset"], "split": es["split"]}
        _check_frame(df, task_name, name, ref, text_fields, num_labels)
        parts[name] = (df, ref, es["kind"], es.get("column", name))

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers import AutoTokenizer  # heavy: only when needed

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_path))
    except Exception as e:  # noqa: BLE001
        raise DataError(f"task {task_name!r}: cannot load the tokenizer of model {model_name!r} from "
                        f"{str(tokenizer_path)!r}: {type(e).__name__}: {e}") from None
    pad = tokenizer.pad_token_id
    if pad is None:
        pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta_parts = {}
    for name, (df, ref, kind, column) in parts.items():
        table = _tokenize(tokenizer, df, text_fields, max_length)
        path = out_dir / f"{name}.parquet"
        write_table(table, path)
        meta_parts[name] = {"records": int(table.num_rows), "sha256": sha256_file(path), "kind": kind,
                            "column": column, "source": ref}
    meta = {
        "task": task_name,
        "model": model_name,
        "tokenizer_path": str(tokenizer_path),
        "pad_token_id": int(pad),
        "max_length": int(max_length),
        "num_labels": int(num_labels),
        "parts": meta_parts,
        "raw_manifests": {ds: sha for ds, (_m, sha) in sorted(manifests.items())},
    }
    write_json(out_dir / "meta.json", meta)
    return meta
