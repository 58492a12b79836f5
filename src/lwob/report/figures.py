"""Study figure: original vs adversarial score per method, error bars = std over seeds.

Classification studies show accuracy per task column; QA studies show F1 per adversarial
set, the set's original questions (Origin) against the worst case over their adversarial
variants (Adv).

Top row: one panel per model with, per method, the Origin and Adv accuracy averaged over the
study's table columns. Below (when it stays readable): a grid of models x columns with the
same bars per column. Every figure (this one, the budget figure, Figure 1 in lwob.analysis.increments)
draws a method in its colour (`method_color`: one colour per method type, its class's `color`,
shades for variants such as LoRA ranks) under its display name (lwob.report.tables.method_display,
both read through lwob.methods.shown); here the Origin bar
is solid and the Adv bar lighter and hatched. Built on a bare matplotlib Figure (Agg canvas,
no pyplot state) and saved with fixed metadata so the PDF and PNG are byte-for-byte
reproducible. A figure kind (study `figure`) is a function registered in FIGURES.

matplotlib is imported where a figure is drawn: planning imports this module for FIGURES.
"""

from __future__ import annotations

import io
import math
import zlib

import numpy as np
import pandas as pd

from ..io import atomic_write_bytes
from ..methods import shown
from ..registry import Registry
from ..tasks.base import metric_display
from .tables import SPLIT_DISPLAY, SPLITS, ColumnGroup, column_display, column_groups, method_display, model_display

MAX_GRID_COLUMNS = 8  # beyond this the per-column grid is left out

# --------------------------------------------------------------------------- method palette
#: One colour per method type (its class's `color`, lwob.methods), shared by every figure
#: (study figures, budget figures, Figure 1), so that a method has the same colour everywhere.
#: Variants of a type (LoRA ranks, the top-k layers) take shades of their type's colour
#: (`method_color`). Colours of types without one (picked by the type's name, deterministically):
SPARE_COLORS = ["#CCB974", "#8C8C8C", "#E377C2", "#7F7F7F", "#BCBD22"]
#: Shades of the i-th variant of a type: > 0 mixes with white, < 0 with black.
VARIANT_SHADES = (0.0, 0.38, -0.32, 0.6, -0.5, 0.2, -0.18)
#: How the Adv bars of a study figure differ from the Origin bars of the same method.
SPLIT_STYLE = {"origin": {"alpha": 1.0, "hatch": None}, "adv": {"alpha": 0.55, "hatch": "///"}}


def _registered_type_colors() -> dict[str, str]:
    from .. import methods

    return {name: cls.color for name, cls in methods.REGISTRY.items() if cls.color}


#: The registered types' colours at import (read from the classes; `type_color` is the lookup).
METHOD_TYPE_COLORS = _registered_type_colors()


def method_type(name: str, methods: dict) -> str:
    """The method's `type` in the config's methods block (its name when it has none)."""
    return shown(name, methods)["type"]


def type_color(mtype: str) -> str:
    """A method type's colour: its class's `color` (lwob.methods), else a spare one."""
    return shown(mtype, {})["color"] or SPARE_COLORS[zlib.crc32(mtype.encode()) % len(SPARE_COLORS)]


def _shade(color: str, amount: float) -> str:
    import matplotlib.colors

    rgb = np.array(matplotlib.colors.to_rgb(color))
    mixed = rgb + (1.0 - rgb) * amount if amount >= 0 else rgb * (1.0 + amount)
    return matplotlib.colors.to_hex(np.clip(mixed, 0.0, 1.0))


def method_color(name: str, methods: dict) -> str:
    """The colour of method `name` in every figure: its type's colour (`type_color`),
    shaded for the second, third, ... method of the same type in the config's `methods`
    order (``lora`` the type's colour, ``lora-r16`` lighter, ``lora-r32`` darker). Depends
    only on the methods block, not on the figure, so it is the same in every figure."""
    mtype = method_type(name, methods)
    base = type_color(mtype)
    siblings = [m for m in methods if method_type(m, methods) == mtype]
    index = siblings.index(name) if name in siblings else 0
    return _shade(base, VARIANT_SHADES[index % len(VARIANT_SHADES)])


def _stats(values: dict[int, float]) -> tuple[float, float]:
    """(mean, sample std) of seed -> value; std NaN for fewer than two seeds."""
    arr = np.array(list(values.values()), dtype=float)
    if arr.size == 0:
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else math.nan


def figure_groups(study: dict, tasks: dict) -> tuple[list[ColumnGroup], str]:
    """The study's column groups with (task, eval set, metric) per split, and the y label.

    Classification (Table 3): the table's columns, each in its task's metric. QA (Tables 4, 5): one group
    per adversarial set, Origin = F1 on the set's original questions, Adv = the Jia-Liang
    worst-case F1 (or the plain F1 with ``adversarial_score: plain``).
    """
    if study.get("layout", "robustness_table") == "qa_robustness_table":
        adv_metric = "f1" if study.get("adversarial_score", "worst_case") == "plain" else "adv_f1"
        groups = []
        for task_name in study["tasks"]:
            task = tasks[task_name]
            for es_name, es in (task.get("eval_sets") or {}).items():
                if es.get("kind") == "adv":
                    column = es.get("column") or es_name
                    groups.append(ColumnGroup(column, column_display(column, task_name, task, es), {
                        "origin": (task_name, es_name, "orig_f1"), "adv": (task_name, es_name, adv_metric)}))
        return groups, "F1"
    from ..tasks.base import task_metric

    groups = column_groups(study, tasks)
    for g in groups:  # each task's own metric (accuracy unless it names another: CoLA, MRPC, STS-B)
        g.eval_sets = {split: (*src, task_metric(tasks[src[0]])) for split, src in g.eval_sets.items()}
    shown = {src[2] for g in groups for src in g.eval_sets.values()}
    return groups, ("Accuracy" if shown <= {"accuracy"} else "Score")


def figure_data(metrics: pd.DataFrame, study: dict, tasks: dict, scale: float = 100.0) -> pd.DataFrame:
    """Per model x method x (column or "average") x split: mean and std over seeds, n, in percent.

    The average over columns is the mean of the per-column means (present only when every
    column has a value); its std is over seeds of the per-seed averages, from the seeds that
    have every column (NaN when fewer than two).
    """
    groups, _ = figure_groups(study, tasks)
    values: dict[tuple, dict[int, float]] = {}
    for r in metrics.itertuples(index=False):
        values.setdefault((str(r.model), str(r.method), str(r.task), str(r.eval_set), str(r.metric)), {})[
            int(r.seed)] = float(r.value) * scale
    rows = []
    for model in study["models"]:
        for method in study["methods"]:
            for split in SPLITS:
                per_col = []
                for g in groups:
                    src = g.eval_sets.get(split)
                    seeds = values.get((model, method, *src), {}) if src else {}
                    mean, std = _stats(seeds)
                    rows.append({"model": model, "method": method, "column": g.column, "display": g.display,
                                 "split": split, "mean": mean, "std": std, "n": len(seeds)})
                    per_col.append((mean, seeds))
                mean = std = math.nan
                n = 0
                if per_col and all(np.isfinite(c[0]) for c in per_col):
                    mean = float(np.mean([c[0] for c in per_col]))
                    common = set.intersection(*(set(c[1]) for c in per_col))
                    n = len(common)
                    if n > 1:
                        per_seed = [np.mean([c[1][s] for c in per_col]) for s in sorted(common)]
                        std = float(np.std(per_seed, ddof=1))
                rows.append({"model": model, "method": method, "column": "average", "display": "Average",
                             "split": split, "mean": mean, "std": std, "n": n})
    return pd.DataFrame(rows, columns=["model", "method", "column", "display", "split", "mean", "std", "n"])


def _bars(ax, data: pd.DataFrame, methods: list[str], labels: list[str], fontsize: float,
          show_values: bool, colors: list[str]) -> None:
    """Per method an Origin bar (solid, the method's colour) and an Adv bar (the same colour,
    lighter and hatched)."""
    import matplotlib.colors

    x = np.arange(len(methods))
    width = 0.38
    for i, split in enumerate(SPLITS):
        sub = data[data["split"] == split].set_index("method")
        means = np.array([sub["mean"].get(m, math.nan) for m in methods], dtype=float)
        stds = np.array([sub["std"].get(m, math.nan) for m in methods], dtype=float)
        pos = x + (i - 0.5) * width
        heights = np.where(np.isfinite(means), means, 0.0)
        err = np.where(np.isfinite(stds) & np.isfinite(means), stds, 0.0)
        style = SPLIT_STYLE[split]
        face = [matplotlib.colors.to_rgba(c, style["alpha"]) for c in colors]
        ax.bar(pos, heights, width, color=face, edgecolor=colors, linewidth=0.6, hatch=style["hatch"],
               yerr=err if np.any(err > 0) else None, capsize=2 if fontsize > 7 else 1,
               error_kw={"elinewidth": 0.8, "ecolor": "black"})
        for p, mval, e in zip(pos, means, err):
            if not np.isfinite(mval):
                ax.text(p, 1.5, "n/a", ha="center", va="bottom", rotation=90, fontsize=fontsize * 0.8,
                        color="gray")
            elif show_values:
                ax.text(p, mval + e + 1, f"{mval:.1f}", ha="center", va="bottom", fontsize=fontsize * 0.7)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=30 if len(methods) > 3 else 0, ha="right" if len(methods) > 3 else "center",
                       fontsize=fontsize)
    ax.set_ylim(0, 110 if show_values else 105)
    ax.tick_params(axis="y", labelsize=fontsize)
    ax.grid(axis="y", linewidth=0.4, alpha=0.5)
    ax.set_axisbelow(True)


def origin_vs_adv(metrics: pd.DataFrame, study: dict, tasks: dict, methods: dict, models: dict,
                  out_pdf, out_png, dpi: int = 150) -> pd.DataFrame:
    """Draw the study's Origin-vs-Adv figure to `out_pdf` and `out_png`; return the plotted data.

    `metrics` is results/metrics.csv (values as fractions); the figure shows percent. Works
    with a single seed (no error bars) and with missing runs (bars marked "n/a").
    """
    import matplotlib.colors
    import matplotlib.style
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    data = figure_data(metrics, study, tasks)
    groups, metric = figure_groups(study, tasks)
    model_names = list(study["models"])
    method_names = list(study["methods"])
    labels = [method_display(x, methods) for x in method_names]
    colors = [method_color(x, methods) for x in method_names]
    with_grid = 1 < len(groups) <= MAX_GRID_COLUMNS
    ncols_grid = len(groups) if with_grid else 0

    with matplotlib.style.context("default"), matplotlib.rc_context({"svg.hashsalt": "lwob", "pdf.fonttype": 42}):
        top_w = max(4.2 * len(model_names), 2.4 * ncols_grid)
        width = min(max(top_w, 6.0), 22.0)
        height = 3.6 + (2.3 * len(model_names) if with_grid else 0.0)
        fig = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
        if with_grid:
            top, bottom = fig.subfigures(2, 1, height_ratios=[3.6, 2.3 * len(model_names)])
        else:
            top, bottom = fig, None
        axes = top.subplots(1, len(model_names), sharey=True, squeeze=False)[0]
        for ax, model in zip(axes, model_names):
            sub = data[(data["model"] == model) & (data["column"] == "average")]
            _bars(ax, sub, method_names, labels, fontsize=9, show_values=True, colors=colors)
            shown = ", ".join(g.display for g in groups)
            ax.set_title(f"{model_display(model, models)}: average over {len(groups)} column(s)", fontsize=10)
            if len(groups) > 1:
                ax.set_xlabel(shown, fontsize=7, color="dimgray")
        axes[0].set_ylabel(f"{metric.capitalize()} (%)", fontsize=9)
        split_keys = [Patch(facecolor=matplotlib.colors.to_rgba("dimgray", st["alpha"]), edgecolor="dimgray",
                            hatch=st["hatch"], label=SPLIT_DISPLAY[split]) for split, st in SPLIT_STYLE.items()]
        axes[0].legend(handles=split_keys, loc="upper right", fontsize=8, frameon=False, ncols=2)
        if bottom is not None:
            grid = bottom.subplots(len(model_names), ncols_grid, sharey=True, squeeze=False)
            for i, model in enumerate(model_names):
                for j, g in enumerate(groups):
                    ax = grid[i][j]
                    sub = data[(data["model"] == model) & (data["column"] == g.column)]
                    _bars(ax, sub, method_names, labels, fontsize=6.5, show_values=False, colors=colors)
                    ax.set_title(f"{model_display(model, models)} / {g.display}", fontsize=7.5)
                    if i < len(model_names) - 1:
                        ax.tick_params(axis="x", labelbottom=False)
                grid[i][0].set_ylabel(f"{metric.capitalize()} (%)", fontsize=7)
            bottom.suptitle("Per column", fontsize=9)
        task_names = set(study["tasks"])
        ours = metrics[metrics["model"].isin(model_names) & metrics["method"].isin(method_names)
                       & metrics["task"].isin(task_names)] if len(metrics) else metrics
        seeds = sorted({int(s) for s in ours["seed"]}) if len(ours) else []
        title = study.get("title") or "Original (Origin) vs adversarial (Adv) accuracy"
        fig.suptitle(f"{title}\nmean over seeds {', '.join(map(str, seeds)) or '(none)'}; "
                     f"error bars: std over seeds", fontsize=11)

        png, pdf = render_bytes(fig, dpi)
    atomic_write_bytes(out_png, png)
    atomic_write_bytes(out_pdf, pdf)
    return data


#: Methods whose configurations form a line in the budget figure, by method type. FFT ends
#: the top-k line (all layers and the embeddings train), as in the paper's Figure 3.
#: The line takes its type's colour (`type_color`), each point its method's colour
#: (`method_color`: FFT's point at the end of the top-k line in FFT's colour).
BUDGET_FAMILIES = {"topk": "Top-k layers (to FFT)", "lora": "LoRA ranks"}


def budget_data(metrics: pd.DataFrame, runs: pd.DataFrame, study: dict, tasks: dict, methods: dict) -> pd.DataFrame:
    """Per model x method x split: the average over the study's columns (mean, std over seeds,
    n) with the method's trainable parameters (mean over the study's runs of it) and family
    (BUDGET_FAMILIES, or None for a single point)."""
    data = figure_data(metrics, study, tasks)
    data = data[data["column"] == "average"].drop(columns=["column", "display"])
    ours = runs[runs["task"].isin(list(study["tasks"]))] if len(runs) else runs
    params = ours.groupby(["model", "method"])["trainable_params"].mean() if len(ours) else pd.Series(dtype=float)
    types = {m: methods[m]["type"] for m in study["methods"]}
    has_topk = "topk" in types.values()
    data["trainable_params"] = [params.get((mo, me), math.nan) for mo, me in zip(data["model"], data["method"])]
    data["family"] = [("topk" if has_topk and types[m] == "fft" else types[m]) if types[m] in BUDGET_FAMILIES
                      or (has_topk and types[m] == "fft") else None for m in data["method"]]
    return data.reset_index(drop=True)


def budget_figure(metrics: pd.DataFrame, runs: pd.DataFrame, study: dict, tasks: dict, methods: dict,
                  models: dict, out_pdf, out_png, dpi: int = 150) -> pd.DataFrame:
    """Score against trainable parameters (log axis): one panel per model and split (Origin,
    Adv), one line per family (top-k layers ending at FFT, LoRA ranks), the other methods
    as single points; error bars: std over seeds. Returns the plotted data."""
    import matplotlib.style
    from matplotlib.figure import Figure

    data = budget_data(metrics, runs, study, tasks, methods)
    _, metric = figure_groups(study, tasks)
    model_names = list(study["models"])
    singles = [m for m in study["methods"] if data.loc[data["method"] == m, "family"].isna().all()]
    color = {m: method_color(m, methods) for m in study["methods"]}
    with matplotlib.style.context("default"), matplotlib.rc_context({"svg.hashsalt": "lwob", "pdf.fonttype": 42}):
        fig = Figure(figsize=(min(4.6 * len(model_names) + 2.4, 22.0), 6.4), dpi=dpi, layout="constrained")
        axes = fig.subplots(len(SPLITS), len(model_names), squeeze=False, sharex="col")
        for j, model in enumerate(model_names):
            for i, split in enumerate(SPLITS):
                ax = axes[i][j]
                sub = data[(data["model"] == model) & (data["split"] == split)]
                for family, label in BUDGET_FAMILIES.items():
                    line = sub[(sub["family"] == family) & np.isfinite(sub["mean"])
                               & np.isfinite(sub["trainable_params"])].sort_values("trainable_params")
                    if len(line):
                        family_color = type_color(family)
                        ax.errorbar(line["trainable_params"], line["mean"], yerr=line["std"].fillna(0.0),
                                    color=family_color, lw=1.4, capsize=2, label=label, zorder=2)
                        for x, y, m in zip(line["trainable_params"], line["mean"], line["method"]):
                            is_fft = method_type(m, methods) == "fft"
                            ax.plot([x], [y], ls="none", marker="s" if is_fft else "o", ms=5 if is_fft else 4.5,
                                    color=color[m], zorder=3, label=method_display(m, methods) if is_fft else None)
                            ax.annotate(method_display(m, methods), (x, y), textcoords="offset points",
                                        xytext=(3, 4), fontsize=6, color=color[m])
                for m in singles:
                    pt = sub[(sub["method"] == m) & np.isfinite(sub["mean"]) & np.isfinite(sub["trainable_params"])]
                    if len(pt):
                        ax.errorbar(pt["trainable_params"], pt["mean"], yerr=pt["std"].fillna(0.0), ls="none",
                                    marker="s", ms=5, capsize=2, color=color[m], label=method_display(m, methods))
                ax.set_xscale("log")
                ax.grid(linewidth=0.4, alpha=0.5)
                ax.set_title(f"{model_display(model, models)}: {SPLIT_DISPLAY[split]}", fontsize=9)
                ax.tick_params(labelsize=7)
                if j == 0:
                    ax.set_ylabel(f"{metric.capitalize()} (%), average", fontsize=8)
                if i == len(SPLITS) - 1:
                    ax.set_xlabel("Trainable parameters (log scale)", fontsize=8)
        handles, labels = {}, {}
        for ax in axes.flat:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(lab, h)
        fig.legend(list(handles.values()), list(handles), loc="outside right center", fontsize=7, frameon=False)
        title = study.get("title") or "Score against trainable parameters"
        fig.suptitle(f"{title}\nmean over seeds; error bars: std over seeds", fontsize=10)
        png, pdf = render_bytes(fig, dpi)
    atomic_write_bytes(out_png, png)
    atomic_write_bytes(out_pdf, pdf)
    return data


def generation_figure(metrics: pd.DataFrame, study: dict, tasks: dict, methods: dict, models: dict,
                      out_pdf, out_png, dpi: int = 150) -> pd.DataFrame:
    """Table 1 as bars: per model a panel, per task (and their average) one bar per method in
    its colour, mean over seeds with the std as error bar, in each task's metric."""
    import matplotlib.style
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    data = figure_data(metrics, study, tasks)
    data = data[data["split"] == "origin"].reset_index(drop=True)
    groups, _ = figure_groups(study, tasks)
    columns = [(g.column, g.display) for g in groups] + [("average", "AVG")]
    model_names, method_names = list(study["models"]), list(study["methods"])
    colors = [method_color(x, methods) for x in method_names]
    with matplotlib.style.context("default"), matplotlib.rc_context({"svg.hashsalt": "lwob", "pdf.fonttype": 42}):
        fig = Figure(figsize=(min(max(4.5 * len(model_names), 6.0), 22.0), 3.8), dpi=dpi, layout="constrained")
        axes = fig.subplots(1, len(model_names), sharey=True, squeeze=False)[0]
        width = 0.8 / max(1, len(method_names))
        for ax, model in zip(axes, model_names):
            sub = data[data["model"] == model]
            for i, (method, color) in enumerate(zip(method_names, colors)):
                rows = sub[sub["method"] == method].set_index("column")
                means = np.array([rows["mean"].get(c, math.nan) for c, _ in columns], dtype=float)
                stds = np.array([rows["std"].get(c, math.nan) for c, _ in columns], dtype=float)
                pos = np.arange(len(columns)) + (i - (len(method_names) - 1) / 2) * width
                err = np.where(np.isfinite(stds), stds, 0.0)
                ax.bar(pos, np.where(np.isfinite(means), means, 0.0), width, color=color,
                       yerr=err if np.any(err > 0) else None, capsize=2, error_kw={"elinewidth": 0.8})
            ax.set_xticks(np.arange(len(columns)))
            ax.set_xticklabels([d for _, d in columns], fontsize=7, rotation=15, ha="right")
            ax.set_ylim(0, 105)
            ax.grid(axis="y", linewidth=0.4, alpha=0.5)
            ax.set_axisbelow(True)
            ax.set_title(model_display(model, models), fontsize=10)
        axes[0].set_ylabel("Score (%)", fontsize=9)
        axes[-1].legend(handles=[Patch(color=c, label=method_display(x, methods)) for x, c in zip(method_names, colors)],
                        fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        metric_names = "; ".join(f"{display}: {metric_display(tasks[t], m)}" for g, (_c, display) in zip(groups, columns)
                                 for t, _e, m in [g.eval_sets["origin"]])
        fig.suptitle(f"{study.get('title') or 'Generation tasks'}\n{metric_names}; mean over seeds, "
                     f"error bars: std over seeds", fontsize=10)
        png, pdf = render_bytes(fig, dpi)
    atomic_write_bytes(out_png, png)
    atomic_write_bytes(out_pdf, pdf)
    return data


def render_bytes(fig: Figure, dpi: int) -> tuple[bytes, bytes]:
    """PNG and PDF bytes without timestamps, so reruns are byte-identical."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    png = buf.getvalue()
    buf = io.BytesIO()
    fig.savefig(buf, format="pdf", metadata={"CreationDate": None, "Creator": None, "Producer": None})
    return png, buf.getvalue()


#: Figure kinds a study can ask for (`figure` key): kind -> function drawing it,
#: (metrics, runs, study, tasks, methods, models, out_pdf, out_png) -> plotted data; its
#: `reads_runs` says whether it needs results/runs.csv (`runs` is None otherwise).
FIGURES = Registry("figure kind")


def figure_kind(name: str, reads_runs: bool = False):
    """Register a figure function as study `figure: <name>`."""
    def deco(func):
        func.reads_runs = reads_runs
        return FIGURES.register(name)(func)

    return deco


@figure_kind("robustness")
def _robustness(metrics, runs, study, tasks, methods, models, out_pdf, out_png):
    return origin_vs_adv(metrics, study, tasks, methods, models, out_pdf=out_pdf, out_png=out_png)


@figure_kind("generation")
def _generation(metrics, runs, study, tasks, methods, models, out_pdf, out_png):
    return generation_figure(metrics, study, tasks, methods, models, out_pdf=out_pdf, out_png=out_png)


@figure_kind("budget", reads_runs=True)
def _budget(metrics, runs, study, tasks, methods, models, out_pdf, out_png):
    return budget_figure(metrics, runs, study, tasks, methods, models, out_pdf=out_pdf, out_png=out_png)


def write_study_figure(*, metrics_csv, study: dict, tasks: dict, methods: dict, models: dict, out_pdf, out_png,
                       runs_csv=None):
    """File-level entry point of the `figure` rule: the study's `figure` kind (FIGURES)."""
    draw = FIGURES.get(study.get("figure", "robustness"))
    runs = pd.read_csv(runs_csv) if draw.reads_runs else None
    return draw(pd.read_csv(metrics_csv), runs, study, tasks, methods, models, out_pdf=out_pdf, out_png=out_png)
