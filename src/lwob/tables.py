"""Study tables: LaTeX (from a jinja2 template) plus a CSV twin, laid out like the paper's Table 3.

Rows are model x method (in the study's order), column groups are the distinct `column`
labels of the study's tasks' eval sets (config order), each split into Origin and Adv,
followed by the average over column groups. Cells are "mean(std)" in percent over seeds.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd

from .io import atomic_write_bytes

SPLITS = ("origin", "adv")
SPLIT_DISPLAY = {"origin": "Origin", "adv": "Adv"}
AVERAGE = "average"  # column name of the average, as in the paper's reference CSV
MISSING = "--"
_METHOD_DISPLAY = {"fft": "FFT", "lora": "LoRA", "adalora": "AdaLoRA", "prefix": "Prefix",
                   "ia3": "IA3", "bitfit": "BitFit", "adapter": "Adapter", "vanilla": "Vanilla"}

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}
_LATEX_RE = re.compile("|".join(re.escape(k) for k in _LATEX_SPECIAL))


def latex_escape(text) -> str:
    """Escape LaTeX special characters in a plain-text label."""
    return _LATEX_RE.sub(lambda m: _LATEX_SPECIAL[m.group()], str(text))


def method_display(name: str, methods: dict) -> str:
    spec = methods.get(name) or {}
    if spec.get("display"):
        return str(spec["display"])
    return _METHOD_DISPLAY.get(name, _METHOD_DISPLAY.get(spec.get("type", ""), name.upper()))


def model_display(name: str, models: dict) -> str:
    return str((models.get(name) or {}).get("display", name))


def column_display(column: str, task_name: str, task: dict, eval_set: dict | None = None) -> str:
    """Display label of a column group: an eval set's `display`, else derived from the task's."""
    if eval_set and eval_set.get("display"):
        return str(eval_set["display"])
    shown = task.get("display")
    if not shown:
        return column
    if column == task_name:
        return str(shown)
    if column.startswith(task_name):
        return f"{shown}{column[len(task_name):]}"
    return column


@dataclass
class ColumnGroup:
    column: str
    display: str
    eval_sets: dict = field(default_factory=dict)  # split -> (task, eval_set name)


def column_groups(study: dict, tasks: dict) -> list[ColumnGroup]:
    """Distinct `column` labels of the study's tasks' eval sets, in config order."""
    groups: dict[str, ColumnGroup] = {}
    for task_name in study["tasks"]:
        task = tasks[task_name]
        for es_name, es in (task.get("eval_sets") or {}).items():
            column = es.get("column") or task_name
            kind = es.get("kind")
            if kind not in SPLITS:
                continue
            group = groups.setdefault(column, ColumnGroup(column, column_display(column, task_name, task, es)))
            if kind in group.eval_sets:
                other = group.eval_sets[kind]
                raise ValueError(
                    f"column {column!r} split {kind!r} is fed by two eval sets: "
                    f"{other[0]}.{other[1]} and {task_name}.{es_name}"
                )
            group.eval_sets[kind] = (task_name, es_name)
    return list(groups.values())


def _split_list(text) -> list[str]:
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return []
    return [s.strip() for s in str(text).split(",") if s.strip()]


def _per_seed(row: pd.Series) -> dict[str, float] | None:
    """seed -> value from a summary row's aligned `seeds`/`values` lists (None if absent)."""
    if "values" not in row.index or "seeds" not in row.index:
        return None
    seeds, values = _split_list(row["seeds"]), _split_list(row["values"])
    if not seeds or len(seeds) != len(values):
        return None
    return {str(int(float(s))): float(v) for s, v in zip(seeds, values)}


def _fmt(mean: float, std: float | None) -> str:
    if mean is None or not np.isfinite(mean):
        return MISSING
    if std is None or not np.isfinite(std):
        return f"{mean:.2f}"
    return f"{mean:.2f}({std:.2f})"


def _reference_lookup(reference: pd.DataFrame | None, study: dict, metric: str) -> dict:
    if reference is None or reference.empty:
        return {}
    ref = reference
    if "table" in ref.columns and study.get("paper_table"):
        ref = ref[ref["table"].astype(str) == str(study["paper_table"])]
    if "metric" in ref.columns:
        ref = ref[ref["metric"].astype(str) == metric]
    out = {}
    for r in ref.itertuples(index=False):
        key = (str(r.model), str(r.method), str(r.task), str(r.split))
        std = getattr(r, "std", math.nan)
        out.setdefault(key, (float(r.mean), float(std) if pd.notna(std) else math.nan))
    return out


def build_rows(summary: pd.DataFrame, study: dict, tasks: dict, models: dict, methods: dict,
               metric: str = "accuracy", scale: float = 100.0) -> tuple[list[ColumnGroup], list[dict]]:
    """The table's column groups and one dict per row x (column group or average) x split.

    Each record: model, method, row_label, column, column_display, split, mean, std, n
    (seeds; for the average: seeds complete in every column), missing, cell, best.
    """
    groups = column_groups(study, tasks)
    summ = summary[summary["metric"].astype(str) == metric] if "metric" in summary.columns else summary
    index: dict[tuple, pd.Series] = {}
    for _, r in summ.iterrows():
        index[(str(r["model"]), str(r["method"]), str(r["task"]), str(r["eval_set"]))] = r

    records: list[dict] = []
    for model in study["models"]:
        for method in study["methods"]:
            label = f"{model_display(model, models)} ({method_display(method, methods)})"
            base = {"model": model, "method": method, "row_label": label}
            per_split_cols: dict[str, list] = {s: [] for s in SPLITS}
            for g in groups:
                for split in SPLITS:
                    src = g.eval_sets.get(split)
                    r = index.get((model, method, src[0], src[1])) if src else None
                    if r is None or not np.isfinite(float(r["mean"])):
                        rec = {"mean": math.nan, "std": math.nan, "n": 0}
                        per_split_cols[split].append(None)
                    else:
                        std = float(r["std"]) if pd.notna(r["std"]) else math.nan
                        rec = {"mean": float(r["mean"]) * scale, "std": std * scale, "n": int(r["n"])}
                        per_split_cols[split].append((float(r["mean"]) * scale, _per_seed(r)))
                    records.append({**base, "column": g.column, "column_display": g.display, "split": split,
                                    "task": src[0] if src else None, "eval_set": src[1] if src else None, **rec})
            for split in SPLITS:
                cols = per_split_cols[split]
                rec = {"mean": math.nan, "std": math.nan, "n": 0}
                if cols and all(c is not None for c in cols):
                    mean = float(np.mean([c[0] for c in cols]))
                    rec = {"mean": mean, "std": math.nan, "n": 0}
                    seed_maps = [c[1] for c in cols]
                    if all(m is not None for m in seed_maps):
                        common = set(seed_maps[0])
                        for m in seed_maps[1:]:
                            common &= set(m)
                        complete = all(set(m) == common for m in seed_maps)
                        rec["n"] = len(common)
                        if complete and len(common) > 1:
                            per_seed = [np.mean([m[s] for m in seed_maps]) * scale for s in sorted(common)]
                            rec["std"] = float(np.std(per_seed, ddof=1))
                records.append({**base, "column": AVERAGE, "column_display": "Avg", "split": split,
                                "task": None, "eval_set": None, **rec})

    for rec in records:
        rec["missing"] = not np.isfinite(rec["mean"])
        rec["cell"] = _fmt(rec["mean"], rec["std"])
        rec["best"] = False
    # Best mean per column within each model block (ties at the displayed precision all bold);
    # only when at least two methods have a value.
    blocks: dict[tuple, list[dict]] = {}
    for rec in records:
        blocks.setdefault((rec["model"], rec["column"], rec["split"]), []).append(rec)
    for recs in blocks.values():
        present = [r for r in recs if not r["missing"]]
        if len(present) < 2:
            continue
        top = max(round(r["mean"], 2) for r in present)
        for r in present:
            r["best"] = round(r["mean"], 2) == top
    return groups, records


def _template_env(template_path: str | os.PathLike) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(template_path).resolve().parent)),
        block_start_string=r"\BLOCK{", block_end_string="}",
        variable_start_string=r"\VAR{", variable_end_string="}",
        comment_start_string=r"\#{", comment_end_string="}",
        trim_blocks=True, lstrip_blocks=True, autoescape=False, keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )


def robustness_table(summary: pd.DataFrame, study: dict, tasks: dict, models: dict, methods: dict,
                     template_path, out_tex, out_csv, reference: pd.DataFrame | None = None,
                     study_name: str | None = None, metric: str = "accuracy") -> tuple[str, pd.DataFrame]:
    """Render a study's table to `out_tex` (jinja2 template) and its CSV twin to `out_csv`.

    `summary` is results/summary.csv (fractions); cells are percent, 2 decimals. `reference`
    is the paper's numbers (columns model, method, task, split, mean, std[, table, metric]);
    rows of `study["paper_table"]` are matched by (model, method, column, split), the average
    by task "average". Returns (latex, csv DataFrame).
    """
    name = study_name or study.get("name") or Path(out_tex).stem
    groups, records = build_rows(summary, study, tasks, models, methods, metric=metric)

    ref = _reference_lookup(reference, study, metric)
    for rec in records:
        paper = ref.get((rec["model"], rec["method"], rec["column"], rec["split"]))
        rec["paper_mean"] = paper[0] if paper else math.nan
        rec["paper_std"] = paper[1] if paper else math.nan
        rec["diff"] = rec["mean"] - rec["paper_mean"] if paper else math.nan

    # Layout for the template: header groups, then rows grouped in model blocks.
    header = [{"display": latex_escape(g.display), "column": g.column} for g in groups]
    header.append({"display": "Avg", "column": AVERAGE})
    n_groups = len(header)
    cmidrules = [(2 + 2 * i, 3 + 2 * i) for i in range(n_groups)]
    by_row: dict[tuple, list[dict]] = {}
    for rec in records:
        by_row.setdefault((rec["model"], rec["method"]), []).append(rec)
    blocks = []
    for model in study["models"]:
        rows = []
        for method in study["methods"]:
            recs = by_row[(model, method)]
            cells = []
            for h in header:
                for split in SPLITS:
                    rec = next(r for r in recs if r["column"] == h["column"] and r["split"] == split)
                    cells.append(rf"\textbf{{{rec['cell']}}}" if rec["best"] else rec["cell"])
            rows.append({"label": latex_escape(recs[0]["row_label"]), "cells": cells})
        blocks.append({"model": latex_escape(model_display(model, models)), "rows": rows})

    legend = (f"Accuracy (\\%) on the original (Origin) and adversarial (Adv) test sets, mean(std) over "
              f"seeds; best per column within each model in bold; {MISSING} marks a missing result.")
    if study.get("caption"):
        caption = latex_escape(study["caption"])
    elif study.get("title"):
        caption = f"{latex_escape(study['title'])}. {legend}"
    else:
        caption = legend
    context = {
        "study": name,
        "caption": caption,
        "label": study.get("label") or f"tab:{name}",
        "colspec": "l" + "cc" * n_groups,
        "groups": header,
        "cmidrules": cmidrules,
        "splits": [SPLIT_DISPLAY[s] for s in SPLITS],
        "blocks": blocks,
        "ncols": 1 + 2 * n_groups,
    }
    env = _template_env(template_path)
    latex = env.get_template(Path(template_path).name).render(**context)
    atomic_write_bytes(out_tex, latex.encode())

    csv_cols = ["study", "model", "method", "row_label", "column", "column_display", "split", "task",
                "eval_set", "mean", "std", "n", "cell", "best", "missing", "paper_mean", "paper_std", "diff"]
    df = pd.DataFrame([{**r, "study": name} for r in records], columns=csv_cols)
    atomic_write_bytes(out_csv, df.to_csv(index=False, lineterminator="\n", float_format="%.6g").encode())
    return latex, df


def write_study_table(*, summary_csv, study: dict, tasks: dict, models: dict, methods: dict,
                      template_path, out_tex, out_csv, reference_csv=None):
    """File-level entry point of the `table` rule."""
    reference = pd.read_csv(reference_csv) if reference_csv else None
    return robustness_table(pd.read_csv(summary_csv), study, tasks, models, methods,
                            template_path=template_path, out_tex=out_tex, out_csv=out_csv,
                            reference=reference)
