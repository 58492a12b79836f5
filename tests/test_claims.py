"""lwob.analysis.claims: each claim's verdict on synthetic results with known answers; the CSV and HTML page."""

from __future__ import annotations

import html
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lwob.analysis.claims import CLAIM_COLUMNS, CLAIMS, STATUSES, evaluate_claims, write_claims

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "reports" / "templates" / "claims.html.j2"
SEEDS = [0, 42, 421]

CONFIG = {
    "methods": {
        "fft": {"type": "fft"},
        "lora": {"type": "lora", "options": {"r": 8}},
        "lora-r32": {"type": "lora", "options": {"r": 32}},
        "ia3": {"type": "ia3"},
        "bitfit": {"type": "bitfit"},
        "prefix": {"type": "prefix"},
        "top1": {"type": "topk", "options": {"k": 1}},
        "top3": {"type": "topk", "options": {"k": 3}},
        "top6": {"type": "topk", "options": {"k": 6}},
        "hift": {"type": "hift"},
        "vanilla": {"type": "vanilla"},
        "lora-llama": {"type": "lora", "options": {"r": 8}},
    },
    "tasks": {"sst2": {"kind": "classification"}, "rte": {"kind": "classification"},
              "squad": {"kind": "extractive_qa"}, "viggo": {"kind": "generation"}, "sql": {"kind": "generation"},
              "gsm8k": {"kind": "generation"}},
    "training": {"lr": 1e-4},
}


def status(claim_id: str, **inputs) -> str:
    table, _ = evaluate_claims(config=CONFIG, **inputs)
    return table.set_index("id").loc[claim_id, "status"]


def comparisons(rows) -> pd.DataFrame:
    """rows: (model, task, eval_set, kind, method, diff, p_boot_holm, p_t_holm)."""
    out = []
    for model, task, eval_set, kind, method, diff, pb, pt in rows:
        out.append({"model": model, "task": task, "eval_set": eval_set, "kind": kind, "column": task,
                    "metric": "accuracy", "method": method, "reference": "fft", "n_seeds": 3,
                    "mean_ref": 0.8, "mean_method": 0.8 + diff, "diff": diff, "diff_low": diff - 0.01,
                    "diff_high": diff + 0.01, "boot_low": diff - 0.005, "boot_high": diff + 0.005,
                    "p_t": pt, "p_boot": pb, "p_t_holm": pt, "p_boot_holm": pb})
    return pd.DataFrame(out)


def summary(rows) -> pd.DataFrame:
    """rows: (model, task, method, eval_set, kind, metric, values over SEEDS)."""
    out = []
    for model, task, method, eval_set, kind, metric, values in rows:
        out.append({"model": model, "task": task, "method": method, "eval_set": eval_set, "kind": kind,
                    "column": task, "metric": metric, "mean": float(np.mean(values)),
                    "std": float(np.std(values, ddof=1)), "n": len(values),
                    "seeds": ",".join(map(str, SEEDS[:len(values)])), "values": ",".join(map(repr, values))})
    return pd.DataFrame(out)


# --------------------------------------------------------------------------------------------
# 1. FFT beats PEFT on adversarial sets
# --------------------------------------------------------------------------------------------


def adv_rows(diffs, p=0.01, kind="adv"):
    methods = ["lora", "ia3", "bitfit"]
    return [("m", "sst2", kind, kind, methods[i % 3], d, p, 0.5) for i, d in enumerate(diffs)]


def test_fft_adversarial_holds():
    c = comparisons(adv_rows([-0.05, -0.04, -0.02]) + [("m", "sst2", "adv", "adv", "top1", 0.3, 0.001, 0.001)])
    table, ev = evaluate_claims(comparisons=c, config=CONFIG)
    row = table.set_index("id").loc["fft_adversarial"]
    assert row["status"] == "holds"
    assert set(ev["fft_adversarial"]["method"]) == {"lora", "ia3", "bitfit"}  # top-k is not PEFT
    assert (ev["fft_adversarial"]["outcome"] == "FFT better").all()
    assert (ev["fft_adversarial"]["p_source"] == "p_boot_holm").all()


def gen_rows(method, diffs, p=0.01):
    return [("m", task, "test", "origin", method, d, p, 0.5) for task, d in zip(["viggo", "sql", "gsm8k"], diffs)]


@pytest.mark.parametrize("diffs, p, expected", [
    ([-0.05, -0.02, -0.07], 0.01, "holds"),            # Theorem 2: FFT above LoRA on the complex tasks
    ([0.05, 0.02, 0.07], 0.01, "does not hold"),
    ([-0.05, 0.02, -0.01], 0.4, "inconclusive"),       # nothing significant
])
def test_fft_beats_lora_on_generation(diffs, p, expected):
    # vanilla and HiFT against FFT are no evidence for this claim; classification sets neither
    c = comparisons(gen_rows("lora-llama", diffs, p) + gen_rows("vanilla", [-0.5, -0.5, -0.5])
                    + [("m", "sst2", "origin", "origin", "lora", 0.3, 0.001, 0.001)])
    table, ev = evaluate_claims(comparisons=c, config=CONFIG)
    assert table.set_index("id").loc["fft_generation", "status"] == expected
    assert set(ev["fft_generation"]["method"]) == {"lora-llama"} and len(ev["fft_generation"]) == 3


@pytest.mark.parametrize("diffs, p, expected", [
    ([0.004, -0.002, 0.01], 0.5, "holds"),             # HiFT matches FFT
    ([-0.05, -0.04, 0.0], 0.01, "does not hold"),      # significantly below in 2 of 3
    ([-0.05, 0.0, 0.01], 0.01, "inconclusive"),
])
def test_hift_matches_fft_on_generation(diffs, p, expected):
    assert status("hift_generation", comparisons=comparisons(gen_rows("hift", diffs, p))) == expected


def test_generation_claims_not_evaluated_without_generation_tasks():
    c = comparisons(adv_rows([-0.05, -0.04, -0.02]))
    assert status("fft_generation", comparisons=c) == status("hift_generation", comparisons=c) == "not evaluated"


def test_fft_adversarial_does_not_hold():
    assert status("fft_adversarial", comparisons=comparisons(adv_rows([0.05, 0.04, 0.02]))) == "does not hold"


def test_fft_adversarial_inconclusive_when_nothing_significant():
    assert status("fft_adversarial", comparisons=comparisons(adv_rows([-0.05, -0.04, 0.02], p=0.4))) == "inconclusive"


def test_fft_adversarial_falls_back_to_t_test_without_bootstrap():
    c = comparisons(adv_rows([-0.05, -0.04, -0.02], p=math.nan))
    c["p_t_holm"] = 0.01
    _, ev = evaluate_claims(comparisons=c, config=CONFIG)
    assert (ev["fft_adversarial"]["p_source"] == "p_t_holm").all()
    assert status("fft_adversarial", comparisons=c) == "holds"


def test_fft_adversarial_not_evaluated():
    assert status("fft_adversarial") == "not evaluated"
    assert status("fft_adversarial", comparisons=comparisons(adv_rows([-0.05], kind="origin"))) == "not evaluated"


# --------------------------------------------------------------------------------------------
# 2. LoRA matches or beats FFT on original GLUE
# --------------------------------------------------------------------------------------------


def glue_rows(diffs_ps, method="lora", task="sst2"):
    return [("m", task, f"origin{i}", "origin", method, d, p, 0.5) for i, (d, p) in enumerate(diffs_ps)]


def test_lora_glue_holds_and_ignores_other_ranks_and_qa():
    c = comparisons(glue_rows([(0.01, 0.3), (-0.002, 0.6), (0.013, 0.01)])
                    + glue_rows([(-0.1, 0.001)], method="lora-r32")
                    + glue_rows([(-0.1, 0.001)], task="squad"))
    table, ev = evaluate_claims(comparisons=c, config=CONFIG)
    assert table.set_index("id").loc["lora_glue", "status"] == "holds"
    assert set(ev["lora_glue"]["method"]) == {"lora"} and set(ev["lora_glue"]["task"]) == {"sst2"}


def test_lora_glue_does_not_hold():
    c = comparisons(glue_rows([(-0.03, 0.01), (-0.02, 0.02), (0.0, 0.9)]))
    assert status("lora_glue", comparisons=c) == "does not hold"


def test_lora_glue_inconclusive():
    c = comparisons(glue_rows([(-0.03, 0.01), (0.01, 0.5), (0.0, 0.9)]))
    assert status("lora_glue", comparisons=c) == "inconclusive"
    # No significant loss, but a mean loss beyond one point is not "matching".
    assert status("lora_glue", comparisons=comparisons(glue_rows([(-0.05, 0.2), (-0.03, 0.3)]))) == "inconclusive"


def test_lora_glue_uses_every_lora_variant_without_the_default():
    c = comparisons(glue_rows([(0.01, 0.5)], method="lora-r32"))
    table, ev = evaluate_claims(comparisons=c, config=CONFIG)
    assert table.set_index("id").loc["lora_glue", "status"] == "holds"
    assert set(ev["lora_glue"]["method"]) == {"lora-r32"}


def test_lora_glue_not_evaluated():
    assert status("lora_glue", comparisons=comparisons(glue_rows([(0.01, 0.5)], method="ia3"))) == "not evaluated"


# --------------------------------------------------------------------------------------------
# 3. A larger LoRA rank adds little
# --------------------------------------------------------------------------------------------


def rank_summary(small, large, sets=("origin", "adv")):
    rows = []
    for es in sets:
        rows += [("m", "sst2", "lora", es, es, "accuracy", small), ("m", "sst2", "lora-r32", es, es, "accuracy", large)]
    return summary(rows)


def test_lora_rank_holds():
    s = rank_summary([0.80, 0.81, 0.82], [0.802, 0.812, 0.821])
    table, ev = evaluate_claims(summary=s, config=CONFIG)
    assert table.set_index("id").loc["lora_rank", "status"] == "holds"
    assert list(ev["lora_rank"]["ranks"]) == ["8,32", "8,32"]
    assert (ev["lora_rank"]["outcome"] == "little").all()


def test_lora_rank_does_not_hold():
    s = rank_summary([0.80, 0.81, 0.82], [0.85, 0.861, 0.869])
    table, ev = evaluate_claims(summary=s, config=CONFIG)
    assert table.set_index("id").loc["lora_rank", "status"] == "does not hold"
    assert ev["lora_rank"]["gain"].to_numpy() == pytest.approx([0.05, 0.05], abs=1e-3)


def test_lora_rank_inconclusive_within_seed_noise():
    s = rank_summary([0.80, 0.81, 0.82], [0.95, 0.70, 0.96])  # +6 points on average, seeds disagree
    table, ev = evaluate_claims(summary=s, config=CONFIG)
    assert table.set_index("id").loc["lora_rank", "status"] == "inconclusive"
    assert (ev["lora_rank"]["outcome"] == "within noise").all()


def test_lora_rank_reads_rank_from_runs_options():
    config = {**CONFIG, "methods": {**CONFIG["methods"], "lora-x": {"type": "lora"}}}
    s = summary([("m", "sst2", "lora", "origin", "origin", "accuracy", [0.8, 0.81, 0.82]),
                 ("m", "sst2", "lora-x", "origin", "origin", "accuracy", [0.9, 0.91, 0.92])])
    runs = pd.DataFrame({"model": ["m"], "task": ["sst2"], "method": ["lora-x"], "seed": [0],
                         "method_options": [json.dumps({"alpha": 128, "r": 64}, sort_keys=True)]})
    table, ev = evaluate_claims(summary=s, runs=runs, config=config)
    assert table.set_index("id").loc["lora_rank", "status"] == "does not hold"
    assert list(ev["lora_rank"]["ranks"]) == ["8,64"]


def test_lora_rank_not_evaluated_without_rank_study():
    s = summary([("m", "sst2", "lora", "origin", "origin", "accuracy", [0.8, 0.81, 0.82]),
                 ("m", "sst2", "fft", "origin", "origin", "accuracy", [0.8, 0.81, 0.82])])
    assert status("lora_rank", summary=s) == "not evaluated"
    assert status("lora_rank") == "not evaluated"


def test_lora_rank_uses_primary_metric_of_qa_sets():
    rows = []
    for method, f1, adv_f1 in (("lora", 0.80, 0.50), ("lora-r32", 0.81, 0.60)):
        rows += [("m", "squad", method, "addsent", "adv", "f1", [f1] * 3),
                 ("m", "squad", method, "addsent", "adv", "adv_f1", [adv_f1, adv_f1 + 0.001, adv_f1 - 0.001])]
    _, ev = evaluate_claims(summary=summary(rows), config=CONFIG)
    assert list(ev["lora_rank"]["metric"]) == ["adv_f1"]
    assert ev["lora_rank"]["gain"].iloc[0] == pytest.approx(0.10)


# --------------------------------------------------------------------------------------------
# 4. Fewer trainable layers lowers scores
# --------------------------------------------------------------------------------------------


def topk_summary(scores, sets=("origin", "adv")):
    """scores: top1, top3, top6, fft means (seed values +/- 0.001)."""
    rows = []
    for es in sets:
        for method, m in zip(("top1", "top3", "top6", "fft"), scores):
            rows.append(("m", "sst2", method, es, es, "accuracy", [m - 0.001, m, m + 0.001]))
    return summary(rows)


def test_topk_holds_with_trainable_params():
    runs = pd.DataFrame({"model": "m", "task": "sst2", "method": ["top1", "top3", "top6", "fft"], "seed": 0,
                         "trainable_params": [1e6, 3e6, 6e6, 1.2e8]})
    table, ev = evaluate_claims(summary=topk_summary([0.70, 0.75, 0.78, 0.80]), runs=runs, config=CONFIG)
    assert table.set_index("id").loc["topk_layers", "status"] == "holds"
    assert (ev["topk_layers"]["x"] == "trainable_params").all()
    assert ev["topk_layers"]["fft_minus_smallest_k"].to_numpy() == pytest.approx([0.10, 0.10])


def test_topk_holds_by_k_order_without_runs():
    table, ev = evaluate_claims(summary=topk_summary([0.70, 0.75, 0.78, 0.80]), config=CONFIG)
    assert table.set_index("id").loc["topk_layers", "status"] == "holds"
    assert (ev["topk_layers"]["x"] == "k (FFT last)").all()


def test_topk_does_not_hold():
    assert status("topk_layers", summary=topk_summary([0.80, 0.78, 0.75, 0.70])) == "does not hold"


def test_topk_inconclusive():
    assert status("topk_layers", summary=topk_summary([0.80, 0.70, 0.75, 0.78])) == "inconclusive"


def test_topk_not_evaluated_without_topk_or_fft():
    s = topk_summary([0.70, 0.75, 0.78, 0.80])
    assert status("topk_layers", summary=s[s["method"] != "fft"]) == "not evaluated"
    assert status("topk_layers", summary=s[s["method"] == "fft"]) == "not evaluated"


# --------------------------------------------------------------------------------------------
# 5. PEFT increments are narrower than FFT's
# --------------------------------------------------------------------------------------------


def figure1(stds, kurt=None):
    methods = list(stds)
    return pd.DataFrame({"method": methods, "label": methods, "param": "weight", "n": 100,
                         "std": [stds[m] for m in methods], "mean_abs": 0.0,
                         "kurtosis": [(kurt or {}).get(m, 0.0) for m in methods], "max_abs": 1.0})


def test_increments_holds():
    f = figure1({"fft": 0.01, "lora": 0.001, "bitfit": 0.002}, kurt={"fft": 0.0, "lora": 3.0, "bitfit": -0.5})
    table, ev = evaluate_claims(figure1=f, config=CONFIG)
    row = table.set_index("id").loc["increments_narrower"]
    assert row["status"] == "holds"
    assert "learning rate" in row["summary"]
    e = ev["increments_narrower"].set_index("method")
    assert e.loc["lora", "std_ratio_to_fft"] == pytest.approx(0.1)
    assert bool(e.loc["lora", "more_peaked_than_fft"]) and not bool(e.loc["bitfit", "more_peaked_than_fft"])
    assert e.loc["fft", "lr"] == pytest.approx(1e-4)  # the config's default


def test_increments_does_not_hold():
    f = figure1({"fft": 0.001, "lora": 0.02, "prefix": 1.0})
    assert status("increments_narrower", figure1=f) == "does not hold"


def test_increments_inconclusive_and_missing_increment_ignored():
    f = figure1({"fft": 0.01, "lora": 0.001, "prefix": 1.0, "ia3": math.nan})
    assert status("increments_narrower", figure1=f) == "inconclusive"


def test_increments_not_evaluated():
    assert status("increments_narrower") == "not evaluated"
    assert status("increments_narrower", figure1=figure1({"lora": 0.001})) == "not evaluated"


# --------------------------------------------------------------------------------------------
# The table, the CSV and the HTML page
# --------------------------------------------------------------------------------------------


def test_nothing_evaluated_without_inputs():
    table, ev = evaluate_claims(config=CONFIG)
    assert list(table.columns) == CLAIM_COLUMNS
    assert list(table["id"]) == [c.id for c in CLAIMS]
    assert set(table["status"]) == {"not evaluated"}
    assert all(table["summary"].str.len() > 0)


def test_write_claims_csv_and_html(tmp_path):
    summary_csv, comp_csv, runs_csv = tmp_path / "summary.csv", tmp_path / "comparisons.csv", tmp_path / "runs.csv"
    s = pd.concat([topk_summary([0.70, 0.75, 0.78, 0.80]),
                   rank_summary([0.80, 0.81, 0.82], [0.802, 0.812, 0.821])], ignore_index=True)
    s.to_csv(summary_csv, index=False)
    comp = comparisons(adv_rows([-0.05, -0.04, -0.02]) + glue_rows([(-0.03, 0.01), (0.01, 0.5), (0.0, 0.9)]))
    comp.to_csv(comp_csv, index=False)
    pd.DataFrame({"model": ["m"], "task": ["sst2"], "method": ["fft"], "seed": [0]}).to_csv(runs_csv, index=False)
    out_csv, out_html = tmp_path / "out" / "claims.csv", tmp_path / "out" / "claims.html"
    write_claims(summary_csv=summary_csv, comparisons_csv=comp_csv, runs_csv=runs_csv,
                 figure1_csv=tmp_path / "absent.csv", config=CONFIG, template_path=TEMPLATE,
                 out_csv=out_csv, out_html=out_html)
    table = pd.read_csv(out_csv)
    assert len(table) == len(CLAIMS) and list(table["id"]) == [c.id for c in CLAIMS]
    got = dict(zip(table["id"], table["status"]))
    assert got == {"fft_adversarial": "holds", "lora_glue": "inconclusive", "lora_rank": "holds",
                   "topk_layers": "holds", "increments_narrower": "not evaluated",
                   "fft_generation": "not evaluated", "hift_generation": "not evaluated"}
    page = out_html.read_text()
    text = html.unescape(page)
    for c in CLAIMS:
        assert c.title in text and c.statement in text
    for st in got.values():
        assert st in text
    assert f'class="verdict {got["lora_glue"]}"' in page
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page)
    assert "http://" not in page and "https://" not in page and "<script" not in page
    # Deterministic bytes.
    first = out_html.read_bytes(), out_csv.read_bytes()
    write_claims(summary_csv=summary_csv, comparisons_csv=comp_csv, runs_csv=runs_csv, figure1_csv=None,
                 config=CONFIG, template_path=TEMPLATE, out_csv=out_csv, out_html=out_html)
    assert (out_html.read_bytes(), out_csv.read_bytes()) == first


def test_write_claims_with_empty_and_absent_files(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    out_csv, out_html = tmp_path / "claims.csv", tmp_path / "claims.html"
    write_claims(summary_csv=empty, comparisons_csv=tmp_path / "none.csv", runs_csv=empty, figure1_csv=None,
                 config={}, template_path=TEMPLATE, out_csv=out_csv, out_html=out_html)
    table = pd.read_csv(out_csv)
    assert set(table["status"]) == {"not evaluated"} and len(table) == len(CLAIMS)
    assert "not evaluated" in out_html.read_text()


def test_statuses_are_known():
    assert STATUSES == ("holds", "does not hold", "inconclusive", "not evaluated")


def test_increments_learning_rate_of_the_figure_runs():
    config = {**CONFIG, "increments": {"model": "m", "task": "sst2", "seed": 0}}
    runs = pd.DataFrame({"model": "m", "task": ["sst2", "rte", "sst2"], "method": ["lora", "lora", "fft"],
                         "seed": 0, "lr": [5e-4, 1e-3, 2e-5]})
    _, ev = evaluate_claims(figure1=figure1({"fft": 0.01, "lora": 0.001}), runs=runs, config=config)
    e = ev["increments_narrower"].set_index("method")
    assert e.loc["lora", "lr"] == pytest.approx(5e-4) and e.loc["fft", "lr"] == pytest.approx(2e-5)
