"""Statistics over seeds and examples: intervals, paired tests against FFT, stability.

Everything here is pure (numpy, scipy, pandas); `write_statistics` is the file-level entry.

* `seed_ci`: mean, sample std, n, sem and the t-interval over seeds of one table cell
  (the same numbers as results/summary.csv).
* `paired_t`: paired t-test over seeds matched by seed (= scipy.stats.ttest_rel) with the
  effect size d_z = mean difference / sd of the differences.
* `paired_bootstrap`: paired bootstrap over test examples from the saved predictions.
  Scheme: the runs of both methods are aligned by seed and by example; the per-example
  difference is averaged over the common seeds, and the *examples* are resampled (a
  cluster bootstrap with the example as cluster, seeds kept fixed). It asks whether the
  difference between these trained runs exceeds test-set sampling noise; seed-to-seed
  noise is what `paired_t` tests. Percentile interval; two-sided p = twice the share of
  resampled differences on the other side of 0 (ties count), at least 1/n_boot, at most 1.
* `paired_bootstrap_corpus`: the same scheme for corpus metrics that are not means over
  examples (Matthews correlation, F1 of a class, Pearson, Spearman): each resample of the
  examples recomputes the metric of every run (with the task kind's own metric function,
  `corpus_metric`), and the difference of the seed-averaged metrics is what is resampled.
* `holm`, `benjamini_hochberg`: adjusted p-values (NaNs are left out of the family and stay NaN).
* `compare_to_reference`: one row per model x task x eval set x method against the
  reference method (FFT), with both tests, the corrections, d_z and the robustness gap.
* `stability`, `stability_correlation`: std over seeds per method and Fu et al.'s (2023,
  "On the Effectiveness of Parameter-Efficient Fine-Tuning", Fig. 4) Spearman correlation
  between the stability rank and the performance rank.

Differences are always ``a - b`` = method minus reference (positive: the method scores higher).
Scores are fractions as in results/metrics.csv. Which metric an eval set is judged on comes
from its task (``task_metrics``: task -> its first configured metric, e.g. MRPC's f1, CoLA's
matthews, STS-B's pearson), else from the metric names present (`primary_metric`).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats as _st

from ..io import atomic_write_bytes

# --------------------------------------------------------------------------------------------
# Over seeds
# --------------------------------------------------------------------------------------------


class SeedCI(NamedTuple):
    mean: float
    std: float
    n: int
    sem: float
    low: float
    high: float


def seed_ci(values: Sequence[float], level: float = 0.95) -> SeedCI:
    """Mean, sample std (ddof=1), n, sem and the two-sided t-interval over seeds.

    The interval is mean -/+ t_{(1+level)/2, n-1} * std/sqrt(n) (= scipy.stats.t.interval);
    std, sem and the interval are NaN for n < 2 (mean NaN for n = 0). NaN values are kept
    (they propagate), as results/summary.csv does.
    """
    x = np.asarray(values, dtype=float).ravel()
    n = int(x.size)
    if n == 0:
        return SeedCI(math.nan, math.nan, 0, math.nan, math.nan, math.nan)
    mean = float(np.mean(x))
    if n < 2:
        return SeedCI(mean, math.nan, n, math.nan, math.nan, math.nan)
    std = float(np.std(x, ddof=1))
    sem = std / math.sqrt(n)
    half = float(_st.t.ppf(0.5 + level / 2, n - 1)) * sem
    return SeedCI(mean, std, n, sem, mean - half, mean + half)


class PairedT(NamedTuple):
    n: int            # pairs (seeds present in both)
    mean_diff: float  # mean of a - b
    sd_diff: float    # sample std of a - b
    t: float
    df: int
    p: float          # two-sided, = scipy.stats.ttest_rel(a, b).pvalue
    d_z: float        # Cohen's d_z = mean_diff / sd_diff
    low: float        # t-interval of mean_diff (level)
    high: float
    note: str         # "" or why t/p/d_z are NaN


def paired_t(a: Sequence[float] | Mapping, b: Sequence[float] | Mapping, level: float = 0.95) -> PairedT:
    """Paired t-test of a - b over seeds.

    a, b: equal-length sequences (paired by position) or mappings seed -> value (paired by
    seed; seeds in only one are dropped). Pairs with a NaN are dropped. t, p and d_z are NaN
    with a note for fewer than 2 pairs or zero variance of the differences.
    """
    if isinstance(a, Mapping) or isinstance(b, Mapping):
        if not (isinstance(a, Mapping) and isinstance(b, Mapping)):
            raise TypeError("paired_t: pass two sequences or two seed -> value mappings")
        common = sorted(set(a) & set(b))
        a, b = [a[s] for s in common], [b[s] for s in common]
    x, y = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"paired_t: {x.size} and {y.size} values cannot be paired")
    d = x - y
    d = d[np.isfinite(d)]
    n = int(d.size)
    nan = math.nan
    if n == 0:
        return PairedT(0, nan, nan, nan, 0, nan, nan, nan, nan, "no pairs")
    mean = float(d.mean())
    if n < 2:
        return PairedT(n, mean, nan, nan, 0, nan, nan, nan, nan, "fewer than 2 pairs")
    sd = float(d.std(ddof=1))
    ci = seed_ci(d, level)
    if not sd > 1e-12 * max(1.0, float(np.abs(d).max())):  # equal differences, up to rounding
        return PairedT(n, mean, sd, nan, n - 1, nan, nan, ci.low, ci.high, "zero variance of the differences")
    t = mean / (sd / math.sqrt(n))
    p = float(2 * _st.t.sf(abs(t), n - 1))
    return PairedT(n, mean, sd, float(t), n - 1, p, mean / sd, ci.low, ci.high, "")


# --------------------------------------------------------------------------------------------
# Over examples
# --------------------------------------------------------------------------------------------


class Bootstrap(NamedTuple):
    diff: float      # observed mean difference a - b
    low: float       # percentile interval
    high: float
    p: float         # two-sided bootstrap p
    n_examples: int
    n_seeds: int
    n_boot: int


def paired_bootstrap(a, b, n_boot: int = 10000, seed: int = 0, level: float = 0.95,
                     chunk: int = 1000) -> Bootstrap:
    """Paired bootstrap over examples of the mean per-example difference a - b.

    a, b: per-example scores (e.g. `correct`, or QA F1), aligned: shape (n_examples,) for one
    run each, or (n_seeds, n_examples) with row s of both from seed s. The per-example
    difference is averaged over the seeds, then examples are resampled with replacement
    n_boot times (numpy Generator(seed); vectorised in chunks of `chunk` resamples). Returns
    the observed difference, the `level` percentile interval and the two-sided p-value
    2 * min(P*(diff <= 0), P*(diff >= 0)), clipped to [1/n_boot, 1].
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim not in (1, 2):
        raise ValueError(f"paired_bootstrap: shapes {x.shape} and {y.shape} must match (examples or seeds x examples)")
    if x.ndim == 1:
        x, y = x[None, :], y[None, :]
    n_seeds, n = x.shape
    if n == 0 or n_seeds == 0:
        return Bootstrap(math.nan, math.nan, math.nan, math.nan, n, n_seeds, n_boot)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("paired_bootstrap: scores must be finite (align the runs first)")
    d = (x - y).mean(axis=0)
    observed = float(d.mean())
    rng = np.random.default_rng(seed)
    boot = np.empty(n_boot, dtype=float)
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n), dtype=np.int64)
        boot[start:stop] = d[idx].mean(axis=1)
    alpha = (1 - level) / 2
    low, high = np.quantile(boot, [alpha, 1 - alpha])
    # Resampled means are sums of the same numbers: compare with a tolerance against rounding.
    tol = 1e-12 * max(1.0, float(np.abs(d).max()))
    below, above = float(np.mean(boot <= tol)), float(np.mean(boot >= -tol))
    p = min(1.0, max(1.0 / n_boot, 2 * min(below, above)))
    return Bootstrap(observed, float(low), float(high), p, n, n_seeds, n_boot)


def paired_bootstrap_corpus(labels, preds_a, preds_b, statistic: Callable, n_boot: int = 10000, seed: int = 0,
                            level: float = 0.95, chunk: int = 1000) -> Bootstrap:
    """Paired bootstrap over examples of a corpus metric's difference a - b.

    labels: (n_examples,) gold labels; preds_a, preds_b: (n_examples,) or (n_seeds,
    n_examples) predictions, row s of both from seed s, aligned with ``labels``. statistic:
    f(labels, predictions) -> metric over the last axis (a task kind's ``METRICS`` entry,
    vectorised over resamples). The observed difference is the mean over seeds of
    statistic(a_s) - statistic(b_s), i.e. the difference of the seed-averaged metrics that
    the tables show. Each resample draws the examples with replacement (numpy
    Generator(seed), the same draw for every seed and both methods) and recomputes the metric
    of every run; interval and p as `paired_bootstrap` (resamples where the metric is
    undefined, e.g. a constant prediction for a correlation, are left out).
    """
    y = np.asarray(labels)
    x, z = np.asarray(preds_a), np.asarray(preds_b)
    if x.ndim == 1:
        x, z = x[None, :], z[None, :]
    if x.shape != z.shape or x.ndim != 2 or x.shape[1] != y.shape[0]:
        raise ValueError(f"paired_bootstrap_corpus: shapes {y.shape}, {x.shape} and {z.shape} do not align")
    n_seeds, n = x.shape
    if n == 0 or n_seeds == 0:
        return Bootstrap(math.nan, math.nan, math.nan, math.nan, n, n_seeds, n_boot)
    observed = float(np.mean(statistic(np.broadcast_to(y, x.shape), x) - statistic(np.broadcast_to(y, z.shape), z)))
    rng = np.random.default_rng(seed)
    boot = np.empty(n_boot, dtype=float)
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n), dtype=np.int64)
        yy = y[idx]
        boot[start:stop] = np.mean([statistic(yy, x[s][idx]) - statistic(yy, z[s][idx]) for s in range(n_seeds)],
                                   axis=0)
    boot = boot[np.isfinite(boot)]
    if not math.isfinite(observed) or boot.size == 0:
        return Bootstrap(observed, math.nan, math.nan, math.nan, n, n_seeds, n_boot)
    alpha = (1 - level) / 2
    low, high = np.quantile(boot, [alpha, 1 - alpha])
    tol = 1e-12 * max(1.0, abs(observed))
    below, above = float(np.mean(boot <= tol)), float(np.mean(boot >= -tol))
    p = min(1.0, max(1.0 / n_boot, 2 * min(below, above)))
    return Bootstrap(observed, float(low), float(high), p, n, n_seeds, n_boot)


def corpus_metric(metric: str) -> Callable | None:
    """The task kinds' function computing `metric` over a whole set (``METRICS`` of
    lwob.tasks.classification / regression), or None. Accuracy is a mean over examples and
    keeps the per-example path."""
    if metric == "accuracy":
        return None
    from .. import tasks

    for name in tasks.known():
        fn = (getattr(tasks.get(name), "METRICS", None) or {}).get(metric)
        if fn is not None:
            return fn
    return None


# --------------------------------------------------------------------------------------------
# Multiple comparisons
# --------------------------------------------------------------------------------------------


def _prepare(pvalues) -> tuple[np.ndarray, np.ndarray]:
    """(p as a flat float array, indices of its finite entries in ascending order of p)."""
    p = np.asarray(pvalues, dtype=float).ravel()
    ok = np.flatnonzero(np.isfinite(p))
    return p, ok[np.argsort(p[ok], kind="stable")]


def holm(pvalues) -> np.ndarray:
    """Holm step-down adjusted p-values (= statsmodels multipletests(method='holm')).

    Sorted ascending p_(1..m): adj_(i) = max_{j<=i} min(1, (m - j + 1) p_(j)). NaNs are not
    counted in m and stay NaN.
    """
    p, order = _prepare(pvalues)
    out = np.full(p.shape, np.nan)
    m = order.size
    if m:
        adj = np.minimum(1.0, (m - np.arange(m)) * p[order])
        out[order] = np.maximum.accumulate(adj)
    return out


def benjamini_hochberg(pvalues) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (= statsmodels multipletests(method='fdr_bh')).

    Sorted ascending p_(1..m): adj_(i) = min_{j>=i} min(1, m p_(j) / j). NaNs are not
    counted in m and stay NaN.
    """
    p, order = _prepare(pvalues)
    out = np.full(p.shape, np.nan)
    m = order.size
    if m:
        adj = p[order] * m / np.arange(1, m + 1)
        out[order] = np.minimum(1.0, np.minimum.accumulate(adj[::-1])[::-1])
    return out


def _adjust(df: pd.DataFrame, column: str, family: Sequence[str] | None, method) -> pd.Series:
    if df.empty:
        return pd.Series(dtype=float, index=df.index)
    if not family:
        return pd.Series(method(df[column].to_numpy(dtype=float)), index=df.index)
    out = pd.Series(np.nan, index=df.index, dtype=float)
    for _, g in df.groupby(list(family), sort=False, dropna=False):
        out.loc[g.index] = method(g[column].to_numpy(dtype=float))
    return out


# --------------------------------------------------------------------------------------------
# Which metric, which per-example scores
# --------------------------------------------------------------------------------------------


def primary_metric(names: Iterable[str], kind: str | None, adversarial_score: str = "worst_case",
                   qa_metric: str = "f1", task_metric: str | None = None) -> str | None:
    """The metric a table shows for an eval set, given the metric names it has.

    ``task_metric`` (the task's first configured metric, e.g. ``matthews``, ``f1``,
    ``pearson``) wins when the set has it (on adversarial sets its worst case ``adv_*`` when
    present, as below). Otherwise: classification ``accuracy``; extractive QA ``f1``
    (``qa_metric``) on original sets, on adversarial sets the Jia-Liang worst case
    ``adv_f1`` unless ``adversarial_score == "plain"`` (as tables.qa_layout /
    figures.figure_groups); then ``matthews``, ``pearson``.
    """
    names = set(names)
    if task_metric is not None:
        if kind == "adv" and adversarial_score != "plain" and f"adv_{task_metric}" in names:
            return f"adv_{task_metric}"
        if task_metric in names:
            return task_metric
    if "accuracy" in names:
        return "accuracy"
    if qa_metric in names:
        if kind == "adv" and adversarial_score != "plain" and f"adv_{qa_metric}" in names:
            return f"adv_{qa_metric}"
        return qa_metric
    for name in ("matthews", "pearson"):
        if name in names:
            return name
    return None


def example_pairs(predictions: pd.DataFrame, eval_set: str) -> pd.DataFrame | None:
    """(label, pred) per labelled example of one run on one eval set, indexed by ``idx``:
    what a corpus metric is recomputed from (None without those columns)."""
    df = predictions[predictions["eval_set"].astype(str) == str(eval_set)]
    if not {"label", "pred", "idx"} <= set(df.columns):
        return None
    if pd.api.types.is_integer_dtype(df["label"]):
        df = df[df["label"] >= 0]
    return pd.DataFrame({"label": df["label"].to_numpy(), "pred": df["pred"].to_numpy()},
                        index=df["idx"].to_numpy())


def example_scores(predictions: pd.DataFrame, eval_set: str, metric: str) -> pd.Series | None:
    """Per-example scores of one run on one eval set whose mean is `metric`, or None.

    Index: the resampling unit (``idx``; for the QA worst case ``adv_*`` the original question
    id, since the score is a minimum per group). accuracy: ``correct`` (or pred == label)
    over labelled rows. QA em/f1: the per-question column, over the adversarial questions
    when the set has any (as lwob.tasks.squad.score_set); orig_*: over the original questions;
    adv_*: minimum per original id.
    """
    df = predictions[predictions["eval_set"].astype(str) == str(eval_set)]
    if metric == "accuracy" or (metric not in df.columns and "label" not in df.columns and "id" not in df.columns
                                and "correct" in df.columns):
        # accuracy; or a generation task's metric, whose per-example score is `correct`
        # (lwob.tasks.generation: the scorer's headline, which is the task's metric)
        if "label" in df.columns:
            df = df[df["label"] >= 0]
        if "correct" in df.columns:
            values = df["correct"]
        elif {"pred", "label"} <= set(df.columns):
            values = (df["pred"] == df["label"]).astype(float)
        else:
            return None
        return pd.Series(values.to_numpy(dtype=float), index=df["idx"].to_numpy())
    base = metric.split("_", 1)[1] if metric.startswith(("adv_", "orig_")) else metric
    if base not in df.columns:
        return None
    grouped = {"id", "original_id"} <= set(df.columns)
    is_adv = (df["id"].astype(str) != df["original_id"].astype(str)).to_numpy() if grouped else None
    if metric.startswith("adv_"):
        if not grouped:
            return None
        return df.groupby(df["original_id"].astype(str), sort=True)[base].min().astype(float)
    if metric.startswith("orig_"):
        if not grouped:
            return None
        df = df[~is_adv]
    elif grouped and is_adv.any():
        df = df[is_adv]
    return pd.Series(df[base].to_numpy(dtype=float), index=df["idx"].to_numpy())


_PRED_RE = re.compile(r"(?P<model>[^/\\]+)[/\\](?P<task>[^/\\]+)[/\\](?P<method>[^/\\]+)[/\\]"
                      r"seed(?P<seed>\d+)\.predictions\.parquet$")
_PRED_COLUMNS = ["eval_set", "idx", "correct", "label", "pred", "id", "original_id", "em", "f1"]


def _read_predictions(path) -> pd.DataFrame:
    """A run's per-example predictions, checked against the hash its evaluation record
    (`seed<N>.json` beside them) holds, when there is one."""
    import pyarrow.parquet as pq

    from ..io import read_json, verify_sha256

    record = Path(str(path).removesuffix(".predictions.parquet") + ".json")
    if record.is_file():
        verify_sha256(path, read_json(record).get("predictions_sha256"), output=record)
    names = pq.read_schema(path).names
    return pq.read_table(path, columns=[c for c in _PRED_COLUMNS if c in names]).to_pandas()


def prediction_source(predictions) -> Callable[[str, str, str, int], pd.DataFrame | None]:
    """A loader (model, task, method, seed) -> predictions DataFrame or None, from:

    a callable of that signature; a mapping (model, task, method, seed) -> DataFrame or path;
    a directory laid out as results/eval (``{model}/{task}/{method}/seed{seed}.predictions.parquet``);
    or an iterable of such paths (the run is read from the last four path parts).
    """
    if predictions is None:
        return lambda *key: None
    if callable(predictions):
        return predictions
    if isinstance(predictions, (str, os.PathLike)):
        root = Path(predictions)

        def from_dir(model, task, method, seed):
            path = root / model / task / method / f"seed{int(seed)}.predictions.parquet"
            return _read_predictions(path) if path.is_file() else None
        return from_dir
    if isinstance(predictions, Mapping):
        table = {(str(k[0]), str(k[1]), str(k[2]), int(k[3])): v for k, v in predictions.items()}
    else:
        table = {}
        for path in predictions:
            m = _PRED_RE.search(str(path))
            if not m:
                raise ValueError(f"{path}: not a .../{{model}}/{{task}}/{{method}}/seed{{seed}}"
                                 f".predictions.parquet path")
            table[(m["model"], m["task"], m["method"], int(m["seed"]))] = path

    def from_table(model, task, method, seed):
        v = table.get((str(model), str(task), str(method), int(seed)))
        if v is None or isinstance(v, pd.DataFrame):
            return v
        return _read_predictions(v)
    return from_table


# --------------------------------------------------------------------------------------------
# FFT versus each method
# --------------------------------------------------------------------------------------------

COMPARISON_COLUMNS = [
    "model", "task", "eval_set", "kind", "column", "metric", "method", "reference", "n_seeds", "seeds",
    "mean_ref", "mean_method", "diff", "diff_low", "diff_high", "t", "df", "p_t", "d_z",
    "boot_diff", "boot_low", "boot_high", "p_boot", "n_examples",
    "p_t_holm", "p_t_bh", "p_boot_holm", "p_boot_bh",
    "gap_origin", "gap_ref", "gap_method", "gap_diff", "p_gap_t", "p_gap_holm", "note",
]


def _seed_values(metrics: pd.DataFrame) -> dict[tuple, dict[int, float]]:
    out: dict[tuple, dict[int, float]] = {}
    for r in metrics.itertuples(index=False):
        out.setdefault((str(r.model), str(r.task), str(r.method), str(r.eval_set), str(r.metric)), {})[
            int(r.seed)] = float(r.value)
    return out


def _eval_sets(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per model x task x eval set: kind, column and the metric names present."""
    keys = ["model", "task", "eval_set"]
    rows = []
    for key, g in metrics.groupby(keys, sort=True, dropna=False):
        rows.append({**dict(zip(keys, map(str, key))), "kind": g["kind"].iloc[0],
                     "column": str(g["column"].iloc[0]), "names": set(g["metric"].astype(str))})
    return pd.DataFrame(rows, columns=[*keys, "kind", "column", "names"])


def _gap_source(sets: pd.DataFrame, row, metric: str) -> tuple[str, str] | None:
    """(eval set, metric) of the original-set score that `row`'s adversarial score is paired with.

    QA: the same set's original questions (``orig_f1`` for ``adv_f1`` or ``f1``, as the
    figures); otherwise the origin-kind set of the same model, task and column.
    """
    if row.kind != "adv":
        return None
    base = metric.split("_", 1)[1] if metric.startswith("adv_") else metric
    if f"orig_{base}" in row.names:
        return row.eval_set, f"orig_{base}"
    same = sets[(sets["model"] == row.model) & (sets["task"] == row.task) & (sets["kind"] == "origin")
                & (sets["column"] == row.column)]
    for o in same.itertuples(index=False):
        if metric in o.names:
            return o.eval_set, metric
    return None


def compare_to_reference(metrics: pd.DataFrame, predictions=None, reference_method: str = "fft", *,
                         adversarial_score: str = "worst_case", qa_metric: str = "f1",
                         n_boot: int = 10000, seed: int = 0, level: float = 0.95,
                         family: Sequence[str] | None = None,
                         task_metrics: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Every method against the reference on the same model and eval set (COMPARISON_COLUMNS).

    metrics: results/metrics.csv. predictions: see `prediction_source` (None: no bootstrap).
    Metric per eval set: `primary_metric`, given the task's metric from ``task_metrics``
    (task -> metric name; tasks not in it are judged by the names present). Seeds are matched: n_seeds, seeds and every
    number of a row are over the seeds both methods have (mean_ref / mean_method may then
    differ from the table cell, which uses all seeds of each method).

    * diff, diff_low/high, t, df, p_t, d_z: `paired_t`(method, reference) over seeds.
    * boot_*, p_boot, n_examples: `paired_bootstrap` over the examples all of these runs
      scored, pooled over the matched seeds (`paired_bootstrap_corpus` for a corpus metric:
      Matthews, F1 of a class, Pearson, Spearman); NaN (with a note) without predictions.
    * p_*_holm, p_*_bh: Holm and Benjamini-Hochberg over a family of rows: all rows of the
      frame (family=None, the default: every comparison reported), or per group of the
      given columns (e.g. ["model", "task"]).
    * gap_*: on adversarial sets, the robustness gap original minus adversarial (mean over
      the matched seeds) of reference and method, gap_diff = gap_method - gap_ref with its
      paired t p-value (p_gap_t, Holm: p_gap_holm); gap_origin names the original score
      ("eval_set:metric"; `_gap_source`). NaN on original sets.
    """
    if metrics.empty:
        return pd.DataFrame(columns=COMPARISON_COLUMNS)
    load = prediction_source(predictions)
    values = _seed_values(metrics)
    sets = _eval_sets(metrics)
    rows = []
    for (model, task), task_sets in sets.groupby(["model", "task"], sort=True):
        cache: dict[tuple, pd.DataFrame | None] = {}

        def run(method, s, model=model, task=task):
            if (method, s) not in cache:
                cache[(method, s)] = load(model, task, method, s)
            return cache[(method, s)]

        methods = sorted(set(metrics.loc[(metrics["model"].astype(str) == model)
                                         & (metrics["task"].astype(str) == task), "method"].astype(str)))
        if reference_method not in methods:
            continue
        for es in task_sets.itertuples(index=False):
            metric = primary_metric(es.names, es.kind, adversarial_score, qa_metric,
                                    (task_metrics or {}).get(task))
            if metric is None:
                continue
            ref = values.get((model, task, reference_method, es.eval_set, metric), {})
            gap_src = _gap_source(sets, es, metric)
            for method in methods:
                if method == reference_method:
                    continue
                mine = values.get((model, task, method, es.eval_set, metric), {})
                common = sorted(set(ref) & set(mine))
                notes = []
                pt = paired_t({s: mine[s] for s in common}, {s: ref[s] for s in common}, level)
                if pt.note:
                    notes.append(pt.note)
                row = {
                    "model": model, "task": task, "eval_set": es.eval_set, "kind": es.kind, "column": es.column,
                    "metric": metric, "method": method, "reference": reference_method, "n_seeds": len(common),
                    "seeds": ",".join(map(str, common)),
                    "mean_ref": float(np.mean([ref[s] for s in common])) if common else math.nan,
                    "mean_method": float(np.mean([mine[s] for s in common])) if common else math.nan,
                    "diff": pt.mean_diff, "diff_low": pt.low, "diff_high": pt.high, "t": pt.t,
                    "df": pt.df if pt.n >= 2 else math.nan, "p_t": pt.p, "d_z": pt.d_z,
                }
                row.update(_bootstrap_row(run, method, reference_method, common, es.eval_set, metric,
                                          n_boot, seed, level, notes))
                row.update(_gap_row(values, model, task, method, reference_method, es.eval_set, metric,
                                    gap_src, common))
                row["note"] = "; ".join(notes)
                rows.append(row)
    out = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    out["p_t_holm"] = _adjust(out, "p_t", family, holm)
    out["p_t_bh"] = _adjust(out, "p_t", family, benjamini_hochberg)
    out["p_boot_holm"] = _adjust(out, "p_boot", family, holm)
    out["p_boot_bh"] = _adjust(out, "p_boot", family, benjamini_hochberg)
    out["p_gap_holm"] = _adjust(out, "p_gap_t", family, holm)
    return out


def _bootstrap_row(run, method, reference, seeds, eval_set, metric, n_boot, seed, level, notes) -> dict:
    empty = {"boot_diff": math.nan, "boot_low": math.nan, "boot_high": math.nan, "p_boot": math.nan,
             "n_examples": 0}
    if not seeds:
        return empty
    scores_a, scores_b, missing = [], [], []
    statistic = corpus_metric(metric)
    for s in seeds:
        pa, pb = run(method, s), run(reference, s)
        if pa is None or pb is None:
            missing.append(s)
            continue
        if statistic is not None and metric not in pa.columns:  # a corpus metric, not a per-example mean
            sa, sb = example_pairs(pa, eval_set), example_pairs(pb, eval_set)
        else:
            sa, sb = example_scores(pa, eval_set, metric), example_scores(pb, eval_set, metric)
        if sa is None or sb is None:
            notes.append(f"predictions lack per-example {metric}")
            return empty
        scores_a.append(sa)
        scores_b.append(sb)
    if missing:
        notes.append(f"no predictions for seed(s) {','.join(map(str, missing))}")
        if not scores_a:
            return empty
    runs = scores_a + scores_b
    for sr in runs:
        if sr.index.has_duplicates:
            notes.append(f"duplicate examples in the predictions of {eval_set}")
            return empty
    common = runs[0].index
    for sr in runs[1:]:
        common = common.intersection(sr.index)
    if not all(len(sr) == len(common) for sr in runs):
        notes.append(f"bootstrap over the {len(common)} examples all runs scored")
    common = common.sort_values()
    if isinstance(runs[0], pd.DataFrame):  # corpus metric: recompute it on every resample
        labels = runs[0]["label"].reindex(common).to_numpy()
        if any(not np.array_equal(sr["label"].reindex(common).to_numpy(), labels) for sr in runs[1:]):
            notes.append(f"the runs disagree on the labels of {eval_set}")
            return empty
        a = np.vstack([sr["pred"].reindex(common).to_numpy() for sr in scores_a])
        b = np.vstack([sr["pred"].reindex(common).to_numpy() for sr in scores_b])
        bs = paired_bootstrap_corpus(labels, a, b, statistic, n_boot=n_boot, seed=seed, level=level)
        return {"boot_diff": bs.diff, "boot_low": bs.low, "boot_high": bs.high, "p_boot": bs.p,
                "n_examples": bs.n_examples}
    a = np.vstack([sr.reindex(common).to_numpy(dtype=float) for sr in scores_a])
    b = np.vstack([sr.reindex(common).to_numpy(dtype=float) for sr in scores_b])
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        notes.append("non-finite per-example scores")
        return empty
    bs = paired_bootstrap(a, b, n_boot=n_boot, seed=seed, level=level)
    return {"boot_diff": bs.diff, "boot_low": bs.low, "boot_high": bs.high, "p_boot": bs.p,
            "n_examples": bs.n_examples}


def _gap_row(values, model, task, method, reference, eval_set, metric, gap_src, seeds) -> dict:
    out = {"gap_origin": None, "gap_ref": math.nan, "gap_method": math.nan, "gap_diff": math.nan,
           "p_gap_t": math.nan}
    if gap_src is None:
        return out
    o_set, o_metric = gap_src
    out["gap_origin"] = f"{o_set}:{o_metric}"
    gaps = {}
    for name in (reference, method):
        adv = values.get((model, task, name, eval_set, metric), {})
        org = values.get((model, task, name, o_set, o_metric), {})
        gaps[name] = {s: org[s] - adv[s] for s in seeds if s in org and s in adv}
    common = sorted(set(gaps[reference]) & set(gaps[method]))
    if common:
        out["gap_ref"] = float(np.mean([gaps[reference][s] for s in common]))
        out["gap_method"] = float(np.mean([gaps[method][s] for s in common]))
        pt = paired_t({s: gaps[method][s] for s in common}, {s: gaps[reference][s] for s in common})
        out["gap_diff"], out["p_gap_t"] = pt.mean_diff, pt.p
    return out


# --------------------------------------------------------------------------------------------
# Stability (Fu et al.)
# --------------------------------------------------------------------------------------------

STABILITY_COLUMNS = ["model", "task", "eval_set", "column", "metric", "method", "n", "mean", "std",
                     "stability_rank", "performance_rank"]
CORRELATION_COLUMNS = ["scope", "model", "task", "eval_set", "n_points", "rho", "p"]


def stability(metrics: pd.DataFrame, *, kinds: Sequence[str] = ("origin",), adversarial_score: str = "worst_case",
              qa_metric: str = "f1", task_metrics: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Per experiment (model x task x eval set of the given kinds) x method: mean and std over seeds.

    Metric: `primary_metric` of the set (the task's metric from ``task_metrics``; else
    accuracy, QA F1). Within each experiment, as Fu et
    al. (Fig. 4): stability_rank 1 = smallest std, performance_rank 1 = highest mean
    (average ranks for ties; methods with fewer than 2 seeds are not ranked).
    """
    if metrics.empty:
        return pd.DataFrame(columns=STABILITY_COLUMNS)
    sets = _eval_sets(metrics)
    values = _seed_values(metrics)
    methods = sorted(set(metrics["method"].astype(str)))
    rows = []
    for es in sets.itertuples(index=False):
        if es.kind not in kinds:
            continue
        metric = primary_metric(es.names, es.kind, adversarial_score, qa_metric, (task_metrics or {}).get(es.task))
        if metric is None:
            continue
        block = []
        for method in methods:
            v = values.get((es.model, es.task, method, es.eval_set, metric))
            if not v:
                continue
            ci = seed_ci([v[s] for s in sorted(v)])
            block.append({"model": es.model, "task": es.task, "eval_set": es.eval_set, "column": es.column,
                          "metric": metric, "method": method, "n": ci.n, "mean": ci.mean, "std": ci.std,
                          "stability_rank": math.nan, "performance_rank": math.nan})
        ranked = [r for r in block if np.isfinite(r["std"]) and np.isfinite(r["mean"])]
        if ranked:
            s_rank = _st.rankdata([r["std"] for r in ranked])
            p_rank = _st.rankdata([-r["mean"] for r in ranked])
            for r, sr, pr in zip(ranked, s_rank, p_rank):
                r["stability_rank"], r["performance_rank"] = float(sr), float(pr)
        rows.extend(block)
    return pd.DataFrame(rows, columns=STABILITY_COLUMNS)


def _spearman(x, y) -> tuple[float, float]:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan, math.nan
    res = _st.spearmanr(x, y)
    return float(res.statistic), float(res.pvalue)


def stability_correlation(stab: pd.DataFrame) -> pd.DataFrame:
    """Spearman's rho between stability rank and performance rank (Fu et al., Fig. 4).

    Positive rho: the more stable methods (smaller std over seeds) perform better. Rows:
    scope "experiment" (across the methods of one model x task x eval set), "model" (the
    within-experiment ranks pooled over a model's experiments) and "all" (pooled over every
    experiment, Fu et al.'s single rho). NaN for fewer than 3 points or constant ranks.
    """
    ranked = stab[np.isfinite(stab["stability_rank"].astype(float))
                  & np.isfinite(stab["performance_rank"].astype(float))] if not stab.empty else stab
    rows = []

    def add(scope, g, model=None, task=None, eval_set=None):
        rho, p = _spearman(g["stability_rank"], g["performance_rank"])
        rows.append({"scope": scope, "model": model, "task": task, "eval_set": eval_set, "n_points": len(g),
                     "rho": rho, "p": p})

    if not ranked.empty:
        for (model, task, eval_set), g in ranked.groupby(["model", "task", "eval_set"], sort=True):
            add("experiment", g, model, task, eval_set)
        for model, g in ranked.groupby("model", sort=True):
            add("model", g, model)
        add("all", ranked)
    return pd.DataFrame(rows, columns=CORRELATION_COLUMNS)


# --------------------------------------------------------------------------------------------
# File-level entry
# --------------------------------------------------------------------------------------------


def _write_csv(df: pd.DataFrame, path) -> None:
    atomic_write_bytes(path, df.to_csv(index=False, lineterminator="\n").encode())


def write_statistics(*, metrics_csv, predictions, out_comparisons_csv, out_stability_csv,
                     out_correlation_csv=None, reference_method: str = "fft",
                     adversarial_score: str = "worst_case", n_boot: int = 10000, seed: int = 0,
                     family: Sequence[str] | None = None,
                     task_metrics: Mapping[str, str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Read results/metrics.csv and the predictions, write the comparison and stability CSVs.

    predictions: a directory laid out as results/eval, a list of predictions parquet paths,
    or a mapping / callable (`prediction_source`). task_metrics: task -> the metric it is
    judged on (lwob.plan.config.task_metrics). Returns (comparisons, stability, correlation).
    """
    metrics = pd.read_csv(metrics_csv)
    comparisons = compare_to_reference(metrics, predictions, reference_method, adversarial_score=adversarial_score,
                                       n_boot=n_boot, seed=seed, family=family, task_metrics=task_metrics)
    stab = stability(metrics, adversarial_score=adversarial_score, task_metrics=task_metrics)
    corr = stability_correlation(stab)
    _write_csv(comparisons, out_comparisons_csv)
    _write_csv(stab, out_stability_csv)
    if out_correlation_csv is not None:
        _write_csv(corr, out_correlation_csv)
    return comparisons, stab, corr
