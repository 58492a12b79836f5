"""lwob.plan.runlock: the workflow's own run lock (Snakemake 9.27 deletes `.snakemake/locks` when any
run ends, so its own lock does not keep two runs of the same target apart)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO, load_config, run_snakemake
from lwob.plan import runlock

HOLD = ("import sys, time; from lwob.plan import runlock; runlock.acquire(sys.argv[1], ['holder', 'cmd']); "
        "print('held', flush=True); time.sleep(60)")


def _holder(lock: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_process_is_refused_with_the_holder_named(tmp_path):
    lock = tmp_path / ".snakemake" / "lwob-run.lock"
    holder = _holder(lock)
    try:
        with pytest.raises(runlock.RunLocked) as refused:
            runlock.acquire(lock)
        message = str(refused.value)
        assert f"pid {holder.pid} on host {socket.gethostname()}" in message
        assert "command: holder cmd" in message and "started 20" in message and str(lock) in message
    finally:
        holder.kill()
        holder.wait()
    # The kernel released it with the process: the next run takes it.
    assert runlock.acquire(lock, ["next"])
    try:
        assert json.loads(lock.read_text())["pid"] == os.getpid()
        assert runlock.acquire(lock)  # taking it again in the same process is a no-op
    finally:
        runlock.release(lock)
    assert lock.read_text() == ""  # released: no stale holder details


def test_job_processes_never_inherit_the_lock(tmp_path):
    lock = tmp_path / "run.lock"
    runlock.acquire(lock)
    try:
        fd = runlock._held[lock.absolute()]
        assert not os.get_inheritable(fd)  # close-on-exec: a job started by the run does not hold it
    finally:
        runlock.release(lock)


def test_hold_for_run_stops_with_one_line(tmp_path, capsys):
    lock = tmp_path / "run.lock"
    holder = _holder(lock)
    try:
        with pytest.raises(SystemExit) as stopped:
            runlock.hold_for_run(lock)
        assert stopped.value.code == 1
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(err) == 1 and err[0].startswith("Error: ") and f"pid {holder.pid}" in err[0]
    finally:
        holder.kill()
        holder.wait()


# --------------------------------------------------------------------------- two real runs

TARGET = "data/tokenized/minilm/demo-sst2/meta.json"  # download, fetch_model, tokenize


def _tiny_config() -> dict:
    config = load_config("demo.yaml")
    config["seeds"] = [0]
    config["execution"] = {"warm_worker": False}
    config["datasets"] = {"demo_sentiment": {**config["datasets"]["demo_sentiment"], "n_train": 48,
                                             "n_validation": 16, "n_test": 32}}
    config["tasks"] = {"demo-sst2": config["tasks"]["demo-sst2"]}
    config["methods"] = {"bitfit": config["methods"]["bitfit"]}
    config["models"] = {"minilm": config["models"]["minilm"]}
    config["studies"] = {"table3": {**config["studies"]["table3"], "methods": ["bitfit"], "tasks": ["demo-sst2"]}}
    for key in ("selection", "increments", "resource_study"):
        config.pop(key, None)
    config["reference"] = None
    return config


def _wait_for_holder(lock: Path, pid: int, proc: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the first run ended before it was seen holding the lock: {proc.stdout.read()}"
        try:
            if json.loads(lock.read_text() or "{}").get("pid") == pid:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise AssertionError("the first run never took the run lock")


@pytest.mark.slow
def test_overlapping_runs_of_one_target(tmp_path):
    """Run 1 holds the lock for its lifetime; Snakemake's own locks are gone (as after any other
    run in the directory ends); run 2 of the same target stops at once naming run 1, and
    touches nothing. Dry runs, --report, --lint and --unlock never take the lock, nor do run 1's
    job processes (run 1 finishes)."""
    config = _tiny_config()
    (tmp_path / "test-config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
           TARGET, "--cores", "1", "--configfile", str(tmp_path / "test-config.yaml")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    # Its own process group, so that run 1 and the job it has under way are frozen together.
    first = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)
    lock = tmp_path / ".snakemake" / "lwob-run.lock"
    try:
        _wait_for_holder(lock, first.pid, first)
        os.killpg(first.pid, signal.SIGSTOP)  # run 1 stays mid-run, holding the lock, for as long as needed
        shutil.rmtree(tmp_path / ".snakemake" / "locks", ignore_errors=True)  # what any other run's end does

        before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
        # --rerun-incomplete (as both profiles set): a job run 1 has under way is not what stops run 2.
        second = run_snakemake(tmp_path, TARGET, "--cores", "1", "--rerun-incomplete", config=config, profile=None,
                               timeout=300)
        assert second.returncode != 0
        refusal = [line for line in second.stderr.splitlines() if "is in use by" in line]
        assert len(refusal) == 1, second.stderr[-3000:]
        assert f"the run with pid {first.pid} on host {socket.gethostname()}" in refusal[0]
        assert "snakemake" in refusal[0] and TARGET in refusal[0]  # its command
        assert "Traceback" not in second.stderr
        assert "Execute" not in second.stdout + second.stderr  # no job of run 2 started
        after = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()
                       and ".snakemake/log" not in str(p) and ".snakemake/locks" not in str(p))
        assert set(after) <= set(before)

        for args in (["-n"], ["--unlock"], ["--report", "report.html"], ["--lint"]):
            other = run_snakemake(tmp_path, TARGET, *args, config=config, profile=None, timeout=300)
            assert other.returncode == 0, (args, other.stderr[-3000:])
            assert "is in use by" not in other.stderr, args
    finally:
        os.killpg(first.pid, signal.SIGCONT)
    out, _ = first.communicate(timeout=600)
    assert first.returncode == 0, out[-3000:]
    assert (tmp_path / TARGET).is_file()
    assert lock.read_text() == ""  # released when run 1 ended

    again = run_snakemake(tmp_path, TARGET, "--cores", "1", "--forcerun", "download", config=config, profile=None)
    assert again.returncode == 0, again.stderr[-3000:]
