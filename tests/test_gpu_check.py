"""benchmarks/gpu_check.sh in its dry mode: the GPU check is complete and ready for the day a
task has a device. On the CPU, at tiny sizes: the wheel folder it carries (built from the
package index) installs offline, every stage (training and evaluation through lwob's real
entries with bf16 autocast, TF32 and fused AdamW switched on; the matmul peak; the RoBERTa-base-
and Llama-shaped utilisation steps) runs in an interpreter that sees only what the GPU
machine's Python has plus those wheels, and the tree that travels stays under 64 MiB."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow


def test_gpu_check_dry_run_is_complete(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "VENV_PY": str(REPO / ".venv/bin/python")}
    done = subprocess.run(["bash", str(REPO / "benchmarks/gpu_check.sh"), "--dry-run"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-5000:]
    assert "gpu_check (dry run): complete" in log, log[-3000:]
    assert "0 check(s) failed" in log and "FAILED" not in log, log[-3000:]
    result = json.loads((out / "gpu_check.json").read_text())
    assert not result["failed"] and result["environment"]["tiny"] is True
    assert {r["method"] for r in result["runs"]} == {"fft", "lora"}
    for run in result["runs"]:
        assert run["fast_path"]["precision"] == "bf16" and run["fast_path"]["fused_optimizer"] is True
    steps = {r["step"].split(" ")[0]: r for r in result["utilisation"]}
    assert set(steps) == {"RoBERTa-base-shaped", "Llama-1B-shaped"}
    assert all(r["mfu_bf16"] > 0 and r["tflop_s"] > 0 for r in steps.values())
    assert result["peaks"]["bf16"] > 0
    wheels = sorted(p.name for p in (REPO / "benchmarks/out/wheels").glob("*.whl"))
    assert any(w.startswith("pyarrow-") for w in wheels), wheels  # the device's Python has no pyarrow
