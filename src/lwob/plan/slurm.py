"""The SLURM executor plugin, made to submit array jobs of identical jobs only, with batch
scripts that outlive SLURM's SIGTERM.

Applied by rules/common.smk in the submitting Snakemake process (docs/CLUSTER.md, "Array
jobs" and "Preemption"). Kept apart from lwob.plan.config: it touches the plugin, not the
workflow's settings.
"""

from __future__ import annotations


def array_batch_key(job) -> tuple:
    """Jobs that may share one SLURM array: same rule, same attempt, same resources.

    The SLURM executor plugin submits an array with its first job's resources, and a job's
    resources depend on its model and grow with its attempt (retries), so only jobs that
    agree on all of them may share an array.
    """
    resources = tuple(sorted((k, str(v)) for k, v in dict(job.resources.items()).items()))
    return job.rule.name, job.attempt, resources


def homogeneous_slurm_arrays(plugin) -> bool:
    """Make the SLURM executor plugin (2.8) submit arrays of identical jobs only.

    Plugin 2.8.0 batches the ready jobs of a rule into one array by rule name alone (the
    array gets the first job's memory, runtime and GPUs), and when the scheduler hands it
    fewer jobs of a rule than are still waiting (a `jobs` or rate limit binds), it keeps
    them back and never submits them: the run hangs. This replaces its `run_jobs`: the
    jobs it is handed are split by `array_batch_key`; a batch of two or more jobs of a rule
    selected with `slurm-array-jobs` becomes one array, every other job is submitted alone.
    Returns False (and changes nothing) when the plugin lacks the methods this relies on.
    """
    executor = getattr(plugin, "Executor", None)
    if executor is None or not all(hasattr(executor, m) for m in ("_submit_job", "_submit_array_jobs")):
        return False
    if getattr(executor.run_jobs, "lwob_homogeneous", False):
        return True

    def run_jobs(self, jobs):
        import asyncio

        if getattr(self, "_main_event_loop", None) is None:
            try:
                self._main_event_loop = asyncio.get_running_loop()
            except RuntimeError:
                self._main_event_loop = None
        selected = getattr(self, "array_jobs", set())
        batches: dict[tuple, list] = {}
        for job in jobs:
            if job.is_group() or not ({"all", job.rule.name} & selected):
                self._submit_job(job)
            else:
                batches.setdefault(array_batch_key(job), []).append(job)
        for batch in batches.values():
            if len(batch) > 1:
                self._submit_array_jobs(batch)
            else:
                self._submit_job(batch[0])

    run_jobs.lwob_homogeneous = True
    executor.run_jobs = run_jobs
    return True


#: Prefixed to every job's command line. Before a time limit or a preemption SLURM sends
#: SIGTERM to every process of the job, the batch script included (`scancel --full` does the
#: same). A plain `/bin/sh` batch script dies of it at once, and when the batch script ends
#: SLURM kills whatever is left, so training would be killed in the middle of saving its
#: checkpoint. Ignoring the signal in the shells keeps them waiting for their child; the
#: training process installs its own handler (lwob.run.checkpoint), saves and exits 143, and the
#: job ends with that status. Snakemake's own processes handle SIGTERM themselves.
SURVIVE_SIGTERM = "trap '' TERM USR1;"


def signal_safe_batch_scripts(plugin) -> bool:
    """Make every command the SLURM executor plugin submits start with SURVIVE_SIGTERM
    (its sbatch `--wrap` script and its array tasks' commands). Returns False (and changes
    nothing) when the plugin lacks the method this relies on."""
    executor = getattr(plugin, "Executor", None)
    original = getattr(executor, "format_job_exec", None)
    if original is None:
        return False
    if getattr(original, "lwob_signal_safe", False):
        return True

    def format_job_exec(self, job):
        return f"{SURVIVE_SIGTERM} {original(self, job)}"

    format_job_exec.lwob_signal_safe = True
    executor.format_job_exec = format_job_exec
    return True


def patch_plugin(plugin) -> bool:
    """Both changes above; False when either could not be made."""
    return all([homogeneous_slurm_arrays(plugin), signal_safe_batch_scripts(plugin)])
