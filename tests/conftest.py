"""Shared fixtures: repository paths, the shared data folder and a Snakemake runner."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


# Two tasks in the shape the table/figure code sees: one column (sst2), and one task that
# feeds two columns (mnli matched and mismatched), as the paper's Table 3 has.
SYNTHETIC_TASKS = {
    "sst2": {"display": "SST-2", "eval_sets": {
        "origin": {"kind": "origin", "column": "sst2"}, "adv": {"kind": "adv", "column": "sst2"}}},
    "mnli": {"display": "MNLI", "eval_sets": {
        "origin": {"kind": "origin", "column": "mnli"}, "adv": {"kind": "adv", "column": "mnli"},
        "origin-mm": {"kind": "origin", "column": "mnli-mm"}, "adv-mm": {"kind": "adv", "column": "mnli-mm"}}},
}


def load_config(name: str) -> dict:
    with open(REPO / "config" / name) as f:
        return yaml.safe_load(f)


def reduced_demo_config() -> dict:
    """The demo at CI size: the same studies, methods, tasks and stages as config/demo.yaml,
    with two seeds (the statistics, the claims and the stability checks still run), half the
    validation and test examples, two thirds of the QA training examples and a one-step
    resource probe. Training steps per run are otherwise kept: fewer leave the classification
    runs at chance. Derived, not a second config, so that what CI proves is what `make demo`
    runs; the full demo is `pytest -m demo`."""
    config = load_config("demo.yaml")
    config["seeds"] = config["seeds"][:2]
    for study in config["studies"].values():
        if "seeds" in study:
            study["seeds"] = study["seeds"][:2]
    for dataset in config["datasets"].values():
        if dataset["source"] == "demo":
            for key in ("n_validation", "n_test"):
                dataset[key] = max(16, dataset[key] // 2)
            if dataset["generator"] == "qa":
                dataset["n_train"] = dataset["n_train"] * 2 // 3
    if "resource_study" in config:
        config["resource_study"]["steps"] = 1
    return config


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not available: {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture
def demo_config() -> dict:
    return copy.deepcopy(load_config("demo.yaml"))


@pytest.fixture
def paper_config() -> dict:
    return copy.deepcopy(load_config("config.yaml"))


def run_snakemake(workdir: Path, *args: str, config: dict | None = None, timeout: int = 900,
                  profile: str | None = "profiles/local") -> subprocess.CompletedProcess:
    """Run the repository's workflow in `workdir` (results land there, not in the repo)."""
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir)]
    cmd += list(args)  # targets before --configfile, which takes several values
    if profile:
        cmd += ["--profile", str(REPO / profile)]
    if config is not None:
        cfg_path = workdir / "test-config.yaml"
        cfg_path.write_text(yaml.safe_dump(config, sort_keys=False))
        cmd += ["--configfile", str(cfg_path)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)


def planned_jobs(result: subprocess.CompletedProcess) -> dict[str, int]:
    """Parse the job-count table a dry run prints: {rule: count}."""
    counts: dict[str, int] = {}
    in_table = False
    for line in (result.stdout + result.stderr).splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            in_table = True
            continue
        if in_table:
            if len(parts) == 2 and parts[1].isdigit():
                if parts[0] != "total":
                    counts[parts[0]] = int(parts[1])
            elif parts and not set(line.strip()) <= {"-", " "}:
                in_table = False
    return counts
