"""Shared fixtures: repository paths, the shared data folder and a Snakemake runner."""

from __future__ import annotations

import atexit
import copy
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


# The SLURM executor plugin runs `scontrol show config` whenever Snakemake is imported (every
# `snakemake` process, whatever its executor). Where SLURM's client is installed but no
# controller answers (this machine once tests/test_slurm_cluster.py has stopped its cluster),
# that call waits 9 s before failing: 9 s on every dry run. For the session, a stub
# `scontrol` that fails at once goes first on PATH; the SLURM tests run the real one
# (real_slurm_env()). Nothing but the plugin's help text reads that call's answer.
SLURM_STUB_DIR: str | None = None
if shutil.which("scontrol"):
    SLURM_STUB_DIR = tempfile.mkdtemp(prefix="lwob-scontrol-stub-")
    _stub = Path(SLURM_STUB_DIR) / "scontrol"
    _stub.write_text("#!/bin/sh\n# tests/conftest.py: no SLURM controller for this test session\nexit 1\n")
    _stub.chmod(0o755)
    os.environ["PATH"] = os.pathsep.join([SLURM_STUB_DIR, os.environ.get("PATH", "")])
    atexit.register(shutil.rmtree, SLURM_STUB_DIR, True)


def real_slurm_env(env: dict | None = None) -> dict:
    """`env` (default: this process's) with the real SLURM commands on PATH (no stub)."""
    env = dict(os.environ if env is None else env)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != SLURM_STUB_DIR)
    return env


# Two tasks in the shape the table/figure code sees: one column (sst2), and one task that
# feeds two columns (mnli matched and mismatched), as the paper's Table 3 has.
SYNTHETIC_TASKS = {
    "sst2": {"display": "SST-2", "eval_sets": {
        "origin": {"kind": "origin", "column": "sst2"}, "adv": {"kind": "adv", "column": "sst2"}}},
    "mnli": {"display": "MNLI", "eval_sets": {
        "origin": {"kind": "origin", "column": "mnli"}, "adv": {"kind": "adv", "column": "mnli"},
        "origin-mm": {"kind": "origin", "column": "mnli-mm"}, "adv-mm": {"kind": "adv", "column": "mnli-mm"}}},
}


def pytest_collection_modifyitems(config, items):
    """The full-size demo's tests (marker `demo`, about 16 minutes) run only when the -m
    expression names `demo` (pytest -m demo, make test-demo); any other selection, such as
    -m "not slurm", leaves them out."""
    if "demo" in (config.getoption("markexpr") or ""):
        return
    deselected = [item for item in items if item.get_closest_marker("demo") is not None]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item.get_closest_marker("demo") is None]


def load_config(name: str) -> dict:
    with open(REPO / "config" / name) as f:
        return yaml.safe_load(f)


def reduced_demo_config() -> dict:
    """The demo at CI size: the same studies, methods, tasks and stages as config/demo.yaml,
    with two seeds (the statistics, the claims and the stability checks still run), half the
    validation and test examples, two thirds of the encoder's QA training examples, and a
    one-step resource probe. The decoder (SmolLM2, about 10x MiniLM's compute per token) trains
    on half of its generation examples for one epoch, and on a third of its QA questions.
    The encoder's training steps per run are otherwise kept: fewer leave the classification
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
            if dataset["generator"] == "qa":  # the longer inputs
                dataset["n_train"] = dataset["n_train"] * 2 // 3
            if dataset["generator"] in ("meaning", "sql", "arithmetic"):  # the decoder's (10x MiniLM's compute)
                dataset["n_train"] = dataset["n_train"] // 2
    for task in config["tasks"].values():
        if "max_examples" in task["train"]:  # Table 5's decoder QA task
            task["train"]["max_examples"] = task["train"]["max_examples"] // 3
        if task["kind"] == "generation":  # Table 1's: one epoch still learns the output formats
            task["training"] = {**task.get("training", {}), "epochs": 1}
    if "resource_study" in config:
        config["resource_study"]["steps"] = 1
    return config


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not available: {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(scope="module")
def tokenized(tmp_path_factory) -> Path:
    """A synthetic tokenized SST-2-like task for the demo model (tests/training_data.py)."""
    from training_data import write_tokenized

    return write_tokenized(tmp_path_factory.mktemp("tok") / "minilm" / "demo-sst2",
                           {"train": 48, "validation": 24, "origin": 30, "adv": 20}, unlabelled="adv")


@pytest.fixture(scope="session")
def publication_tools():
    """pdflatex (with booktabs) and headless Chromium, as found or installed with apt-get
    (tests/publishing.py). Tools that cannot be had fail the test: never a skip."""
    from publishing import install_publication_tools

    tools = install_publication_tools()
    if isinstance(tools, str):
        pytest.fail(f"{tools} (deselect the TeX/Chromium tests with -m 'not tex')", pytrace=False)
    return tools


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


# --------------------------------------------------------------------------- the warm worker
TESTS = Path(__file__).resolve().parent


def start_server(sock: Path, patch: str = "") -> subprocess.Popen:
    """A warm server of the test's own at `sock`, without the heavy preloads (fast to start);
    `patch` is Python run in the server before it serves (e.g. replacing a function). Its
    jobs may name functions of the test modules (tests/ is on its PYTHONPATH)."""
    code = ("import os, sys\nfrom pathlib import Path\nfrom lwob.plan import warm\n" + patch +
            "\nwarm.serve(Path(sys.argv[1]), idle=120, preload=())\n")
    log = open(sock.with_suffix(".log"), "a")
    proc = subprocess.Popen([sys.executable, "-c", code, str(sock)], stdout=log, stderr=log,
                            stdin=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(REPO / "src")])})
    deadline = time.monotonic() + 60
    while not sock.exists():
        assert proc.poll() is None, sock.with_suffix(".log").read_text()
        assert time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.05)
    return proc


@pytest.fixture(scope="module")
def server_socket(tmp_path_factory):
    """A warm server for the module (tests/test_warm_kill.py, test_warm_security.py)."""
    sock = tmp_path_factory.mktemp("warm") / "w.sock"
    proc = start_server(sock)
    yield sock
    proc.kill()
    proc.wait()
