"""Tokenise a task once per model: ``data/tokenized/{model}/{task}/``.

Training parts (``prepare_task``): ``train.parquet`` and ``validation.parquet`` plus
``meta.json``::

    {task, kind, model, tokenizer_path, pad_token_id, max_length, num_labels,
     parts: {train|validation: {records, examples, sha256, kind, source: {dataset, split}, scoring}},
     raw_manifests: {dataset: sha256}}

Each eval set separately (``prepare_eval_set``): ``eval/{name}.parquet`` and
``eval/{name}.json`` (same entry as a part, plus ``column``), so adding an eval set never
re-tokenises (and so never retrains) the training parts.

Rows are model inputs made by the task kind (lwob.tasks): ``row`` (index of the example
in the split), ``input_ids`` (list<int32>, unpadded, with special tokens), optional
``token_type_ids`` and the kind's target/scoring columns. Kinds whose inputs are not one
per example (extractive QA windows) also write ``{part}.examples.parquet``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from lwob import tasks as task_kinds
from lwob.data.formats import write_table
from lwob.errors import ConfigError, DataError
from lwob.io import read_json, sha256_file, verify_sha256, write_json

DATA_SEED = 1234  # fixed: the holdout and the train subsample never depend on the run seed
EVAL_KINDS = tuple(task_kinds.EVAL_SET_KINDS)
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


def _at_most(frame, max_examples, key: str):
    """`frame` cut to a fixed subsample of `max_examples` rows (`key`: the config key), or whole."""
    if max_examples is None:
        return frame
    if isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 1:
        raise ConfigError(f"{key}: expected a positive integer, got {max_examples!r}")
    return frame.iloc[subsample(len(frame), max_examples)].reset_index(drop=True)


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
    verify_sha256(path, files[split].get("sha256"), output=mpath)
    df = pd.read_parquet(path)
    if len(df) == 0:  # the tokenizer cannot encode an empty batch; a model cannot train or score on one
        spec = manifest.get("spec") or {}
        source = (spec.get("files") or {}).get(split) or spec.get("file")
        raise DataError(f"task {task_name!r}, part {key!r}: split {split!r} of dataset {dataset!r} has no rows "
                        f"({path}" + (f", read from {source}" if source else "") + ")")
    return df


# --------------------------------------------------------------------------- main

def _check_common(task_name: str, task: dict):
    kind = task_kinds.get(task.get("kind", "classification"))
    max_length = task.get("max_length")
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 4:
        raise ConfigError(f"tasks.{task_name}.max_length: expected an integer >= 4, got {max_length!r}")
    kind.check_task(task_name, task)
    return kind


def _load_tokenizer(task_name: str, tokenizer_path: Path, model_name: str):
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
    return tokenizer, int(pad)


def _write_part(kind, tokenizer, df: pd.DataFrame, task: dict, out_dir: Path, name: str, *, train: bool) -> dict:
    features, examples = kind.encode(tokenizer, df, task, train=train)
    path = out_dir / f"{name}.parquet"
    write_table(features, path)
    entry = {"records": int(features.num_rows), "examples": int(len(df)), "sha256": sha256_file(path)}
    if examples is not None:
        ex_path = out_dir / f"{name}.examples.parquet"
        write_table(examples, ex_path)
        entry["examples_sha256"] = sha256_file(ex_path)
    return entry


def _scoring(kind, task: dict) -> dict:
    """Task settings that scoring needs (QA span search), recorded with each scored part."""
    return {k: task[k] for k in kind.scoring_keys if k in task}


def prepare_task(task_name: str, task: dict, raw_dirs: dict[str, Path], tokenizer_path: Path,
                 model_name: str, out_dir: Path) -> dict:
    """Tokenise the train and validation parts of a task; returns meta.json."""
    kind = _check_common(task_name, task)
    raw_dirs = {k: Path(v) for k, v in raw_dirs.items()}
    manifests: dict[str, tuple[dict, str]] = {}
    train_ref = task.get("train") or {}
    train_df = _load_split(task_name, "train", train_ref, raw_dirs, manifests)
    where = f"task {task_name!r}, part 'train' (dataset {train_ref['dataset']!r}, split {train_ref['split']!r})"
    kind.check_frame(train_df, task, where, task_name)

    val_spec = task.get("validation")
    if isinstance(val_spec, dict) and "holdout" in val_spec:
        frac = val_spec["holdout"]
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 < frac < 1:
            raise ConfigError(f"tasks.{task_name}.validation.holdout: expected a fraction in (0, 1), got {frac!r}")
        strata = kind.stratify(train_df)
        tr_pos, va_pos = holdout_split(strata if strata is not None else np.zeros(len(train_df)), float(frac))
        if len(va_pos) == 0 or len(tr_pos) == 0:
            raise DataError(f"task {task_name!r}: train split of {train_ref['dataset']!r} is too small "
                            f"for a {frac} holdout ({len(train_df)} rows)")
        val_df = train_df.iloc[va_pos].reset_index(drop=True)
        train_df = train_df.iloc[tr_pos].reset_index(drop=True)
        val_ref = {"dataset": train_ref["dataset"], "split": train_ref["split"], "holdout": float(frac)}
    elif isinstance(val_spec, dict) and "dataset" in val_spec:
        val_ref = {"dataset": val_spec["dataset"], "split": val_spec.get("split")}
        val_df = _load_split(task_name, "validation", val_spec, raw_dirs, manifests)
        where = f"task {task_name!r}, part 'validation' (dataset {val_ref['dataset']!r}, split {val_ref['split']!r})"
        kind.check_frame(val_df, task, where, task_name)
        # validated every epoch: a fixed subsample (the data seed, not the run's), so every
        # method and seed picks its best epoch on the same examples
        val_df = _at_most(val_df, val_spec.get("max_examples"), f"tasks.{task_name}.validation.max_examples")
        if val_spec.get("max_examples") is not None:
            val_ref["max_examples"] = val_spec["max_examples"]
    else:
        raise ConfigError(f"tasks.{task_name}.validation: expected {{holdout: frac}} or {{dataset, split}}, "
                          f"got {val_spec!r}")

    train_df = _at_most(train_df, train_ref.get("max_examples"), f"tasks.{task_name}.train.max_examples")

    tokenizer, pad = _load_tokenizer(task_name, Path(tokenizer_path), model_name)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = {
        "train": {**_write_part(kind, tokenizer, train_df, task, out_dir, "train", train=True), "kind": "train",
                  "source": {"dataset": train_ref["dataset"], "split": train_ref["split"]}},
        "validation": {**_write_part(kind, tokenizer, val_df, task, out_dir, "validation", train=False),
                       "kind": "validation", "source": val_ref, "scoring": _scoring(kind, task)},
    }
    meta = {
        "task": task_name,
        "kind": kind.name,
        "model": model_name,
        "tokenizer_path": str(tokenizer_path),
        "pad_token_id": pad,
        "max_length": int(task["max_length"]),
        "num_labels": task.get("num_labels"),
        "parts": parts,
        "raw_manifests": {ds: sha for ds, (_m, sha) in sorted(manifests.items())},
    }
    write_json(out_dir / "meta.json", meta)
    return meta


def prepare_eval_set(task_name: str, task: dict, eval_set: str, raw_dirs: dict[str, Path], tokenizer_path: Path,
                     model_name: str, out_json: Path) -> dict:
    """Tokenise one eval set of a task into ``out_json``'s folder; returns its metadata."""
    kind = _check_common(task_name, task)
    if eval_set in RESERVED_PARTS:
        raise ConfigError(f"tasks.{task_name}.eval_sets.{eval_set}: the name is reserved for a part")
    es = (task.get("eval_sets") or {}).get(eval_set)
    if not isinstance(es, dict):
        raise ConfigError(f"tasks.{task_name}.eval_sets.{eval_set}: no such eval set")
    if es.get("kind") not in EVAL_KINDS:
        raise ConfigError(f"tasks.{task_name}.eval_sets.{eval_set}.kind: expected one of {EVAL_KINDS}, "
                          f"got {es.get('kind')!r}")
    manifests: dict[str, tuple[dict, str]] = {}
    raw_dirs = {k: Path(v) for k, v in raw_dirs.items()}
    df = _load_split(task_name, f"eval_sets.{eval_set}", es, raw_dirs, manifests)
    ref = {"dataset": es["dataset"], "split": es["split"]}
    if es.get("max_examples"):
        df = df.iloc[subsample(len(df), int(es["max_examples"]))].reset_index(drop=True)
    where = f"task {task_name!r}, eval set {eval_set!r} (dataset {ref['dataset']!r}, split {ref['split']!r})"
    kind.check_frame(df, task, where, task_name)
    tokenizer, _pad = _load_tokenizer(task_name, Path(tokenizer_path), model_name)
    out_json = Path(out_json)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    entry = _write_part(kind, tokenizer, df, task, out_json.parent, eval_set, train=False)
    scoring = _scoring(kind, task)
    if es.get("original_id"):
        scoring["original_id"] = es["original_id"]
    info = {**entry, "task": task_name, "eval_set": eval_set, "kind": es["kind"],
            "column": es.get("column", task_name), "source": ref, "scoring": scoring,
            "raw_manifests": {ds: sha for ds, (_m, sha) in sorted(manifests.items())}}
    write_json(out_json, info)
    return info
