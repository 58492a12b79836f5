"""Hyperparameter selection on the validation set: grids from the config, the choice, the DAG."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lwob.plan import config as cfg
from lwob.errors import ConfigError
from lwob.io import write_json
from lwob.analysis.selection import choose, selection_frame, write_choice

from conftest import REPO, planned_jobs

SCHEMA = REPO / "config/schemas/config.schema.yaml"


def test_choose_takes_the_best_mean_validation_score_and_the_first_of_ties():
    cells = {"lr0.001": {"lr": 1e-3}, "lr0.005": {"lr": 5e-3}, "lr0.01": {"lr": 1e-2}}
    choice = choose(cells, {"lr0.001": [0.7, 0.8], "lr0.005": [0.9, 0.6], "lr0.01": [0.75, None]})
    assert choice["chosen"] == "lr0.001" and choice["hyperparameters"] == {"lr": 1e-3}  # 0.75 = 0.75: first wins
    assert [row["mean_val_score"] for row in choice["grid"]] == pytest.approx([0.75, 0.75, 0.75])
    assert choose(cells, {"lr0.001": [0.1], "lr0.005": [0.2], "lr0.01": [None]})["chosen"] == "lr0.005"
    with pytest.raises(ValueError, match="no grid cell"):
        choose(cells, {"lr0.001": [None]})


def test_write_choice_reads_only_the_validation_scores_of_the_records(tmp_path):
    records = {}
    for cell, score in (("lr0.001", 0.6), ("lr0.005", 0.9)):
        path = tmp_path / cell / "seed0" / "train.json"
        path.parent.mkdir(parents=True)
        write_json(path, {"best_val_score": score, "val_metric": "accuracy"})
        records[cell] = [str(path)]
    choice = write_choice(cells={"lr0.001": {"lr": 1e-3}, "lr0.005": {"lr": 5e-3}}, records=records,
                          run_id={"model": "m", "task": "t", "method": "lora"}, out_json=tmp_path / "chosen.json")
    assert choice["chosen"] == "lr0.005" and choice["val_metric"] == "accuracy"
    frame = selection_frame([choice])
    assert list(frame["chosen"]) == [False, True] and list(frame["hp_lr"]) == [1e-3, 5e-3]


def test_grids_by_method_name_or_type_with_filters(demo_config):
    c = cfg.validate(demo_config, SCHEMA, base_dir=REPO)
    assert cfg.selection_grid(c, "minilm", "demo-rte", "lora") == [{"lr": 1e-3}, {"lr": 5e-3}]
    assert cfg.selection_grid(c, "minilm", "demo-squad", "lora") == []  # tasks filter
    # A key is a method name, else a method type: "lora" also covers the variant lora-r16,
    # unless it has a grid of its own.
    assert cfg.selection_grid(c, "minilm", "demo-rte", "lora-r16") == [{"lr": 1e-3}, {"lr": 5e-3}]
    c["selection"]["grids"]["lora-r16"] = {"lr": [2e-3]}
    assert cfg.selection_grid(c, "minilm", "demo-rte", "lora-r16") == [{"lr": 2e-3}]
    c["selection"]["grids"] = {"lora": {"lr": [1e-3], "warmup_ratio": [0.0, 0.1]}}
    assert [cfg.cell_id(x) for x in cfg.selection_grid(c, "minilm", "demo-rte", "lora-r16")] == [
        "lr0.001_warmup_ratio0", "lr0.001_warmup_ratio0.1"]
    hp = cfg.cell_hyperparameters(c, "minilm", "demo-rte", "lora-r16", "lr0.001_warmup_ratio0.1")
    assert hp["lr"] == 1e-3 and hp["warmup_ratio"] == 0.1 and hp["batch_size"] == 8
    runs = cfg.grid_runs(c)
    assert {g.run.seed for g in runs} == {0} and len(runs) == 2 * 2  # LoRA on the 2 tasks x 2 cells
    with pytest.raises(ConfigError, match="not in the selection grid"):
        cfg.cell_hyperparameters(c, "minilm", "demo-rte", "lora", "lr9")


def test_bad_selection_config_is_refused(demo_config):
    demo_config["selection"]["grids"]["loraa"] = {"lr": [1e-3]}
    with pytest.raises(ConfigError, match="selection.grids.loraa"):
        cfg.validate(demo_config, SCHEMA, base_dir=REPO)
    del demo_config["selection"]["grids"]["loraa"]
    demo_config["selection"]["tasks"] = ["demo-nli"]
    with pytest.raises(ConfigError, match=r"selection.tasks\[0\]': unknown task 'demo-nli'"):
        cfg.validate(demo_config, SCHEMA, base_dir=REPO)
    demo_config["selection"]["tasks"] = ["demo-rte"]
    demo_config["selection"]["grids"]["lora"] = {"lr": ["fast"]}
    with pytest.raises(ConfigError, match="selection.grids.lora.lr"):
        cfg.validate(demo_config, SCHEMA, base_dir=REPO)


def test_paper_selection_plans_a_grid_before_the_study(paper_config, tmp_path):
    import yaml

    paper_config["selection"]["enabled"] = True
    path = tmp_path / "paper-selection.yaml"
    path.write_text(yaml.safe_dump(paper_config, sort_keys=False))
    result = subprocess.run([sys.executable, "-m", "snakemake", "--profile", "slurm", "all", "-n",
                             "--configfile", str(path)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = planned_jobs(result)
    triples = cfg.selected_triples(paper_config)
    assert jobs["select"] == len(triples) == 150  # every RoBERTa (model, task, method)
    assert jobs["train_cell"] == len(cfg.grid_runs(paper_config)) == 522
    # the study's 775 trained runs of Tables 3-5, 9, 10 and the budgets, and Table 1's 24 x 5
    assert jobs["selection_table"] == 1 and jobs["train"] == 775 + 24 * 5
