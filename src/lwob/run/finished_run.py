"""What rebuilds a finished run's model, for the jobs that read a trained run (evaluation
and weight analysis). Kept apart from lwob.plan.jobs, the job runner, whose edits rerun nothing
(lwob.plan.dependencies.RUNNER_MODULES): this decides what those jobs compute.
"""

from __future__ import annotations

from pathlib import Path


def trained_run_args(snakemake) -> dict:
    """What rebuilds a finished run's model, from a job whose inputs are rules/common.smk's
    `trained_run` (evaluation and weight analysis): the model folder and config overrides,
    the tokenized data folder, the run folder and the method."""
    from ..io import read_json

    model = read_json(snakemake.input.model)
    return {
        "model_dir": Path(model["path"]),
        "model_config": model.get("config_overrides"),
        "tokenized_dir": Path(snakemake.input.data).parent,
        # None for a method that never trains (vanilla): the base model is evaluated
        "run_dir": Path(snakemake.input.record).parent if "record" in snakemake.input.keys() else None,
        "method_type": snakemake.params.method["type"],
        "method_options": dict(snakemake.params.method["options"]),
    }

