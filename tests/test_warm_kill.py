"""A job's work dies with its job: when the script that asked the warm worker for a job goes
away (killed, interrupted, terminated), the forked child and everything it started stop
before they write an output, and a rerun's newer outputs stand."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from conftest import REPO

TESTS = Path(__file__).resolve().parent


def slow_job(started: str, output: str, seconds: float, grandchild: bool = False,
             ignore_sigterm: bool = False) -> None:
    """A job that reports its pid (and a descendant's in a session of its own, as
    torch.distributed.run's workers are), works for `seconds`, then writes its output."""
    if ignore_sigterm:
        signal.signal(signal.SIGTERM, lambda signum, frame: None)
    pids = {"job": os.getpid()}
    if grandchild:
        pids["grandchild"] = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"],
                                              start_new_session=True).pid
    Path(started).write_text(json.dumps(pids))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)
    Path(output).write_text("written after the work")


CLIENT = """
import json, sys
from pathlib import Path
from lwob.plan import warm
warm.socket_path = lambda: Path(sys.argv[1])
warm.STOP_GRACE_SECONDS = 2
warm.call("test_warm_kill:slow_job", json.loads(sys.argv[2]), sys.argv[3])
"""


def _start_client(sock: Path, kwargs: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CLIENT, str(sock), json.dumps(kwargs), str(log)],
                            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(REPO / "src")])},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.05)


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM", "SIGINT", "SIGTERM-ignored"])
def test_job_dies_with_its_client(server_socket, tmp_path, how):
    """SIGKILL: the connection closes and the child kills itself and its descendants.
    SIGTERM/SIGINT: passed on to the job, which stops as it would in its own process (the
    descendant goes with it). A job that ignores SIGTERM is killed once the client stops
    waiting for it (STOP_GRACE_SECONDS). In no case is the output written."""
    started, output, log = tmp_path / "started.json", tmp_path / "output.txt", tmp_path / "job.log"
    seconds = 6.0
    client = _start_client(server_socket, {"started": str(started), "output": str(output), "seconds": seconds,
                                           "grandchild": True, "ignore_sigterm": how == "SIGTERM-ignored"}, log)
    try:
        _wait(lambda: started.exists() and started.read_text(), 60, "the job to start")
        pids = json.loads(started.read_text())
        t0 = time.monotonic()
        client.send_signal(getattr(signal, how.split("-")[0]))
        client.wait(timeout=30)
        _wait(lambda: all(_gone(pid) for pid in pids.values()), 5, f"the job and its descendant to die ({pids})")
        assert time.monotonic() - t0 < 10
        # past the moment the job would have written its output
        time.sleep(max(0.0, seconds + 1 - (time.monotonic() - t0)))
        assert not output.exists(), client.stdout.read()
    finally:
        if client.poll() is None:
            client.kill()
        for pid in json.loads(started.read_text() or "{}").values() if started.exists() else ():
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)
    if how == "SIGTERM":
        assert client.returncode == 128 + signal.SIGTERM  # exits as the job did: of SIGTERM


def test_finished_job_reports_success_and_leaves_no_process(server_socket, tmp_path):
    started, output, log = tmp_path / "started.json", tmp_path / "output.txt", tmp_path / "job.log"
    client = _start_client(server_socket, {"started": str(started), "output": str(output), "seconds": 0.2,
                                           "grandchild": True}, log)
    out, _ = client.communicate(timeout=60)
    assert client.returncode == 0, out
    assert output.read_text() == "written after the work"
    # the descendant it left running went with the job
    grandchild = json.loads(started.read_text())["grandchild"]
    _wait(lambda: _gone(grandchild), 5, "the job's leftover descendant to be killed")


# --------------------------------------------------------------------------- end to end

RUN = "results/runs/minilm/demo-sst2/fft/seed0"


def _kill_test_config(epochs: int, lr: float) -> dict:
    """config/demo.yaml cut to one run (MiniLM, SST-2 (demo), FFT, seed 0), warm worker on; a
    periodic checkpoint every few seconds marks the moment training is under way."""
    from conftest import load_config

    config = load_config("demo.yaml")
    config["seeds"] = [0]
    config["execution"] = {"warm_worker": True, "checkpoint_minutes": 0.05}
    config["training"]["epochs"] = epochs
    config["datasets"] = {"demo_sentiment": config["datasets"]["demo_sentiment"]}
    config["tasks"] = {"demo-sst2": config["tasks"]["demo-sst2"]}
    config["methods"] = {"fft": {**config["methods"]["fft"], "training": {"lr": lr}}}
    config["models"] = {"minilm": config["models"]["minilm"]}
    table3 = config["studies"]["table3"]
    table3.update(methods=["fft"], tasks=["demo-sst2"])
    config["studies"] = {"table3": table3}
    for key in ("selection", "increments", "resource_study"):  # they name tasks and methods cut here
        config.pop(key, None)
    config["reference"] = None
    return config


def _warm_jobs_in(workdir: Path) -> list[psutil.Process]:
    """Processes forked by a warm server to run a job of `workdir`: they share the server's
    command line, but not its session (the server leads one of its own), and they outlive
    the server if it goes idle first."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if ("lwob.plan.warm" in (p.info["cmdline"] or []) and Path(p.cwd()) == workdir
                    and os.getsid(p.pid) != p.pid and p.status() != psutil.STATUS_ZOMBIE):
                found.append(p)
        except (psutil.Error, OSError):
            continue
    return found


@pytest.mark.slow
def test_interrupted_warm_job_never_overwrites_the_rerun(tmp_path):
    """Ctrl-C (SIGINT to Snakemake's process group, as a terminal sends it) mid-training, an
    immediate rerun with a changed config to completion, then past the old job's would-be end:
    the rerun's outputs stand and a dry run plans nothing."""
    import tempfile

    import yaml

    workdir = tmp_path / "work"
    workdir.mkdir()
    # A warm server of this test's own: its socket directory in a private runtime dir (short,
    # for the socket path's length limit).
    runtime = Path(tempfile.mkdtemp(prefix="lwr"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "XDG_RUNTIME_DIR": str(runtime)}
    env.pop("LWOB_WARM_WORKER", None)

    def snakemake(config: dict, *args: str) -> list[str]:
        (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        return [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
                str(workdir), f"{RUN}/train.json", "--profile", str(REPO / "profiles/local"), "--cores", "2",
                "--configfile", "config.yaml", *args]

    old = _kill_test_config(epochs=8, lr=1.0e-4)
    new = _kill_test_config(epochs=1, lr=5.0e-5)
    first = subprocess.Popen(snakemake(old), cwd=workdir, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not (workdir / RUN / "checkpoint.pt").exists():  # in the step loop
            assert first.poll() is None, first.stdout.read()[-3000:]
            assert time.monotonic() < deadline, "training did not get under way"
            time.sleep(0.2)
        old_jobs = _warm_jobs_in(workdir)
        assert len(old_jobs) == 1, old_jobs  # the test sees the job it interrupts
        os.killpg(first.pid, signal.SIGINT)
        first.communicate(timeout=120)
        # The interrupted job is gone with its script, before the rerun starts.
        _wait(lambda: not _warm_jobs_in(workdir), 10, "the interrupted job to stop")

        rerun = subprocess.run(snakemake(new), cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-3000:]
        record = workdir / RUN / "train.json"
        written = record.stat().st_mtime_ns
        # Past the old job's would-be end: no job of this workdir runs any more (an old job
        # that survived would run on to its end and write then).
        _wait(lambda: not _warm_jobs_in(workdir), 240, "every job of the interrupted run to end")
        time.sleep(1)
        hp = json.loads(record.read_text())["hyperparameters"]
        assert (hp["lr"], hp["epochs"]) == (5.0e-5, 1)
        assert record.stat().st_mtime_ns == written
        dry = subprocess.run(snakemake(new, "-n"), cwd=workdir, env=env, capture_output=True, text=True,
                             timeout=300)
        assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout + dry.stderr
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        for p in _warm_jobs_in(workdir):
            p.kill()
        for p in psutil.process_iter(["cmdline"]):  # this test's own warm server
            if any(str(runtime) in part for part in p.info["cmdline"] or []):
                p.kill()
        import shutil

        shutil.rmtree(runtime, ignore_errors=True)
