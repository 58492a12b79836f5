"""The DAG as Snakemake plans it: the paper study on SLURM, bad input, lint."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO, planned_jobs, run_snakemake


def test_slurm_profile_plans_the_full_paper_study():
    # Exactly the user's command, from the repository root.
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--profile", "slurm", "all", "-n"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = planned_jobs(result)
    # Table 3: 2 models x 6 methods x 5 tasks; Table 4: 2 models x 8 methods (LoRA ranks 8, 16,
    # 32); Table 5: OPT-13B x 5 methods; Tables 9/10: top-k for k in 1, 3, 6, 12, 24 (24 only
    # on RoBERTa-large: RoBERTa-base has 12 layers) on the 5 GLUE tasks and SQuAD; the GLUE
    # budget study adds LoRA ranks 16 and 32 there; 5 seeds each.
    topk = 4 + 5
    table1 = 3 * 3 * 3 - 3  # LLaMA2 7B/13B/70B x (LoRA, HiFT, FFT) x 3 tasks, no HiFT on 70B; Vanilla: no train job
    assert jobs["train"] == (2 * 6 * 5 + 2 * 8 + 1 * 5 + topk * 5 + topk + 2 * 2 * 5 + table1) * 5
    assert jobs["evaluate"] == jobs["train"] + 3 * 3 * 5  # and Vanilla's evaluations
    assert jobs["increments"] == jobs["train"]
    assert jobs["increment_module"] == 4 and jobs["figure1"] == jobs["increment_table"] == 1
    # 5 GLUE tasks + 6 AdvGLUE sets + SQuAD + ViGGO, sql-create-context and GSM8K; the
    # adversarial SQuAD files and the original ViGGO/Spider/GSM8K releases are not in this
    # checkout (optional, user-supplied): skipped and flagged, not downloaded.
    assert jobs["download"] == 12 + 3
    assert jobs["fetch_model"] == 3 + 3
    assert jobs["tokenize"] == 2 * 5 + 2 + 1 + 3 * 3
    # GLUE/AdvGLUE eval sets (12 per RoBERTa model) + SQuAD dev for 3 model x task pairs + 3 x 3 test sets
    assert jobs["tokenize_eval"] == 2 * 12 + 3 + 3 * 3
    assert jobs["generations"] == 1  # Table 1's per-example generations
    assert jobs["table"] == jobs["figure"] == 8 and jobs["aggregate"] == 1
    assert jobs["paper_table"] == 6 and jobs["statistics"] == 1  # Tables 1, 3, 4, 5, 9, 10 beside the paper


def test_training_jobs_ask_for_gpus_and_scale_with_model(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--profile", "slurm", "-n", "-p",
         "results/runs/roberta-large/rte/fft/seed0/train.json",
         "results/runs/roberta-base/rte/bitfit/seed0/train.json",
         "results/runs/llama2-70b/gsm8k/fft/seed0/train.json",
         "results/eval/llama2-70b/gsm8k/lora-llama/seed0.json", "results/eval/llama2-7b/gsm8k/lora-llama/seed0.json",
         "--forceall"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout + result.stderr

    def jobs_of(rule):  # (model, method) -> the job's block of the dry run
        blocks = [b.split("\nrule ")[0] for b in out.split(f"rule {rule}:")[1:]]
        wildcards = [dict(kv.split("=") for kv in b.split("wildcards: ")[1].split("\n")[0].split(", ")) for b in blocks]
        return {(w["model"], w["method"]): b for w, b in zip(wildcards, blocks)}

    train = jobs_of("train")
    res = {"large": train["roberta-large", "fft"], "base": train["roberta-base", "bitfit"],
           "70b": train["llama2-70b", "fft"]}
    assert "gpu=1" in res["large"] and "mem_mb=64000" in res["large"]
    assert "mem_mb=32000" in res["base"]
    assert "slurm_partition=gpu" in res["large"]
    # LLaMA2-70B's FFT over 4 nodes of 8 GPUs: one task per node, the job script on the first
    # (mpi), which srun-starts a launcher on each; one-node jobs get none of these flags.
    assert all(f in res["70b"] for f in ("gpu=32", "nodes=4", "tasks=4", "tasks_per_gpu=0", "mpi=srun"))
    assert "nodes=" not in res["large"] and "mpi=" not in res["base"]
    # Evaluation of LLaMA2-70B spreads its layers over 4 GPUs (training.eval_devices) in one job.
    evals = jobs_of("evaluate")
    assert "gpu=4" in evals["llama2-70b", "lora-llama"] and "gpu=1" in evals["llama2-7b", "lora-llama"]
    assert "nodes=" not in evals["llama2-70b", "lora-llama"]


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


def _squad_file(path, answer_start=0):
    import json

    context = "Paris is the capital of France."
    path.write_text(json.dumps({"data": [{"title": "T", "paragraphs": [{"context": context, "qas": [
        {"id": "q-ok", "question": "What is the capital?", "answers": [{"text": "Paris", "answer_start": 0}]},
        {"id": "q-bad-start", "question": "Which country?", "answers": [{"text": "France", "answer_start": answer_start}]},
    ]}]}]}))
    return path


@pytest.mark.parametrize("local", [True, False], ids=["in-process", "warm-worker"])
def test_malformed_squad_file_names_file_and_question(tmp_path, demo_config, local):
    """A SQuAD file whose answer_start does not match its text stops the download job with
    one message naming the file and the question id, and keeps earlier results."""
    bad = _squad_file(tmp_path / "bad.json", answer_start=3)
    earlier = tmp_path / "results" / "metrics.csv"
    earlier.parent.mkdir(parents=True)
    earlier.write_text("kept\n")
    demo_config["datasets"]["user_set"] = {"source": "local", "format": "squad", "files": {"test": str(bad)}}
    demo_config["execution"] = {"warm_worker": not local}
    result = run_snakemake(tmp_path, "data/raw/user_set/manifest.json", "--cores", "1", config=demo_config,
                           profile=None)
    assert result.returncode != 0
    err = result.stderr
    assert "Input error" in err and str(bad) in err and "q-bad-start" in err
    assert "Traceback" not in err.split("Input error", 1)[1].split("\n", 1)[0]
    assert earlier.read_text() == "kept\n"


def test_checksum_mismatch_shows_both_hashes(tmp_path, demo_config):
    from lwob.io import sha256_file

    good = _squad_file(tmp_path / "set.json", answer_start=24)
    wrong = "0" * 64
    demo_config["datasets"]["user_set"] = {"source": "local", "format": "squad", "optional": True,
                                           "files": {"test": str(good)}, "sha256": {"test": wrong}}
    result = run_snakemake(tmp_path, "data/raw/user_set/manifest.json", "--cores", "1", config=demo_config,
                           profile=None)
    assert result.returncode != 0
    assert "checksum mismatch" in result.stderr
    assert wrong in result.stderr and sha256_file(good) in result.stderr


def test_lint_is_clean():
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--lint", "--configfile", "config/demo.yaml"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
