"""Study tables: LaTeX (from a jinja2 template) plus a CSV twin, in the paper's layouts.

Rows are model x method (in the study's order); the study's ``layout`` picks the columns:

* ``robustness_table`` (Table 3): one group per `column` label of the study's eval sets
  (config order), each split into Origin and Adv accuracy, then the averages;
* ``qa_robustness_table`` (Tables 4 and 5): EM and F1 per adversarial set, their average,
  then the original set;
* ``generation_table`` (Table 1): one column per task in its scorer's headline metric, then
  their average.

Cells are "mean(std)" in percent over seeds. A layout is a function returning `Column`s,
registered in LAYOUTS (`@layout(name, unit)`); the config schema accepts the registered names.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd

from .escaping import latex_escape, latex_label
from ..io import atomic_write_bytes
from ..methods import shown
from ..registry import Registry
from ..tasks.base import EVAL_SET_KINDS, metric_display, task_metric

SPLIT_DISPLAY = EVAL_SET_KINDS  # the eval-set kinds, in column order
SPLITS = tuple(SPLIT_DISPLAY)
AVERAGE = "average"  # column name of the average, as in the paper's reference CSV
MISSING = "--"
NOT_SUPPLIED = "n/s"  # a configured eval set whose optional file is absent
FAILED = "err"  # a run of the cell failed (rendered after a failed run, lwob.report.failures)


def method_display(name: str, methods: dict) -> str:
    """The method's name in tables and figures (lwob.methods.shown: the config's `display` wins)."""
    return shown(name, methods)["display"]


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
    paper_names: tuple = ()  # the column's names in the paper's numbers (eval set `paper_column`)


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
            group.paper_names = tuple(dict.fromkeys((*group.paper_names, es.get("paper_column") or column)))
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


@dataclass
class Column:
    """One table column: a (group, sub-column) header pair and where its numbers come from.

    sources: (task, eval_set, metric) cells of results/summary.csv; one for a plain column,
    several for an average (mean over them, std over per-seed averages). ref: the key of the
    paper's number (task/column, split, metric; None matches any task). skipped: why a
    configured eval set has no number (optional file not supplied).
    """

    group: str
    group_display: str
    sub: str
    sub_display: str
    sources: list = field(default_factory=list)
    ref: tuple = ()
    skipped: str | None = None


#: study `layout` -> function building its columns (study, tasks, skipped) -> [Column]
LAYOUTS = Registry("table layout")


def layout(name: str, unit: str):
    """Register a layout function as study `layout: <name>`; `unit`: what its cells hold (the legend)."""
    def deco(func):
        func.unit = unit
        return LAYOUTS.register(name)(func)

    return deco


@layout("robustness_table", unit="Accuracy (\\%)")
def robustness_layout(study: dict, tasks: dict, skipped: dict | None = None) -> list[Column]:
    """Table 3: per task column Origin and Adv scores in the task's metric (`task_metric`:
    accuracy unless the task names another), then their averages over columns."""
    skipped = skipped or {}
    cols: list[Column] = []
    for g in column_groups(study, tasks):
        for split in SPLITS:
            src = g.eval_sets.get(split)
            reason = skipped.get(src[0], {}).get(src[1]) if src else None
            metric = task_metric(tasks[src[0]]) if src else "accuracy"
            cols.append(Column(g.column, g.display, split, SPLIT_DISPLAY[split],
                               [(src[0], src[1], metric)] if src and not reason else [],
                               (g.paper_names or (g.column,), split, metric), reason))
    for split in SPLITS:
        sources = [s for c in cols if c.sub == split for s in c.sources]
        cols.append(Column(AVERAGE, "Avg", split, SPLIT_DISPLAY[split], sources, (AVERAGE, split, "accuracy")))
    return cols


def _metrics_unit(columns: list[Column], tasks: dict) -> str | None:
    """A legend's unit when a robustness table's columns show other metrics than accuracy:
    each column group with its metric (None when every column is accuracy)."""
    shown: dict[str, tuple[str, str]] = {}
    for c in columns:
        if c.group != AVERAGE and c.sources:
            shown.setdefault(c.group_display, (c.sources[0][0], c.sources[0][2]))
    if {m for _, m in shown.values()} <= {"accuracy"}:
        return None
    parts = [f"{metric_display(tasks[t], m)} for {latex_escape(g)}" for g, (t, m) in shown.items()]
    return "Scores (\\%): " + ", ".join(parts) + ("; Avg is their mean" if any(c.group == AVERAGE for c in columns) else "")


QA_METRICS = (("em", "EM"), ("f1", "F1"))


@layout("qa_robustness_table", unit="EM and F1 (\\%)")
def qa_layout(study: dict, tasks: dict, skipped: dict | None = None) -> list[Column]:
    """Tables 4 and 5: EM and F1 per adversarial set, their average, then the original set.

    Adversarial columns use the Jia-Liang worst case over each original question and its
    variants (``adv_em``/``adv_f1``) unless the study sets ``adversarial_score: plain``.
    """
    skipped = skipped or {}
    prefix = "" if study.get("adversarial_score", "worst_case") == "plain" else "adv_"
    adv: list[Column] = []
    origin: list[Column] = []
    for task_name in study["tasks"]:
        task = tasks[task_name]
        for es_name, es in (task.get("eval_sets") or {}).items():
            column = es.get("column") or es_name
            display = column_display(column, task_name, task, es)
            reason = skipped.get(task_name, {}).get(es_name)
            for metric, shown in QA_METRICS:
                name = (prefix + metric) if es.get("kind") == "adv" else metric
                target = adv if es.get("kind") == "adv" else origin
                target.append(Column(column, display, metric, shown,
                                     [] if reason else [(task_name, es_name, name)], (None, column, shown), reason))
    cols = list(adv)
    cols += [Column(AVERAGE, "Average", metric, shown, [s for c in adv if c.sub == metric for s in c.sources],
                    (None, AVERAGE, shown)) for metric, shown in QA_METRICS]
    if len({c.group for c in origin}) == 1:  # the usual case: one original set, shown as "Origin"
        for c in origin:
            c.group, c.group_display, c.ref = "origin", "Origin", (None, "origin", c.sub_display)
    return cols + origin


@layout("generation_table", unit="Scores (\\%)")
def generation_layout(study: dict, tasks: dict, skipped: dict | None = None) -> list[Column]:
    """Table 1: one column per task (its original test set, in the task's metric: the
    scorer's headline, e.g. exact match for ViGGO and SQL, answer accuracy for GSM8K), then
    their average (AVG). The paper's numbers are keyed by the task's `paper_column` and
    split ``test``, metric ``score``."""
    skipped = skipped or {}
    cols: list[Column] = []
    for task_name in study["tasks"]:
        task = tasks[task_name]
        for es_name, es in (task.get("eval_sets") or {}).items():
            if es.get("kind") != "origin":
                continue
            column = es.get("column") or task_name
            metric = task_metric(task)
            reason = skipped.get(task_name, {}).get(es_name)
            cols.append(Column(column, column_display(column, task_name, task, es), metric,
                               metric_display(task, metric), [] if reason else [(task_name, es_name, metric)],
                               ((es.get("paper_column") or column, column), "test", "score"), reason))
    cols.append(Column(AVERAGE, "AVG", "", "", [s for c in cols for s in c.sources], (AVERAGE, "test", "score")))
    return cols


def _names(name: str, spec: dict | None) -> set[str]:
    return {name, *((spec or {}).get("aliases") or [])}


def _reference_lookup(reference: pd.DataFrame | None, study: dict) -> dict:
    """(model, method, task, split, metric) -> (mean, std) of the study's paper table."""
    if reference is None or reference.empty:
        return {}
    ref = reference
    if "table" in ref.columns and study.get("paper_table"):
        ref = ref[ref["table"].astype(str) == str(study["paper_table"])]
    out = {}
    for r in ref.itertuples(index=False):
        key = (str(r.model), str(r.method), str(r.task), str(r.split), str(getattr(r, "metric", "accuracy")))
        std = getattr(r, "std", math.nan)
        out.setdefault(key, (float(r.mean), float(std) if pd.notna(std) else math.nan))
    return out


def _paper_value(lookup: dict, model: str, method: str, column: Column, models: dict, methods: dict):
    task, split, metric = column.ref
    tasks = (task,) if isinstance(task, str) else task  # None: any task; a tuple: any of these names
    for (m, x, t, sp, me), value in lookup.items():
        if (m in _names(model, models.get(model)) and x in _names(method, methods.get(method))
                and (tasks is None or t in tasks) and sp == split and me == metric):
            return value
    return None


def _cell(index: dict, model: str, method: str, sources: list, scale: float) -> dict:
    """mean/std/n of one column for one row: a plain cell or an average over sources."""
    empty = {"mean": math.nan, "std": math.nan, "n": 0}
    found = [index.get((model, method, *src)) for src in sources]
    if not sources or any(r is None or not np.isfinite(float(r["mean"])) for r in found):
        return empty
    if len(found) == 1:
        r = found[0]
        std = float(r["std"]) if pd.notna(r["std"]) else math.nan
        return {"mean": float(r["mean"]) * scale, "std": std * scale, "n": int(r["n"])}
    rec = {"mean": float(np.mean([float(r["mean"]) for r in found])) * scale, "std": math.nan, "n": 0}
    seed_maps = [_per_seed(r) for r in found]
    if all(m is not None for m in seed_maps):
        common = set(seed_maps[0]).intersection(*seed_maps[1:])
        complete = all(set(m) == common for m in seed_maps)
        rec["n"] = len(common)
        if complete and len(common) > 1:
            per_seed = [np.mean([m[s] for m in seed_maps]) * scale for s in sorted(common)]
            rec["std"] = float(np.std(per_seed, ddof=1))
    return rec


def study_methods(study: dict, model: str) -> list[str]:
    """The study's methods that run on `model` (omitted ones, see config.omitted_methods, left out)."""
    omitted = (study.get("omitted") or {}).get(model, {})
    return [m for m in study["methods"] if m not in omitted]


def failure_text(failure: dict) -> str:
    """One failed run in a few words: `model/task/method/seed0: train failed: <error> (log: <path>)`."""
    run = "/".join(str(failure.get(k)) for k in ("model", "task", "method")) + f"/seed{failure.get('seed')}"
    log = f" (log: {failure['log']})" if failure.get("log") else ""
    return f"{run}: {failure.get('rule', 'a job')} {failure.get('status', 'failed')}: {failure.get('error') or '?'}{log}"


def _failures_by_run(failed: list[dict] | None) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = {}
    for failure in failed or []:
        out.setdefault((str(failure["model"]), str(failure["task"]), str(failure["method"])), []).append(failure)
    return out


def build_rows(summary: pd.DataFrame, study: dict, tasks: dict, models: dict, methods: dict,
               scale: float = 100.0, skipped: dict | None = None,
               failed: list[dict] | None = None) -> tuple[list[Column], list[dict]]:
    """The study's columns and one record per row x column.

    Each record: model, method, row_label, column (group), column_display, split (sub-column),
    metric, task, eval_set, mean, std, n (seeds; for an average: seeds complete in every
    source), missing, skipped, failed, failure, cell, best.

    `failed`: failed runs (dicts with model, task, method, seed, rule, status, error, log; see
    lwob.report.failures). A cell fed by a failed run reads "err" (mean/std/n stay those of the runs
    that finished) and is never bold; `failure` says which runs failed, why and where the log is.
    """
    failures = _failures_by_run(failed)
    columns = LAYOUTS.get(study.get("layout", "robustness_table"))(study, tasks, skipped)
    index: dict[tuple, pd.Series] = {}
    for _, r in summary.iterrows():
        index[(str(r["model"]), str(r["method"]), str(r["task"]), str(r["eval_set"]), str(r["metric"]))] = r

    records: list[dict] = []
    for model in study["models"]:
        for method in study_methods(study, model):
            label = f"{model_display(model, models)} ({method_display(method, methods)})"
            for c in columns:
                rec = _cell(index, model, method, c.sources, scale)
                src = c.sources[0] if len(c.sources) == 1 else (None, None, c.sources[0][2] if c.sources else None)
                cell_failures = [f for task in dict.fromkeys(s[0] for s in c.sources)
                                 for f in failures.get((model, task, method), [])]
                records.append({"model": model, "method": method, "row_label": label, "column": c.group,
                                "column_display": c.group_display, "split": c.sub, "metric": src[2],
                                "task": src[0], "eval_set": src[1], "skipped": c.skipped,
                                "failed": bool(cell_failures) and not c.skipped,
                                "failure": "; ".join(failure_text(f) for f in cell_failures) or None, **rec})

    for rec in records:
        rec["missing"] = not np.isfinite(rec["mean"])
        rec["cell"] = (NOT_SUPPLIED if rec["skipped"] else FAILED if rec["failed"]
                       else _fmt(rec["mean"], rec["std"]))
        rec["best"] = False
    # Best mean per column within each model block (ties at the displayed precision all bold);
    # only when at least two methods have a value.
    blocks: dict[tuple, list[dict]] = {}
    for rec in records:
        blocks.setdefault((rec["model"], rec["column"], rec["split"]), []).append(rec)
    for recs in blocks.values():
        present = [r for r in recs if not r["missing"] and not r["failed"]]
        if len(present) < 2:
            continue
        top = max(round(r["mean"], 2) for r in present)
        for r in present:
            r["best"] = round(r["mean"], 2) == top
    return columns, records


def _template_env(template_path: str | os.PathLike) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(template_path).resolve().parent)),
        block_start_string=r"\BLOCK{", block_end_string="}",
        variable_start_string=r"\VAR{", variable_end_string="}",
        comment_start_string=r"\#{", comment_end_string="}",
        trim_blocks=True, lstrip_blocks=True, autoescape=False, keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )


def study_table(summary: pd.DataFrame, study: dict, tasks: dict, models: dict, methods: dict,
                template_path, out_tex, out_csv, reference: pd.DataFrame | None = None,
                study_name: str | None = None, skipped: dict | None = None,
                failed: list[dict] | None = None) -> tuple[str, pd.DataFrame]:
    """Render a study's table to `out_tex` (jinja2 template) and its CSV twin to `out_csv`.

    The study's `layout` picks the columns (LAYOUTS). `summary` is results/summary.csv
    (fractions); cells are percent, 2 decimals. `reference` is the paper's numbers (columns
    table, model, method, task, split, metric, mean, std); a row matches through the model's
    and method's names or `aliases`. `skipped` ({task: {eval set: reason}}) marks eval sets
    whose optional files are absent: their cells read "n/s" and the caption says why. `failed`
    (failed runs, see build_rows) turns their cells to "err"; the caption lists them.
    Returns (latex, csv DataFrame).
    """
    name = study_name or study.get("name") or Path(out_tex).stem
    columns, records = build_rows(summary, study, tasks, models, methods, skipped=skipped, failed=failed)

    lookup = _reference_lookup(reference, study)
    by_key = {(c.group, c.sub): c for c in columns}
    for rec in records:
        paper = _paper_value(lookup, rec["model"], rec["method"], by_key[(rec["column"], rec["split"])], models, methods)
        rec["paper_mean"] = paper[0] if paper else math.nan
        rec["paper_std"] = paper[1] if paper else math.nan
        rec["diff"] = rec["mean"] - rec["paper_mean"] if paper and not rec["failed"] else math.nan

    # Header: groups of consecutive columns, then one sub-header per column.
    groups: list[dict] = []
    for c in columns:
        if groups and groups[-1]["column"] == c.group:
            groups[-1]["span"] += 1
        else:
            groups.append({"column": c.group, "display": latex_escape(c.group_display), "span": 1})
    cmidrules, first = [], 2
    for g in groups:
        cmidrules.append((first, first + g["span"] - 1))
        first += g["span"]
    by_row: dict[tuple, dict] = {}
    for rec in records:
        by_row.setdefault((rec["model"], rec["method"]), {})[(rec["column"], rec["split"])] = rec
    blocks = []
    for model in study["models"]:
        rows = []
        for method in study_methods(study, model):
            recs = by_row[(model, method)]
            cells = [rf"\textbf{{{r['cell']}}}" if r["best"] else r["cell"]
                     for r in (recs[(c.group, c.sub)] for c in columns)]
            rows.append({"label": latex_escape(next(iter(recs.values()))["row_label"]), "cells": cells})
        blocks.append({"model": latex_escape(model_display(model, models)), "rows": rows})

    unit = LAYOUTS.get(study.get("layout", "robustness_table")).unit
    if study.get("layout", "robustness_table") == "robustness_table":
        unit = _metrics_unit(columns, tasks) or unit  # tasks with their own metric (CoLA, MRPC, STS-B)
    legend = f"{unit}, mean(std) over seeds; best per column within each model in bold; {MISSING} marks a missing result."
    if study.get("layout") == "qa_robustness_table":
        worst = study.get("adversarial_score", "worst_case") != "plain"
        legend += (" Adversarial columns: the worst case over each original question and its adversarial "
                   "variants (Jia and Liang's adversarial score)." if worst else
                   " Adversarial columns: the plain score on the adversarial questions.")
    notes = sorted({c.group_display for c in columns if c.skipped})
    if notes:
        legend += (f" {NOT_SUPPLIED}: set not supplied ({', '.join(latex_escape(n) for n in notes)}: optional "
                   f"files absent); averages are over the supplied sets.")
    omitted = [f"{method_display(method, methods)} on {model_display(model, models)} ({reason})"
               for model, by_method in (study.get("omitted") or {}).items() for method, reason in by_method.items()]
    if omitted:
        legend += f" Not run, as they would repeat another row: {latex_escape('; '.join(omitted))}."
    rows = {(r["model"], r["method"]) for r in records}
    shown_failures = [f for f in failed or [] if (f["model"], f["method"]) in rows and f["task"] in study["tasks"]]
    if shown_failures:
        legend += (f" {FAILED}: a run of the cell failed, so the cell has no complete result "
                   f"({latex_escape('; '.join(failure_text(f) for f in shown_failures))}).")
    if study.get("caption"):
        caption = latex_escape(study["caption"])
    elif study.get("title"):
        caption = f"{latex_escape(study['title'])}. {legend}"
    else:
        caption = legend
    context = {
        "study": latex_escape(name),
        "caption": caption,
        "label": latex_label(study.get("label") or f"tab:{name}"),
        "colspec": "l" + "c" * len(columns),
        "groups": groups,
        "cmidrules": cmidrules,
        "subs": [latex_escape(c.sub_display) for c in columns],
        "blocks": blocks,
        "ncols": 1 + len(columns),
    }
    env = _template_env(template_path)
    latex = env.get_template(Path(template_path).name).render(**context)
    atomic_write_bytes(out_tex, latex.encode())

    csv_cols = ["study", "model", "method", "row_label", "column", "column_display", "split", "metric", "task",
                "eval_set", "mean", "std", "n", "cell", "best", "missing", "skipped", "failed", "failure", "paper_mean",
                "paper_std", "diff"]
    df = pd.DataFrame([{**r, "study": name} for r in records], columns=csv_cols)
    atomic_write_bytes(out_csv, df.to_csv(index=False, lineterminator="\n", float_format="%.6g").encode())
    return latex, df


def write_study_table(*, summary_csv, study: dict, tasks: dict, models: dict, methods: dict,
                      template_path, out_tex, out_csv, reference_csv=None, skipped=None):
    """File-level entry point of the `table` rule."""
    reference = pd.read_csv(reference_csv) if reference_csv else None
    return study_table(pd.read_csv(summary_csv), study, tasks, models, methods,
                       template_path=template_path, out_tex=out_tex, out_csv=out_csv,
                       reference=reference, skipped=skipped)


def paper_comparison(table: pd.DataFrame, study: dict, template_path, out_tex, out_csv,
                     study_name: str, note: str | None = None) -> tuple[str, pd.DataFrame]:
    """Ours beside the paper's numbers: one row per cell of the study's table (its CSV) that has
    a paper value, with both mean(std) and the difference (ours minus paper, points)."""
    rows = table[table["paper_mean"].notna()].copy()
    rows["ours"] = [_fmt(m, s) if np.isfinite(m) else MISSING for m, s in zip(rows["mean"], rows["std"])]
    rows["paper"] = [_fmt(m, s if np.isfinite(s) else None) for m, s in zip(rows["paper_mean"], rows["paper_std"])]
    rows["difference"] = [f"{d:+.2f}" if np.isfinite(d) else MISSING for d in rows["diff"]]
    context = {
        "study": latex_escape(study_name),
        "caption": latex_escape(
            f"{study.get('title') or study_name}: ours beside the paper's {study.get('paper_table')} "
            f"(mean(std) over seeds, %; difference = ours minus paper, points; {MISSING}: no result of ours)."
            + (f" {note}" if note else "")),
        "label": latex_label(f"tab:{study_name}-vs-paper"),
        "rows": [{"label": latex_escape(r.row_label), "column": latex_escape(r.column_display),
                  "sub": latex_escape(r.split), "ours": r.ours, "paper": r.paper, "diff": r.difference}
                 for r in rows.itertuples(index=False)],
    }
    latex = _template_env(template_path).get_template(Path(template_path).name).render(**context)
    atomic_write_bytes(out_tex, latex.encode())
    cols = ["study", "model", "method", "row_label", "column", "column_display", "split", "metric", "mean", "std",
            "paper_mean", "paper_std", "diff"]
    df = rows.assign(study=study_name)[cols]
    atomic_write_bytes(out_csv, df.to_csv(index=False, lineterminator="\n", float_format="%.6g").encode())
    return latex, df


def write_paper_comparison(*, table_csv, study: dict, study_name: str, template_path, out_tex, out_csv,
                           note: str | None = None):
    """File-level entry point of the `paper_table` rule."""
    return paper_comparison(pd.read_csv(table_csv), study, template_path, out_tex, out_csv, study_name, note)

