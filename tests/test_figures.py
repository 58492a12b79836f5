"""lwob.report.figures: the Origin-vs-Adv figure (valid, deterministic PDF/PNG; 1 seed; missing runs)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from lwob.report.figures import figure_data, origin_vs_adv

from conftest import SYNTHETIC_TASKS

MODELS_CFG = {"rb": {"display": "RoBERTa-base"}, "my_model": {}}
METHODS_CFG = {"fft": {"display": "FFT"}, "lora": {"display": "LoRA"}, "bitfit": {}}
TASKS = SYNTHETIC_TASKS
STUDY = {"models": ["rb", "my_model"], "methods": ["fft", "lora", "bitfit"], "tasks": ["sst2", "mnli"],
         "title": "Origin vs Adv"}
OFFSET = {"origin": 0.0, "adv": -0.4, "origin-mm": 0.02, "adv-mm": -0.38}


def metrics_frame(seeds=(0, 1, 2), skip=()):
    rows = []
    for m in STUDY["models"]:
        for t, task in TASKS.items():
            for i, x in enumerate(STUDY["methods"]):
                for s in seeds:
                    if (m, t, x, s) in skip:
                        continue
                    for es, spec in task["eval_sets"].items():
                        rows.append({"model": m, "task": t, "method": x, "seed": s, "eval_set": es,
                                     "kind": spec["kind"], "column": spec["column"], "metric": "accuracy",
                                     "value": 0.8 + 0.05 * i + OFFSET[es] + 0.01 * (s % 3 - 1), "n": 10})
    return pd.DataFrame(rows)


def draw(tmp_path, metrics, name="fig"):
    pdf, png = tmp_path / f"{name}.pdf", tmp_path / f"{name}.png"
    data = origin_vs_adv(metrics, STUDY, TASKS, METHODS_CFG, MODELS_CFG, out_pdf=pdf, out_png=png)
    return pdf, png, data


def test_files_valid_and_deterministic(tmp_path):
    metrics = metrics_frame()
    pdf, png, data = draw(tmp_path, metrics)
    pdf_bytes, png_bytes = pdf.read_bytes(), png.read_bytes()
    assert pdf_bytes.startswith(b"%PDF-") and pdf_bytes.rstrip().endswith(b"%%EOF")
    assert png_bytes.startswith(b"\x89PNG\r\n\x1a\n") and len(png_bytes) > 10_000
    assert b"CreationDate" not in pdf_bytes
    pdf2, png2, _ = draw(tmp_path, metrics, name="again")
    assert pdf2.read_bytes() == pdf_bytes and png2.read_bytes() == png_bytes
    avg = data[(data.model == "rb") & (data.method == "lora") & (data.column == "average")].set_index("split")
    # origin: mean of 85, 85, 87 (sst2, mnli, mnli-mm); std over seeds of per-seed averages = 1.00
    assert avg.loc["origin", "mean"] == pytest.approx((85 + 85 + 87) / 3)
    assert avg.loc["origin", "std"] == pytest.approx(1.0)
    assert avg.loc["adv", "mean"] == pytest.approx((45 + 45 + 47) / 3)


def test_single_seed(tmp_path):
    pdf, png, data = draw(tmp_path, metrics_frame(seeds=(42,)))
    assert pdf.stat().st_size > 0 and png.stat().st_size > 0
    assert data["std"].isna().all() and (data["n"] == 1).all()


def test_missing_runs(tmp_path):
    skip = {("my_model", "sst2", "bitfit", s) for s in (0, 1, 2)} | {("rb", "mnli", "fft", 2)}
    pdf, png, data = draw(tmp_path, metrics_frame(skip=skip))
    assert pdf.read_bytes().startswith(b"%PDF-") and png.read_bytes().startswith(b"\x89PNG")
    gone = data[(data.model == "my_model") & (data.method == "bitfit")]
    assert gone[gone.column.isin(["sst2", "average"])]["mean"].isna().all()
    assert gone[gone.column == "mnli"]["mean"].notna().all()
    partial = data[(data.model == "rb") & (data.method == "fft") & (data.column == "average")
                   & (data.split == "origin")].iloc[0]
    assert math.isfinite(partial["mean"]) and partial["n"] == 2


def test_empty_metrics(tmp_path):
    empty = pd.DataFrame(columns=["model", "task", "method", "seed", "eval_set", "kind", "column", "metric",
                                  "value", "n"])
    pdf, png, data = draw(tmp_path, empty)
    assert pdf.exists() and png.exists() and data["mean"].isna().all()


def test_one_column_study_has_no_grid(tmp_path):
    study = {**STUDY, "tasks": ["sst2"], "models": ["rb"]}
    data = figure_data(metrics_frame(), study, TASKS)
    assert set(data["column"]) == {"sst2", "average"}
    origin_vs_adv(metrics_frame(), study, TASKS, METHODS_CFG, MODELS_CFG, tmp_path / "a.pdf", tmp_path / "a.png")
    assert (tmp_path / "a.png").stat().st_size > 0
