"""What every Snakemake job script shares: its log file, a quiet offline HF stack, and
the choice between running in this process or in the warm worker (lwob.plan.warm)."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path


def _prepare_env(offline: bool) -> None:
    # Compute jobs run with the hub offline: datasets and models were materialised by the
    # download stages, so a compute node never needs the network.
    if offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@contextlib.contextmanager
def _redirect(log_path: Path | None):
    if log_path is None:
        yield
        return
    with open(log_path, "a", buffering=1) as log:
        old_out, old_err = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = log
        try:
            yield
        except SystemExit:  # a deliberate exit (a preempted run saved and stops): no traceback
            raise
        except BaseException:
            import traceback

            traceback.print_exc(file=log)
            raise
        finally:
            sys.stdout, sys.stderr = old_out, old_err


def _input_error(message: str, log_path: Path | None) -> None:
    """Bad input found while the job ran (a malformed file, a checksum mismatch): one clear
    message on the terminal and in the log, no traceback; the job fails, earlier results stay."""
    text = f"Input error: {message}\n"
    if log_path is not None:
        with open(log_path, "a") as log:
            log.write(text)
    sys.stderr.write(text)
    raise SystemExit(1)


def use_warm_worker(config: dict) -> bool:
    """The config's `execution.warm_worker`, unless LWOB_WARM_WORKER=0 turns it off."""
    if os.environ.get("LWOB_WARM_WORKER") == "0":
        return False
    if os.environ.get("SLURM_JOB_ID"):
        return False  # a cluster job computes inside its own allocation, never in a shared server
    from .warm import supported

    return supported() and bool((config.get("execution") or {}).get("warm_worker", False))


def run_job(snakemake, target: str, *, offline: bool = True, **kwargs) -> None:
    """Run `module:function(**kwargs)` for a job, logging to the job's log file."""
    _prepare_env(offline)
    log_path = Path(snakemake.log[0]) if snakemake.log else None
    # A network job (download, fetch_model) may need credentials (HF_TOKEN), which are never
    # sent to the shared warm worker: it runs in its own process.
    warm = offline and use_warm_worker(snakemake.config)
    start = time.time()
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(
            f"job {snakemake.rule} {dict(snakemake.wildcards)} ({'warm worker' if warm else 'own process'})\n"
        )
    from ..errors import ConfigError, DataError
    from .warm import JobFailed

    try:
        if warm:
            from .warm import call

            call(target, kwargs, log_path)
        else:
            from .warm import resolve

            with _redirect(log_path):
                resolve(target)(**kwargs)
    except (ConfigError, DataError) as e:
        _input_error(str(e), log_path)
    except JobFailed as e:
        if not e.input_error:
            raise
        _input_error(str(e), log_path)
    if log_path is not None:
        with open(log_path, "a") as log:
            log.write(f"done in {time.time() - start:.1f} s\n")
