"""Workflow-level timings: the offline demo's wall time split by rule, and the planning time
of the full paper DAG.

    python benchmarks/bench_workflow.py [--skip-demo] [--out benchmarks/out]

Runs the demo in a temporary copy of the workflow (the checkout's results are untouched),
then sums the per-job times Snakemake's `benchmark:` files recorded, and times
`snakemake --profile slurm all -n` on config/config.yaml (the paper study).
"""

from __future__ import annotations

import argparse
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

REPO = Path(__file__).resolve().parents[1]
ITEMS = ["Snakefile", "rules", "workflow", "reports", "config", "src", "profiles", "slurm", "envs"]


def snakemake(cwd: Path, *args: str) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, capture_output=True, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return time.perf_counter() - start, result


def rule_times(work: Path) -> dict[str, dict]:
    out = {}
    for rule_dir in sorted((work / "logs/benchmarks").iterdir()):
        secs = [float(Path(f).read_text().splitlines()[1].split("\t")[0])
                for f in glob.glob(str(rule_dir / "**/*.tsv"), recursive=True)]
        out[rule_dir.name] = {"jobs": len(secs), "sum_s": round(sum(secs), 1),
                              "mean_s": round(sum(secs) / max(len(secs), 1), 2)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-demo", action="store_true")
    ap.add_argument("--out", default="benchmarks/out")
    args = ap.parse_args()
    figures: dict = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                                 "python": platform.python_version()}}
    secs, result = snakemake(REPO, "--profile", "slurm", "all", "-n", "--quiet", "rules")
    assert result.returncode == 0, result.stderr[-2000:]
    figures["paper_dry_run_s"] = round(secs, 2)
    print(f"snakemake --profile slurm all -n (paper config): {secs:.1f} s")
    if not args.skip_demo:
        with tempfile.TemporaryDirectory() as tmp:
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
        print(f"{'rule':<12} {'jobs':>5} {'sum s':>8} {'mean s':>8}")
        for rule, t in figures["demo_rules"].items():
            print(f"{rule:<12} {t['jobs']:>5} {t['sum_s']:>8} {t['mean_s']:>8}")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "bench_workflow.json").write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
