"""What the benchmarks report about the machine they ran on (shared by the bench_* scripts)."""

from __future__ import annotations

import platform
from pathlib import Path


def _cpuinfo_line(prefix: str) -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what the platform module says."""
    return _cpuinfo_line("model name") or platform.processor() or platform.machine()


def bf16_flags() -> str:
    """The CPU flags behind bf16 matmuls (avx512_bf16, amx_*), space-separated."""
    return " ".join(f for f in (_cpuinfo_line("flags") or "").split() if "bf16" in f or "amx" in f)


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return ""
