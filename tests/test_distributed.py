"""One run trained by two processes (CPU, gloo): DDP through accelerate and FSDP.

With dropout off, two processes splitting each batch reach the single-process weights up to
float summation order; a two-process run preempted with SIGTERM resumes from its checkpoint
and ends where an uninterrupted two-process run ends.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from lwob.run import checkpoint
from lwob.run.distributed import Parallel

from conftest import REPO
from training_data import HP, MINILM, RUN_ID

NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
LORA = {"r": 4, "alpha": 8, "dropout": 0.0}


def cfg_schema():
    return REPO / "config/schemas/config.schema.yaml"


def _kwargs(tokenized, out, method, options, hp, seed=3, checkpoint_minutes=None):
    return dict(model_dir=str(MINILM), tokenized_dir=str(tokenized), method_type=method, method_options=options,
                # fp32: the processes' sums must match one process to 1e-5 (bf16 rounds at 1e-3)
                hyperparameters={**HP, "precision": "fp32", **hp}, seed=seed, out_dir=str(out),
                run_id={**RUN_ID, "method": method, "seed": seed}, threads=2,
                provenance_extra={"model": {"path": str(MINILM)}}, model_config=NO_DROPOUT,
                checkpoint_minutes=checkpoint_minutes)


def _train(tokenized, out, method, options, hp):
    from lwob.run.launch import train as train_run

    return train_run(**_kwargs(tokenized, out, method, options, hp))


@pytest.mark.parametrize("method, options, parallel", [
    pytest.param("fft", {}, "ddp", marks=pytest.mark.slow),
    ("lora", LORA, "ddp"),
    ("fft", {}, "fsdp"),
    pytest.param("lora", LORA, "fsdp", marks=pytest.mark.slow),
])
def test_two_processes_match_one(tokenized, tmp_path, method, options, parallel):
    one = _train(tokenized, tmp_path / "one", method, options, {})
    two = _train(tokenized, tmp_path / "two", method, options, {"processes": 2, "parallel": parallel})
    assert (one["processes"], two["processes"], two["parallel"]) == (1, 2, parallel)
    assert two["hyperparameters"]["processes"] == 2
    wa, wb = load_file(tmp_path / "one" / "weights.safetensors"), load_file(tmp_path / "two" / "weights.safetensors")
    assert wa.keys() == wb.keys() and len(wa) > 0
    for k in wa:
        # A key bias shifts every attention score of a query equally, so softmax cancels it:
        # its true gradient is 0 and it moves on rounding noise, which Adam normalises to
        # steps of up to lr. Every other tensor must agree to rounding.
        atol = 1e-3 if k.endswith("key.bias") else 1e-5
        torch.testing.assert_close(wb[k], wa[k], rtol=1e-4, atol=atol, msg=k)
    for a, b in zip(one["epochs"], two["epochs"], strict=True):
        assert a["val_metrics"]["n"] == b["val_metrics"]["n"]
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
    assert not (tmp_path / "two" / "launch.json").exists()


def test_fsdp_refuses_a_method_that_reads_whole_matrices(tokenized, tmp_path, paper_config):
    from lwob.plan import config as cfg
    from lwob.errors import ConfigError

    with pytest.raises(ConfigError, match="adalora.*FSDP"):
        _train(tokenized, tmp_path / "a", "adalora", {"init_r": 6, "target_r": 2}, {"processes": 2, "parallel": "fsdp"})
    assert not (tmp_path / "a").exists()
    paper_config["methods"]["adalora"]["training"] = {"processes": 2, "parallel": "fsdp"}
    with pytest.raises(ConfigError, match=r"run [^ ]+/adalora: method type .adalora. cannot train under FSDP"):
        cfg.validate(paper_config, cfg_schema(), base_dir=".")


def test_a_multi_process_run_asks_for_resources_per_process(paper_config):
    from lwob.plan import config as cfg

    one = cfg.train_resources(paper_config, "opt-13b", "squad-1k", "lora")
    fft = cfg.train_resources(paper_config, "opt-13b", "squad-1k", "fft")
    assert cfg.hyperparameters(paper_config, "opt-13b", "squad-1k", "fft")["parallel"] == "fsdp"
    n = cfg.hyperparameters(paper_config, "opt-13b", "squad-1k", "fft")["processes"]
    assert n > 1 and one["gpus"] == 1
    assert {k: fft[k] for k in ("gpus", "cpus", "mem_mb")} == {k: one[k] * n for k in ("gpus", "cpus", "mem_mb")}
    assert fft["runtime_min"] == one["runtime_min"]


def test_local_rows_split_each_batch_and_keep_the_gradient_scale():
    index = torch.arange(7)
    parts = [Parallel(strategy="ddp", rank=r, world=2).local_rows(index) for r in range(2)]
    assert [p[0].tolist() for p in parts] == [[0, 2, 4, 6], [1, 3, 5]]
    # Mean loss x scale, averaged over the 2 processes, equals the mean over all 7 rows.
    assert sum(len(rows) * 1 / len(rows) * scale for rows, scale in parts) / 2 == pytest.approx(1.0)
    short = Parallel(strategy="ddp", rank=1, world=2).local_rows(torch.arange(1))
    assert short[0].tolist() == [0] and short[1] == 0.0  # no rows of its own: takes part at weight 0
    assert Parallel().local_rows(index) == (index, None)


@pytest.mark.slow
@pytest.mark.parametrize("method, options, parallel", [("lora", LORA, "ddp"), ("fft", {}, "fsdp")])
def test_two_process_run_preempted_with_sigterm_resumes(tokenized, tmp_path, method, options, parallel):
    hp = {"processes": 2, "parallel": parallel, "epochs": 3}
    full = _train(tokenized, tmp_path / "full", method, options, hp)

    cut = tmp_path / "cut"
    spec = tmp_path / "spec.json"
    # Checkpoint after every step, so a checkpoint exists to resume from when SIGTERM comes.
    spec.write_text(json.dumps(_kwargs(tokenized, cut, method, options, hp, checkpoint_minutes=1e-6)))
    code = "import json,sys; from lwob.run.launch import train; train(**json.load(open(sys.argv[1])))"
    proc = subprocess.Popen([sys.executable, "-c", code, str(spec)], env=os.environ.copy())
    deadline = time.monotonic() + 300
    while not (cut / checkpoint.FILENAME).exists():
        assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint before the run ended"
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)  # what SLURM sends the job before a time limit or preemption
    assert proc.wait(timeout=120) == checkpoint.PREEMPTED_EXIT
    assert (cut / checkpoint.FILENAME).exists() and not (cut / "train.json").exists()

    resumed = _train(tokenized, cut, method, options, hp)
    assert resumed["resumed"] and not full["resumed"]
    assert resumed["epochs"] == full["epochs"]
    wa, wb = load_file(tmp_path / "full" / "weights.safetensors"), load_file(cut / "weights.safetensors")
    assert wa.keys() == wb.keys() and all(bool((wa[k] == wb[k]).all()) for k in wa)


@pytest.mark.slow
def test_killed_job_stops_its_training_processes_before_they_write(tokenized, tmp_path):
    """SIGKILL of the job process (a Ctrl-C'd or cancelled job without the warm worker): the
    launcher dies with it and the training processes, in sessions of their own, stop as if
    preempted (a checkpoint, no outputs) instead of training on and writing over a later run."""
    import psutil

    out = tmp_path / "run"
    spec = tmp_path / "spec.json"
    hp = {"processes": 2, "parallel": "ddp", "epochs": 50}
    spec.write_text(json.dumps(_kwargs(tokenized, out, "fft", {}, hp, checkpoint_minutes=1e-6)))
    code = "import json,sys; from lwob.run.launch import train; train(**json.load(open(sys.argv[1])))"
    job = subprocess.Popen([sys.executable, "-c", code, str(spec)], env=os.environ.copy())
    deadline = time.monotonic() + 300
    while not (out / checkpoint.FILENAME).exists():  # training is under way
        assert job.poll() is None and time.monotonic() < deadline, "no checkpoint before the run ended"
        time.sleep(0.2)
    spawned = psutil.Process(job.pid).children(recursive=True)
    assert len(spawned) >= 3  # torch.distributed.run and its two workers
    job.kill()
    job.wait()
    gone, alive = psutil.wait_procs(spawned, timeout=120)
    assert not alive, [p.pid for p in alive]
    assert not (out / "train.json").exists() and not (out / "weights.safetensors").exists()


# --------------------------------------------------------------------------- several nodes


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_nodes_match_one_process(tokenized, tmp_path):
    """A run over two "nodes": the two per-node launchers that `srun` starts on a cluster
    (lwob.run.launch.node_command), here both on this machine, meet at one c10d rendezvous and
    train one FSDP run of world 2; it ends where the single-process run ends."""
    from lwob.run.launch import node_command, write_spec

    one = _train(tokenized, tmp_path / "one", "fft", {}, {})
    out = tmp_path / "two-nodes"
    hp = {"processes": 1, "nodes": 2, "parallel": "fsdp"}
    kwargs = _kwargs(tokenized, out, "fft", {}, hp)
    kwargs.pop("threads")
    spec = out / "launch.json"
    write_spec(spec, kwargs)
    cmd = node_command(1, spec, nodes=2, rendezvous=f"127.0.0.1:{_free_port()}", job_id="two-nodes")
    assert "--nnodes=2" in cmd and "--standalone" not in cmd
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launchers = [subprocess.Popen(cmd, env=env, cwd=tmp_path) for _ in range(2)]
    assert [p.wait(timeout=600) for p in launchers] == [0, 0]
    two = json.loads((out / "train.json").read_text())
    assert (two["processes"], two["parallel"], two["hyperparameters"]["nodes"]) == (2, "fsdp", 2)
    wa, wb = load_file(tmp_path / "one" / "weights.safetensors"), load_file(out / "weights.safetensors")
    assert wa.keys() == wb.keys() and len(wa) > 0
    for k in wa:
        atol = 1e-3 if k.endswith("key.bias") else 1e-5  # as in test_two_processes_match_one
        torch.testing.assert_close(wb[k], wa[k], rtol=1e-4, atol=atol, msg=k)


def test_a_multi_node_run_asks_slurm_for_nodes_and_starts_one_launcher_on_each(paper_config, tmp_path):
    from lwob.errors import ConfigError
    from lwob.plan import config as cfg
    from lwob.run.launch import slurm_nodes_command

    hp = cfg.hyperparameters(paper_config, "llama2-70b", "gsm8k", "fft")
    per_node, nodes = hp["processes"], hp["nodes"]
    assert nodes > 1 and hp["parallel"] == "fsdp"
    res = cfg.train_resources(paper_config, "llama2-70b", "gsm8k", "fft")
    one = cfg.run_resources(paper_config, "llama2-70b")
    assert res["nodes"] == nodes and res["gpus"] == one["gpus"] * per_node * nodes  # --gpus: the job's total
    assert (res["cpus"], res["mem_mb"]) == (one["cpus"] * per_node, one["mem_mb"] * per_node)  # per node
    assert cfg.train_resources(paper_config, "llama2-70b", "gsm8k", "lora-llama")["nodes"] == 1

    spec = tmp_path / "launch.json"
    with pytest.raises(ConfigError, match=r"training.nodes: 4 needs a SLURM job of 4 nodes"):
        slurm_nodes_command(8, spec, 4, environ={})
    with pytest.raises(ConfigError, match=r"training.nodes: 4, but this SLURM job has 2 node"):
        slurm_nodes_command(8, spec, 4, environ={"SLURM_JOB_ID": "7", "SLURM_JOB_NUM_NODES": "2"})
    cmd = slurm_nodes_command(8, spec, 4, environ={"SLURM_JOB_ID": "7", "SLURM_JOB_NUM_NODES": "4"})
    assert cmd[:5] == ["srun", "--nodes=4", "--ntasks=4", "--ntasks-per-node=1", "--kill-on-bad-exit=1"]
    assert "--nnodes=4" in cmd and "--nproc_per_node=8" in cmd and "--rdzv_id=7" in cmd
    assert any(a.startswith("--rdzv_endpoint=") and a.rsplit(":", 1)[1].isdigit() for a in cmd)
    assert not spec.exists()

    # A method that trains in one process cannot be spread over nodes: one line at config time.
    paper_config["models"]["llama2-7b"].setdefault("method_training", {})["hift"] = {"nodes": 2}
    with pytest.raises(ConfigError, match=r"hift.*training.nodes: 2"):
        cfg.validate(paper_config, cfg_schema(), base_dir=".")
