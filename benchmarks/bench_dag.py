"""Planning time of the full paper DAG: how long `snakemake -n all` takes on config/config.yaml.

    python benchmarks/bench_dag.py [--repeat 3] [--no-slurm] [--limit 10] [--json FILE] [--repo DIR]

Runs, from the repository root and each `--repeat` times (interleaved, so that load from
other work on the machine spreads over all of them):

- `snakemake -n` of a one-rule workflow in a temporary folder: Snakemake's own start-up,
  whatever the workflow;
- `snakemake --list-rules`: start-up plus parsing this workflow (the Snakefile, the rules
  files, loading and validating the config), no DAG;
- `snakemake -n all`: the paper DAG, as a user plans it (the paper config is the default);
- `snakemake --profile slurm all -n`: the same with the SLURM profile (how the paper runs).

It prints each command's wall time (min / median / max) and CPU time (user + system of the
Snakemake process), the job count and jobs per rule parsed from Snakemake's "Job stats"
table, and the machine (CPUs, CPU model, load, Python and Snakemake versions). Parsing
time is `--list-rules` minus start-up; DAG time is `-n all` minus `--list-rules`. Wall
times on a shared machine are noisy: compare minima, and the CPU times beside them.
`--limit S` exits with status 1 when the minimum wall time of `-n all` is S seconds or more.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

from machine import cpu_model  # benchmarks/machine.py

REPO = Path(__file__).resolve().parents[1]
TRIVIAL = 'rule all:\n    output: "x"\n    shell: "touch {output}"\n'


def machine() -> dict:
    versions = {}
    for dist in ("snakemake", "snakemake-executor-plugin-slurm"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        **versions,
        "platform": platform.platform(),
    }


def timed(args: list[str], cwd: Path) -> dict:
    """One Snakemake call: wall and CPU seconds, return code and its output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, capture_output=True, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "rc": result.returncode, "out": result.stdout + result.stderr}


def job_stats(out: str) -> dict[str, int]:
    """Jobs per rule from the last "Job stats" table of a dry run ("total" included)."""
    tables = out.split("Job stats:")
    if len(tables) < 2:
        return {}
    counts = {}
    for line in tables[-1].splitlines()[3:]:
        m = re.fullmatch(r"(\S+)\s+(\d+)", line.strip())
        if not m:
            break
        counts[m.group(1)] = int(m.group(2))
    return counts


def summary(samples: list[float]) -> dict:
    return {"min": min(samples), "median": statistics.median(samples), "max": max(samples)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs of each command (default 3)")
    ap.add_argument("--no-slurm", action="store_true", help="skip `--profile slurm all -n`")
    ap.add_argument("--limit", type=float, default=None, help="fail when min wall of `-n all` >= this (s)")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    ap.add_argument("--repo", default=str(REPO), help="workflow to time (default: this checkout)")
    args = ap.parse_args()
    repo = Path(args.repo).resolve()

    figures: dict = {"machine": machine(), "repeat": args.repeat, "load_before": os.getloadavg(), "commands": {}}
    m = figures["machine"]
    print(f"machine: {m['cpus']} CPUs ({m['cpus_usable']} usable), {m['cpu_model']}; Python {m['python']}, "
          f"Snakemake {m['snakemake']}, SLURM plugin {m['snakemake-executor-plugin-slurm']}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in figures['load_before'])}")

    with tempfile.TemporaryDirectory() as tmp:
        trivial = Path(tmp)
        (trivial / "Snakefile").write_text(TRIVIAL)
        commands = {
            "startup (one-rule workflow, -n)": (["-n", "--quiet"], trivial),
            "parse (--list-rules)": (["--list-rules"], repo),
            "snakemake -n all": (["-n", "all"], repo),
        }
        if not args.no_slurm:
            commands["snakemake --profile slurm all -n"] = (["--profile", "slurm", "all", "-n"], repo)
        samples: dict[str, list[dict]] = {name: [] for name in commands}
        for i in range(args.repeat):
            for name, (cmd, cwd) in commands.items():
                r = timed(cmd, cwd)
                if r["rc"] != 0:
                    print(f"{name} failed (exit {r['rc']}):\n{r['out'][-3000:]}", file=sys.stderr)
                    return 2
                samples[name].append(r)
                print(f"  run {i + 1}/{args.repeat}  {name:<36} {r['wall']:6.2f} s wall  {r['cpu']:6.2f} s CPU",
                      flush=True)

    figures["load_after"] = os.getloadavg()
    print(f"\n{'command':<36} {'wall min':>9} {'median':>8} {'max':>8} {'CPU min':>8} {'jobs':>6}")
    for name, runs in samples.items():
        jobs = job_stats(runs[-1]["out"])
        wall, cpu = summary([r["wall"] for r in runs]), summary([r["cpu"] for r in runs])
        figures["commands"][name] = {"wall_s": wall, "cpu_s": cpu, "jobs": jobs.get("total"), "jobs_per_rule": jobs}
        print(f"{name:<36} {wall['min']:9.2f} {wall['median']:8.2f} {wall['max']:8.2f} {cpu['min']:8.2f} "
              f"{jobs.get('total', ''):>6}")

    c = figures["commands"]
    startup = c["startup (one-rule workflow, -n)"]["wall_s"]["min"]
    parse = c["parse (--list-rules)"]["wall_s"]["min"]
    plan = c["snakemake -n all"]["wall_s"]["min"]
    figures["split_s"] = {"snakemake_startup": startup, "workflow_parse": parse - startup, "dag": plan - parse}
    print(f"\nsplit of `snakemake -n all` (minima): Snakemake start-up {startup:.2f} s, parsing the workflow "
          f"{parse - startup:.2f} s, building and printing the DAG {plan - parse:.2f} s")
    per_rule = c["snakemake -n all"]["jobs_per_rule"]
    print("jobs per rule: " + ", ".join(f"{k} {v}" for k, v in per_rule.items() if k != "total"))
    print(f"load average after: {' '.join(f'{x:.2f}' for x in figures['load_after'])}")

    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    if args.limit is not None:
        ok = plan < args.limit
        print(f"limit: `snakemake -n all` min {plan:.2f} s {'<' if ok else '>='} {args.limit:g} s: {'PASS' if ok else 'FAIL'}")
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
