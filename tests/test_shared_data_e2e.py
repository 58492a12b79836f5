"""The workflow on the original release files in ../shared/data (AdvGLUE dev.json, GLUE
SST-2 TSV, RTE Parquet, SQuAD v1.1 dev, Adversarial SQuAD AddSent): real training, real
numbers. A reduced version of config/shared_data.yaml so that it fits the CI budget."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import load_config, run_snakemake

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2700)]  # the run's own limit is 2400 s


def absolute(config: dict, shared_data) -> dict:
    for spec in config["datasets"].values():
        if "file" in spec:
            spec["file"] = str(shared_data / spec["file"].split("shared/data/", 1)[1])
        for split, path in (spec.get("files") or {}).items():
            spec["files"][split] = str(shared_data / path.split("shared/data/", 1)[1])
    return config


def test_real_files_train_and_evaluate(tmp_path, shared_data):
    config = absolute(load_config("shared_data.yaml"), shared_data)
    config["reference"] = None
    config["seeds"] = [0]
    config["execution"] = {"warm_worker": True}
    config["studies"]["table3"]["methods"] = ["fft", "lora"]
    config["training"]["epochs"] = 2
    config["methods"]["fft"]["training"]["lr"] = 1.0e-4
    config["tasks"]["sst2"]["train"]["max_examples"] = 600
    config["tasks"]["sst2"]["validation"]["max_examples"] = 100
    config["tasks"]["rte"]["train"]["max_examples"] = 160
    config["studies"]["table4"]["methods"] = ["fft"]
    config["tasks"]["squad"]["train"]["max_examples"] = 300
    config["tasks"]["squad"]["eval_sets"]["origin"]["max_examples"] = 300
    # About 10 minutes on 2 cores, most of it scoring AddSent's 3,560 questions with MiniLM.
    result = run_snakemake(tmp_path, "all", config=config, timeout=2400)
    assert result.returncode == 0, result.stderr[-5000:]

    manifest = json.loads((tmp_path / "data/raw/advglue/manifest.json").read_text())
    assert manifest["files"]["sst2"]["records"] == 148 and manifest["files"]["rte"]["records"] == 81
    metrics = pd.read_csv(tmp_path / "results/metrics.csv")
    acc = metrics[metrics.metric == "accuracy"].set_index(["task", "method", "eval_set"])
    assert acc.loc[("sst2", "fft", "origin"), "n"] == 872
    assert acc.loc[("sst2", "fft", "adv"), "n"] == 148
    assert acc.loc[("rte", "fft", "origin"), "n"] == 277
    assert acc.loc[("rte", "lora", "adv"), "n"] == 81
    # MiniLM fine-tuned on 600 SST-2 sentences is clearly above chance on GLUE dev (872
    # sentences: one standard error is under 2 points), and AdvGLUE is harder.
    assert acc.loc[("sst2", "fft", "origin"), "value"] > 0.6
    assert acc.loc[("sst2", "fft", "adv"), "value"] < acc.loc[("sst2", "fft", "origin"), "value"]
    tex = (tmp_path / "results/tables/table3.tex").read_text()
    assert "SST-2" in tex and "RTE" in tex

    # Adversarial SQuAD AddSent, scored on the genuine file: 1,000 original questions and
    # their 2,560 adversarial variants, grouped by original id.
    qa = metrics[metrics.task == "squad"].set_index(["method", "eval_set", "metric"])
    assert qa.loc[("fft", "addsent", "adv_f1"), "n"] == 1000
    assert qa.loc[("fft", "addsent", "f1"), "n"] == 2560
    assert qa.loc[("fft", "addsent", "orig_f1"), "n"] == 1000
    assert qa.loc[("fft", "origin", "f1"), "n"] == 300
    assert qa.loc[("fft", "origin", "f1"), "value"] > 0.05  # learnt something from 400 examples
    # The worst case over an original question and its variants can never beat the plain
    # score of the originals, and the adversarial variants are harder than the originals.
    for m in ("em", "f1"):
        assert qa.loc[("fft", "addsent", f"adv_{m}"), "value"] <= qa.loc[("fft", "addsent", f"orig_{m}"), "value"]
    assert qa.loc[("fft", "addsent", "f1"), "value"] < qa.loc[("fft", "addsent", "orig_f1"), "value"]
    preds = pd.read_parquet(tmp_path / "results/eval/minilm/squad/fft/seed0.predictions.parquet")
    addsent = preds[preds.eval_set == "addsent"]
    per_group = addsent.groupby("original_id")["f1"]
    assert abs(per_group.min().mean() - qa.loc[("fft", "addsent", "adv_f1"), "value"]) < 1e-9
    assert per_group.min().mean() <= per_group.mean().mean()
    tex4 = (tmp_path / "results/tables/table4.tex").read_text()
    assert "AS" in tex4 and "Origin" in tex4 and "EM & F1" in tex4
