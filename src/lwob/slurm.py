"""The SLURM executor plugin, made to submit array jobs of identical jobs only.

Applied by rules/common.smk in the submitting Snakemake process (docs/CLUSTER.md, "Array
jobs"). Kept apart from lwob.config: it touches the plugin, not the workflow's settings.
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
