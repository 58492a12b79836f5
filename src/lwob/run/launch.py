"""Starting a training run: in this process, or in `processes` processes (torch.distributed.run).

The job scripts call `train`; with `training.processes` above 1 it launches this module as
the workers' entry (`python -m lwob.run.launch <spec>`), and every worker runs
`lwob.run.training.train_run` with its share of the work (lwob.run.distributed).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .training import resolve_hyperparameters, train_run


def train(**train_kwargs) -> dict:
    """Train one run (arguments of `train_run`); launch it across processes when its
    hyperparameters ask for more than one."""
    from .. import methods
    from . import distributed

    hp = resolve_hyperparameters(train_kwargs["hyperparameters"])
    distributed.check(methods.get(train_kwargs["method_type"]), hp["processes"], hp["parallel"], "training")
    if hp["processes"] > 1 and not distributed.in_worker():
        threads = train_kwargs.pop("threads", None)
        return launch(hp["processes"], train_kwargs, threads)
    return train_run(**train_kwargs)


# --------------------------------------------------------------------------- launcher


def launch(processes: int, train_kwargs: dict, threads: int | None) -> dict:
    """Run `train_run(**train_kwargs)` in `processes` processes (torch.distributed.run);
    return the record the main process wrote.

    SIGTERM/SIGUSR1 to this job process are passed on, so a SLURM preemption reaches the
    training processes, which save a checkpoint together and exit.
    """
    from .checkpoint import PREEMPTED_EXIT
    from ..io import read_json

    out_dir = Path(train_kwargs["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = out_dir / "launch.json"
    spec.write_text(json.dumps({k: (str(v) if isinstance(v, Path) else v) for k, v in train_kwargs.items()},
                               default=str, indent=1))
    per_process = max(1, (threads or os.cpu_count() or 1) // processes)
    env = {**os.environ, "OMP_NUM_THREADS": str(per_process)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
           "-m", "lwob.run.launch", str(spec)]
    print("launch:", " ".join(cmd), flush=True)
    proc = subprocess.Popen(cmd, env=env, stdout=sys.stdout, stderr=sys.stderr, preexec_fn=_die_with_parent)
    forwarded: dict = {}

    def forward(signum, frame):
        forwarded["signal"] = signum
        proc.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGUSR1)}
    try:
        code = proc.wait()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    spec.unlink(missing_ok=True)
    if code != 0:
        if forwarded:
            raise SystemExit(PREEMPTED_EXIT)
        raise RuntimeError(f"distributed training ({processes} processes) failed with exit status {code}; "
                           "the processes' output is above")
    return read_json(out_dir / "train.json")


def _die_with_parent() -> None:
    """In the launcher's child (torch.distributed.run): SIGKILL when the job process dies,
    however it dies (Linux; elsewhere the workers' own watch below still stops them)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _stop_when_orphaned(poll_s: float = 1.0) -> None:
    """A worker whose launcher is gone (the job was killed) stops as if preempted: SIGTERM to
    itself, so it saves a checkpoint and exits without writing the run's outputs. Killed jobs
    must not train on and later overwrite a newer run's results. torch.distributed.run starts
    its workers in sessions of their own, so a kill of the job's process group misses them."""
    import threading

    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(poll_s)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="lwob-orphan-watch", daemon=True).start()


def _worker(spec_path: str) -> None:
    _stop_when_orphaned()
    kwargs = json.loads(Path(spec_path).read_text())
    train_run(**kwargs)


if __name__ == "__main__":
    _worker(sys.argv[1])
