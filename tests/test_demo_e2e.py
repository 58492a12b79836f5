"""The README's offline demo end to end, then the rerun semantics users rely on.

Runs in a copy of the workflow so that touching a template does not touch the checkout.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO, planned_jobs

pytestmark = pytest.mark.slow

DEMO = ["--profile", "profiles/local", "--configfile", "config/demo.yaml"]


def snakemake(workdir: Path, *args: str, timeout: int = 1200) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("demo") / "repo"
    work.mkdir()
    for item in ["Snakefile", "rules", "workflow", "reports", "config", "src", "profiles", "slurm", "envs"]:
        src = REPO / item
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, work / item)
    start = time.time()
    result = snakemake(work, "all", *DEMO)
    assert result.returncode == 0, result.stderr[-5000:]
    print(f"demo wall time: {time.time() - start:.0f} s")
    result = snakemake(work, "--report", "results/report.html", *DEMO)
    assert result.returncode == 0, result.stderr[-5000:]
    return work


def test_demo_outputs(demo):
    cfg = yaml.safe_load((demo / "config/demo.yaml").read_text())
    tex = (demo / "results/tables/table3.tex").read_text()
    for method in ["FFT", "LoRA", "AdaLoRA", "Prefix", "IA3", "BitFit"]:
        assert f"({method})" in tex
    assert "\\textbf" in tex and "\\toprule" in tex
    summary = pd.read_csv(demo / "results/summary.csv")
    acc = summary[summary.metric == "accuracy"]
    assert set(acc.n) == {len(cfg["seeds"])}
    assert len(acc) == 6 * 2 * 2  # methods x tasks x (origin, adv)
    # The adversarial sets are harder: a real drop on average.
    mean = acc.groupby("kind")["mean"].mean()
    assert mean["adv"] < mean["origin"] - 0.02, mean
    assert mean["origin"] > 0.7, mean
    runs = pd.read_csv(demo / "results/runs.csv")
    assert len(runs) == 6 * 2 * 5
    assert (runs.filter(like="trainable").iloc[:, 0] > 0).all()
    for ext in ["pdf", "png"]:
        assert (demo / f"results/figures/table3.{ext}").stat().st_size > 1000
    html = (demo / "results/report.html").read_text(errors="replace")
    assert "table3" in html and len(html) > 10000


def test_nothing_to_do_after_a_complete_run(demo):
    result = snakemake(demo, "all", "-n", *DEMO)
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_learning_rate_change_reruns_only_that_method(demo):
    config = yaml.safe_load((demo / "config/demo.yaml").read_text())
    config["methods"]["lora"]["training"]["lr"] = 1.0e-3
    changed = demo / "config/demo-lr.yaml"
    changed.write_text(yaml.safe_dump(config, sort_keys=False))
    result = snakemake(demo, "all", "-n", "--profile", "profiles/local", "--configfile", str(changed))
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = planned_jobs(result)
    n_lora = len(config["seeds"]) * len(config["tasks"])
    assert jobs.get("train") == n_lora and jobs.get("evaluate") == n_lora, jobs
    assert "tokenize" not in jobs and "download" not in jobs
    out = result.stdout + result.stderr
    trained = re.findall(r"rule train:.*?wildcards: ([^\n]*)", out, flags=re.S)
    assert len(trained) == n_lora and all("method=lora" in w for w in trained), trained


def test_template_edit_reruns_only_tables(demo):
    template = demo / "reports/templates/robustness_table.tex.j2"
    template.write_text(template.read_text() + "\n")
    result = snakemake(demo, "all", "-n", *DEMO)
    assert result.returncode == 0
    assert planned_jobs(result) == {"table": 1, "all": 1}
