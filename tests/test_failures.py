"""lwob.report.failures: failed jobs are recorded and shown ("err") instead of vanishing, and a
failed run is still retried by the next run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import SYNTHETIC_TASKS, load_config, planned_jobs, run_snakemake
from lwob.report import failures
from lwob.plan.config import Run

TEMPLATE = Path(__file__).resolve().parents[1] / "reports" / "templates" / "robustness_table.tex.j2"


def test_record_path_one_folder_per_wildcard():
    path = failures.record_path("train", {"model": "m", "task": "t/x", "method": "..", "seed": "0"}, "root")
    assert path == Path("root/train/m/t%2Fx/%2E%2E/0.json")
    assert failures.record_path("aggregate", {}, "root") == Path("root/aggregate/job.json")


def test_error_is_the_last_line_of_the_log(tmp_path):
    log = tmp_path / "job.log"
    log.write_text("job train {...}\nTraceback (most recent call last):\n  File x\nValueError: bad thing\n\n")
    assert failures.error_from_log(log) == "ValueError: bad thing"
    log.write_text("job download\nInput error: data/x.tsv: no rows\ndone in 1.0 s\n")
    assert failures.error_from_log(log) == "Input error: data/x.tsv: no rows"
    assert "no error message" in failures.error_from_log(tmp_path / "absent.log")
    assert "no error message" in failures.error_from_log(None)


RUNS = [Run("m", "sst2", x, s) for x in ("fft", "lora") for s in (0, 1)]


def _train_failure(method="lora", seed=1, log="logs/train.log"):
    blocked = [f"results/runs/m/sst2/{method}/seed{seed}/train.json", f"results/eval/m/sst2/{method}/seed{seed}.json",
               "results/summary.csv"]
    return failures.JobOutcome("train", {"model": "m", "task": "sst2", "method": method, "seed": str(seed)},
                               [log], blocked)


def test_records_are_written_read_and_forgotten(tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs/train.log").write_text("RuntimeError: boom\n")
    root = tmp_path / "failed"
    outcome = _train_failure(log=str(tmp_path / "logs/train.log"))
    other = failures.JobOutcome("download", {"dataset": "d"}, [], [])
    failures.record_failures([outcome, other], RUNS, root)
    records = failures.read_failures(root)
    assert [r["rule"] for r in records] == ["download", "train"]
    train = records[1]
    assert train["status"] == "failed" and train["error"] == "RuntimeError: boom"
    assert train["log"] == [str(tmp_path / "logs/train.log")]
    assert train["runs"] == [{"model": "m", "task": "sst2", "method": "lora", "seed": 1}]  # the run it blocked
    assert records[0]["runs"] == []
    assert failures.failed_runs(records) == [{"model": "m", "task": "sst2", "method": "lora", "seed": 1,
                                              "rule": "train", "status": "failed", "error": "RuntimeError: boom",
                                              "log": str(tmp_path / "logs/train.log")}]
    # The job succeeds later: its record goes, with the folders it leaves empty; others stay.
    failures.forget_failures([failures.JobOutcome("train", dict(outcome.wildcards))], root)
    assert [r["rule"] for r in failures.read_failures(root)] == ["download"]
    assert not (root / "train").exists() and root.is_dir()


def _eval_record(path: Path, method: str, seed: int, accuracy: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    metrics = {es: {"accuracy": accuracy, "n": 10, **spec} for es, spec in SYNTHETIC_TASKS["sst2"]["eval_sets"].items()}
    path.write_text(json.dumps({"model": "m", "task": "sst2", "method": method, "seed": seed, "metrics": metrics}))


def test_tables_render_from_finished_runs_with_failures(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for method, seed, acc in (("fft", 0, 0.8), ("fft", 1, 0.9), ("lora", 0, 0.7), ("lora", 1, 0.1)):
        _eval_record(tmp_path / f"results/eval/m/sst2/{method}/seed{seed}.json", method, seed, acc)
    config = {"seeds": [0, 1], "tasks": {"sst2": SYNTHETIC_TASKS["sst2"]}, "models": {"m": {}},
              "methods": {"fft": {"type": "fft"}, "lora": {"type": "lora"}}}
    studies = {"t3": {"layout": "robustness_table", "models": ["m"], "methods": ["fft", "lora"], "tasks": ["sst2"]},
               "other": {"layout": "robustness_table", "models": ["m"], "methods": ["fft"], "tasks": ["sst2"]}}
    failed = [{"model": "m", "task": "sst2", "method": "lora", "seed": 1, "rule": "train", "status": "failed",
               "error": "boom", "log": "logs/x.log"}]
    # lora seed 1's evaluation file is an old one: it must not count (its run failed now).
    written = failures.render_failure_tables(failed, runs=RUNS, studies=studies, config=config, skipped={},
                                             template_path=TEMPLATE, pending_outputs={"results/eval/m/sst2/fft/seed1.json"})
    # Only the study with a failed run; beside the rule's tables, never over them (Snakemake would
    # take a table written outside its rule for up to date and not retry the failed run).
    assert written == [Path("results/failed/tables/t3.tex")] and not (tmp_path / "results/tables").exists()
    import pandas as pd

    table = pd.read_csv(tmp_path / "results/failed/tables/t3.csv")
    lora = table[table.method == "lora"]
    assert (lora["cell"] == "err").all() and lora["failure"].str.contains("logs/x.log").all()
    assert (lora["n"] == 1).all() and lora["mean"].eq(70).all()  # the old seed-1 file is left out
    fft = table[table.method == "fft"]
    assert (fft["cell"] == "80.00").all()  # a pending (not yet rerun) evaluation is left out too
    assert "err: a run of the cell failed" in (tmp_path / "results/failed/tables/t3.tex").read_text()

    # The failure is recorded; once its job succeeds the record and the study's table go.
    job = failures.JobOutcome("train", {"model": "m", "task": "sst2", "method": "lora", "seed": "1"}, [],
                              ["results/eval/m/sst2/lora/seed1.json"])
    failures.record_failures([job], RUNS)
    failures.prune_failure_tables(studies, config)
    assert (tmp_path / "results/failed/tables/t3.tex").is_file()
    failures.forget_failures([job])
    failures.prune_failure_tables(studies, config)
    assert not (tmp_path / "results/failed").exists()


# --------------------------------------------------------------------------- a real --keep-going run

PAYLOAD = "<img src=x onerror=alert(1)>"


def _config(lora_lr: float) -> dict:
    config = load_config("demo.yaml")
    config["seeds"] = [0]
    config["training"]["epochs"] = 1
    config["datasets"] = {"demo_sentiment": {**config["datasets"]["demo_sentiment"], "n_train": 48,
                                             "n_validation": 16, "n_test": 32}}
    config["tasks"] = {"demo-sst2": config["tasks"]["demo-sst2"]}
    lora = {**config["methods"]["lora"], "training": {"lr": lora_lr},
            "display": f"LoRA\n\n.. raw:: html\n\n   {PAYLOAD}\n"}  # and the report must show it as text
    config["methods"] = {"bitfit": config["methods"]["bitfit"], "lora": lora}
    config["models"] = {"minilm": config["models"]["minilm"]}
    config["studies"] = {"table3": {**config["studies"]["table3"], "methods": ["bitfit", "lora"],
                                    "tasks": ["demo-sst2"]}}
    for key in ("selection", "increments", "resource_study"):
        config.pop(key, None)
    config["reference"] = None
    return config


def _report_data(html: str, script_id: str, var: str):
    """The JSON a Snakemake report assigns in `<script id="..."> var <var> = ...;`."""
    m = re.search(rf'<script id="{script_id}">\s*var {var} = (.*?);\s*</script>', html, flags=re.S)
    return json.loads(m.group(1))


TABLE = "results/tables/table3.tex"


@pytest.mark.slow
def test_failed_run_under_keep_going_is_shown_then_retried(tmp_path):
    good, diverging = _config(5.0e-3), _config(1.0e30)  # LoRA's loss diverges at lr 1e30
    first = run_snakemake(tmp_path, TABLE, "--cores", "2", config=good, profile=None)
    assert first.returncode == 0, first.stderr[-3000:]
    table_before = (tmp_path / TABLE).read_text()

    # LoRA's training fails, BitFit's run stands: the failure is recorded and shown, not dropped.
    failed = run_snakemake(tmp_path, TABLE, "--cores", "2", "--keep-going", config=diverging, profile=None)
    assert failed.returncode != 0
    log = "logs/train/minilm/demo-sst2/lora/seed0.log"
    assert "1 job(s) failed" in failed.stderr and log in failed.stderr
    records = failures.read_failures(tmp_path / "results/failed")
    assert len(records) == 1 and records[0]["rule"] == "train" and records[0]["log"] == [log]
    assert "NaN or infinite" in records[0]["error"]
    latex = (tmp_path / "results/failed/tables/table3.tex").read_text()
    assert re.search(r"LoRA .*\(.*\) & err & err & err & err \\\\", latex)
    assert re.search(r"\(BitFit\) & \d+\.\d\d & \d+\.\d\d", latex)
    assert log in latex and "NaN or infinite" in latex
    assert (tmp_path / TABLE).read_text() == table_before  # the rule's table is left to its rule

    # Never up to date: Snakemake deleted the failed training's outputs, and would not rebuild the
    # run's old evaluation and the table for a missing input; they are marked incomplete, so the
    # next run plans the failed training again (the profiles set --rerun-incomplete), and a run
    # without that flag names them instead of saying "Nothing to be done".
    assert "earlier output(s) that depend on them are marked incomplete" in failed.stderr
    plan = run_snakemake(tmp_path, TABLE, "-n", "--rerun-incomplete", config=diverging, profile=None)
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert planned_jobs(plan).get("train") == 1 and planned_jobs(plan).get("table") == 1
    strict = run_snakemake(tmp_path, TABLE, "-n", config=diverging, profile=None)
    assert "Nothing to be done" not in strict.stdout + strict.stderr
    assert "results/eval/minilm/demo-sst2/lora/seed0.json" in strict.stdout + strict.stderr

    # The HTML report lists the failed job; the RST display shows as text, in its text and captions.
    # (--rerun-incomplete, as the profiles set it: the report's DAG includes the marked files.)
    report = run_snakemake(tmp_path, TABLE, "--report", "report.html", "--rerun-incomplete", config=diverging,
                           profile=None)
    assert report.returncode == 0, report.stderr[-3000:]
    html = (tmp_path / "report.html").read_text()
    description = _report_data(html, "workflow-desc", "workflow_desc")
    assert "1 job(s) failed in the last run" in description and "NaN or infinite" in description
    assert "<img" not in description and "&lt;img src=x onerror=alert(1)&gt;" in description
    captions = [r["caption"] for r in _report_data(html, "results", "results").values()]
    assert captions and not any("<img" in c for c in captions)

    # Fixed: the run succeeds, its record and the failure table go.
    fixed = run_snakemake(tmp_path, TABLE, "--cores", "2", "--rerun-incomplete", config=good, profile=None)
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    assert not (tmp_path / "results/failed").exists()
    assert not re.search(r"& err\b", (tmp_path / TABLE).read_text())
    done = run_snakemake(tmp_path, TABLE, "-n", config=good, profile=None)
    assert "Nothing to be done" in done.stdout + done.stderr
