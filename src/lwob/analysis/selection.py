"""Hyperparameter selection on the validation set only.

For a (model, task, method) with a grid (config `selection`), every cell trains with the
selection seeds; its score is the mean over those seeds of each run's best validation
score (the epoch the run keeps). The cell with the highest score is chosen (ties: the first
in grid order) and the study's runs train with its values. Test and adversarial sets are
never read here: the training records hold validation scores only.
"""

from __future__ import annotations

import math

import pandas as pd

from ..io import atomic_write_bytes, read_json, write_json


def choose(cells: dict[str, dict], scores: dict[str, list[float | None]]) -> dict:
    """`cells`: cell id -> hyperparameter values (grid order); `scores`: cell id -> the
    validation scores of its seeds. Returns the choice record."""
    table = []
    for cell, values in cells.items():
        finite = [float(v) for v in scores.get(cell, []) if v is not None and math.isfinite(float(v))]
        mean = sum(finite) / len(finite) if finite else None
        table.append({"cell": cell, "values": values, "val_scores": scores.get(cell, []), "mean_val_score": mean})
    ranked = [row for row in table if row["mean_val_score"] is not None]
    if not ranked:
        raise ValueError("no grid cell has a validation score: nothing to choose from")
    best = max(ranked, key=lambda row: row["mean_val_score"])  # max keeps the first of ties
    return {"chosen": best["cell"], "hyperparameters": best["values"], "grid": table}


def write_choice(*, cells: dict[str, dict], records: dict[str, list[str]], run_id: dict, out_json) -> dict:
    """File-level entry of the `select` rule: `records` maps each cell to its runs' train.json."""
    scores, metric = {}, None
    for cell, paths in records.items():
        recs = [read_json(p) for p in paths]
        scores[cell] = [r.get("best_val_score") for r in recs]
        metric = metric or next((r.get("val_metric") for r in recs), None)
    choice = {**run_id, "val_metric": metric, **choose(cells, scores)}
    write_json(out_json, choice)
    return choice


def selection_frame(choices: list[dict]) -> pd.DataFrame:
    """One row per grid cell of every choice: model, task, method, cell, its values, the
    validation scores, their mean, and whether it was chosen."""
    rows = []
    for c in choices:
        for row in c["grid"]:
            rows.append({"model": c.get("model"), "task": c.get("task"), "method": c.get("method"),
                         "val_metric": c.get("val_metric"), "cell": row["cell"],
                         **{f"hp_{k}": v for k, v in row["values"].items()},
                         "seeds": len(row["val_scores"]),
                         "val_scores": ";".join("" if v is None else f"{v:.6g}" for v in row["val_scores"]),
                         "mean_val_score": row["mean_val_score"], "chosen": row["cell"] == c["chosen"]})
    return pd.DataFrame(rows)


def write_selection_table(*, choices, out_csv) -> pd.DataFrame:
    """File-level entry of the `selection_table` rule: every grid and its choice in one CSV."""
    df = selection_frame([read_json(p) for p in choices])
    atomic_write_bytes(out_csv, df.to_csv(index=False, lineterminator="\n", float_format="%.6g").encode())
    return df
