"""Weight increments of finished runs (the paper's Figure 1): what fine-tuning changed.

Reads a run's saved trained tensors; never retrains. The run's model is rebuilt exactly as
at training time (`build_run_model` with the run's seed and step count), the trainable
tensors right after the build are the *initial* values, then `weights.safetensors` is
loaded. Each method module says what its increment is (``Method.increments``):

* FFT, top-k, BitFit, the task head of every method: trained minus initial (BitFit: the
  bias changes; the head's initial values are its seeded random initialisation);
* LoRA / AdaLoRA: the merged update of each adapted layer, peft's ``get_delta_weight``
  (B A * alpha/r; AdaLoRA B (A * E) * alpha / (ranknum + 1e-5));
* IA3: the learned scaling vectors minus one, on the layer they scale (``<layer>.ia3_l``);
* prefix tuning: the learned key and value prefixes of each layer (their values; there is
  no base), ``<layers>.<i>.prefix.key|value``, shape (num_virtual_tokens, hidden).

Names are the base model's parameter names with peft's wrappers removed
(``base_model.model.``, ``modules_to_save.default``, ``base_layer``, ``.default``), so the
same module has the same name under every method, e.g.
``roberta.encoder.layer.11.attention.self.query.weight``. Each increment is split into
``module`` (``roberta.encoder.layer.11.attention.self.query``) and ``param`` (``weight``,
``bias``, ``ia3_l``, ``key``/``value`` for prefixes), with ``layer`` (index in the model's
transformer layers) and ``submodule`` (path inside the layer, ``attention.self.query``).

Module selector (which module Figure 1 shows), a string ``[<layer>.]<submodule>[:<param>]``:

* ``last.query``, ``-1.attention.self.query``, ``0.output.dense``: layer ``last`` or an
  index (negative from the end), then the module's path inside the layer, matched exactly
  or as a unique dotted suffix (``query`` matches ``attention.self.query``);
* without a layer (``classifier.out_proj``, ``embeddings.word_embeddings``): the module's
  full name, exact or a unique dotted suffix;
* ``:param`` picks one tensor of the module; without it the figure shows ``weight`` when
  the method changed it, else ``bias``, else the first other tensor (IA3 ``ia3_l``);
* ``None``/``"default"``: the last layer's query projection of the model family
  (``query``, OPT ``q_proj``, DeBERTa ``query_proj``, ...; see `default_selector`).

A method that changes nothing in the chosen module has no increment there: its
selected-module file holds no tensor and the figure says so in its panel.

Summary statistics (one row per increment tensor, `summary_stats`): numel, mean, std
(population, ddof=0), mean_abs, kurtosis (excess/Fisher, scipy.stats.kurtosis with
bias=True; NaN for a constant tensor), max_abs, frobenius (the L2 norm of all entries) and,
for a matrix (2-D with both sides > 1), effective_rank: the entropy-based effective rank of
Roy & Vetterli (2007), exp(-sum_i p_i log p_i) with p_i = s_i / sum_j s_j over the
singular values s (1 for a rank-1 matrix, n for the n x n identity; NaN for a zero matrix).

API::

    run_increments(model_dir, meta, method_type, method_options, weights, seed, total_steps,
                   model_config) -> RunIncrements            (rebuild + load + increments)
    model_increments(model, method_type, initial) -> RunIncrements   (in memory)
    RunIncrements.stats(**ids) -> DataFrame;  .select(selector) -> {param: Increment}
    increment_table(increments, **ids) -> DataFrame;  summary_stats(x);  effective_rank(m)
    write_run_increments(...)          file-level entry of a per-run rule (CSV + selected module)
    increment_histograms(values, ...)  Figure 1 from arrays;  write_increment_figure(...) from files
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import atomic_write_bytes, read_json, verify_sha256
from ..registry import Registry

#: Columns of the tidy statistics table, in order.
STAT_COLUMNS = ["numel", "mean", "std", "mean_abs", "kurtosis", "max_abs", "frobenius", "effective_rank"]
ID_COLUMNS = ["model", "task", "method", "seed", "method_type"]
NAME_COLUMNS = ["name", "module", "param", "part", "layer", "submodule", "shape"]
COLUMNS = ID_COLUMNS + NAME_COLUMNS + STAT_COLUMNS


# --------------------------------------------------------------------------- statistics


def effective_rank(matrix) -> float:
    """Entropy-based effective rank (Roy & Vetterli 2007) of a 2-D array: exp(H(p)) with
    p = s / sum(s) over the singular values s (in float64; singular values below the
    numerical tolerance relative to the largest are zero). NaN for an all-zero matrix."""
    import torch

    m = torch.as_tensor(np.asarray(matrix), dtype=torch.float64)
    if m.ndim != 2:
        raise ValueError(f"effective rank needs a matrix, got shape {tuple(m.shape)}")
    eps = float(torch.finfo(torch.float64).eps) * max(m.shape)
    if min(m.shape) <= 64:
        s = torch.linalg.svdvals(m)
        tol = eps
    else:  # large: singular values from the eigenvalues of the smaller Gram matrix (much faster)
        gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
        s = torch.linalg.eigvalsh(gram).clamp_min(0).sqrt()
        tol = math.sqrt(eps)  # the Gram route resolves singular values down to ~sqrt(eps) * s_max
    if not float(s.max()) > 0:
        return math.nan
    s = s[s > tol * s.max()]  # numerically zero singular values do not count
    p = s / s.sum()
    return float(torch.exp(-(p * torch.log(p)).sum()))


def _is_matrix(shape) -> bool:
    return len(shape) == 2 and min(shape) > 1


def summary_stats(values) -> dict:
    """Summary statistics of one increment tensor (definitions in the module docstring).

    In float64, from the central moments of one mean-subtracted copy: the excess kurtosis is
    m4 / m2^2 - 3, as scipy.stats.kurtosis(fisher=True, bias=True) computes it, without its
    extra passes (a 135M-parameter FFT run's increments are a few seconds faster)."""
    arr = np.asarray(values, dtype=np.float64)
    flat = arr.ravel()
    n = flat.size
    out = {"numel": int(n)}
    if n == 0:
        return {**out, **{k: math.nan for k in STAT_COLUMNS[1:]}}
    mean = float(flat.mean())
    centred = flat - mean
    squared = centred * centred
    m2 = float(squared.mean())
    m4 = float(np.dot(squared, squared)) / n
    magnitude = np.abs(flat)
    out.update(mean=mean, std=math.sqrt(m2), mean_abs=float(magnitude.mean()),
               kurtosis=m4 / (m2 * m2) - 3.0 if m2 > 0 else math.nan,
               max_abs=float(magnitude.max()), frobenius=float(np.sqrt(np.dot(flat, flat))))
    squeezed = arr.squeeze() if arr.ndim > 2 or 1 in arr.shape else arr
    out["effective_rank"] = effective_rank(squeezed) if _is_matrix(squeezed.shape) else math.nan
    return out


# --------------------------------------------------------------------------- increments


_WRAPPER_RES = [
    (re.compile(r"^base_model\.model\."), ""),
    (re.compile(r"\.modules_to_save\.[^.]+\."), "."),
    (re.compile(r"\.base_layer\."), "."),
    (re.compile(r"\.(ia3_l|lora_[A-Za-z_]+)\.[^.]+$"), r".\1"),  # ParameterDict entry of the adapter
]


def normalise_name(name: str) -> str:
    """The base model's name of a tensor of a (peft-wrapped) model."""
    for pattern, repl in _WRAPPER_RES:
        name = pattern.sub(repl, name)
    return name


@dataclass
class Increment:
    name: str  # normalised tensor name, e.g. roberta.encoder.layer.1.attention.self.query.weight
    module: str  # the name minus its last component
    param: str  # weight | bias | ia3_l | key | value (prefix) | ...
    part: str  # layer | head | prefix | other (embeddings, pooler, final norm)
    layer: int | None  # index in the model's transformer layers
    submodule: str | None  # path inside the layer, e.g. attention.self.query
    value: np.ndarray  # float32, the tensor's shape (IA3 vectors squeezed to 1-D)


@dataclass
class RunIncrements:
    """The increments of one run, in model order, with what a selector needs to know."""

    increments: list[Increment]
    num_layers: int
    model_type: str | None = None
    layers_name: str = ""
    notes: dict = field(default_factory=dict)

    def stats(self, **ids) -> pd.DataFrame:
        return increment_table(self.increments, **ids)

    def select(self, selector: str | None = None) -> dict[str, Increment]:
        return select_module(self.increments, selector, self.num_layers, self.model_type)

    def __getitem__(self, name: str) -> Increment:
        for inc in self.increments:
            if inc.name == name:
                return inc
        raise KeyError(name)

    def names(self) -> list[str]:
        return [inc.name for inc in self.increments]


def _layers_name(model) -> tuple[str, int]:
    from ..methods.base import encoder_layers
    from ..models import unwrapped

    base = unwrapped(model)
    layers = encoder_layers(base)
    name = next(n for n, m in base.named_modules() if m is layers)
    return name, len(layers)


def model_increments(model, method_type: str, initial: dict, model_type: str | None = None) -> RunIncrements:
    """Increments of an in-memory built model (trained tensors loaded) against `initial`,
    the {name: tensor} snapshot of its trainable parameters right after the build."""
    import torch

    from .. import methods
    from ..methods.base import head_names

    cls = methods.get(method_type)
    with torch.no_grad():
        raw = cls.increments(model, initial)
    layers_name, num_layers = _layers_name(model)
    heads = set(head_names())
    layer_re = re.compile(rf"^{re.escape(layers_name)}\.(\d+)\.(.+)$")
    out = []
    for raw_name, tensor in raw.items():
        name = normalise_name(raw_name)
        module, _, param = name.rpartition(".")
        value = tensor.detach().to("cpu", torch.float32).numpy()
        if param == "ia3_l":
            value = value.reshape(-1)
        m = layer_re.match(module)
        layer, submodule = (int(m.group(1)), m.group(2)) if m else (None, None)
        if heads & set(name.split(".")):
            part = "head"
        elif m and submodule.split(".")[-1] == "prefix":
            part = "prefix"
        elif m:
            part = "layer"
        else:
            part = "other"
        out.append(Increment(name, module, param, part, layer, submodule, value))
    return RunIncrements(out, num_layers, model_type, layers_name)


def initial_state(model) -> dict:
    """Snapshot of the trainable parameters of a freshly built model (the initial values)."""
    from ..methods import trainable_state

    return {n: p.detach().clone() for n, p in trainable_state(model).items()}


def run_increments(*, model_dir, meta: dict, method_type: str, method_options: dict, weights, seed: int,
                   total_steps: int | None = None, model_config: dict | None = None) -> RunIncrements:
    """Rebuild a run's model (as training and evaluation do), load `weights`
    (weights.safetensors), return its increments. `seed`, `total_steps` are the run's (from
    train.json): they fix the seeded head/adapter initialisation and AdaLoRA's schedule."""
    from .. import methods
    from ..run.training import build_run_model

    model, _, _, ctx, _ = build_run_model(model_dir=model_dir, meta=meta, method_type=method_type,
                                          method_options=method_options, seed=seed, total_steps=total_steps,
                                          model_config=model_config)
    initial = initial_state(model)
    methods.load_trained(model, weights)
    model.eval()
    return model_increments(model, method_type, initial, ctx.model_type)


def increment_table(increments, **ids) -> pd.DataFrame:
    """Tidy table: one row per increment tensor, id columns (model, task, method, seed,
    method_type: the given `ids`, missing ones empty), names and `summary_stats`."""
    rows = []
    for inc in increments:
        row = {k: ids.get(k) for k in ID_COLUMNS}
        row.update(name=inc.name, module=inc.module, param=inc.param, part=inc.part, layer=inc.layer,
                   submodule=inc.submodule, shape="x".join(map(str, inc.value.shape)))
        row.update(summary_stats(inc.value))
        rows.append(row)
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["layer"] = df["layer"].astype("Int64")
    return df


def write_stats_csv(df: pd.DataFrame, path) -> None:
    """Write a statistics table atomically (floats with full precision)."""
    atomic_write_bytes(path, df.to_csv(index=False, float_format="%.9g").encode())


# --------------------------------------------------------------------------- module selector


def default_selector(model_type: str | None) -> str:
    """The last layer's query projection of the model family (`last.query`, OPT `last.q_proj`)."""
    from ..methods._peft import ATTENTION_QV

    return f"last.{ATTENTION_QV.get(model_type or '', ['query'])[0]}"


def parse_selector(selector: str | None, num_layers: int,
                   model_type: str | None = None) -> tuple[int | None, str, str | None]:
    """(layer index or None, module path, param or None) of a selector string."""
    if selector is None or selector == "default":
        selector = default_selector(model_type)
    text, _, param = str(selector).partition(":")
    head, _, rest = text.partition(".")
    layer = None
    if head == "last" or re.fullmatch(r"-?\d+", head):
        if not rest:
            raise ValueError(f"module selector {selector!r}: a layer needs a module path after it ('{head}.query')")
        layer = num_layers - 1 if head == "last" else int(head)
        if layer < 0:
            layer += num_layers
        if not 0 <= layer < num_layers:
            raise ValueError(f"module selector {selector!r}: layer {head} outside the model's {num_layers} layers")
        text = rest
    if not text:
        raise ValueError(f"module selector {selector!r} names no module")
    return layer, text, (param or None)


def _match(path: str, candidates: set[str], selector: str) -> str | None:
    if path in candidates:
        return path
    hits = sorted(c for c in candidates if c.endswith("." + path))
    if len(hits) > 1:
        raise ValueError(f"module selector {selector!r} is ambiguous: {', '.join(hits)}")
    return hits[0] if hits else None


def select_module(increments, selector: str | None, num_layers: int, model_type: str | None = None
                  ) -> dict[str, Increment]:
    """{param: Increment} of the selected module ({} when the method changed nothing there).

    Module paths are matched among the modules this run changed; a selector that cannot be
    matched (a module the method does not touch) gives {}.
    """
    layer, path, param = parse_selector(selector, num_layers, model_type)
    incs = list(increments)
    if layer is not None:
        pool = [i for i in incs if i.layer == layer]
        chosen = _match(path, {i.submodule for i in pool}, str(selector))
        found = [i for i in pool if i.submodule == chosen] if chosen else []
    else:
        chosen = _match(path, {i.module for i in incs}, str(selector))
        found = [i for i in incs if i.module == chosen] if chosen else []
    if param:
        found = [i for i in found if i.param == param]
    return {i.param: i for i in found}


def shown_param(selected: dict) -> str | None:
    """Which tensor of a selected module the figure shows: weight, else bias, else the first."""
    for p in ("weight", "bias"):
        if p in selected:
            return p
    return next(iter(selected), None)


# --------------------------------------------------------------------------- per-run entry


def save_selected(path, selected: dict[str, Increment], meta: dict) -> None:
    """Write the selected module's increments (safetensors; metadata: run ids, selector,
    module, and per tensor its full name). No tensor = no increment in that module."""
    from safetensors.numpy import save

    md = {k: str(v) for k, v in meta.items() if v is not None}
    if selected:
        md["module"] = next(iter(selected.values())).module
    tensors = {p: np.ascontiguousarray(i.value, dtype=np.float32) for p, i in selected.items()}
    atomic_write_bytes(path, save(tensors, metadata=md))


def load_selected(path) -> tuple[dict[str, np.ndarray], dict]:
    """({param: array}, metadata) of a file written by `save_selected`."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})


def write_run_increments(*, model_dir, tokenized_dir, run_dir, method_type: str, method_options: dict,
                         out_csv=None, out_selected=None, module: str | None = None,
                         model_config: dict | None = None, threads: int | None = None) -> pd.DataFrame:
    """File-level entry of the per-run rules: the increments of the run in `run_dir`
    (weights.safetensors + train.json) -> `out_csv` (statistics, one row per tensor) and/or
    `out_selected` (the `module` selector's increments, for the figure). Returns the table."""
    import torch

    if threads:
        torch.set_num_threads(int(threads))
    run_dir = Path(run_dir)
    meta = read_json(Path(tokenized_dir) / "meta.json")
    record_path, weights_path = run_dir / "train.json", run_dir / "weights.safetensors"
    record = read_json(record_path)
    verify_sha256(weights_path, record.get("weights_sha256"), output=record_path)
    seed = int(record["seed"])
    incs = run_increments(model_dir=model_dir, meta=meta, method_type=method_type, method_options=method_options,
                          weights=weights_path, seed=seed,
                          total_steps=record.get("total_steps"), model_config=model_config)
    ids = {"model": record.get("model"), "task": record.get("task"), "method": record.get("method"),
           "seed": seed, "method_type": method_type}
    df = incs.stats(**ids) if out_csv is not None else None
    if out_selected is not None:
        selector = module if module not in (None, "default") else default_selector(incs.model_type)
        save_selected(out_selected, incs.select(selector), {**ids, "selector": selector})
    if out_csv is not None:
        write_stats_csv(df, out_csv)
    return df


# --------------------------------------------------------------------------- figure


def _fmt(x: float) -> str:
    return "n/a" if not np.isfinite(x) else f"{x:.3g}"


#: Figure 1's `increments.layout`: name -> function drawing the histograms,
#: (summary, data, color, legend_label, bins, dpi) -> matplotlib Figure.
FIGURE1_LAYOUTS = Registry("Figure 1 layout")


@FIGURE1_LAYOUTS.register("faceted")
def _faceted(summary, data, color, legend_label, bins, dpi):
    """One panel per method, each with its own x range."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator, NullFormatter

    names = list(data)
    n = max(len(names), 1)
    ncols = min(math.ceil(math.sqrt(n)), 4)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(3.2 * ncols, 2.6 * nrows + 0.6), dpi=dpi, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, r in zip(axes, summary.itertuples(index=False)):
        arr = data[r.method]
        if arr is None or arr.size == 0:
            ax.text(0.5, 0.5, f"{r.label}:\nno increment\nin this module", ha="center", va="center",
                    transform=ax.transAxes, fontsize=9, color="dimgray")
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        ax.hist(arr, bins=bins, color=color[r.method], alpha=0.85, label=legend_label(r), log=True)
        ax.legend(loc="upper right", fontsize=7, frameon=False)
        ax.tick_params(labelsize=7)
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 3))
        ax.xaxis.get_offset_text().set_fontsize(7)
        ax.set_xlabel("increment", fontsize=8)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    axes[0].set_ylabel("count (log)", fontsize=8)
    return fig


@FIGURE1_LAYOUTS.register("overlay")
def _overlay(summary, data, color, legend_label, bins, dpi):
    """One panel, the methods' histograms over shared bins."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2), dpi=dpi, layout="constrained")
    ax = fig.subplots()
    present = [d for d in data.values() if d is not None and d.size]
    edges = np.histogram_bin_edges(np.concatenate(present), bins=bins) if present else bins
    for r in summary.itertuples(index=False):
        arr = data[r.method]
        if arr is None or arr.size == 0:
            ax.plot([], [], " ", label=f"{r.label}: no increment in this module")
            continue
        ax.hist(arr, bins=edges, histtype="step", linewidth=1.3, color=color[r.method],
                label=legend_label(r), log=True)
    ax.legend(fontsize=8, frameon=False)
    ax.set_xlabel("increment", fontsize=9)
    ax.set_ylabel("count (log)", fontsize=9)
    return fig


def increment_histograms(values: dict, out_pdf, out_png, *, labels: dict | None = None,
                         colors: dict | None = None, params: dict | None = None, module: str = "",
                         title: str | None = None, layout: str = "faceted", bins: int = 60,
                         dpi: int = 150) -> pd.DataFrame:
    """Figure 1: histograms of one module's increments per method, std in the legend.

    `values`: method -> 1-D/any-shape array of increments, or None when the method has no
    increment in the module (its panel says so; in the overlay it is listed in the legend).
    `labels`/`colors`/`params` (which tensor, e.g. weight/bias) per method are optional (colours
    default to lwob.report.figures.method_color of the name, taken as the method type).
    `layout`: a FIGURE1_LAYOUTS name, ``faceted`` (one panel per method, own x range) or
    ``overlay`` (one panel, shared bins). y axis: log count. Writes PDF and PNG (reproducible
    bytes); returns the plotted summary (method, label, param, n, std, mean_abs, kurtosis, max_abs).
    """
    import matplotlib
    import matplotlib.style
    from ..report.figures import method_color, render_bytes
    from ..report.tables import method_display

    draw = FIGURE1_LAYOUTS[layout] if layout in FIGURE1_LAYOUTS else None
    if draw is None:
        raise ValueError(f"layout must be one of {', '.join(FIGURE1_LAYOUTS.known())}, got {layout!r}")
    labels, params, colors = dict(labels or {}), dict(params or {}), dict(colors or {})
    names = list(values)
    # The figures' shared palette (lwob.report.figures.method_color); a bare name is taken as its type.
    color = {m: colors.get(m) or method_color(m, {}) for m in names}
    rows = []
    data = {}
    for m in names:
        v = values[m]
        arr = None if v is None else np.asarray(v, dtype=np.float64).ravel()
        data[m] = arr
        s = summary_stats(arr) if arr is not None else {}
        rows.append({"method": m, "label": labels.get(m) or method_display(m, {}),
                     "param": params.get(m) if arr is not None else None,
                     "n": int(arr.size) if arr is not None else 0,
                     **{k: s.get(k, math.nan) for k in ("std", "mean_abs", "kurtosis", "max_abs")}})
    summary = pd.DataFrame(rows, columns=["method", "label", "param", "n", "std", "mean_abs", "kurtosis", "max_abs"])

    def legend_label(r) -> str:
        what = f" [{r.param}]" if r.param and r.param != "weight" else ""
        return f"{r.label}{what} (std {_fmt(r.std)})"

    with matplotlib.style.context("default"), matplotlib.rc_context({"svg.hashsalt": "lwob", "pdf.fonttype": 42}):
        fig = draw(summary, data, color, legend_label, bins, dpi)
        fig.suptitle(title or f"Weight increments of {module or 'the chosen module'}", fontsize=10)
        png, pdf = render_bytes(fig, dpi)
    atomic_write_bytes(out_png, png)
    atomic_write_bytes(out_pdf, pdf)
    return summary


def write_increment_figure(*, selected: dict, out_pdf, out_png, methods: dict | None = None,
                           models: dict | None = None, title: str | None = None, layout: str = "faceted",
                           out_csv=None) -> pd.DataFrame:
    """File-level entry of the figure rule. `selected`: method name -> the run's
    selected-module file (`write_run_increments`' out_selected; one run per method, in the
    order to draw). `methods`/`models`: the config's blocks (display names, method types for
    colours). Optionally writes the plotted summary to `out_csv`."""
    from ..report.figures import method_color
    from ..report.tables import method_display, model_display

    methods = methods or {}
    values, labels, params, colors, modules, run_ids = {}, {}, {}, {}, [], []
    for name, path in selected.items():
        tensors, md = load_selected(path)
        p = shown_param(tensors)
        values[name] = tensors[p] if p else None
        params[name] = p
        labels[name] = method_display(name, methods)
        if name in methods:
            colors[name] = method_color(name, methods)  # as in every other figure
        else:
            colors[name] = method_color(name, {name: {"type": md.get("method_type") or name}})
        if md.get("module"):
            modules.append(md["module"])
        run_ids.append(md)
    selectors = [md.get("selector", "") for md in run_ids]
    if len(set(selectors)) > 1:  # methods shown at different modules: say which, per panel
        for (name, _), sel in zip(selected.items(), selectors):
            labels[name] = f"{labels[name]} at {sel}"
        module = "the chosen modules"
    else:
        module = modules[0] if len(set(modules)) == 1 else (selectors[0] if selectors else "")
    if title is None and run_ids:
        model = run_ids[0].get("model", "")
        shown_model = model_display(model, models or {}) if model else ""
        title = f"Weight increments of {module}" + (f" ({shown_model}, {run_ids[0].get('task', '')}, "
                                                      f"seed {run_ids[0].get('seed', '')})" if model else "")
    summary = increment_histograms(values, out_pdf, out_png, labels=labels, colors=colors, params=params,
                                   module=module, title=title, layout=layout)
    if out_csv is not None:
        write_stats_csv(summary, out_csv)
    return summary


def write_increment_table(*, stats_csvs, out_csv) -> pd.DataFrame:
    """File-level entry of the `increment_table` rule: every run's statistics in one tidy table."""
    frames = [pd.read_csv(p) for p in stats_csvs]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    write_stats_csv(df, out_csv)
    return df
