"""What every Snakemake job script shares: its log file and a quiet, offline HF stack."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path


@contextlib.contextmanager
def job_log(snakemake, offline: bool = True):
    """Send the job's stdout/stderr to its log file and time it.

    Compute jobs run with the hub offline: datasets and models were materialised by the
    download stages, so a compute node never needs the network.
    """
    if offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    log_path = Path(snakemake.log[0]) if snakemake.log else None
    if log_path is None:
        yield
        return
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", buffering=1) as log:
        old_out, old_err = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = log
        start = time.time()
        try:
            print(f"job {snakemake.rule} {dict(snakemake.wildcards)}")
            yield
            print(f"done in {time.time() - start:.1f} s")
        except BaseException:
            import traceback

            traceback.print_exc(file=log)
            raise
        finally:
            sys.stdout, sys.stderr = old_out, old_err


def run_threads(snakemake) -> int:
    return max(1, int(snakemake.threads))
