"""Parameter-budget studies: top-k runs above a model's depth are left out (not trained,
rows left out of the table with the reason), and the budget figure joins each family."""

from __future__ import annotations

import pandas as pd
import pytest

from lwob.plan import config as cfg
from lwob.report.figures import budget_data, budget_figure
from lwob.report.tables import study_table

from conftest import REPO, SYNTHETIC_TASKS
from test_figures import MODELS_CFG, TASKS, metrics_frame

METHODS = {"fft": {"type": "fft", "display": "FFT"}, "lora": {"type": "lora", "display": "LoRA"},
           "bitfit": {"type": "bitfit"}, "top1": {"type": "topk", "display": "Top-1"},
           "lora-r16": {"type": "lora", "display": "LoRA (r=16)"}}
STUDY = {"models": ["rb", "my_model"], "methods": ["top1", "fft", "lora", "lora-r16", "bitfit"],
         "tasks": ["sst2", "mnli"], "title": "Budget", "figure": "budget"}
PARAMS = {"top1": 7e6, "fft": 1.25e8, "lora": 3e5, "lora-r16": 6e5, "bitfit": 1e5}


def _frames():
    rows = []
    base = metrics_frame()
    for method in STUDY["methods"]:
        m = base[base["method"] == "fft"].copy()
        m["method"] = method
        m["value"] = m["value"] - 0.01 * len(method)
        rows.append(m)
    metrics = pd.concat(rows, ignore_index=True)
    runs = pd.DataFrame([{"model": mo, "task": t, "method": me, "seed": s, "trainable_params": PARAMS[me] + i}
                         for mo in STUDY["models"] for i, t in enumerate(STUDY["tasks"])
                         for me in STUDY["methods"] for s in (0, 1, 2)])
    return metrics, runs


def test_budget_data_has_params_and_families():
    metrics, runs = _frames()
    data = budget_data(metrics, runs, STUDY, TASKS, METHODS)
    row = data[(data.model == "rb") & (data.method == "lora-r16") & (data.split == "origin")].iloc[0]
    assert row["trainable_params"] == pytest.approx(PARAMS["lora-r16"] + 0.5)  # mean over the study's tasks
    fam = data.drop_duplicates("method").set_index("method")["family"]
    assert fam["top1"] == fam["fft"] == "topk"  # FFT ends the top-k line
    assert fam["lora"] == fam["lora-r16"] == "lora"
    assert pd.isna(fam["bitfit"])  # a single point


def test_budget_figure_files(tmp_path):
    metrics, runs = _frames()
    pdf, png = tmp_path / "b.pdf", tmp_path / "b.png"
    budget_figure(metrics, runs, STUDY, TASKS, METHODS, MODELS_CFG, out_pdf=pdf, out_png=png)
    assert pdf.read_bytes().startswith(b"%PDF-") and png.read_bytes().startswith(b"\x89PNG")
    again = tmp_path / "c.png"
    budget_figure(metrics, runs, STUDY, TASKS, METHODS, MODELS_CFG, out_pdf=tmp_path / "c.pdf", out_png=again)
    assert again.read_bytes() == png.read_bytes()


def test_topk_above_the_depth_is_not_run_and_the_table_says_why(demo_config, tmp_path):
    study = demo_config["studies"]["table9"]
    assert "top12" in study["methods"]
    studies = cfg.enabled_studies(demo_config)
    assert studies["table9"]["omitted"] == {"minilm": {"top12": "k = 12 exceeds the model's 6 layers"}}
    runs = cfg.runs(demo_config)
    assert not [r for r in runs if r.method == "top12"]
    assert [r for r in runs if r.method == "top6"]

    rows = [{"model": "minilm", "task": t, "method": m, "eval_set": es, "kind": es, "column": t, "metric": "accuracy",
             "mean": 0.8, "std": 0.01, "n": 2, "sem": 0.0, "ci95_low": 0.7, "ci95_high": 0.9, "seeds": "0,42",
             "values": "0.79,0.81"}
            for t in study["tasks"] for m in ("top1", "top3", "top6", "fft") for es in ("origin", "adv")]
    latex, df = study_table(pd.DataFrame(rows), studies["table9"], demo_config["tasks"], demo_config["models"],
                            demo_config["methods"], template_path=REPO / "reports/templates/robustness_table.tex.j2",
                            out_tex=tmp_path / "t.tex", out_csv=tmp_path / "t.csv")
    assert "top12" not in set(df["method"]) and "Top-12 on MiniLM-L6 (k = 12 exceeds the model's 6 layers)" in latex
    assert not df["missing"].any()
