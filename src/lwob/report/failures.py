"""Failed jobs: a record per failed job, and the tables rendered with the failures marked.

Under `--keep-going` Snakemake runs everything that does not depend on a failed job, then
stops; `aggregate` needs every run's evaluation, so it never runs, and neither do the tables.
The Snakefile's `onerror` handler (the main Snakemake process, after the last job) calls
`after_run`, which

* writes one record per failed job, `results/failed/<rule>/<wildcard values>.json`:
  rule, wildcards, status, the error (the last line of the job's log: the exception or the
  input error), the job's log paths, and the runs whose results it kept from being made;
* under --keep-going, renders every study table that contains such a run from the runs that
  did finish (their evaluation records) plus the failures, to `results/failed/tables/<study>.tex`
  and `.csv`: a cell that a failed run feeds reads "err", and the caption and the CSV twin say
  which job failed, why, and where its log is.

`onsuccess` and `onerror` both delete the records of jobs that succeeded in the run, and the
failure tables of studies left without failures, so a record lasts exactly until its job
succeeds. Nothing here writes a rule's outputs or Snakemake's metadata: a table written to
`results/tables/` outside its rule would look up to date to Snakemake (a target that exists is
not rebuilt for a missing intermediate file), so the failed run would not be retried. A failed
job's outputs stay missing and the next run retries it. Outputs that exist from an earlier run but
depend on a failed job are marked incomplete in Snakemake's metadata, so that the next run
rebuilds them (`mark_stale_outputs_incomplete`). The HTML report lists the records
(reports/workflow.rst, through the `failed_jobs()` helper lwob.report.escaping registers).

Snakemake's DAG, scheduler and metadata are used in two places, `jobs_of_this_run` and
`mark_stale_outputs_incomplete`; the rest works on plain data.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from ..io import atomic_write_bytes

FAILED_DIR = Path("results") / "failed"
TABLES_DIR = FAILED_DIR / "tables"  # the study tables rendered with the failures
_LOG_TAIL_BYTES = 64 * 1024


@dataclass
class JobOutcome:
    """A job of this run: its rule, wildcards and logs; for a failed job, the outputs that it and
    the jobs downstream of it did not make (`blocked_outputs`)."""

    rule: str
    wildcards: dict
    logs: list = field(default_factory=list)
    blocked_outputs: list = field(default_factory=list)


def _component(value) -> str:
    text = quote(str(value), safe="")
    return text.replace(".", "%2E") if text in (".", "..") else text


def record_path(rule: str, wildcards: dict, root: str | os.PathLike = FAILED_DIR) -> Path:
    """Where a job's failure record lives: one folder level per wildcard value, in order."""
    parts = [_component(v) for v in wildcards.values()] or ["job"]
    return Path(root) / _component(rule) / Path(*parts[:-1]) / f"{parts[-1]}.json"


def error_from_log(log: str | os.PathLike | None) -> str:
    """The job's error: the last non-blank line of its log (a traceback ends with the
    exception, an input error with its one-line message)."""
    fallback = "no error message in its log (killed, out of memory or out of time?)"
    if not log or not Path(log).is_file():
        return fallback
    with open(log, "rb") as f:
        f.seek(max(0, os.path.getsize(log) - _LOG_TAIL_BYTES))
        lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith("done in ")]
    return lines[-1][:500] if lines else fallback


def _eval_record(run) -> str:
    from ..plan import paths

    return paths.run_file(paths.EVAL_RECORD, run)


def runs_blocked(outcome: JobOutcome, runs) -> list:
    """The configured runs whose evaluation record the failed job kept from being made."""
    blocked = set(map(str, outcome.blocked_outputs))
    return [r for r in runs if _eval_record(r) in blocked]


def record_failures(failed: list[JobOutcome], runs, root: str | os.PathLike = FAILED_DIR) -> list[dict]:
    """Write one record per failed job; return them."""
    records = []
    for outcome in failed:
        record = {
            "rule": outcome.rule, "wildcards": {k: str(v) for k, v in outcome.wildcards.items()},
            "status": "failed", "error": error_from_log(outcome.logs[0] if outcome.logs else None),
            "log": [str(p) for p in outcome.logs], "time": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "host": socket.gethostname(),
            "runs": [{"model": r.model, "task": r.task, "method": r.method, "seed": int(r.seed)}
                     for r in runs_blocked(outcome, runs)],
        }
        atomic_write_bytes(record_path(outcome.rule, outcome.wildcards, root),
                           (json.dumps(record, indent=1) + "\n").encode())
        records.append(record)
    return records


def forget_failures(succeeded: list[JobOutcome], root: str | os.PathLike = FAILED_DIR) -> None:
    """Delete the records of jobs that have now succeeded (and folders left empty)."""
    root = Path(root)
    for outcome in succeeded:
        path = record_path(outcome.rule, outcome.wildcards, root)
        if path.is_file():
            path.unlink()
            for parent in path.parents:
                if parent == root.parent or not parent.is_dir() or any(parent.iterdir()):
                    break
                parent.rmdir()


def read_failures(root: str | os.PathLike = FAILED_DIR) -> list[dict]:
    """Every failure record under `root` (sorted by path)."""
    return [json.loads(p.read_text()) for p in sorted(Path(root).rglob("*.json"))]


def prune_failure_tables(studies: dict, config: dict, root: str | os.PathLike = FAILED_DIR) -> None:
    """Delete the failure tables of studies that no longer have a failed run."""
    remaining = failed_runs(read_failures(root))
    for path in sorted((Path(root) / "tables").glob("*.*")):
        study = studies.get(path.stem)
        if study is None or not any(_in_study(f, study, study.get("seeds") or config["seeds"]) for f in remaining):
            path.unlink()
    for folder in (Path(root) / "tables", Path(root)):  # nothing left: no empty folders either
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def failed_runs(records: list[dict]) -> list[dict]:
    """One entry per run a failed job blocked, in the shape lwob.report.tables takes (`failed=`):
    model, task, method, seed, rule, status, error, log (the first log path)."""
    out = []
    for rec in records:
        for run in rec.get("runs") or []:
            out.append({**run, "rule": rec["rule"], "status": rec.get("status", "failed"),
                        "error": rec.get("error"), "log": (rec.get("log") or [None])[0]})
    return out


def _in_study(entry: dict, study: dict, seeds) -> bool:
    return (entry["model"] in study["models"] and entry["task"] in study["tasks"]
            and entry["method"] in study["methods"] and int(entry["seed"]) in {int(s) for s in seeds})


def render_failure_tables(failures: list[dict], *, runs, studies: dict, config: dict, skipped: dict,
                          template_path, pending_outputs=frozenset(),
                          out_dir: str | os.PathLike = TABLES_DIR) -> list[Path]:
    """Render each study with a failed run from the evaluation records that exist (except those
    of failed runs and of jobs still pending), the failed runs marked "err". Returns the .tex paths."""
    import pandas as pd

    from ..analysis.aggregate import collect
    from .tables import study_table

    failed_keys = {(f["model"], f["task"], f["method"], int(f["seed"])) for f in failures}
    evals = [_eval_record(r) for r in runs
             if (r.model, r.task, r.method, int(r.seed)) not in failed_keys]
    evals = [p for p in evals if p not in pending_outputs and Path(p).is_file()]
    _, summary, _ = collect(evals, [])
    reference = pd.read_csv(config["reference"]) if config.get("reference") else None
    written = []
    for name, study in studies.items():
        seeds = study.get("seeds") or config["seeds"]
        in_study = [f for f in failures if _in_study(f, study, seeds)]
        if not in_study:
            continue
        out_tex, out_csv = Path(out_dir) / f"{name}.tex", Path(out_dir) / f"{name}.csv"
        study_table(summary, study, config["tasks"], config["models"], config["methods"], template_path=template_path,
                    out_tex=out_tex, out_csv=out_csv, reference=reference, study_name=name,
                    skipped={t: skipped[t] for t in study["tasks"] if t in skipped}, failed=in_study)
        written.append(out_tex)
    return written


def jobs_of_this_run(workflow) -> tuple[list[JobOutcome], list[JobOutcome], set[str]]:
    """(succeeded, failed, pending outputs) of the run Snakemake just finished, read from its
    DAG and scheduler (Snakemake 9: `workflow.dag`, `workflow.scheduler.failed`)."""
    dag = workflow.dag

    def members(job):
        return list(job.jobs) if job.is_group() else [job]

    def outcome(job, blocked=()):
        return JobOutcome(job.rule.name, dict(job.wildcards_dict), [str(p) for p in job.log], list(blocked))

    failed_jobs = [j for job in workflow.scheduler.failed for j in members(job)]
    needrun = list(dag.needrun_jobs(exclude_finished=False))
    failed_set = set(failed_jobs)
    succeeded = [outcome(j) for j in needrun if dag.finished(j) and j not in failed_set]
    failed = [outcome(j, (str(f) for down in dag.bfs(dag.depending, j) for f in down.output)) for j in failed_jobs]
    pending = {str(f) for j in needrun if not dag.finished(j) for f in j.output}
    return succeeded, failed, pending


def mark_stale_outputs_incomplete(workflow) -> list[str]:
    """Mark incomplete, in Snakemake's metadata, the outputs that exist from an earlier run but that
    this run had to rebuild and could not (downstream of a failed job); return them.

    Snakemake deletes a failed job's outputs, and does not rebuild an existing file for an input
    that is missing: after a failed rerun (say, a changed lr), the run's old evaluation and the
    tables made from it would otherwise look up to date and the failed run would never be retried.
    An incomplete file is rebuilt by the next run with --rerun-incomplete (both profiles set it),
    and named by a run without it; Snakemake clears the mark when it has rebuilt the file.
    """
    dag = workflow.dag
    marked = []
    for job in dag.needrun_jobs(exclude_finished=True):
        existing = [str(f) for f in job.output if os.path.exists(f)]
        if existing:
            workflow.persistence.started(job)
            marked += existing
    return sorted(marked)


def after_run(workflow, *, runs, studies: dict, config: dict, skipped: dict, template_path) -> None:
    """The Snakefile's onsuccess/onerror: forget the failures of jobs that succeeded, record
    this run's failures, and under --keep-going render the affected tables with them."""
    try:
        succeeded, failed, pending = jobs_of_this_run(workflow)
    except AttributeError as err:  # another Snakemake version: the run itself is unaffected
        sys.stderr.write(f"Warning: failed jobs not recorded (Snakemake's DAG is not as expected: {err}).\n")
        return
    forget_failures(succeeded)
    records = record_failures(failed, runs)
    prune_failure_tables(studies, config)
    if not failed:
        return
    lines = [f"  {r['rule']} {'/'.join(r['wildcards'].values()) or ''}: {r['error']}"
             + (f" (log: {r['log'][0]})" if r["log"] else "") for r in records]
    sys.stderr.write(f"\n{len(records)} job(s) failed; their records are in {FAILED_DIR}/:\n" + "\n".join(lines) + "\n")
    stale = mark_stale_outputs_incomplete(workflow)
    if stale:
        sys.stderr.write(f"{len(stale)} earlier output(s) that depend on them are marked incomplete, so the next run "
                         f"rebuilds them (--rerun-incomplete): {', '.join(stale[:5])}{' ...' if len(stale) > 5 else ''}\n")
    failures = failed_runs(records)
    if not failures:
        return
    if not workflow.execution_settings.keep_going:
        sys.stderr.write("Tables not rendered with the failures: runs that did not start would show as "
                         "missing; rerun with --keep-going to finish every run that can finish.\n\n")
        return
    try:
        written = render_failure_tables(failures, runs=runs, studies=studies, config=config, skipped=skipped,
                                        template_path=template_path, pending_outputs=pending)
    except Exception as err:  # noqa: BLE001 - the run has failed already; say why the tables are not there
        sys.stderr.write(f"Tables not rendered with the failures: {type(err).__name__}: {err}\n\n")
        return
    if written:
        sys.stderr.write("Tables of the finished runs, failed ones marked \"err\": "
                         + ", ".join(map(str, written)) + "\n\n")
