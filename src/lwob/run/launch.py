"""Starting a training run: in this process, or in `processes` processes (torch.distributed.run)
on each of `nodes` nodes.

The job scripts call `train`; with `training.processes` or `training.nodes` above 1 it launches
this module as the workers' entry (`python -m lwob.run.launch <spec>`), and every worker runs
`lwob.run.training.train_run` with its share of the work (lwob.run.distributed).

One node: `torch.distributed.run --standalone`. Several nodes (a SLURM job that asked for
them: rules/common.smk gpu_job_resources): `srun` starts one torch.distributed.run per node,
which meet at a c10d rendezvous on the job's first node (where this job script runs) and
start `processes` workers each; the spec file in the run's output folder is read by all of
them, so that folder must be on a filesystem the nodes share (a cluster's results are).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..errors import ConfigError
from .training import resolve_hyperparameters, train_run


def train(**train_kwargs) -> dict:
    """Train one run (arguments of `train_run`); launch it across processes when its
    hyperparameters ask for more than one."""
    from .. import methods
    from . import distributed

    hp = resolve_hyperparameters(train_kwargs["hyperparameters"])
    distributed.check(methods.get(train_kwargs["method_type"]), hp["processes"], hp["parallel"], "training",
                      nodes=hp["nodes"])
    if (hp["processes"] > 1 or hp["nodes"] > 1) and not distributed.in_worker():
        threads = train_kwargs.pop("threads", None)
        return launch(hp["processes"], train_kwargs, threads, nodes=hp["nodes"])
    return train_run(**train_kwargs)


# --------------------------------------------------------------------------- launcher


def node_command(processes: int, spec: Path, nodes: int = 1, rendezvous: str | None = None,
                 job_id: str = "lwob") -> list[str]:
    """The command that starts a run's workers on one node: `processes` of them, alone
    (nodes 1) or meeting the other nodes' at the c10d `rendezvous` (host:port)."""
    if nodes == 1:
        where = ["--standalone"]
    else:
        where = [f"--nnodes={nodes}", "--rdzv_backend=c10d", f"--rdzv_endpoint={rendezvous}", f"--rdzv_id={job_id}"]
    return [sys.executable, "-m", "torch.distributed.run", *where, f"--nproc_per_node={processes}",
            "-m", "lwob.run.launch", str(spec)]


def slurm_nodes_command(processes: int, spec: Path, nodes: int, environ: dict | None = None) -> list[str]:
    """`srun` starting `node_command` once on each of the job's nodes; the rendezvous is on
    this host (the job's first node, where the job script runs). Outside a SLURM job of at
    least `nodes` nodes: ConfigError naming training.nodes."""
    import socket

    environ = os.environ if environ is None else environ
    job_id, allocated = environ.get("SLURM_JOB_ID"), environ.get("SLURM_JOB_NUM_NODES") or environ.get("SLURM_NNODES")
    if not job_id or not allocated or not allocated.isdigit():
        raise ConfigError(f"training.nodes: {nodes} needs a SLURM job of {nodes} nodes (snakemake --profile slurm); "
                          "this job runs outside SLURM: use nodes: 1 here")
    if int(allocated) < nodes:
        raise ConfigError(f"training.nodes: {nodes}, but this SLURM job has {allocated} node(s)")
    with socket.socket() as sock:  # a free port on this node for the rendezvous store
        sock.bind(("", 0))
        port = sock.getsockname()[1]
    rendezvous = f"{socket.gethostname()}:{port}"
    return ["srun", f"--nodes={nodes}", f"--ntasks={nodes}", "--ntasks-per-node=1", "--kill-on-bad-exit=1",
            *node_command(processes, spec, nodes, rendezvous, job_id)]


def write_spec(spec: Path, train_kwargs: dict) -> None:
    """The workers' arguments (`train_run`'s), read by every worker (`_worker`)."""
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(json.dumps({k: (str(v) if isinstance(v, Path) else v) for k, v in train_kwargs.items()},
                               default=str, indent=1))


def launch(processes: int, train_kwargs: dict, threads: int | None, nodes: int = 1) -> dict:
    """Run `train_run(**train_kwargs)` in `processes` processes (torch.distributed.run) on each
    of `nodes` nodes; return the record the main process wrote.

    SIGTERM/SIGUSR1 to this job process are passed on, so a SLURM preemption reaches the
    training processes, which save a checkpoint together and exit.
    """
    from .checkpoint import PREEMPTED_EXIT
    from ..io import read_json

    out_dir = Path(train_kwargs["out_dir"])
    spec = out_dir / "launch.json"
    # Checked before anything is written: a run asked for nodes outside SLURM leaves no trace.
    cmd = (slurm_nodes_command(processes, spec, nodes) if nodes > 1 else node_command(processes, spec))
    write_spec(spec, train_kwargs)
    per_process = max(1, (threads or os.cpu_count() or 1) // processes)
    env = {**os.environ, "OMP_NUM_THREADS": str(per_process)}
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
        raise RuntimeError(f"distributed training ({processes} processes x {nodes} node(s)) failed with exit status {code}; "
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
