"""The workflow's own run lock: one run that executes jobs per working directory at a time.

Snakemake's directory lock does not hold across overlapping runs: in 9.27 whichever run ends
first deletes the whole `.snakemake/locks` folder (persistence/file.py::_delete_locks), so a
second run of the same target can start training while the first still does, and both write
the same run folders. This lock is an exclusive `fcntl.flock` on `.snakemake/lwob-run.lock`
in the working directory. The Snakefile takes it in `onstart`, which Snakemake calls only in the
main process of a run that executes jobs: never for a dry run (-n), --report, --lint,
--unlock or a run with nothing to do, and never in job processes (local job subprocesses and
SLURM job steps are started with --no-hooks). The kernel releases it when the process ends,
however it ends; it is also released in `onsuccess`/`onerror`.

The file holds who has the lock (pid, host, start time, command), so a second run can say
which run holds it. The descriptor is close-on-exec: job processes never inherit the lock.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

LOCK_PATH = Path(".snakemake") / "lwob-run.lock"

# path -> descriptor of the locks this process holds (taking one twice is a no-op)
_held: dict[Path, int] = {}


class RunLocked(RuntimeError):
    """Another run of the workflow holds the working directory's run lock."""


def _holder_text(fd: int) -> str:
    try:
        holder = json.loads(os.pread(fd, 65536, 0).decode() or "{}")
    except (OSError, ValueError):
        holder = {}
    if not holder:
        return "another run (it has not written its details yet)"
    return (f"the run with pid {holder.get('pid')} on host {holder.get('host')}, started "
            f"{holder.get('started')}, command: {holder.get('command')}")


def acquire(path: str | os.PathLike = LOCK_PATH, command: list[str] | None = None) -> bool:
    """Take the run lock at `path` (relative to the working directory) without waiting.

    Raises RunLocked naming the holder when another process has it. Returns False, with a
    warning on stderr, on a file system without flock (the run then goes ahead unprotected).
    """
    path = Path(path).absolute()
    if path in _held:
        return True
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        holder = _holder_text(fd) if err.errno in (errno.EAGAIN, errno.EACCES) else None
        os.close(fd)
        if holder is None:  # ENOLCK, EOPNOTSUPP, ...: e.g. a Lustre mount without flock
            sys.stderr.write(f"Warning: cannot lock {path} ({os.strerror(err.errno)}): overlapping runs of this "
                             f"workflow in {path.parent.parent} are not prevented.\n")
            return False
        raise RunLocked(f"{path.parent.parent} is in use by {holder}. Wait for that run to end or stop it; "
                        f"its lock ({path}) is released when its process exits.") from None
    holder = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
              "command": " ".join(command if command is not None else sys.argv)}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(holder).encode(), 0)
    _held[path] = fd
    return True


def release(path: str | os.PathLike = LOCK_PATH) -> None:
    """Give the run lock back (a no-op when this process does not hold it)."""
    fd = _held.pop(Path(path).absolute(), None)
    if fd is not None:
        os.ftruncate(fd, 0)  # no stale holder details once free
        os.close(fd)  # closing the last descriptor releases the flock


def hold_for_run(path: str | os.PathLike = LOCK_PATH) -> None:
    """The Snakefile's `onstart`: take the lock, or stop this run with one line naming the holder."""
    try:
        acquire(path)
    except RunLocked as err:
        sys.stderr.write(f"\nError: {err}\n\n")
        raise SystemExit(1) from None
