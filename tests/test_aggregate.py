"""lwob.analysis.aggregate: tidy metrics, summary over seeds (mean/std/CI) and the per-run table."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from scipy import stats

from lwob.analysis.aggregate import collect, write_all

from conftest import SYNTHETIC_TASKS

MODELS = ["rb", "my_model"]
METHODS = ["fft", "lora", "bitfit"]
SEEDS = [0, 1, 2]
TASKS = SYNTHETIC_TASKS
SET_INDEX = {("sst2", "origin"): 0, ("sst2", "adv"): 1, ("mnli", "origin"): 2, ("mnli", "adv"): 3,
             ("mnli", "origin-mm"): 4, ("mnli", "adv-mm"): 5}
DELTA = {0: -0.01, 1: 0.0, 2: 0.01}


def value(model, task, method, eval_set, seed):
    """Known accuracy: mean over seeds = base, sample std = 0.01 (1.00 in percent)."""
    base = 0.5 + 0.1 * METHODS.index(method) + 0.01 * SET_INDEX[(task, eval_set)] + 0.05 * MODELS.index(model)
    if TASKS[task]["eval_sets"][eval_set]["kind"] == "adv":
        base -= 0.3
    return base + DELTA.get(seed, 0.0)


def write_records(root, models=MODELS, methods=METHODS, seeds=SEEDS, skip=()):
    """Write eval and train records; `skip` holds (model, task, method, seed) to leave out."""
    evals, trains = [], []
    for m in models:
        for t, task in TASKS.items():
            for x in methods:
                for s in seeds:
                    if (m, t, x, s) in skip:
                        continue
                    ev = root / "eval" / m / t / x / f"seed{s}.json"
                    ev.parent.mkdir(parents=True, exist_ok=True)
                    metrics = {name: {"accuracy": value(m, t, x, name, s), "n": 100 + i, **spec}
                               for i, (name, spec) in enumerate(task["eval_sets"].items())}
                    ev.write_text(json.dumps({"model": m, "task": t, "method": x, "seed": s, "metrics": metrics}))
                    tr = root / "runs" / m / t / x / f"seed{s}" / "train.json"
                    tr.parent.mkdir(parents=True, exist_ok=True)
                    rec = {
                        "model": m, "task": t, "method": x, "seed": s, "method_type": x,
                        "method_options": {"r": 8} if x == "lora" else {},
                        "hyperparameters": {"lr": 1e-3, "batch_size": 32, "epochs": 2, "warmup_ratio": 0.06},
                        "params": {"trainable": 10, "total": 1000, "base_total": 990, "head": 10,
                                   "trainable_pct": 1.0},
                        "task_kind": "classification", "train_examples": 400, "train_rows": 400,
                        "epochs": [{"epoch": 1, "val_score": 0.7, "val_metrics": {"accuracy": 0.7, "n": 50},
                                    "train_loss": 0.5},
                                   {"epoch": 2, "val_score": 0.8, "val_metrics": {"accuracy": 0.8, "n": 50},
                                    "train_loss": 0.4}],
                        "best_epoch": 2, "val_metric": "accuracy", "best_val_score": 0.8, "wall_time_s": 12.5,
                        "train_samples_per_s": 40.0, "peak_host_mem_mb": 900.0, "peak_gpu_mem_mb": None,
                        "device": "cpu",
                        "provenance": {"packages": {"torch": "2.13.0", "transformers": "5.23.0", "peft": "0.21.2"},
                                       "git": {"commit": "abc123", "dirty": False}, "python": "3.11.9"},
                    }
                    if (m, t, x, s) == ("my_model", "sst2", "fft", 2):  # an older record: keys missing
                        for key in ("provenance", "peak_gpu_mem_mb", "params", "hyperparameters", "task_kind",
                                    "train_rows"):
                            rec.pop(key)
                    tr.write_text(json.dumps(rec))
                    evals.append(ev)
                    trains.append(tr)
    return evals, trains


def test_metrics_rows_and_columns(tmp_path):
    evals, trains = write_records(tmp_path)
    metrics, summary, runs = collect(evals, trains)
    # 2 models x 3 methods x 3 seeds x (2 + 4) eval sets x 1 metric
    assert len(metrics) == 2 * 3 * 3 * 6
    assert list(metrics.columns) == ["model", "task", "method", "seed", "eval_set", "kind", "column",
                                     "metric", "value", "n"]
    assert set(metrics["metric"]) == {"accuracy"}
    row = metrics[(metrics.model == "rb") & (metrics.task == "mnli") & (metrics.method == "lora")
                  & (metrics.seed == 2) & (metrics.eval_set == "adv-mm")].iloc[0]
    assert row["value"] == pytest.approx(value("rb", "mnli", "lora", "adv-mm", 2))
    assert row["kind"] == "adv" and row["column"] == "mnli-mm" and row["n"] == 103
    assert len(summary) == 2 * 3 * 6
    assert (summary["n"] == 3).all()
    assert (summary["seeds"] == "0,1,2").all()


def test_summary_hand_numbers(tmp_path):
    evals, trains = write_records(tmp_path)
    # Overwrite one cell with uneven values: 0.80, 0.82, 0.87.
    for seed, acc in zip(SEEDS, [0.80, 0.82, 0.87]):
        path = tmp_path / "eval" / "rb" / "sst2" / "fft" / f"seed{seed}.json"
        rec = json.loads(path.read_text())
        rec["metrics"]["origin"]["accuracy"] = acc
        path.write_text(json.dumps(rec))
    _, summary, _ = collect(evals, trains)
    r = summary[(summary.model == "rb") & (summary.task == "sst2") & (summary.method == "fft")
                & (summary.eval_set == "origin")].iloc[0]
    std = math.sqrt((0.03**2 + 0.01**2 + 0.04**2) / 2)
    half = stats.t.ppf(0.975, 2) * std / math.sqrt(3)
    assert r["mean"] == pytest.approx(0.83)
    assert r["std"] == pytest.approx(std)
    assert r["sem"] == pytest.approx(std / math.sqrt(3))
    assert r["ci95_low"] == pytest.approx(0.83 - half)
    assert r["ci95_high"] == pytest.approx(0.83 + half)
    assert half == pytest.approx(0.0895, abs=1e-4)
    other = summary[(summary.model == "my_model") & (summary.task == "mnli") & (summary.method == "bitfit")
                    & (summary.eval_set == "origin-mm")].iloc[0]
    assert other["mean"] == pytest.approx(value("my_model", "mnli", "bitfit", "origin-mm", 1))
    assert other["std"] == pytest.approx(0.01)


def test_single_seed_std_is_nan(tmp_path):
    evals, trains = write_records(tmp_path, seeds=[42])
    _, summary, _ = collect(evals, trains)
    assert (summary["n"] == 1).all()
    assert summary[["std", "sem", "ci95_low", "ci95_high"]].isna().all().all()
    assert (summary["seeds"].astype(str) == "42").all()


def test_runs_table_flattens_and_tolerates_missing_keys(tmp_path):
    evals, trains = write_records(tmp_path)
    _, _, runs = collect(evals, trains)
    assert len(runs) == 2 * 2 * 3 * 3
    for col in ["model", "task", "method", "seed", "task_kind", "method_type", "trainable_params", "total_params",
                "trainable_pct", "best_epoch", "val_metric", "best_val_score", "train_examples", "train_rows",
                "wall_time_s", "train_samples_per_s",
                "peak_host_mem_mb", "peak_gpu_mem_mb", "device", "lr", "batch_size", "epochs", "warmup_ratio",
                "git_commit", "git_dirty", "torch_version", "transformers_version", "peft_version"]:
        assert col in runs.columns, col
    r = runs[(runs.model == "rb") & (runs.task == "mnli") & (runs.method == "lora") & (runs.seed == 1)].iloc[0]
    assert r["trainable_params"] == 10 and r["lr"] == 1e-3 and r["git_commit"] == "abc123"
    assert r["torch_version"] == "2.13.0" and r["epochs_run"] == 2
    assert r["val_metric"] == "accuracy" and r["best_val_score"] == 0.8 and r["task_kind"] == "classification"
    assert r["train_rows"] == 400
    assert list(runs.columns[:6]) == ["model", "task", "method", "seed", "task_kind", "method_type"]
    assert json.loads(r["method_options"]) == {"r": 8}
    old = runs[(runs.model == "my_model") & (runs.task == "sst2") & (runs.method == "fft") & (runs.seed == 2)]
    assert len(old) == 1 and pd.isna(old.iloc[0]["git_commit"]) and pd.isna(old.iloc[0]["lr"])
    assert pd.isna(old.iloc[0]["task_kind"]) and pd.isna(old.iloc[0]["train_rows"])


QA_RECORD = {
    "model": "rb", "task": "squad", "method": "lora", "seed": 0,
    "metrics": {
        "origin": {"em": 0.8, "f1": 0.85, "n": 120, "kind": "origin", "column": "Origin"},
        "addsent": {"em": 0.4, "f1": 0.5, "n": 200, "orig_em": 0.79, "orig_f1": 0.84, "n_orig": 100,
                    "adv_em": 0.35, "adv_f1": 0.45, "n_groups": 100, "kind": "adv", "column": "AS"},
        "empty": {"em": None, "f1": None, "n": 0, "kind": "adv", "column": "X"},
    },
}


def test_qa_metrics_counts_are_not_metrics(tmp_path):
    """QA records: n/n_orig/n_groups are counts; each metric's n is the count it is over."""
    ev = tmp_path / "qa.json"
    ev.write_text(json.dumps(QA_RECORD))
    tr = tmp_path / "train.json"
    tr.write_text(json.dumps({"model": "rb", "task": "squad", "method": "lora", "seed": 0, "task_kind": "extractive_qa",
                              "val_metric": "f1", "best_val_score": 0.83, "best_epoch": 1, "train_examples": 40,
                              "train_rows": 57}))
    metrics, summary, runs = collect([ev], [tr])
    got = {(r.eval_set, r.metric): (r.value, r.n) for r in metrics.itertuples()}
    assert set(metrics["metric"]) == {"em", "f1", "orig_em", "orig_f1", "adv_em", "adv_f1"}
    assert got[("origin", "em")] == (0.8, 120) and got[("origin", "f1")] == (0.85, 120)
    assert got[("addsent", "em")] == (0.4, 200) and got[("addsent", "f1")] == (0.5, 200)
    assert got[("addsent", "orig_em")] == (0.79, 100) and got[("addsent", "orig_f1")] == (0.84, 100)
    assert got[("addsent", "adv_em")] == (0.35, 100) and got[("addsent", "adv_f1")] == (0.45, 100)
    assert math.isnan(got[("empty", "em")][0]) and got[("empty", "em")][1] == 0
    assert len(metrics) == 2 + 6 + 2
    assert set(metrics[metrics.eval_set == "addsent"]["column"]) == {"AS"}
    assert len(summary) == len(metrics) and (summary["n"] == 1).all()
    r = runs.iloc[0]
    assert r["task_kind"] == "extractive_qa" and r["val_metric"] == "f1" and r["best_val_score"] == 0.83
    assert r["train_rows"] == 57 and r["train_examples"] == 40


def test_write_all_roundtrip_and_deterministic(tmp_path):
    evals, trains = write_records(tmp_path)
    out = tmp_path / "results"
    paths = [out / "metrics.csv", out / "summary.csv", out / "runs.csv"]
    write_all(evals, trains, *paths)
    first = [p.read_bytes() for p in paths]
    write_all(list(reversed(evals)), list(reversed(trains)), *paths)  # input order does not matter
    assert [p.read_bytes() for p in paths] == first
    summary = pd.read_csv(paths[1])
    assert len(summary) == 36 and summary["mean"].between(0, 1).all()


def test_duplicate_record_rejected(tmp_path):
    evals, trains = write_records(tmp_path)
    with pytest.raises(ValueError, match="duplicate"):
        collect(evals + evals[:1], trains)


def test_empty_inputs(tmp_path):
    metrics, summary, runs = collect([], [])
    assert metrics.empty and summary.empty and runs.empty
    assert "mean" in summary.columns
