"""Aggregation over runs and seeds: tidy metrics, per-seed summary, per-run cost/provenance.

Inputs are the evaluation records (`results/eval/.../seed{seed}.json`) and training records
(`results/runs/.../train.json`) described in docs/ARCHITECTURE.md. Accuracies stay fractions
in [0, 1] here; tables and figures convert them to percent.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence

import pandas as pd

from ..io import atomic_write_bytes, read_json
from .stats import seed_ci

RUN_KEYS = ["model", "task", "method", "seed"]
METRIC_COLUMNS = [*RUN_KEYS, "eval_set", "kind", "column", "metric", "value", "n"]
SUMMARY_KEYS = ["model", "task", "method", "eval_set", "kind", "column", "metric"]
SUMMARY_COLUMNS = [*SUMMARY_KEYS, "mean", "std", "n", "sem", "ci95_low", "ci95_high", "seeds", "values"]
# Leading columns of runs.csv; any other flattened key follows, sorted by name.
RUN_COLUMNS = [
    *RUN_KEYS, "task_kind", "method_type", "trainable_params", "total_params", "base_total_params", "head_params",
    "trainable_pct", "best_epoch", "val_metric", "best_val_score", "epochs_run", "wall_time_s", "train_time_s",
    "train_samples_per_s", "peak_host_mem_mb", "peak_gpu_mem_mb", "device", "threads",
    "lr", "batch_size", "epochs", "warmup_ratio", "weight_decay", "train_examples", "validation_examples",
    "total_steps", "method_options", "git_commit", "git_dirty",
    "torch_version", "transformers_version", "peft_version",
]
# Keys of an evaluation record's per-set entry that describe the set rather than measure it:
# kind, column and the counts (n; QA: n_orig, n_groups).
_DESCRIPTIVE = {"kind", "column"}


def _count_key(metric: str) -> str:
    """Which count of an eval set a metric is over (QA: adversarial scores are per group)."""
    return {"adv": "n_groups", "orig": "n_orig"}.get(metric.split("_")[0], "n")


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _sort_runs(df: pd.DataFrame, extra: Sequence[str] = ()) -> pd.DataFrame:
    keys = [k for k in (*RUN_KEYS, *extra) if k in df.columns]
    if df.empty or not keys:
        return df.reset_index(drop=True)
    return df.sort_values(keys, kind="stable").reset_index(drop=True)


def _metrics_rows(record: dict, source: str) -> list[dict]:
    missing = [k for k in RUN_KEYS if record.get(k) is None]
    if missing:
        raise ValueError(f"{source}: evaluation record lacks {', '.join(missing)}")
    rows = []
    for eval_set, entry in (record.get("metrics") or {}).items():
        entry = entry or {}
        for metric, value in entry.items():
            if metric in _DESCRIPTIVE or metric == "n" or metric.startswith("n_") or not (
                _is_number(value) or value is None
            ):
                continue
            rows.append({
                "model": record["model"], "task": record["task"], "method": record["method"],
                "seed": int(record["seed"]), "eval_set": eval_set, "kind": entry.get("kind"),
                "column": entry.get("column") if entry.get("column") is not None else record["task"],
                "metric": metric, "value": float(value) if value is not None else math.nan,
                "n": entry.get(_count_key(metric)),
            })
    return rows


def _flatten_run(record: dict) -> dict:
    row: dict = {k: record.get(k) for k in RUN_KEYS}
    if row["seed"] is not None:
        row["seed"] = int(row["seed"])
    row["method_type"] = record.get("method_type")
    params = record.get("params") or {}
    for key in ("trainable", "total", "base_total", "head"):
        if key in params:
            row[f"{key}_params"] = params[key]
    if "trainable_pct" in params:
        row["trainable_pct"] = params["trainable_pct"]
    elif _is_number(params.get("trainable")) and _is_number(params.get("total")) and params["total"]:
        row["trainable_pct"] = 100.0 * params["trainable"] / params["total"]
    for key in ("best_epoch", "val_metric", "best_val_score", "wall_time_s", "train_time_s", "train_samples_per_s",
                "peak_host_mem_mb", "peak_gpu_mem_mb", "device", "threads", "train_examples", "train_rows", "task_kind",
                "validation_examples", "total_steps"):
        if key in record:
            row[key] = record[key]
    if isinstance(record.get("epochs"), list):
        row["epochs_run"] = len(record["epochs"])
    for key, value in (record.get("hyperparameters") or {}).items():
        row[key] = value
    if "method_options" in record:
        row["method_options"] = json.dumps(record["method_options"], sort_keys=True, default=str)
    prov = record.get("provenance") or {}
    git = prov.get("git") or {}
    if git or "git_commit" in prov:
        row["git_commit"] = git.get("commit", prov.get("git_commit"))
        row["git_dirty"] = git.get("dirty", prov.get("git_dirty"))
    for name, version in (prov.get("packages") or {}).items():
        row[f"{name}_version"] = version
    for key in ("python", "platform", "hostname", "cpu_model", "cpu_count", "torch_threads", "timestamp_utc"):
        if key in prov:
            row[key if key != "python" else "python_version"] = prov[key]
    if "gpus" in prov:
        gpus = prov["gpus"]
        row["gpus"] = "; ".join(map(str, gpus)) if isinstance(gpus, list) else gpus
    # Anything else scalar at the provenance top level (e.g. extras added by the train stage).
    for key, value in prov.items():
        if key not in {"git", "packages", "gpus", "python"} and key not in row and (
            value is None or isinstance(value, (str, int, float, bool))
        ):
            row[key] = value
    return row


def _summarise(metrics: pd.DataFrame) -> pd.DataFrame:
    if metrics.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    out = []
    grouped = metrics.sort_values("seed", kind="stable").groupby(SUMMARY_KEYS, sort=True, dropna=False)
    for key, g in grouped:
        values = g["value"].to_numpy(dtype=float)
        ci = seed_ci(values)
        out.append({
            **dict(zip(SUMMARY_KEYS, key)), "mean": ci.mean, "std": ci.std, "n": ci.n, "sem": ci.sem,
            "ci95_low": ci.low, "ci95_high": ci.high,
            "seeds": ",".join(str(int(s)) for s in g["seed"]),
            "values": ",".join(repr(float(v)) for v in values),
        })
    return pd.DataFrame(out, columns=SUMMARY_COLUMNS)


def collect(eval_jsons: Iterable[str | os.PathLike], train_jsons: Iterable[str | os.PathLike]
            ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Read the records; return (metrics, summary, runs) DataFrames.

    metrics: one row per run x eval set x metric (value as stored, fractions for accuracy).
    summary: per model/task/method/eval set/kind/column/metric over seeds: mean, sample std
    (ddof=1, NaN for n=1), n, sem, 95% t-interval, `seeds` and `values` (comma lists, aligned,
    ascending seed; the per-seed values let tables average over columns per seed).
    runs: one row per training record, flattened (cost, hyperparameters, provenance).
    """
    rows: list[dict] = []
    seen: dict[tuple, str] = {}
    untrained: list[dict] = []  # runs of a method that never trains: their row comes from evaluation
    for path in eval_jsons:
        record = read_json(path)
        key = tuple(record.get(k) for k in RUN_KEYS)
        if key in seen:
            raise ValueError(f"duplicate evaluation record for {key}: {seen[key]} and {path}")
        seen[key] = str(path)
        rows.extend(_metrics_rows(record, str(path)))
        if record.get("untrained"):
            untrained.append({**{k: record.get(k) for k in RUN_KEYS}, "params": record["untrained"].get("params"),
                              "trained": False})
    metrics = pd.DataFrame(rows, columns=METRIC_COLUMNS)
    metrics = _sort_runs(metrics, extra=("eval_set", "metric"))
    if not metrics.empty:
        metrics["seed"] = metrics["seed"].astype("int64")
        metrics["value"] = metrics["value"].astype(float)
        metrics["n"] = pd.array(metrics["n"], dtype="Int64")

    run_rows = []
    seen = {}
    for path in train_jsons:
        record = read_json(path)
        row = _flatten_run(record)
        key = tuple(row.get(k) for k in RUN_KEYS)
        if key in seen:
            raise ValueError(f"duplicate training record for {key}: {seen[key]} and {path}")
        seen[key] = str(path)
        run_rows.append(row)
    for record in untrained:
        row = _flatten_run(record)
        row["trained"] = False
        run_rows.append(row)
    present = {k for r in run_rows for k in r}
    columns = [c for c in RUN_COLUMNS if c in present or c in RUN_KEYS]
    columns += sorted(present - set(columns))
    runs = _sort_runs(pd.DataFrame(run_rows, columns=columns))

    return metrics, _summarise(metrics), runs


def _write_csv(df: pd.DataFrame, path: str | os.PathLike) -> None:
    atomic_write_bytes(path, df.to_csv(index=False, lineterminator="\n").encode())


def write_all(eval_jsons, train_jsons, metrics_csv, summary_csv, runs_csv) -> None:
    """collect() and write the three CSVs (atomically)."""
    metrics, summary, runs = collect(eval_jsons, train_jsons)
    _write_csv(metrics, metrics_csv)
    _write_csv(summary, summary_csv)
    _write_csv(runs, runs_csv)
