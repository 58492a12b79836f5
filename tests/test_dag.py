"""The DAG as Snakemake plans it: the paper study on SLURM, bad input, lint."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO, planned_jobs, run_snakemake


def test_slurm_profile_plans_the_full_paper_study():
    # Exactly the user's command, from the repository root.
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--profile", "slurm", "all", "-n"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = planned_jobs(result)
    assert jobs["train"] == 2 * 6 * 5 * 5
    assert jobs["evaluate"] == 2 * 6 * 5 * 5
    assert jobs["download"] == 11  # 5 GLUE tasks + 6 AdvGLUE sets
    assert jobs["fetch_model"] == 2
    assert jobs["tokenize"] == 2 * 5
    assert jobs["table"] == jobs["figure"] == jobs["aggregate"] == 1


def test_training_jobs_ask_for_gpus_and_scale_with_model(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--profile", "slurm", "-n", "-p",
         "results/runs/roberta-large/rte/fft/seed0/train.json",
         "results/runs/roberta-base/rte/bitfit/seed0/train.json", "--forceall"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout + result.stderr
    blocks = [b for b in out.split("rule train:")[1:]]
    res = {("large" if "roberta-large" in b else "base"): b for b in blocks}
    assert "gpu=1" in res["large"] and "mem_mb=64000" in res["large"]
    assert "mem_mb=32000" in res["base"]
    assert "slurm_partition=gpu" in res["large"]


def test_bad_config_stops_before_any_job_and_keeps_results(tmp_path, demo_config):
    earlier = tmp_path / "results" / "metrics.csv"
    earlier.parent.mkdir(parents=True)
    earlier.write_text("model,task\nx,y\n")
    demo_config["methods"]["lora"]["training"]["lr"] = "fast"
    result = run_snakemake(tmp_path, "all", "--cores", "1", config=demo_config, profile=None)
    assert result.returncode != 0
    err = result.stderr
    assert "Configuration error" in err and "methods.lora.training.lr" in err
    assert "Traceback" not in err
    assert earlier.read_text() == "model,task\nx,y\n"
    assert not (tmp_path / "data").exists()


def test_missing_dataset_file_is_named(tmp_path, demo_config):
    demo_config["datasets"]["demo_sentiment"] = {"source": "local", "files": {"train": "missing/train.tsv"}}
    result = run_snakemake(tmp_path, "all", "-n", config=demo_config, profile=None)
    assert result.returncode != 0
    assert "missing/train.tsv" in result.stderr and "Traceback" not in result.stderr


def test_lint_is_clean():
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint", "--configfile", "config/demo.yaml"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
