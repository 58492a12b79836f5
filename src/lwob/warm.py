"""A warm worker for local runs: import torch/transformers/peft once, fork once per job.

Every Snakemake job is a fresh Python process, and importing torch + transformers + peft and
the model classes costs about 3.5 s per process on a laptop CPU: more than the work of a
demo job. With the warm worker, a job's script only connects to a Unix socket; a server
process that has already imported the heavy modules forks a child that runs the job and
reports back. The child starts with the job's environment, working directory and log file,
and sets its own seeds, so results are the same as in a cold process (tested).

The server is keyed by the package's source hash and the Python executable, so edited code
never runs in a stale server, and it exits after `IDLE_SECONDS` without a job. It is meant
for local execution (the demo, a workstation); cluster jobs run cold, each in its own
allocation.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

IDLE_SECONDS = 120
PRELOAD = (
    "torch",
    "transformers",
    "peft",
    "transformers.models.bert.modeling_bert",
    "transformers.models.roberta.modeling_roberta",
    "pandas",
    "pyarrow.parquet",
    "lwob.training",
    "lwob.evaluation",
    "lwob.data.tokenize",
)


class JobFailed(RuntimeError):
    def __init__(self, message: str, input_error: bool = False):
        super().__init__(message)
        self.input_error = input_error  # bad user input (ConfigError/DataError): report without traceback


def _send(conn: socket.socket, obj) -> None:
    data = pickle.dumps(obj)
    conn.sendall(struct.pack("!Q", len(data)) + data)


def _recv(conn: socket.socket):
    head = _recv_exact(conn, 8)
    if head is None:
        return None
    (size,) = struct.unpack("!Q", head)
    body = _recv_exact(conn, size)
    return None if body is None else pickle.loads(body)


def _recv_exact(conn: socket.socket, size: int) -> bytes | None:
    chunks, got = [], 0
    while got < size:
        chunk = conn.recv(min(size - got, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def socket_path() -> Path:
    from .config import code_version

    key = hashlib.sha256(f"{sys.executable}|{code_version('')}|{os.getuid()}".encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"lwob-warm-{key}.sock"


def resolve(target: str):
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


# --------------------------------------------------------------------------- client


def call(target: str, kwargs: dict, log_path: str | os.PathLike | None) -> None:
    """Run `module:function(**kwargs)` in a forked child of the warm server."""
    path = socket_path()
    conn = _connect(path)
    request = {
        "target": target,
        "kwargs": kwargs,
        "env": dict(os.environ),
        "cwd": os.getcwd(),
        "log": str(Path(log_path).resolve()) if log_path else None,
        "client_pid": os.getpid(),
    }
    try:
        _send(conn, request)
        reply = _recv(conn)
    finally:
        conn.close()
    if reply is None:
        raise JobFailed(f"the warm worker's child died while running {target} (killed or out of memory?)")
    if not reply["ok"]:
        raise JobFailed(reply["error"], input_error=bool(reply.get("input_error")))


def _connect(path: Path, timeout: float = 120.0) -> socket.socket:
    deadline = time.time() + timeout
    started = False
    while True:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(str(path))
            return conn
        except (FileNotFoundError, ConnectionRefusedError):
            conn.close()
        if not started:
            _start_server(path)
            started = True
        if time.time() > deadline:
            raise JobFailed(f"no warm worker answered at {path} within {timeout:.0f} s")
        time.sleep(0.05)


def _start_server(path: Path) -> None:
    """Start one server per socket; a lock makes concurrent first jobs start only one."""
    lock_path = path.with_suffix(".lock")
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
            probe.close()
            return  # another job started it meanwhile
        except (FileNotFoundError, ConnectionRefusedError):
            probe.close()
        if path.exists():
            path.unlink()  # left by a server that died
        log = open(path.with_suffix(".log"), "a")
        subprocess.Popen(
            [sys.executable, "-m", "lwob.warm", str(path)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True, close_fds=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        deadline = time.time() + 120
        while not path.exists() and time.time() < deadline:
            time.sleep(0.05)


# --------------------------------------------------------------------------- server


def serve(path: Path, idle: float = IDLE_SECONDS) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception as e:  # an optional model family may be missing
            print(f"preload {name} failed: {e}", flush=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    tmp = path.with_name(path.name + f".{os.getpid()}")
    sock.bind(str(tmp))
    sock.listen(64)
    os.replace(tmp, path)  # clients see the socket only once it accepts connections
    inode = os.stat(path).st_ino
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped automatically
    sock.settimeout(idle)
    print(f"warm worker {os.getpid()} serving at {path}", flush=True)
    try:
        while True:
            try:
                conn, _ = sock.accept()
            except socket.timeout:
                break
            except InterruptedError:
                continue
            if os.fork() == 0:
                sock.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                code = _child(conn)
                os._exit(code)
            conn.close()
    finally:
        sock.close()
        try:
            if os.stat(path).st_ino == inode:  # not a newer server's socket
                path.unlink()
        except OSError:
            pass


def _child(conn: socket.socket) -> int:
    try:
        request = _recv(conn)
        if request is None:
            return 1
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        if request["log"]:
            fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.close(fd)
            sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
            sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
        try:
            resolve(request["target"])(**request["kwargs"])
            _send(conn, {"ok": True})
        except BaseException as e:
            traceback.print_exc()
            from .errors import ConfigError, DataError

            bad_input = isinstance(e, (ConfigError, DataError))
            _send(conn, {"ok": False, "error": str(e) if bad_input else f"{type(e).__name__}: {e}",
                         "input_error": bad_input})
        sys.stdout.flush()
        sys.stderr.flush()
        return 0
    finally:
        conn.close()


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
