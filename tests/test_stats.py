"""lwob.analysis.stats: seed intervals, paired tests, corrections, stability (cases with known answers)."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lwob.tasks import squad
from lwob.analysis.stats import (
    COMPARISON_COLUMNS, CORRELATION_COLUMNS, STABILITY_COLUMNS, benjamini_hochberg, compare_to_reference,
    example_scores, holm, paired_bootstrap, paired_t, primary_metric, seed_ci, stability, stability_correlation,
    write_statistics,
)

# --------------------------------------------------------------------------------------------
# Over seeds
# --------------------------------------------------------------------------------------------


def test_seed_ci_matches_scipy_t_interval():
    values = [0.81, 0.84, 0.79, 0.86, 0.83]
    ci = seed_ci(values)
    mean, sem = np.mean(values), stats.sem(values)
    lo, hi = stats.t.interval(0.95, len(values) - 1, loc=mean, scale=sem)
    assert ci.n == 5 and ci.mean == pytest.approx(mean) and ci.std == pytest.approx(np.std(values, ddof=1))
    assert ci.sem == pytest.approx(sem)
    assert (ci.low, ci.high) == (pytest.approx(lo), pytest.approx(hi))
    lo90, hi90 = stats.t.interval(0.90, 4, loc=mean, scale=sem)
    assert (seed_ci(values, 0.90).low, seed_ci(values, 0.90).high) == (pytest.approx(lo90), pytest.approx(hi90))


def test_seed_ci_is_the_summary_csv_interval():
    """aggregate's summary (mean, std, sem, ci95) is the same computation, to the bit."""
    from lwob.analysis.aggregate import _summarise

    rng = np.random.default_rng(0)
    rows = [{"model": "m", "task": "t", "method": f"x{i}", "seed": s, "eval_set": "origin", "kind": "origin",
             "column": "t", "metric": "accuracy", "value": rng.random(), "n": 10}
            for i, n in enumerate([1, 2, 3, 5]) for s in range(n)]
    for r in _summarise(pd.DataFrame(rows)).itertuples(index=False):
        ci = seed_ci([float(v) for v in r.values.split(",")])
        assert ci.n == r.n
        np.testing.assert_array_equal([ci.mean, ci.std, ci.sem, ci.low, ci.high],
                                      [r.mean, r.std, r.sem, r.ci95_low, r.ci95_high])


def test_seed_ci_small_n():
    one = seed_ci([0.5])
    assert one.mean == 0.5 and one.n == 1 and all(math.isnan(x) for x in (one.std, one.sem, one.low, one.high))
    assert math.isnan(seed_ci([]).mean) and seed_ci([]).n == 0
    same = seed_ci([0.7, 0.7, 0.7])
    assert same.std == pytest.approx(0, abs=1e-12)
    assert same.low == pytest.approx(0.7) and same.high == pytest.approx(0.7)


def test_paired_t_matches_scipy_and_dz_by_hand():
    b = np.array([0.80, 0.82, 0.78, 0.85, 0.81])
    d = np.array([0.01, 0.03, -0.01, 0.02, 0.05])  # mean 0.02, sd sqrt(0.0005): d_z = 2/sqrt(5), t = 2
    a = b + d
    r = paired_t(a, b)
    ref = stats.ttest_rel(a, b)
    assert r.t == pytest.approx(ref.statistic) and r.p == pytest.approx(ref.pvalue)
    assert r.t == pytest.approx(2.0) and r.df == 4 and r.n == 5
    assert r.p == pytest.approx(2 * stats.t.sf(2.0, 4))
    assert r.mean_diff == pytest.approx(0.02) and r.sd_diff == pytest.approx(math.sqrt(0.0005))
    assert r.d_z == pytest.approx(2 / math.sqrt(5))
    lo, hi = stats.t.interval(0.95, 4, loc=0.02, scale=math.sqrt(0.0005 / 5))
    assert (r.low, r.high) == (pytest.approx(lo), pytest.approx(hi))
    assert r.note == ""
    # Opposite order: same p, opposite sign.
    r2 = paired_t(b, a)
    assert r2.t == pytest.approx(-2.0) and r2.p == pytest.approx(r.p) and r2.d_z == pytest.approx(-r.d_z)


def test_paired_t_pairs_by_seed_and_explains_nan():
    a = {0: 0.9, 1: 0.8, 2: 0.85, 7: 0.1}
    b = {2: 0.80, 1: 0.79, 0: 0.86, 5: 0.5}
    r = paired_t(a, b)
    ref = stats.ttest_rel([0.9, 0.8, 0.85], [0.86, 0.79, 0.80])
    assert r.n == 3 and r.p == pytest.approx(ref.pvalue) and r.t == pytest.approx(ref.statistic)
    one = paired_t([0.9], [0.8])
    assert one.n == 1 and one.mean_diff == pytest.approx(0.1) and math.isnan(one.p) and "fewer than 2" in one.note
    flat = paired_t([0.9, 0.8, 0.7], [0.8, 0.7, 0.6])
    assert flat.mean_diff == pytest.approx(0.1) and math.isnan(flat.t) and math.isnan(flat.d_z)
    assert "zero variance" in flat.note
    assert paired_t({0: 1.0}, {1: 1.0}).note == "no pairs"
    with pytest.raises(ValueError):
        paired_t([1, 2], [1, 2, 3])


# --------------------------------------------------------------------------------------------
# Bootstrap over examples
# --------------------------------------------------------------------------------------------


def _exact(n: int, k: int, rng) -> np.ndarray:
    """n examples, exactly k correct, in random order."""
    x = np.zeros(n)
    x[:k] = 1
    return rng.permutation(x)


def test_bootstrap_interval_covers_known_difference():
    rng = np.random.default_rng(1)
    a = _exact(2000, 1600, rng)  # method: 80%
    b = _exact(2000, 1400, rng)  # reference: 70%
    r = paired_bootstrap(a, b, n_boot=5000, seed=0)
    assert r.diff == pytest.approx(0.1)
    assert r.low < 0.1 < r.high and r.low > 0
    assert r.p == pytest.approx(1 / 5000)  # no resample reaches 0
    assert r.n_examples == 2000 and r.n_seeds == 1


def test_bootstrap_interval_coverage_on_random_data():
    """Frequentist check: over datasets drawn with a true difference of 0.1, ~95% of intervals cover it."""
    rng = np.random.default_rng(2)
    covered = 0
    trials = 100
    for i in range(trials):
        a = (rng.random(500) < 0.8).astype(float)
        b = (rng.random(500) < 0.7).astype(float)
        r = paired_bootstrap(a, b, n_boot=1000, seed=i)
        covered += r.low <= 0.1 <= r.high
    assert 0.88 <= covered / trials <= 1.0


def test_bootstrap_p_large_without_difference():
    rng = np.random.default_rng(3)
    a, b = _exact(1000, 750, rng), _exact(1000, 750, rng)
    r = paired_bootstrap(a, b, n_boot=4000, seed=0)
    assert r.diff == 0 and r.low < 0 < r.high and r.p > 0.5
    same = paired_bootstrap(a, a, n_boot=1000)
    assert same.diff == 0 and same.p == 1.0 and same.low == same.high == 0


def test_bootstrap_p_agrees_with_a_normal_approximation():
    rng = np.random.default_rng(4)
    a = (rng.random(3000) < 0.72).astype(float)
    b = (rng.random(3000) < 0.70).astype(float)
    r = paired_bootstrap(a, b, n_boot=20000, seed=1)
    d = a - b
    z = d.mean() / (d.std(ddof=1) / math.sqrt(d.size))
    assert r.p == pytest.approx(2 * stats.norm.sf(abs(z)), abs=0.03)


def test_bootstrap_pools_seeds_and_is_fast():
    rng = np.random.default_rng(5)
    a = (rng.random((5, 872)) < 0.9).astype(float)
    b = (rng.random((5, 872)) < 0.88).astype(float)
    t0 = time.perf_counter()
    r = paired_bootstrap(a, b, n_boot=10000, seed=0)
    elapsed = time.perf_counter() - t0
    assert r.diff == pytest.approx(np.mean([a[s].mean() - b[s].mean() for s in range(5)]))
    assert r.n_seeds == 5 and r.n_examples == 872
    assert elapsed < 3.0  # well under a second unloaded; generous for a busy machine
    # Same seed, same result.
    assert paired_bootstrap(a, b, n_boot=10000, seed=0) == r
    with pytest.raises(ValueError):
        paired_bootstrap(a, b[:, :10])


# --------------------------------------------------------------------------------------------
# Corrections
# --------------------------------------------------------------------------------------------


def test_holm_and_bh_by_hand():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted 0.005, 0.01, 0.03, 0.04; Holm 4p, 3p, 2p, 1p with running max
    np.testing.assert_allclose(holm(p), [0.03, 0.06, 0.06, 0.02])
    # BH m p / j with running min from the top
    np.testing.assert_allclose(benjamini_hochberg(p), [0.02, 0.04, 0.04, 0.02])
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])
    np.testing.assert_allclose(benjamini_hochberg([0.5, 0.6]), [0.6, 0.6])
    np.testing.assert_allclose(holm([0.01, np.nan, 0.04]), [0.02, np.nan, 0.04])
    np.testing.assert_allclose(benjamini_hochberg([0.01, np.nan, 0.04]), [0.02, np.nan, 0.04])
    assert holm([]).size == 0 and benjamini_hochberg([np.nan]).tolist()[0] != 0


# --------------------------------------------------------------------------------------------
# Metric choice and per-example scores
# --------------------------------------------------------------------------------------------


def test_primary_metric_mirrors_tables():
    assert primary_metric({"accuracy"}, "adv") == "accuracy"
    qa_adv = {"em", "f1", "orig_em", "orig_f1", "adv_em", "adv_f1"}
    assert primary_metric(qa_adv, "adv") == "adv_f1"
    assert primary_metric(qa_adv, "adv", adversarial_score="plain") == "f1"
    assert primary_metric({"em", "f1"}, "origin") == "f1"
    assert primary_metric({"loss"}, "origin") is None


def test_qa_example_scores_average_to_score_set():
    ids = ["a", "a-turk0", "a-turk1", "b", "b-turk0", "c-turk0"]
    golds = [["paris"], ["paris"], ["paris"], ["red fox"], ["red fox"], ["blue"]]
    preds = ["paris", "london", "paris city", "red fox", "fox", "blue"]
    metrics = squad.score_set(ids, preds, golds)
    em, f1 = squad.per_question(ids, preds, golds)
    df = pd.DataFrame({"eval_set": "addsent", "idx": range(len(ids)), "id": ids,
                       "original_id": squad.original_ids(ids), "em": em, "f1": f1, "correct": em})
    for metric in ("em", "f1", "orig_em", "orig_f1", "adv_em", "adv_f1"):
        assert example_scores(df, "addsent", metric).mean() == pytest.approx(metrics[metric]), metric
    assert len(example_scores(df, "addsent", "adv_f1")) == metrics["n_groups"]
    cls = pd.DataFrame({"eval_set": "origin", "idx": [0, 1, 2], "label": [1, 0, 1], "pred": [1, 1, 1]})
    assert example_scores(cls, "origin", "accuracy").tolist() == [1.0, 0.0, 1.0]  # no `correct`: pred == label


# --------------------------------------------------------------------------------------------
# compare_to_reference on synthetic runs
# --------------------------------------------------------------------------------------------

SEEDS = [0, 1, 2]
N_ORIGIN, N_ADV = 300, 120
P_CORRECT = {("fft", "origin"): 0.90, ("fft", "adv"): 0.50, ("lora", "origin"): 0.88, ("lora", "adv"): 0.60,
             ("bitfit", "origin"): 0.80, ("bitfit", "adv"): 0.40}
QA_IDS = ["q1", "q1-v0", "q1-v1", "q2", "q2-v0", "q3", "q3-v0", "q3-v1", "q4", "q4-v0"]


def _synthetic_runs():
    """Classification task `sst2` (origin/adv sets) and QA task `squad` (origin/addsent): predictions and metrics."""
    rng = np.random.default_rng(7)
    preds, rows = {}, []

    def add(model, task, method, seed, eval_set, kind, column, metric, value, n):
        rows.append({"model": model, "task": task, "method": method, "seed": seed, "eval_set": eval_set, "kind": kind,
                     "column": column, "metric": metric, "value": value, "n": n})

    for method in ("fft", "lora", "bitfit"):
        for seed in SEEDS:
            parts = []
            for eval_set, n in (("origin", N_ORIGIN), ("adv", N_ADV)):
                correct = (rng.random(n) < P_CORRECT[(method, eval_set)]).astype(float)
                parts.append(pd.DataFrame({"eval_set": eval_set, "idx": np.arange(n), "label": 1,
                                           "pred": correct.astype(int), "correct": correct}))
                add("m", "sst2", method, seed, eval_set, eval_set, "sst2", "accuracy", correct.mean(), n)
            preds[("m", "sst2", method, seed)] = pd.concat(parts, ignore_index=True)
            # QA: per-question F1 drawn at random; metrics as lwob.tasks.squad.score_set computes them.
            f1_o = rng.random(8) * (0.9 if method == "fft" else 0.8)
            f1_a = rng.random(len(QA_IDS)) * (0.6 if method == "fft" else 0.7)
            origin = pd.DataFrame({"eval_set": "origin", "idx": np.arange(8), "id": [f"o{i}" for i in range(8)],
                                   "original_id": [f"o{i}" for i in range(8)], "em": (f1_o > 0.5) * 1.0, "f1": f1_o})
            adv = pd.DataFrame({"eval_set": "addsent", "idx": np.arange(len(QA_IDS)), "id": QA_IDS,
                                "original_id": squad.original_ids(QA_IDS, r"^([^-]+)"), "em": (f1_a > 0.5) * 1.0,
                                "f1": f1_a})
            both = pd.concat([origin, adv], ignore_index=True)
            both["correct"] = both["em"]
            preds[("m", "squad", method, seed)] = both
            add("m", "squad", method, seed, "origin", "origin", "Origin", "f1", f1_o.mean(), 8)
            add("m", "squad", method, seed, "origin", "origin", "Origin", "em", origin["em"].mean(), 8)
            is_adv = (adv["id"] != adv["original_id"]).to_numpy()
            add("m", "squad", method, seed, "addsent", "adv", "AS", "f1", f1_a[is_adv].mean(), int(is_adv.sum()))
            add("m", "squad", method, seed, "addsent", "adv", "AS", "orig_f1", f1_a[~is_adv].mean(), 4)
            add("m", "squad", method, seed, "addsent", "adv", "AS", "adv_f1",
                adv.groupby("original_id")["f1"].min().mean(), 4)
    return pd.DataFrame(rows), preds


def _value(metrics, task, method, eval_set, metric):
    sel = metrics[(metrics.task == task) & (metrics.method == method) & (metrics.eval_set == eval_set)
                  & (metrics.metric == metric)].sort_values("seed")
    return sel["value"].to_numpy()


def test_compare_to_reference_rows_and_numbers():
    metrics, preds = _synthetic_runs()
    out = compare_to_reference(metrics, preds, n_boot=2000)
    assert list(out.columns) == COMPARISON_COLUMNS
    keys = set(zip(out.task, out.eval_set, out.method, out.metric))
    assert keys == {(t, e, m, met) for m in ("lora", "bitfit")
                    for t, e, met in (("sst2", "origin", "accuracy"), ("sst2", "adv", "accuracy"),
                                      ("squad", "origin", "f1"), ("squad", "addsent", "adv_f1"))}
    assert (out.reference == "fft").all() and (out.n_seeds == 3).all() and (out.seeds == "0,1,2").all()
    for r in out.itertuples(index=False):
        a = _value(metrics, r.task, r.method, r.eval_set, r.metric)
        b = _value(metrics, r.task, "fft", r.eval_set, r.metric)
        ref = stats.ttest_rel(a, b)
        assert r.mean_method == pytest.approx(a.mean()) and r.mean_ref == pytest.approx(b.mean())
        assert r.diff == pytest.approx((a - b).mean()) and r.p_t == pytest.approx(ref.pvalue)
        assert r.d_z == pytest.approx((a - b).mean() / (a - b).std(ddof=1))
        # Same examples in every run: the pooled bootstrap's observed difference is the mean difference.
        assert r.boot_diff == pytest.approx(r.diff) and r.boot_low <= r.boot_diff <= r.boot_high
        assert r.n_examples == {"origin": N_ORIGIN if r.task == "sst2" else 8, "adv": N_ADV, "addsent": 4}[r.eval_set]
        assert r.note == ""
    np.testing.assert_allclose(out.p_t_holm, holm(out.p_t))
    np.testing.assert_allclose(out.p_boot_bh, benjamini_hochberg(out.p_boot))
    # A real difference of 10 points over 300 x 3 examples: the bootstrap finds it.
    bitfit = out[(out.task == "sst2") & (out.eval_set == "origin") & (out.method == "bitfit")].iloc[0]
    assert bitfit.boot_high < 0 and bitfit.p_boot < 0.01

    # Robustness gap: adversarial rows only; classification pairs with the origin set of the same column.
    assert out.loc[out.kind == "origin", "gap_method"].isna().all()
    adv = out[(out.task == "sst2") & (out.eval_set == "adv")].set_index("method")
    for method in ("lora", "bitfit"):
        gm = _value(metrics, "sst2", method, "origin", "accuracy") - _value(metrics, "sst2", method, "adv", "accuracy")
        gr = _value(metrics, "sst2", "fft", "origin", "accuracy") - _value(metrics, "sst2", "fft", "adv", "accuracy")
        assert adv.loc[method, "gap_origin"] == "origin:accuracy"
        assert adv.loc[method, "gap_method"] == pytest.approx(gm.mean())
        assert adv.loc[method, "gap_ref"] == pytest.approx(gr.mean())
        assert adv.loc[method, "gap_diff"] == pytest.approx((gm - gr).mean())
        assert adv.loc[method, "p_gap_t"] == pytest.approx(stats.ttest_rel(gm, gr).pvalue)
    # QA: the worst case against the same set's original questions (as the figures).
    qa_adv = out[(out.task == "squad") & (out.eval_set == "addsent")].set_index("method")
    gm = _value(metrics, "squad", "lora", "addsent", "orig_f1") - _value(metrics, "squad", "lora", "addsent", "adv_f1")
    assert qa_adv.loc["lora", "gap_origin"] == "addsent:orig_f1"
    assert qa_adv.loc["lora", "gap_method"] == pytest.approx(gm.mean())


def test_compare_to_reference_options_and_missing_predictions():
    metrics, preds = _synthetic_runs()
    plain = compare_to_reference(metrics, preds, n_boot=500, adversarial_score="plain")
    row = plain[(plain.task == "squad") & (plain.eval_set == "addsent") & (plain.method == "lora")].iloc[0]
    assert row.metric == "f1" and row.n_examples == 6 and row.boot_diff == pytest.approx(row["diff"])

    per_family = compare_to_reference(metrics, preds, n_boot=500, family=["model", "task"])
    for _, g in per_family.groupby("task"):
        np.testing.assert_allclose(g.p_t_holm, holm(g.p_t))

    partial = {k: v for k, v in preds.items() if k[3] != 2}
    out = compare_to_reference(metrics, partial, n_boot=500)
    assert out.note.str.contains("no predictions for seed").all()
    assert np.isfinite(out.boot_diff).all()
    none = compare_to_reference(metrics, None)
    assert none.boot_diff.isna().all() and np.isfinite(none.p_t).all() and none.p_boot_holm.isna().all()
    assert compare_to_reference(metrics[metrics.method != "fft"], preds).empty


def test_write_statistics_reads_a_predictions_directory(tmp_path):
    metrics, preds = _synthetic_runs()
    metrics_csv = tmp_path / "metrics.csv"
    metrics.to_csv(metrics_csv, index=False)
    paths = []
    for (model, task, method, seed), df in preds.items():
        path = tmp_path / "eval" / model / task / method / f"seed{seed}.predictions.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        df.to_parquet(path, index=False)
        paths.append(path)
    outs = {k: tmp_path / f"{k}.csv" for k in ("comparisons", "stability", "correlation")}
    comp, stab, corr = write_statistics(metrics_csv=metrics_csv, predictions=tmp_path / "eval",
                                        out_comparisons_csv=outs["comparisons"], out_stability_csv=outs["stability"],
                                        out_correlation_csv=outs["correlation"], n_boot=500)
    assert len(comp) == 8 and np.isfinite(comp.boot_diff).all()
    back = pd.read_csv(outs["comparisons"])
    assert list(back.columns) == COMPARISON_COLUMNS and len(back) == 8
    assert list(pd.read_csv(outs["stability"]).columns) == STABILITY_COLUMNS
    assert list(pd.read_csv(outs["correlation"]).columns) == CORRELATION_COLUMNS
    from_list, _, _ = write_statistics(metrics_csv=metrics_csv, predictions=paths,
                                       out_comparisons_csv=tmp_path / "c2.csv", out_stability_csv=tmp_path / "s2.csv",
                                       n_boot=500)
    pd.testing.assert_frame_equal(from_list, comp)


# --------------------------------------------------------------------------------------------
# Stability
# --------------------------------------------------------------------------------------------


def _stability_metrics():
    """Two models x two tasks x five methods, five seeds; spread and mean chosen per method."""
    rows = []
    rng = np.random.default_rng(11)
    offsets = np.array([-2, -1, 0, 1, 2], dtype=float)
    for model in ("m1", "m2"):
        for task in ("t1", "t2"):
            for method in ("fft", "lora", "adapter", "bitfit", "ia3"):
                mean = rng.uniform(0.6, 0.9)
                spread = rng.uniform(0.001, 0.02)
                for seed, off in enumerate(offsets):
                    for eval_set, kind, shift in (("origin", "origin", 0.0), ("adv", "adv", -0.3)):
                        rows.append({"model": model, "task": task, "method": method, "seed": seed,
                                     "eval_set": eval_set, "kind": kind, "column": task, "metric": "accuracy",
                                     "value": mean + shift + spread * off, "n": 100})
    return pd.DataFrame(rows)


def test_stability_ranks_and_spearman_match_scipy():
    metrics = _stability_metrics()
    stab = stability(metrics)
    assert list(stab.columns) == STABILITY_COLUMNS
    assert set(stab.eval_set) == {"origin"} and len(stab) == 2 * 2 * 5
    one = stab[(stab.model == "m1") & (stab.task == "t1")].set_index("method")
    for method, r in one.iterrows():
        v = metrics[(metrics.model == "m1") & (metrics.task == "t1") & (metrics.method == method)
                    & (metrics.eval_set == "origin")]["value"]
        assert r["std"] == pytest.approx(v.std(ddof=1)) and r["mean"] == pytest.approx(v.mean()) and r["n"] == 5
    assert one["stability_rank"].idxmin() == one["std"].idxmin()
    assert one["performance_rank"].idxmin() == one["mean"].idxmax()

    corr = stability_correlation(stab)
    assert list(corr.columns) == CORRELATION_COLUMNS
    assert corr.scope.value_counts().to_dict() == {"experiment": 4, "model": 2, "all": 1}
    for r in corr[corr.scope == "experiment"].itertuples(index=False):
        g = stab[(stab.model == r.model) & (stab.task == r.task)]
        ref = stats.spearmanr(g["std"], -g["mean"])  # rank 1 = smallest std / highest mean
        assert r.rho == pytest.approx(ref.statistic) and r.p == pytest.approx(ref.pvalue) and r.n_points == 5
    pooled = stats.spearmanr(stab["stability_rank"], stab["performance_rank"])
    whole = corr[corr.scope == "all"].iloc[0]
    assert whole.rho == pytest.approx(pooled.statistic) and whole.n_points == 20

    both = stability(metrics, kinds=("origin", "adv"))
    assert len(both) == 40


def test_stability_perfect_relation_and_single_seed():
    rows = []
    for i, method in enumerate(["a", "b", "c", "d"]):
        for seed in range(3):
            # method a: most stable and best; d: least stable and worst
            rows.append({"model": "m", "task": "t", "method": method, "seed": seed, "eval_set": "origin",
                         "kind": "origin", "column": "t", "metric": "accuracy",
                         "value": 0.9 - 0.05 * i + (seed - 1) * 0.01 * (i + 1), "n": 10})
    rows.append({"model": "m", "task": "t", "method": "e", "seed": 0, "eval_set": "origin", "kind": "origin",
                 "column": "t", "metric": "accuracy", "value": 0.5, "n": 10})
    stab = stability(pd.DataFrame(rows))
    assert math.isnan(stab.set_index("method").loc["e", "stability_rank"])
    corr = stability_correlation(stab)
    assert corr.iloc[0].rho == pytest.approx(1.0) and corr.iloc[0].n_points == 4


def test_predictions_are_checked_against_their_evaluation_record(tmp_path):
    """A damaged predictions file is named with how to rebuild it, not read as data."""
    import hashlib
    import json

    from lwob.errors import DataError
    from lwob.analysis.stats import prediction_source

    folder = tmp_path / "m" / "t" / "x"
    folder.mkdir(parents=True)
    parquet = folder / "seed0.predictions.parquet"
    pd.DataFrame({"eval_set": ["origin"], "idx": [0], "correct": [1.0]}).to_parquet(parquet)
    digest = hashlib.sha256(parquet.read_bytes()).hexdigest()
    (folder / "seed0.json").write_text(json.dumps({"predictions_sha256": digest}))
    load = prediction_source(tmp_path)
    assert load("m", "t", "x", 0)["correct"].tolist() == [1.0]
    parquet.write_bytes(parquet.read_bytes()[:-5])
    with pytest.raises(DataError, match="seed0.predictions.parquet"):
        load("m", "t", "x", 0)
