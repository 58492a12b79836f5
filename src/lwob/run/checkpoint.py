"""Preemption-safe training: periodic checkpoints, save-and-exit on SIGTERM or Ctrl-C, resume.

SLURM sends SIGTERM before a time limit or a preemption; a user at a terminal presses Ctrl-C
(SIGINT). The training loop asks
`Preemption.requested` after every optimizer step; when set it saves the whole state at
that step boundary (trainable tensors, optimizer, step and epoch, the epoch's batch order
and position, the batch-order generator and the torch RNG, the running epoch statistics,
the best epoch so far and method state such as AdaLoRA's importance scores) and exits with
status 143 (130 after Ctrl-C; a second Ctrl-C stops at once, without saving). The next attempt of the job finds `checkpoint.pt` beside its outputs and resumes;
on CPU the result is bitwise identical to an uninterrupted run. A checkpoint only resumes the
run it was made for (its fingerprint: settings, seed, data and weights), and is deleted once
the run's outputs are written. The file holds only tensors, numbers, strings and plain
containers, so it loads with `torch.load(weights_only=True)`: a checkpoint file never runs code.
"""

from __future__ import annotations

import hashlib
import json
import signal
import time
from pathlib import Path

import torch

from ..io import atomic_write_bytes

FILENAME = "checkpoint.pt"
#: exit status of a job that saved and stopped on SIGTERM (128 + 15, as if killed by it)
PREEMPTED_EXIT = 143
#: exit status of a job that saved and stopped on Ctrl-C (128 + 2, as if killed by SIGINT)
INTERRUPTED_EXIT = 130


class Preempted(SystemExit):
    def __init__(self, path: Path, code: int = PREEMPTED_EXIT):
        super().__init__(code)
        self.path = path


def fingerprint(**parts) -> str:
    """What a checkpoint belongs to: a hash of the run's settings, seed, data and weights."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class Preemption:
    """Within the block, SIGTERM (and SIGUSR1, which SLURM can send ahead of the time limit)
    and SIGINT (Ctrl-C) set `requested` instead of killing the process; handlers are
    restored on exit. A second SIGINT raises KeyboardInterrupt: whoever presses Ctrl-C twice
    wants the process gone now, not at the next step boundary."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)

    def __init__(self, every_minutes: float | None = None):
        self.requested = False
        self.signal: int | None = None  # the first signal that asked to stop
        self.every_s = every_minutes * 60 if every_minutes else None
        self._last = time.monotonic()
        self._old: dict = {}

    def _handler(self, signum, frame):
        if signum == signal.SIGINT and self.signal == signal.SIGINT:
            raise KeyboardInterrupt
        if self.signal is None:
            self.signal = signum
        self.requested = True

    @property
    def reason(self) -> str:
        """What stopped the run, as recorded in the checkpoint (`resumed_from.reason`)."""
        return "sigint" if self.signal == signal.SIGINT else "sigterm"

    @property
    def exit_code(self) -> int:
        return INTERRUPTED_EXIT if self.signal == signal.SIGINT else PREEMPTED_EXIT

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signal).name if self.signal is not None else "a stop request"

    def __enter__(self):
        try:
            for s in self.SIGNALS:
                self._old[s] = signal.signal(s, self._handler)
        except ValueError:  # not the main thread: no handlers, periodic checkpoints only
            self._old = {}
        return self

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)
        return False

    def periodic_due(self) -> bool:
        if self.every_s is None or time.monotonic() - self._last < self.every_s:
            return False
        self._last = time.monotonic()
        return True


def save(path: Path, state: dict) -> None:
    import io

    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load(path: Path, expected_fingerprint: str, remove_stale: bool = True) -> dict | None:
    """The checkpoint's state if it exists and belongs to this run, else None (a stale one is
    removed, by the main process only in a multi-process run)."""
    if not path.is_file():
        return None
    try:  # weights_only: a checkpoint is data; unpickling arbitrary objects could run code
        state = torch.load(path, map_location="cpu", weights_only=True)
        problem = None if isinstance(state, dict) else f"holds a {type(state).__name__}, not a training state"
    except Exception as e:  # noqa: BLE001 - a truncated or foreign file is not resumable
        state, problem = None, f"is unreadable ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
    if problem is None and state.get("fingerprint") != expected_fingerprint:
        problem = "belongs to other settings, data or weights than this run"
    if problem is not None:
        if remove_stale:
            print(f"checkpoint {path} {problem}: removed; training starts from the beginning", flush=True)
            Path(path).unlink(missing_ok=True)
        return None
    return state


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
