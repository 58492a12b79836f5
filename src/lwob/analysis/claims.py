"""The paper's claims stated as checks on our results, each with a verdict and its numbers.

Each `Claim` (the registry `CLAIMS`) quotes or closely paraphrases the paper, names where it
comes from, says what is checked and by which rule, and evaluates to a `Verdict`: status
"holds", "does not hold", "inconclusive" or "not evaluated" (its study is not in the run, or
an input is absent; the summary says why), a one-sentence summary and an evidence table.

Inputs (as the workflow writes them; scores are fractions, differences method minus FFT):
results/summary.csv (`lwob.analysis.aggregate`), results/statistics/comparisons.csv
(`lwob.analysis.stats.compare_to_reference`), results/runs.csv, results/increments/figure1.csv
(`lwob.analysis.increments.write_increment_figure`, optional) and the config dict.

Conventions shared by the rules:

* Method types come from the config's `methods` (else runs.csv's `method_type`, else the
  name). PEFT = every method whose type is neither ``fft`` nor ``topk``.
* A comparison with FFT is *significant* when its corrected p-value is below ALPHA (0.05):
  the paired bootstrap over examples with Holm's correction (``p_boot_holm``) where the run
  had predictions, else the paired t-test over seeds with Holm's correction (``p_t_holm``);
  the evidence names which (``p_source``). The family of the correction is the one
  `compare_to_reference` used (by default every comparison of the run).
* MARGIN (0.01 = one point of accuracy / F1) is the smallest difference counted as more
  than "little".
* Score per eval set: its task's metric (`lwob.analysis.stats.primary_metric`: accuracy; QA F1 on
  original sets, the worst-case adv_f1 on adversarial sets).

API::

    evaluate_claims(summary, comparisons, runs, figure1, config) -> (claims DataFrame, {id: evidence})
    write_claims(summary_csv=, comparisons_csv=, runs_csv=, figure1_csv=, config=, template_path=,
                 out_csv=, out_html=)   file-level entry of the report rule
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as _st

from ..io import atomic_write_bytes
from .stats import paired_t, primary_metric

ALPHA = 0.05
MARGIN = 0.01
STATUSES = ("holds", "does not hold", "inconclusive", "not evaluated")
#: Method types that are not parameter-efficient: full fine-tuning (all at once or a group of
#: layers per step), top-k layers, and the untuned base model.
NOT_PEFT_TYPES = {"fft", "topk", "hift", "vanilla"}
CLAIM_COLUMNS = ["id", "title", "statement", "source", "check", "rule", "status", "summary", "evidence_rows"]


@dataclass(frozen=True)
class Verdict:
    status: str
    summary: str
    evidence: pd.DataFrame

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"unknown verdict status {self.status!r}")


def _not_evaluated(reason: str) -> Verdict:
    return Verdict("not evaluated", reason, pd.DataFrame())


# --------------------------------------------------------------------------------------------
# The inputs, with the look-ups every rule needs
# --------------------------------------------------------------------------------------------


def _keyed(frame: pd.DataFrame | None, keys: set, values: set) -> pd.DataFrame | None:
    """A copy of a results frame with its key columns as strings and a `column` (default the
    task), or None when it is missing, empty or lacks a needed column."""
    if frame is None or frame.empty or not (keys | values) <= set(frame.columns):
        return None
    frame = frame.copy()
    if "column" not in frame.columns:
        frame["column"] = frame["task"]
    for col in (*sorted(keys), "column"):
        frame[col] = frame[col].astype(str)
    return frame


class Results:
    """The frames a claim is checked on (None: the input is absent) and the config."""

    def __init__(self, summary=None, comparisons=None, runs=None, figure1=None, config: dict | None = None):
        self.summary, self.comparisons, self.runs, self.figure1 = summary, comparisons, runs, figure1
        self.config = config or {}
        self.methods = self.config.get("methods") or {}
        self.tasks = self.config.get("tasks") or {}

    # Method and task attributes -------------------------------------------------------------

    def _run_value(self, method: str, column: str):
        runs = self.runs
        if runs is None or runs.empty or column not in runs.columns or "method" not in runs.columns:
            return None
        vals = runs.loc[runs["method"].astype(str) == method, column].dropna()
        return vals.iloc[0] if len(vals) else None

    def method_type(self, method: str) -> str:
        spec = self.methods.get(method) or {}
        if spec.get("type"):
            return str(spec["type"])
        return str(self._run_value(method, "method_type") or method)

    def is_peft(self, method: str) -> bool:
        return self.method_type(method) not in NOT_PEFT_TYPES

    def option(self, method: str, key: str):
        """An option of the method (config `options`, else runs.csv's JSON `method_options`)."""
        spec = self.methods.get(method) or {}
        if key in (spec.get("options") or {}):
            return spec["options"][key]
        raw = self._run_value(method, "method_options")
        if raw is None:
            return None
        try:
            opts = json.loads(raw) if isinstance(raw, str) else dict(raw)
        except (ValueError, TypeError):
            return None
        return opts.get(key) if isinstance(opts, dict) else None

    def task_kind(self, task: str) -> str | None:
        kind = (self.tasks.get(task) or {}).get("kind")
        if kind:
            return str(kind)
        kind = None
        if self.runs is not None and "task_kind" in getattr(self.runs, "columns", []):
            vals = self.runs.loc[self.runs["task"].astype(str) == task, "task_kind"].dropna()
            kind = str(vals.iloc[0]) if len(vals) else None
        return kind

    def lr(self, method: str, **where) -> float:
        """The method's learning rate: the median over its runs in runs.csv (restricted to the
        given column values, e.g. model=, task=, seed=, where runs.csv has them), else the config's."""
        if self.runs is not None and {"method", "lr"} <= set(self.runs.columns):
            sel = self.runs["method"].astype(str) == method
            for col, value in where.items():
                if value is not None and col in self.runs.columns:
                    sel &= self.runs[col].astype(str) == str(value)
            vals = pd.to_numeric(self.runs.loc[sel, "lr"], errors="coerce").dropna()
            if len(vals):
                return float(vals.median())
        spec = self.methods.get(method) or {}
        lr = (spec.get("training") or {}).get("lr", (self.config.get("training") or {}).get("lr"))
        return float(lr) if lr is not None else math.nan

    def trainable_params(self, model: str, task: str, method: str) -> float:
        runs = self.runs
        if runs is None or runs.empty or not {"model", "task", "method", "trainable_params"} <= set(runs.columns):
            return math.nan
        sel = runs[(runs["model"].astype(str) == model) & (runs["task"].astype(str) == task)
                   & (runs["method"].astype(str) == method)]
        vals = pd.to_numeric(sel["trainable_params"], errors="coerce").dropna()
        return float(vals.mean()) if len(vals) else math.nan

    # Scores -------------------------------------------------------------------------------

    def scores(self) -> pd.DataFrame | None:
        """summary.csv restricted to each eval set's primary metric (one row per model x task x
        eval set x method), with a `seed_values` column {seed: value}."""
        s = _keyed(self.summary, {"model", "task", "method", "eval_set", "kind", "metric"}, {"mean"})
        if s is None:
            return None
        from ..plan.config import task_metrics

        judged_on = task_metrics({"tasks": self.tasks})  # the metric each task is judged on
        keep = []
        for (_, task, _), g in s.groupby(["model", "task", "eval_set"], sort=True):
            metric = primary_metric(set(g["metric"]), g["kind"].iloc[0], task_metric=judged_on.get(task))
            if metric is not None:
                keep.append(g[g["metric"] == metric])
        if not keep:
            return None
        out = pd.concat(keep, ignore_index=True)
        out["seed_values"] = [_seed_values(r) for r in out.to_dict("records")]
        return out.sort_values(["model", "task", "eval_set", "method"], kind="stable").reset_index(drop=True)

    def fft_comparisons(self) -> pd.DataFrame | None:
        """comparisons.csv rows against an FFT-type reference, with `p` (corrected) and `p_source`."""
        c = _keyed(self.comparisons, {"model", "task", "eval_set", "kind", "method", "reference"}, {"diff"})
        if c is None:
            return None
        c = c[(c["reference"].map(self.method_type) == "fft").to_numpy()]
        boot = pd.to_numeric(c["p_boot_holm"], errors="coerce") if "p_boot_holm" in c.columns else None
        t = pd.to_numeric(c["p_t_holm"], errors="coerce") if "p_t_holm" in c.columns else None
        p, src = [], []
        for i in range(len(c)):
            b = boot.iloc[i] if boot is not None else math.nan
            tt = t.iloc[i] if t is not None else math.nan
            if np.isfinite(b):
                p.append(float(b)), src.append("p_boot_holm")
            elif np.isfinite(tt):
                p.append(float(tt)), src.append("p_t_holm")
            else:
                p.append(math.nan), src.append("")
        c["diff"] = pd.to_numeric(c["diff"], errors="coerce")
        c["p"], c["p_source"] = p, src
        c["significant"] = [bool(np.isfinite(pp) and pp < ALPHA) for pp in p]
        return c.sort_values(["model", "task", "eval_set", "method"], kind="stable").reset_index(drop=True)


def _seed_values(row: dict) -> dict[int, float]:
    seeds, values = row.get("seeds"), row.get("values")
    if not isinstance(seeds, str) or not isinstance(values, str) or not seeds or not values:
        return {}
    try:
        ss = [int(float(x)) for x in seeds.split(",")]
        vs = [float(x) for x in values.split(",")]
    except ValueError:
        return {}
    return dict(zip(ss, vs)) if len(ss) == len(vs) else {}


def _pts(x: float) -> str:
    """A score difference (fraction) in points."""
    return "n/a" if not np.isfinite(x) else f"{100 * x:+.2f} points"


def _interval(row: pd.Series) -> tuple[float, float]:
    """The comparison's 95% interval: the bootstrap's where the p-value is the bootstrap's."""
    if row.get("p_source") == "p_boot_holm":
        return float(row.get("boot_low", math.nan)), float(row.get("boot_high", math.nan))
    return float(row.get("diff_low", math.nan)), float(row.get("diff_high", math.nan))


def _comparison_evidence(c: pd.DataFrame) -> pd.DataFrame:
    low_high = [_interval(r) for _, r in c.iterrows()]
    cols = ["model", "task", "column", "eval_set", "method"]
    ev = c[cols].copy()
    ev["n_seeds"] = c["n_seeds"].to_numpy() if "n_seeds" in c.columns else math.nan
    ev["mean_fft"] = (pd.to_numeric(c["mean_ref"], errors="coerce").to_numpy()
                      if "mean_ref" in c.columns else math.nan)
    ev["mean_method"] = (pd.to_numeric(c["mean_method"], errors="coerce").to_numpy()
                         if "mean_method" in c.columns else math.nan)
    ev["diff"] = c["diff"].to_numpy()
    ev["ci_low"] = [lo for lo, _ in low_high]
    ev["ci_high"] = [hi for _, hi in low_high]
    ev["p_corrected"] = c["p"].to_numpy()
    ev["p_source"] = c["p_source"].to_numpy()
    ev["outcome"] = ["FFT better" if s and d < 0 else "method better" if s and d > 0 else "not significant"
                     for s, d in zip(c["significant"], c["diff"])]
    return ev.reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Claim 1: FFT beats PEFT on adversarial sets on average
# --------------------------------------------------------------------------------------------


def check_fft_adversarial(res: Results) -> Verdict:
    c = res.fft_comparisons()
    if c is None:
        return _not_evaluated("No comparisons with FFT in this run (results/statistics/comparisons.csv is absent "
                              "or has no FFT reference).")
    c = c[(c["kind"] == "adv") & c["method"].map(res.is_peft).astype(bool) & np.isfinite(c["diff"])]
    if c.empty:
        return _not_evaluated("No PEFT method was compared with FFT on an adversarial set in this run.")
    ev = _comparison_evidence(c)
    mean_diff = float(c["diff"].mean())
    fft_better = int((c["significant"] & (c["diff"] < 0)).sum())
    peft_better = int((c["significant"] & (c["diff"] > 0)).sum())
    per_method = c.groupby("method", sort=True)["diff"].mean()
    by_method = ", ".join(f"{m} {_pts(d)}" for m, d in per_method.items())
    counts = (f"over {len(c)} comparisons (PEFT minus FFT, mean {_pts(mean_diff)}; per method: {by_method}), "
              f"FFT is significantly better in {fft_better} and significantly worse in {peft_better}")
    if mean_diff < 0 and fft_better > peft_better:
        return Verdict("holds", f"On adversarial sets, {counts}.", ev)
    if mean_diff > 0 and peft_better > fft_better:
        return Verdict("does not hold", f"On adversarial sets PEFT beats FFT: {counts}.", ev)
    return Verdict("inconclusive", f"On adversarial sets, {counts}: no clear direction.", ev)


# --------------------------------------------------------------------------------------------
# Claim 2: LoRA matches or beats FFT on the original GLUE sets
# --------------------------------------------------------------------------------------------


def lora_methods(res: Results, candidates) -> list[str]:
    """The LoRA the paper's Table 3 ran: the method named ``lora`` (r = 8) when it is among the
    candidates; else every LoRA-type candidate."""
    loras = sorted({m for m in candidates if res.method_type(m) == "lora"})
    return ["lora"] if "lora" in loras else loras


def check_lora_glue(res: Results) -> Verdict:
    c = res.fft_comparisons()
    if c is None:
        return _not_evaluated("No comparisons with FFT in this run (results/statistics/comparisons.csv is absent "
                              "or has no FFT reference).")
    c = c[(c["kind"] == "origin") & (c["task"].map(res.task_kind) == "classification") & np.isfinite(c["diff"])]
    chosen = lora_methods(res, c["method"])
    c = c[c["method"].isin(chosen)]
    if c.empty:
        return _not_evaluated("No LoRA run was compared with FFT on an original classification (GLUE) set in this run.")
    ev = _comparison_evidence(c)
    worse = int((c["significant"] & (c["diff"] < 0)).sum())
    better = int((c["significant"] & (c["diff"] > 0)).sum())
    mean_diff = float(c["diff"].mean())
    counts = (f"{', '.join(chosen)} against FFT on {len(c)} original classification sets: mean {_pts(mean_diff)}, "
              f"significantly worse in {worse}, significantly better in {better}")
    if worse == 0 and mean_diff > -MARGIN:
        return Verdict("holds", f"LoRA matches or beats FFT: {counts}.", ev)
    if worse > len(c) / 2:
        return Verdict("does not hold", f"LoRA is below FFT in most sets: {counts}.", ev)
    return Verdict("inconclusive", f"Mixed: {counts}.", ev)


# --------------------------------------------------------------------------------------------
# Claim 3: a larger LoRA rank adds little
# --------------------------------------------------------------------------------------------


def check_lora_rank(res: Results) -> Verdict:
    s = res.scores()
    if s is None:
        return _not_evaluated("No scores in this run (results/summary.csv is absent or empty).")
    rows = []
    for (model, task, eval_set), g in s.groupby(["model", "task", "eval_set"], sort=True):
        by_rank: dict[int, pd.Series] = {}
        for _, r in g.iterrows():
            if res.method_type(r["method"]) != "lora" or not np.isfinite(float(r["mean"])):
                continue
            rank = res.option(r["method"], "r")
            try:
                rank = int(rank)
            except (TypeError, ValueError):
                continue
            by_rank.setdefault(rank, r)  # methods sorted by name: the first of a rank
        if len(by_rank) < 2:
            continue
        lo, hi = by_rank[min(by_rank)], by_rank[max(by_rank)]
        gain = float(hi["mean"]) - float(lo["mean"])
        pt = paired_t(hi["seed_values"], lo["seed_values"])
        if gain < MARGIN:
            label = "little"
        elif np.isfinite(pt.low) and pt.low > 0:
            label = "large"
        else:
            label = "within noise"
        rows.append({"model": model, "task": task, "column": g["column"].iloc[0], "eval_set": eval_set,
                     "kind": g["kind"].iloc[0], "metric": g["metric"].iloc[0],
                     "ranks": ",".join(map(str, sorted(by_rank))),
                     "small_rank_method": lo["method"], "large_rank_method": hi["method"],
                     "mean_small_rank": float(lo["mean"]), "mean_large_rank": float(hi["mean"]), "gain": gain,
                     "gain_ci_low": pt.low, "gain_ci_high": pt.high, "n_seeds": pt.n, "outcome": label})
    if not rows:
        return _not_evaluated("No rank study in this run: no model x task has LoRA at two or more ranks.")
    ev = pd.DataFrame(rows)
    mean_gain = float(ev["gain"].mean())
    n_large, n_little = int((ev["outcome"] == "large").sum()), int((ev["outcome"] == "little").sum())
    counts = (f"largest minus smallest LoRA rank over {len(ev)} eval sets: mean gain {_pts(mean_gain)}; "
              f"{n_large} gain(s) of at least {100 * MARGIN:g} point beyond seed noise, {n_little} below "
              f"{100 * MARGIN:g} point")
    if mean_gain < MARGIN and n_large == 0:
        return Verdict("holds", f"A larger rank adds little: {counts}.", ev)
    if mean_gain >= MARGIN and n_large > n_little:
        return Verdict("does not hold", f"A larger rank helps: {counts}.", ev)
    return Verdict("inconclusive", f"Mixed: {counts}.", ev)


# --------------------------------------------------------------------------------------------
# Claim 4: fewer trainable layers lowers scores
# --------------------------------------------------------------------------------------------


def _within_ranks(x) -> np.ndarray:
    return _st.rankdata(np.asarray(x, dtype=float))


def check_topk(res: Results) -> Verdict:
    s = res.scores()
    if s is None:
        return _not_evaluated("No scores in this run (results/summary.csv is absent or empty).")
    points, cells = [], []
    for (model, task, eval_set), g in s.groupby(["model", "task", "eval_set"], sort=True):
        g = g[np.isfinite(g["mean"].astype(float))]
        types = [res.method_type(m) for m in g["method"]]
        topk = [(m, r) for m, r, t in zip(g["method"], g.itertuples(index=False), types) if t == "topk"]
        fft = [r for r, t in zip(g.itertuples(index=False), types) if t == "fft"]
        ks = {}
        for m, r in topk:
            try:
                ks[m] = (int(res.option(m, "k")), r)
            except (TypeError, ValueError):
                continue
        if not ks or not fft:
            continue
        f = fft[0]
        # x: trainable parameters (runs.csv) where every point has them, else the rank order
        # of k with FFT above every k (Spearman only uses the order).
        params = {m: res.trainable_params(model, task, m) for m in [*ks, f.method]}
        use_params = all(np.isfinite(v) for v in params.values())
        cell = [(m, params[m] if use_params else float(k), float(r.mean)) for m, (k, r) in ks.items()]
        cell.append((f.method, params[f.method] if use_params else float(max(k for k, _ in ks.values()) + 1),
                     float(f.mean)))
        cell.sort(key=lambda p: p[1])
        xr, yr = _within_ranks([p[1] for p in cell]), _within_ranks([p[2] for p in cell])
        for (m, x, y), a, b in zip(cell, xr, yr):
            points.append({"model": model, "task": task, "eval_set": eval_set, "method": m, "x": x, "score": y,
                           "x_rank": a, "score_rank": b})
        smallest = min(ks.items(), key=lambda kv: kv[1][0])
        rho = (float(_st.spearmanr([p[1] for p in cell], [p[2] for p in cell]).statistic)
               if len(cell) >= 3 and len({p[2] for p in cell}) > 1 else math.nan)
        cells.append({"model": model, "task": task, "column": g["column"].iloc[0], "eval_set": eval_set,
                      "kind": g["kind"].iloc[0], "metric": g["metric"].iloc[0],
                      "x": "trainable_params" if use_params else "k (FFT last)",
                      "methods": ",".join(p[0] for p in cell), "scores": ",".join(f"{p[2]:.4f}" for p in cell),
                      "rho": rho, "smallest_k_method": smallest[0], "mean_smallest_k": float(smallest[1][1].mean),
                      "mean_fft": float(f.mean), "fft_minus_smallest_k": float(f.mean) - float(smallest[1][1].mean)})
    if not cells:
        return _not_evaluated("No top-k layer study in this run: no model x task has both top-k and FFT scores.")
    ev = pd.DataFrame(cells)
    pts = pd.DataFrame(points)
    if len(pts) >= 3 and pts["x_rank"].nunique() > 1 and pts["score_rank"].nunique() > 1:
        res_sp = _st.spearmanr(pts["x_rank"], pts["score_rank"])
        rho, p = float(res_sp.statistic), float(res_sp.pvalue)
    else:
        rho, p = math.nan, math.nan
    fft_wins = int((ev["fft_minus_smallest_k"] > 0).sum())
    counts = (f"pooled Spearman rho between trainable parameters and score (ranks within each of {len(ev)} "
              f"eval sets, {len(pts)} points) = {rho:.2f} (p = {p:.2g}); FFT above the smallest k in "
              f"{fft_wins} of {len(ev)} eval sets (mean {_pts(float(ev['fft_minus_smallest_k'].mean()))})")
    if np.isfinite(rho) and rho > 0 and p < ALPHA and fft_wins > len(ev) / 2:
        return Verdict("holds", f"Fewer trainable layers score lower: {counts}.", ev)
    if np.isfinite(rho) and rho < 0 and p < ALPHA:
        return Verdict("does not hold", f"Fewer trainable layers score higher: {counts}.", ev)
    return Verdict("inconclusive", f"No clear trend: {counts}.", ev)


# --------------------------------------------------------------------------------------------
# Claim 5: PEFT weight increments are narrower than FFT's
# --------------------------------------------------------------------------------------------


def check_increments(res: Results) -> Verdict:
    f = res.figure1
    if f is None or f.empty or not {"method", "std"} <= set(f.columns):
        return _not_evaluated("No weight-increment analysis in this run (results/increments/figure1.csv is absent; "
                              "the config has no `increments` section).")
    f = f.copy()
    f["method"] = f["method"].astype(str)
    f["std"] = pd.to_numeric(f["std"], errors="coerce")
    n = pd.to_numeric(f["n"], errors="coerce").fillna(0) if "n" in f.columns else pd.Series(1, index=f.index)
    f = f[(n > 0) & np.isfinite(f["std"])]
    f["type"] = [res.method_type(m) for m in f["method"]]
    fft = f[f["type"] == "fft"]
    peft = f[[t not in NOT_PEFT_TYPES for t in f["type"]]]
    if fft.empty or peft.empty:
        return _not_evaluated("The weight-increment analysis lacks FFT or any PEFT method with an increment in the "
                              "chosen module.")
    inc = res.config.get("increments") or {}
    where = {k: inc.get(k) for k in ("model", "task", "seed")}  # the runs Figure 1 shows
    fft_std = float(fft["std"].iloc[0])
    fft_kurt = float(pd.to_numeric(fft.get("kurtosis"), errors="coerce").iloc[0]) if "kurtosis" in fft else math.nan
    rows = []
    for r in f.itertuples(index=False):
        kurt = float(getattr(r, "kurtosis", math.nan))
        rows.append({"method": r.method, "type": r.type, "param": getattr(r, "param", None),
                     "n": int(getattr(r, "n", 0) or 0), "std": float(r.std),
                     "std_ratio_to_fft": float(r.std) / fft_std if fft_std > 0 else math.nan,
                     "kurtosis": kurt, "more_peaked_than_fft": bool(np.isfinite(kurt) and np.isfinite(fft_kurt)
                                                                  and kurt > fft_kurt) if r.type != "fft" else None,
                     "lr": res.lr(r.method, **where)})
    ev = pd.DataFrame(rows)
    pe = ev[[t not in NOT_PEFT_TYPES for t in ev["type"]]]
    narrower = [m for m, s in zip(pe["method"], pe["std"]) if s < fft_std]
    wider = [m for m, s in zip(pe["method"], pe["std"]) if s > fft_std]
    peaked = int(pe["more_peaked_than_fft"].fillna(False).astype(bool).sum())
    lrs = ", ".join(f"{m} {lr:.2g}" for m, lr in zip(ev["method"], ev["lr"]) if np.isfinite(lr))
    counts = (f"FFT's increments have std {fft_std:.3g}; narrower: {', '.join(narrower) or 'none'}; "
              f"wider: {', '.join(wider) or 'none'}; {peaked} of {len(pe)} PEFT methods more peaked (higher "
              f"kurtosis) than FFT. An increment's width scales with the learning rate, which differs per "
              f"method" + (f" ({lrs})" if lrs else ""))
    if len(narrower) == len(pe):
        return Verdict("holds", f"Every PEFT method's increments are narrower than FFT's: {counts}.", ev)
    if len(wider) == len(pe):
        return Verdict("does not hold", f"Every PEFT method's increments are wider than FFT's: {counts}.", ev)
    return Verdict("inconclusive", f"Mixed: {counts}.", ev)


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# Claims 6, 7: generation tasks (Table 1): FFT beats LoRA (Theorem 2); HiFT matches FFT
# --------------------------------------------------------------------------------------------


def _generation_comparisons(res: Results, method_type: str):
    """Comparisons with FFT on the original sets of generation tasks, of methods of one type."""
    c = res.fft_comparisons()
    if c is None:
        return None
    c = c[(c["kind"] == "origin") & (c["task"].map(res.task_kind) == "generation") & np.isfinite(c["diff"])]
    methods = sorted({m for m in c["method"] if res.method_type(m) == method_type})
    if method_type == "lora":
        methods = lora_methods(res, methods)
    return c[c["method"].isin(methods)]


def _tally(c: pd.DataFrame) -> tuple[float, int, int]:
    """(mean difference method minus FFT, significantly below FFT, significantly above FFT)."""
    below = int((c["significant"] & (c["diff"] < 0)).sum())
    above = int((c["significant"] & (c["diff"] > 0)).sum())
    return float(c["diff"].mean()), below, above


def check_fft_generation(res: Results) -> Verdict:
    c = _generation_comparisons(res, "lora")
    if c is None or c.empty:
        return _not_evaluated("No LoRA run was compared with FFT on a generation task in this run.")
    ev = _comparison_evidence(c)
    mean_diff, fft_better, lora_better = _tally(c)
    counts = (f"LoRA minus FFT on {len(c)} generation test sets: mean {_pts(mean_diff)}, FFT significantly better "
              f"in {fft_better}, LoRA significantly better in {lora_better}")
    if mean_diff < 0 and fft_better > lora_better:
        return Verdict("holds", f"FFT beats LoRA on the generation tasks: {counts}.", ev)
    if mean_diff > 0 and lora_better > fft_better:
        return Verdict("does not hold", f"LoRA beats FFT on the generation tasks: {counts}.", ev)
    return Verdict("inconclusive", f"No clear direction: {counts}.", ev)


def check_hift_generation(res: Results) -> Verdict:
    c = _generation_comparisons(res, "hift")
    if c is None or c.empty:
        return _not_evaluated("No HiFT run was compared with FFT on a generation task in this run.")
    ev = _comparison_evidence(c)
    mean_diff, worse, better = _tally(c)
    counts = (f"HiFT minus FFT on {len(c)} generation test sets: mean {_pts(mean_diff)}, significantly worse in "
              f"{worse}, significantly better in {better}")
    if worse == 0 and mean_diff > -MARGIN:
        return Verdict("holds", f"HiFT matches FFT: {counts}.", ev)
    if worse > len(c) / 2:
        return Verdict("does not hold", f"HiFT falls below FFT: {counts}.", ev)
    return Verdict("inconclusive", f"Mixed: {counts}.", ev)


@dataclass(frozen=True)
class Claim:
    id: str
    title: str
    statement: str   # the paper's words (quote or close paraphrase)
    source: str      # where in the paper
    check: str       # what is checked
    rule: str        # the decision rule
    evaluate: Callable[[Results], Verdict]


_SIG = (f"significant: corrected p < {ALPHA} (p_boot_holm, the paired bootstrap over examples with Holm's "
        f"correction; p_t_holm, the paired t-test over seeds, where there is no bootstrap)")

CLAIMS: list[Claim] = [
    Claim(
        "fft_adversarial", "FFT beats PEFT on adversarial sets",
        "\"FFT demonstrates an overall average performance advantage over PEFT on AdvGLUE ... On the Adversarial "
        "SQuAD dataset, we find that standard FFT consistently outperforms other PEFT methods\"; \"FFT performs "
        "more robustly on adversarial datasets than PEFT.\"",
        "Section 5.2, Tables 3-5",
        "Every comparison of a PEFT method (type not fft/topk) with FFT on an adversarial set: mean difference "
        "(PEFT minus FFT) and the number of significant differences each way.",
        f"holds: mean difference < 0 and FFT significantly better in more comparisons than significantly worse; "
        f"does not hold: the mirror (mean > 0, PEFT significantly better more often); else inconclusive. {_SIG}.",
        check_fft_adversarial),
    Claim(
        "lora_glue", "LoRA matches or beats FFT on original GLUE",
        "\"RoBERTa-base and RoBERTa-large models fine-tuned with LoRA achieve performance advantages over FFT on "
        "the original dataset\" (LoRA 1.3 and 1.1 points above FFT).",
        "Section 5.2, Table 3",
        "LoRA (the method named `lora`, r = 8 as in Table 3; every LoRA-type method if there is none) against FFT "
        "on the original sets of the classification tasks.",
        f"holds: LoRA significantly worse in no set and mean difference above -{100 * MARGIN:g} point; does not "
        f"hold: significantly worse in more than half of the sets; else inconclusive. {_SIG}.",
        check_lora_glue),
    Claim(
        "lora_rank", "A larger LoRA rank adds little",
        "\"In the case of LoRA, increasing the rank to add more trainable parameters shows minimal impact on the "
        "model's performance and robustness.\"",
        "Section 5.4, Figure 4, Table 10; Theorem 3",
        "Per model x task x eval set with LoRA at two or more ranks (option r): the gain of the largest rank over "
        "the smallest (mean over seeds) with its 95% paired t-interval over matched seeds.",
        f"a gain is little below {100 * MARGIN:g} point, large when at least {100 * MARGIN:g} point with its "
        f"interval above 0, else within noise. holds: mean gain < {100 * MARGIN:g} point and no large gain; does "
        f"not hold: mean gain >= {100 * MARGIN:g} point and more large gains than little ones; else inconclusive. "
        f"Not evaluated without a rank study.",
        check_lora_rank),
    Claim(
        "topk_layers", "Fewer trainable layers lowers scores",
        "\"Standard fine-tuning involves reducing trainable parameters by freezing some layers ..., which may "
        "potentially impact both model performance and robustness\"; \"FFT exhibits the best average "
        "performance on both the original dataset and the adversarial test set.\"",
        "Section 5.4, Figure 3, Tables 9-10",
        "Per model x task x eval set with top-k runs (option k) and FFT: trainable parameters (runs.csv; else "
        "the order of k with FFT last) against the mean score; Spearman's rho pooled over the ranks within each "
        "eval set, and FFT's mean against the smallest k's.",
        f"holds: pooled rho > 0 with p < {ALPHA} and FFT above the smallest k in more than half of the eval sets; "
        f"does not hold: pooled rho < 0 with p < {ALPHA}; else inconclusive. Not evaluated without a top-k study.",
        check_topk),
    Claim(
        "increments_narrower", "PEFT weight increments are narrower than FFT's",
        "\"The incremental parameters of PEFT (including LoRA, prefix-tuning, BitFit) exhibit a symmetric "
        "distribution around zero, with the Standard Deviation value being close to zero ... The incremental "
        "parameters of FFT display the widest distribution\"; PEFT's distribution is \"steeper and more sharply "
        "peaked\".",
        "Section 5.2, Figure 1; Section 1",
        "The increments of the module Figure 1 shows (results/increments/figure1.csv, one run per method): each "
        "PEFT method's std against FFT's; kurtosis (peakedness) and learning rate reported beside it.",
        "holds: every PEFT method's std below FFT's; does not hold: every one above; else inconclusive. Not "
        "evaluated without the weight analysis.",
        check_increments),
    Claim(
        "fft_generation", "FFT beats LoRA on complex generation tasks",
        "\"PEFT's solution space is a strict subset of FFT's\" (Theorem 2), so \"FFT outperforms PEFT on complex "
        "tasks\": on ViGGO, SQL generation and GSM8K, FFT scores above LoRA at every LLaMA2 size.",
        "Section 4, Theorem 2; Section 5.1, Table 1",
        "LoRA (the method named `lora`; every LoRA-type method if there is none) against FFT on the original test "
        "sets of the generation tasks: mean difference (LoRA minus FFT) and significant differences each way.",
        f"holds: mean difference < 0 and FFT significantly better in more sets than LoRA; does not hold: the "
        f"mirror; else inconclusive. {_SIG}.",
        check_fft_generation),
    Claim(
        "hift_generation", "HiFT matches FFT on generation tasks",
        "HiFT, full fine-tuning one group of layers per step, reaches FFT's scores (Table 1: 70.63 against 70.49 "
        "average on LLaMA2-7B, 78.00 against 77.33 on 13B).",
        "Section 5.1, Table 1",
        "HiFT-type methods against FFT on the original test sets of the generation tasks.",
        f"holds: HiFT significantly worse in no set and mean difference above -{100 * MARGIN:g} point; does not "
        f"hold: significantly worse in more than half of the sets; else inconclusive. {_SIG}.",
        check_hift_generation),
]


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


def evaluate_claims(summary=None, comparisons=None, runs=None, figure1=None, config: dict | None = None,
                    claims: list[Claim] | None = None) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Every claim's verdict: (one row per claim, CLAIM_COLUMNS; {claim id: evidence DataFrame}).
    Any input may be None (absent): the claims that need it are "not evaluated"."""
    res = Results(summary, comparisons, runs, figure1, config)
    rows, evidence = [], {}
    for claim in claims or CLAIMS:
        v = claim.evaluate(res)
        evidence[claim.id] = v.evidence.reset_index(drop=True)
        rows.append({"id": claim.id, "title": claim.title, "statement": claim.statement, "source": claim.source,
                     "check": claim.check, "rule": claim.rule, "status": v.status, "summary": v.summary,
                     "evidence_rows": len(v.evidence)})
    return pd.DataFrame(rows, columns=CLAIM_COLUMNS), evidence


def _read_csv(path) -> pd.DataFrame | None:
    if path is None or not Path(path).is_file():
        return None
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def _cell(x) -> str:
    if x is None:
        return ""
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (float, np.floating)):
        if not np.isfinite(x):
            return "n/a"
        if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e6):
            return f"{x:.3g}"
        return f"{x:.4f}".rstrip("0").rstrip(".") if not float(x).is_integer() else f"{x:.0f}"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return "" if pd.isna(x) else str(x)


def _records(df: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    return [str(c) for c in df.columns], [[_cell(v) for v in row] for row in df.itertuples(index=False)]


def render_html(table: pd.DataFrame, evidence: dict[str, pd.DataFrame], template_path, title: str | None = None) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(Path(template_path).resolve().parent)),
                             autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True)
    template = env.get_template(Path(template_path).name)
    claims = []
    for r in table.to_dict("records"):
        cols, rows = _records(evidence.get(r["id"], pd.DataFrame()))
        claims.append({**r, "css": r["status"].replace(" ", "-"), "columns": cols, "rows": rows})
    counts = {s: int((table["status"] == s).sum()) for s in STATUSES}
    return template.render(title=title or "The paper's claims, checked", claims=claims, counts=counts,
                           alpha=ALPHA, margin_points=100 * MARGIN)


def write_claims(*, summary_csv, comparisons_csv, runs_csv, figure1_csv=None, config: dict, template_path,
                 out_csv, out_html, title: str | None = None) -> pd.DataFrame:
    """File-level entry of the claims rule: reads the inputs (an absent file is "not evaluated" for
    the claims needing it), writes the claims CSV (one row per claim) and the HTML page."""
    table, evidence = evaluate_claims(_read_csv(summary_csv), _read_csv(comparisons_csv), _read_csv(runs_csv),
                                      _read_csv(figure1_csv), config)
    atomic_write_bytes(out_csv, table.to_csv(index=False, lineterminator="\n").encode())
    atomic_write_bytes(out_html, render_html(table, evidence, template_path, title).encode())
    return table


__all__ = ["ALPHA", "MARGIN", "STATUSES", "CLAIMS", "CLAIM_COLUMNS", "Claim", "Verdict", "Results",
           "evaluate_claims", "render_html", "write_claims", "lora_methods"]
