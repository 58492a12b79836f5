"""The SLURM profile (`slurm/config.yaml`) against a real single-node SLURM cluster.

A session fixture installs (tools/slurm/install.sh: Debian packages slurmctld, slurmd,
slurm-client, munge) and starts (tools/slurm/start.sh) a private cluster with partitions
`cpu` and `gpu` and fake GPUs, and stops it at the end (tools/slurm/stop.sh). Needs root
and apt-get: without them, or when the install fails, the tests fail (never skip); deselect
them with `pytest -m 'not slurm'`.

The profile is the user's production profile (array jobs included; SLURM queues what the
two-core node cannot run at once); the runs here add only these overrides:
- `--slurm-init-seconds-before-status-checks 2` (default 40 s before the first status check);
- `--slurm-status-command squeue`: the test cluster has no slurmdbd, so no sacct;
- `--slurm-keep-successful-logs`: keep the SLURM job logs to inspect them;
- in the workflow config: `resources.gpu_partition: gpu`, `cpu_partition: cpu`, the demo
  model asking for one GPU (the demo model asks for none) so that training and evaluation go
  to the GPU partition with a (fake) GPU, and `execution.warm_worker: false` (the warm
  worker is for local runs; cluster jobs run cold in their own allocation).
Every Snakemake run is wrapped in `timeout -k`: a status-polling misconfiguration makes the
executor hang silently instead of failing.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, load_config, real_slurm_env

# Each Snakemake run has its own limit (RUN_LIMIT_S); a test runs at most two at once.
pytestmark = [pytest.mark.slow, pytest.mark.slurm, pytest.mark.timeout(1800)]

TOOLS = REPO / "tools" / "slurm"
STATE = Path(os.environ.get("LWOB_SLURM_STATE", "/var/lib/lwob-slurm"))
SLURM_OVERRIDES = [
    "--slurm-init-seconds-before-status-checks", "2",
    "--slurm-status-command", "squeue",
    "--slurm-keep-successful-logs",
]
RUN_LIMIT_S = 600  # per Snakemake run; the whole file takes a few minutes


def _cannot_run() -> str | None:
    if os.name != "posix" or os.geteuid() != 0:
        return "needs root: installs Debian packages and runs munged, slurmctld and slurmd"
    if not shutil.which("apt-get") or not shutil.which("dpkg-query"):
        return "needs apt-get (Debian or Ubuntu) to install SLURM"
    if not shutil.which("timeout"):
        return "needs coreutils timeout"
    conf = Path("/etc/slurm/slurm.conf")
    if conf.exists() and "lwob tools/slurm/start.sh" not in conf.read_text(errors="replace"):
        return f"{conf} belongs to another SLURM installation: not touching it"
    return None


def _daemons_running() -> bool:
    for name in ("munged", "slurmctld", "slurmd"):
        pidfile = STATE / "pids" / f"{name}.pid"
        try:
            pid = pidfile.read_text().strip()
            if Path(f"/proc/{pid}/comm").read_text().strip() != name:
                return False
        except OSError:
            return False
    return True


@pytest.fixture(scope="session")
def slurm_cluster():
    reason = _cannot_run()
    if reason:
        pytest.fail(f"{reason} (deselect the SLURM tests with -m 'not slurm')", pytrace=False)
    install = subprocess.run([str(TOOLS / "install.sh")], capture_output=True, text=True, timeout=900, env=_env())
    assert install.returncode == 0, f"could not install SLURM with apt-get: {(install.stdout + install.stderr)[-1500:]}"
    already_running = _daemons_running()  # started by hand before the tests: leave it running
    start = subprocess.run([str(TOOLS / "start.sh")], capture_output=True, text=True, timeout=180, env=_env())
    assert start.returncode == 0, start.stdout + start.stderr
    yield
    if not already_running:
        subprocess.run([str(TOOLS / "stop.sh")], capture_output=True, text=True, timeout=120, env=_env())


def _env() -> dict:
    env = {k: v for k, v in real_slurm_env().items() if not k.startswith("LWOB_") or k == "LWOB_SLURM_STATE"}
    # Jobs run `python -m snakemake` and the rules' scripts with this interpreter.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["HF_HUB_OFFLINE"] = "1"
    return env


def _snakemake(workdir: Path, profile: Path, *args: str, snakefile: Path | None = None) -> list[str]:
    cmd = ["timeout", "-k", "10", str(RUN_LIMIT_S), sys.executable, "-m", "snakemake"]
    if snakefile is not None:
        cmd += ["--snakefile", str(snakefile)]
    return cmd + ["--directory", str(workdir), "--profile", str(profile), *args]


def _run(cmd: list[str], workdir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=workdir, env=_env(), capture_output=True, text=True,
                          timeout=RUN_LIMIT_S + 60)


def _slurm_jobs(workdir: Path) -> list[dict]:
    """The cluster's jobs submitted from `workdir`, oldest first, without sacct: slurmctld
    keeps finished jobs for MinJobAge (start.sh sets 30 minutes)."""
    out = subprocess.run(["scontrol", "show", "job", "--oneliner"], capture_output=True, text=True,
                         check=True, env=_env()).stdout
    jobs = [dict(re.findall(r"(\w+)=(\S*)", line)) for line in out.splitlines() if line.strip()]
    jobs = [j for j in jobs if j.get("WorkDir") == str(workdir)]
    return sorted(jobs, key=lambda j: int(j["JobId"]))


def _small_demo_config() -> dict:
    """config/demo.yaml cut to Table 3 with FFT and LoRA, seeds 0 and 42, SST-2 (demo), one epoch."""
    config = load_config("demo.yaml")
    config["seeds"] = [0, 42]
    config["execution"] = {"warm_worker": False}
    config["training"]["epochs"] = 1
    config["datasets"] = {"demo_sentiment": config["datasets"]["demo_sentiment"]}
    config["tasks"] = {"demo-sst2": config["tasks"]["demo-sst2"]}
    config["methods"] = {m: config["methods"][m] for m in ("fft", "lora")}
    config["models"] = {"minilm": config["models"]["minilm"]}
    config["models"]["minilm"]["resources"]["gpus"] = 1  # exercise the GPU partition and gres
    config["resources"].update(gpu_partition="gpu", cpu_partition="cpu")
    table3 = config["studies"]["table3"]
    table3.update(methods=["fft", "lora"], tasks=["demo-sst2"])
    config["studies"] = {"table3": table3}  # no QA studies (table4, table5)
    # Nor the demo's grid selection, Figure 1 and resource study (they name tasks and methods
    # cut here), nor the paper's numbers (the side-by-side table needs none of the cluster).
    for key in ("selection", "increments", "resource_study"):
        config.pop(key, None)
    config["reference"] = None
    return config


def _metrics(path: Path) -> dict[tuple, str]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    key = ("model", "task", "method", "seed", "eval_set", "metric")
    return {tuple(r[k] for k in key): r["value"] for r in rows}


def test_demo_on_slurm_matches_local_run(slurm_cluster, tmp_path):
    config = yaml.safe_dump(_small_demo_config(), sort_keys=False)
    on_slurm, local = tmp_path / "slurm", tmp_path / "local"
    for d in (on_slurm, local):
        d.mkdir()
        (d / "config.yaml").write_text(config)
    snakefile = REPO / "Snakefile"

    # The local run goes alongside: it fills the time the SLURM run spends polling.
    local_cmd = _snakemake(local, REPO / "profiles" / "local", "all", "--configfile", "config.yaml",
                           snakefile=snakefile)
    local_proc = subprocess.Popen(local_cmd, cwd=local, env=_env(), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
    try:
        slurm = _run(_snakemake(on_slurm, REPO / "slurm", "all", "--configfile", "config.yaml",
                                *SLURM_OVERRIDES, snakefile=snakefile), on_slurm)
        local_out, _ = local_proc.communicate(timeout=RUN_LIMIT_S + 60)
    finally:
        if local_proc.poll() is None:
            local_proc.kill()
    assert slurm.returncode == 0, (slurm.stdout + slurm.stderr)[-5000:]
    assert local_proc.returncode == 0, local_out[-5000:]

    # Same numbers, bit for bit: CPU training is deterministic wherever the job runs.
    got, want = _metrics(on_slurm / "results/metrics.csv"), _metrics(local / "results/metrics.csv")
    assert len(want) == 2 * 2 * 2  # methods x seeds x (origin, adv), one accuracy each
    assert got == want

    # Compute jobs ran as SLURM jobs; downloads, aggregation, tables and figures did not.
    jobs = _slurm_jobs(on_slurm)
    by_rule: dict[str, list[dict]] = {}
    for job in jobs:
        rule = re.match(r"rule_(\w+?)(_wildcards_|$)", job["Comment"]).group(1)
        by_rule.setdefault(rule, []).append(job)
    assert {r: len(js) for r, js in by_rule.items()} == {"tokenize": 1, "tokenize_eval": 2, "train": 4, "evaluate": 4,
                                                        "statistics": 1}
    assert all(j["JobState"] == "COMPLETED" for j in jobs), [(j["JobId"], j["JobState"]) for j in jobs]
    for job in by_rule["train"] + by_rule["evaluate"]:
        assert job["Partition"] == "gpu"
        assert job.get("TresPerJob", "").endswith("gpu:1"), job  # --gpus=1
        # the model's mem_mb, first attempt (an array adds the plugin's few-MB payload fudge)
        assert 2000 <= int(job["MinMemoryNode"].rstrip("M")) < 2010, job
    for job in by_rule["tokenize"] + by_rule["tokenize_eval"] + by_rule["statistics"]:
        assert job["Partition"] == "cpu" and "gpu" not in job.get("TresPerJob", "")

    # The four trainings (2 methods x 2 seeds, ready together) went out as one array job.
    train_arrays = {j.get("ArrayJobId") for j in by_rule["train"]}
    assert len(train_arrays) == 1 and None not in train_arrays, by_rule["train"]
    assert sorted(int(j["ArrayTaskId"]) for j in by_rule["train"]) == [1, 2, 3, 4]
    n_sbatch = len({j.get("ArrayJobId") or j["JobId"] for j in jobs})
    assert n_sbatch < len(jobs), (n_sbatch, len(jobs))

    # Each job's SLURM log is where the executor said, and the training ran inside it.
    def log_name(job):
        return f"{job['ArrayJobId']}_{job['ArrayTaskId']}" if job.get("ArrayJobId") else job["JobId"]

    logs = {p.stem: p for p in (on_slurm / ".snakemake/slurm_logs").rglob("*.log")}
    assert set(logs) == {log_name(j) for j in jobs}
    for job in by_rule["train"]:
        log = logs[log_name(job)]
        assert log.parent.name == "rule_train"  # arrays: rule_<rule>/<arrayid>_<task>.log
        text = log.read_text()
        assert "--executor slurm-jobstep" in text and "rule train:" in text
    train_log = (on_slurm / "logs/train/minilm/demo-sst2/fft/seed0.log").read_text()
    assert "(own process)" in train_log


SNAKEFILE_FLAKY = '''
rule all:
    input:
        "flaky.txt",


# Fails on its first attempt and succeeds on its second; memory and runtime grow with the
# attempt, as the workflow's job_resource() makes them.
rule flaky:
    output:
        "flaky.txt",
    resources:
        mem_mb=lambda wildcards, attempt: 300 * attempt,
        runtime=lambda wildcards, attempt: 5 * attempt,
        slurm_partition="cpu",
    shell:
        """
        if [ ! -e attempt1.marker ]; then
            echo "$SLURM_JOB_ID" > attempt1.marker
            exit 1
        fi
        echo "$SLURM_JOB_ID" > {output}
        """
'''


def test_failed_job_is_resubmitted_with_more_memory(slurm_cluster, tmp_path):
    (tmp_path / "Snakefile").write_text(SNAKEFILE_FLAKY)
    result = _run(_snakemake(tmp_path, REPO / "slurm", "--retries", "1", *SLURM_OVERRIDES), tmp_path)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]

    first, second = _slurm_jobs(tmp_path)
    assert (first["JobState"], second["JobState"]) == ("FAILED", "COMPLETED")
    assert (tmp_path / "attempt1.marker").read_text().strip() == first["JobId"]
    assert (tmp_path / "flaky.txt").read_text().strip() == second["JobId"]
    # --mem and -t of each submission: doubled on the retry
    assert (first["MinMemoryNode"], second["MinMemoryNode"]) == ("300M", "600M")
    assert (first["TimeLimit"], second["TimeLimit"]) == ("00:05:00", "00:10:00")


def _kill_resume_config() -> dict:
    """The small demo cut to FFT, seeds 0 and 42, long enough (epochs) to be killed mid-way;
    a periodic checkpoint every few seconds marks the moment training is under way."""
    config = _small_demo_config()
    config["training"]["epochs"] = 8
    config["methods"] = {"fft": config["methods"]["fft"]}
    config["studies"]["table3"]["methods"] = ["fft"]
    config.pop("increments", None)  # weight analysis of LoRA runs: none here
    config["execution"]["checkpoint_minutes"] = 0.05  # not a param: never changes results
    return config


def _wait_for(predicate, timeout_s: float, what: str, proc: subprocess.Popen, poll_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the workflow ended while waiting for {what}: {proc.stdout.read()[-3000:]}"
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def test_training_killed_through_slurm_resumes_from_checkpoint(slurm_cluster, tmp_path):
    """SIGTERM sent by SLURM to a running training array reaches the Python training
    processes: they save a checkpoint at a step boundary and exit 143, the profile's retries
    resubmit them (attempt 2, twice the memory), and they resume from that checkpoint to the
    weights and metrics of an uninterrupted local run, bit for bit.

    The plugin runs array task 1 in the batch step itself and the other tasks through `srun`
    in a job step, and SLURM reaches them by two routes (docs/CLUSTER.md, "Preemption"):
    - `--signal=TERM@N` (the warning the docs recommend) signals the tasks of job steps:
      `scancel --signal=TERM` does the same here and reaches task 2's training;
    - at the time limit or a preemption every process of the batch step gets SIGTERM:
      `scancel --signal=TERM --full` does that here and reaches task 1's training, through a
      batch script that survives the signal (lwob.plan.slurm.SURVIVE_SIGTERM).
    """
    config = yaml.safe_dump(_kill_resume_config(), sort_keys=False)
    on_slurm, local = tmp_path / "slurm", tmp_path / "local"
    for d in (on_slurm, local):
        d.mkdir()
        (d / "config.yaml").write_text(config)
    snakefile = REPO / "Snakefile"
    runs = [f"results/runs/minilm/demo-sst2/fft/seed{s}" for s in (0, 42)]
    logs = [on_slurm / f"logs/train/minilm/demo-sst2/fft/seed{s}.log" for s in (0, 42)]

    # The uninterrupted local run first: alongside the SLURM run it competes for the two cores
    # with the training that is to be killed and, on a loaded machine, ran past its limit.
    local_result = _run(_snakemake(local, REPO / "profiles" / "local", "all", "--configfile", "config.yaml",
                                   "--cores", "2", snakefile=snakefile), local)
    assert local_result.returncode == 0, (local_result.stdout + local_result.stderr)[-5000:]

    cmd = _snakemake(on_slurm, REPO / "slurm", "all", "--configfile", "config.yaml", *SLURM_OVERRIDES,
                     snakefile=snakefile)
    proc = subprocess.Popen(cmd, cwd=on_slurm, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)

    saved: set = set()  # logs seen with the line (a retry starts its job's log afresh)

    def saved_on_sigterm():
        saved.update(log for log in logs if log.exists() and "SIGTERM: saved" in log.read_text())
        return saved

    try:
        def training_array():
            train = [j for j in _slurm_jobs(on_slurm) if j["Comment"].startswith("rule_train")]
            return train if len(train) == 2 and all(j["JobState"] == "RUNNING" for j in train) else None

        train = _wait_for(training_array, 300, "both training jobs RUNNING as one array", proc)
        array_id = train[0]["ArrayJobId"]
        assert len({j["ArrayJobId"] for j in train}) == 1
        # both trainings are inside their step loop once a periodic checkpoint exists
        _wait_for(lambda: all((on_slurm / r / "checkpoint.pt").exists() for r in runs), 300,
                  "a periodic checkpoint of each run", proc)
        assert proc.poll() is None
        steps = subprocess.run(["scancel", "--signal=TERM", array_id], capture_output=True, text=True)
        assert steps.returncode == 0, steps.stderr
        _wait_for(lambda: len(saved_on_sigterm()) == 1, 60, "the job step's training to save on SIGTERM", proc)
        batch = subprocess.run(["scancel", "--signal=TERM", "--full", array_id], capture_output=True, text=True)
        assert batch.returncode == 0, batch.stderr
        _wait_for(lambda: len(saved_on_sigterm()) == 2, 60, "the batch step's training to save on SIGTERM", proc)
        out, _ = proc.communicate(timeout=RUN_LIMIT_S + 60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-5000:]

    jobs = [j for j in _slurm_jobs(on_slurm) if j["Comment"].startswith("rule_train")]
    first, retries = jobs[:2], jobs[2:]
    assert [j["JobState"] for j in first] == ["FAILED", "FAILED"], [(j["JobId"], j["JobState"]) for j in jobs]
    assert len(retries) == 2 and all(j["JobState"] == "COMPLETED" for j in retries), retries
    assert all(int(j["MinMemoryNode"].rstrip("M")) >= 4000 for j in retries)  # attempt 2: twice 2000 MB

    for run in runs:
        record = json.loads((on_slurm / run / "train.json").read_text())
        assert record["resumed"] is True, record
        # from the checkpoint the SIGTERM made, not from a periodic one
        assert record["resumed_from"]["reason"] == "sigterm" and record["resumed_from"]["step"] > 0, record
        assert not (on_slurm / run / "checkpoint.pt").exists()
        assert (on_slurm / run / "weights.safetensors").read_bytes() == (local / run / "weights.safetensors").read_bytes()
        assert json.loads((local / run / "train.json").read_text())["resumed"] is False
    assert _metrics(on_slurm / "results/metrics.csv") == _metrics(local / "results/metrics.csv")
