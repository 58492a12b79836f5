"""A warm worker for local runs: import torch/transformers/peft once, fork once per job.

Every Snakemake job is a fresh Python process, and importing torch + transformers + peft and
the model classes costs about 3.5 s per process on a laptop CPU: more than the work of a
demo job. With the warm worker, a job's script only connects to a Unix socket; a server
process that has already imported the heavy modules forks a child that runs the job and
reports back. The child starts with the job's environment, working directory and log file,
and sets its own seeds, so results are the same as in a cold process (tested).

The server is keyed by the package's source hash and location and the Python executable, so
edited code never runs in a stale server, nor another checkout's code, and it exits after
`IDLE_SECONDS` without a job. It is meant for local execution (the demo, a workstation);
cluster jobs run cold, each in its own allocation, and so do jobs that use the network
(run_job(offline=False)): they may need credentials, which never reach the shared server.

A job's work dies with its job. The job's script (the client) keeps its connection open
until the child answers; the child watches that connection from a thread, and when it ends
(the script exited, was killed, Snakemake was interrupted) the child kills itself and every
process it started (its own process group, and descendants that left it, such as
torch.distributed.run's workers) before it can write an output. SIGINT, SIGTERM and SIGUSR1
to the script are passed to the child instead, as if it were the script: training then saves
its checkpoint and stops (lwob.run.checkpoint), and the script exits as the child did; a job that
does not stop within `STOP_GRACE_SECONDS`, or a second signal, ends the connection and so the
child.

Security on a shared machine: the socket lives in a directory private to the user (mode
0700, checked before use), both ends check the other's uid (SO_PEERCRED), messages are JSON
(data only: a tagged encoding carries paths and tuples, nothing is ever unpickled), and the
environment sent to the child leaves out variables that look like credentials.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib
import json
import os
import select
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Mapping
from pathlib import Path, PurePath

IDLE_SECONDS = 120
#: how long a job may take to stop after a forwarded signal (training saves its checkpoint at
#: the next step boundary) before its connection is closed, which kills it
STOP_GRACE_SECONDS = 60
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)
MAX_MESSAGE_BYTES = 256 << 20
PRELOAD = (
    "torch",
    "transformers",
    "peft",
    "transformers.models.bert.modeling_bert",
    "transformers.models.roberta.modeling_roberta",
    "pandas",
    "pyarrow.parquet",
    "psutil",
    "lwob.run.training",
    "lwob.run.evaluation",
    "lwob.data.tokenize",
)
#: parts of environment variable names that mark credentials (HF_TOKEN, AWS_SECRET_ACCESS_KEY,
#: WANDB_API_KEY, SSH_AUTH_SOCK, ...): such variables are not sent to the warm worker
SECRET_MARKERS = ("TOKEN", "KEY", "SECRET", "PASSWORD", "PASSWD", "PASSPHRASE", "CREDENTIAL", "AUTH", "COOKIE")
#: names that contain a marker but hold no secret, and that jobs need
NOT_SECRETS = frozenset({"TOKENIZERS_PARALLELISM"})


class JobFailed(RuntimeError):
    def __init__(self, message: str, input_error: bool = False):
        super().__init__(message)
        self.input_error = input_error  # bad user input (ConfigError/DataError): report without traceback


class ProtocolError(ValueError):
    """A message that is not this protocol's JSON (e.g. a pickle): refused, never decoded."""


def supported() -> bool:
    """The warm worker needs fork and the kernel's word on who is at the other end of a socket."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_PEERCRED") and hasattr(os, "fork")


# --------------------------------------------------------------------------- wire format

_TAG = "__lwob__"


def encode(obj, where: str = "kwargs"):
    """`obj` as JSON data; Path, tuple and dicts with non-string keys as tagged objects.
    Anything else is refused with the key it sits under (the wire carries data, not objects)."""
    if obj is None or isinstance(obj, bool):
        return obj
    if isinstance(obj, int):
        return int(obj)  # a plain int, also from an IntEnum
    if isinstance(obj, float):
        return float(obj)
    if isinstance(obj, str):
        return str.__str__(obj)  # a plain str (Snakemake hands out str subclasses)
    if isinstance(obj, PurePath):
        return {_TAG: "path", "value": str(obj)}
    if isinstance(obj, Mapping):
        items = [(k, encode(v, f"{where}[{k!r}]")) for k, v in obj.items()]
        if all(isinstance(k, str) for k, _ in items) and _TAG not in obj:
            return {str.__str__(k): v for k, v in items}
        return {_TAG: "dict", "items": [[encode(k, f"{where} key {k!r}"), v] for k, v in items]}
    if isinstance(obj, tuple):
        return {_TAG: "tuple", "items": [encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    raise TypeError(f"{where} is a {type(obj).__name__}, which the warm worker cannot send "
                    "(data only: None, bool, numbers, str, list, tuple, dict, pathlib.Path)")


def _decode_tagged(d: dict):
    tag = d.get(_TAG)
    if tag is None:
        return d
    if tag == "path" and isinstance(d.get("value"), str):
        return Path(d["value"])
    if tag == "tuple" and isinstance(d.get("items"), list):
        return tuple(d["items"])
    if tag == "dict" and isinstance(d.get("items"), list):
        try:
            return {k: v for k, v in d["items"]}
        except (TypeError, ValueError) as e:
            raise ProtocolError(f"malformed tagged dict: {e}") from None
    raise ProtocolError(f"unknown tagged object {tag!r}")


def decode(data: bytes):
    try:
        message = json.loads(data.decode("utf-8"), object_hook=_decode_tagged)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ProtocolError(f"not a JSON message ({e})") from None
    if not isinstance(message, dict):
        raise ProtocolError("a message must be a JSON object")
    return message


def serialize(message: dict, where: str = "message") -> bytes:
    """One framed message: its length, then its JSON."""
    data = json.dumps(encode(message, where)).encode("utf-8")
    return struct.pack("!Q", len(data)) + data


def _send(conn: socket.socket, message: dict) -> None:
    conn.sendall(serialize(message))


def _recv(conn: socket.socket) -> dict | None:
    """The next message, or None once the other end has gone."""
    head = _recv_exact(conn, 8)
    if head is None:
        return None
    (size,) = struct.unpack("!Q", head)
    if size > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"a message of {size} bytes (at most {MAX_MESSAGE_BYTES})")
    body = _recv_exact(conn, size)
    return None if body is None else decode(body)


def _recv_exact(conn: socket.socket, size: int) -> bytes | None:
    chunks, got = [], 0
    while got < size:
        try:
            chunk = conn.recv(min(size - got, 1 << 20))
        except ConnectionResetError:
            return None
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def peer_uid(conn: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket, from the kernel."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


# --------------------------------------------------------------------------- where the socket lives


def _refuse(message: str):
    from ..errors import ConfigError

    return ConfigError(f"{message}; or turn the warm worker off (LWOB_WARM_WORKER=0)")


def check_private_dir(path: Path) -> None:
    """`path` must be a real directory owned by this user that nobody else can enter."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise _refuse(f"the warm worker's directory {path} does not exist") from None
    if not stat.S_ISDIR(st.st_mode):
        raise _refuse(f"the warm worker's directory {path} is not a directory (a link or a file): remove it")
    if st.st_uid != os.getuid():
        raise _refuse(f"the warm worker's directory {path} belongs to uid {st.st_uid}, not to you "
                      f"(uid {os.getuid()}): it cannot be trusted")
    if st.st_mode & 0o077:
        raise _refuse(f"the warm worker's directory {path} has mode {stat.S_IMODE(st.st_mode):04o}; it must be "
                      f"0700 (private to you): run `chmod 700 {path}` or remove it")


def private_dir() -> Path:
    """This user's directory for warm-worker sockets: $XDG_RUNTIME_DIR/lwob-warm where the
    session has one, else lwob-warm-<uid> in the temporary directory; created 0700, checked."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime) and os.path.isdir(runtime) and os.stat(runtime).st_uid == os.getuid():
        path = Path(runtime) / "lwob-warm"
    else:
        path = Path(tempfile.gettempdir()) / f"lwob-warm-{os.getuid()}"
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    check_private_dir(path)
    return path


def _source_hash() -> str:
    root = Path(__file__).resolve().parents[1]  # the whole lwob package
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def socket_path() -> Path:
    # The package's location too: a server imports modules lazily from its own checkout, so a
    # copy of the same code elsewhere (edited or deleted later) must not serve this one's jobs.
    package = Path(__file__).resolve().parents[1]
    key = hashlib.sha256(f"{sys.executable}|{package}|{_source_hash()}".encode()).hexdigest()[:16]
    return private_dir() / f"{key}.sock"


def job_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a job runs with in the warm worker: everything but credentials."""
    environ = os.environ if environ is None else environ
    return {k: v for k, v in environ.items() if not looks_secret(k)}


def looks_secret(name: str) -> bool:
    upper = name.upper()
    return upper not in NOT_SECRETS and any(marker in upper for marker in SECRET_MARKERS)


def resolve(target: str):
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


# --------------------------------------------------------------------------- client


def call(target: str, kwargs: dict, log_path: str | os.PathLike | None) -> None:
    """Run `module:function(**kwargs)` in a forked child of the warm server.

    Returns when the job succeeded; raises JobFailed when it failed, KeyboardInterrupt or
    SystemExit when it stopped on a signal passed on to it. Leaving this function any other
    way (the script is killed, an exception) closes the connection, which kills the job."""
    request = serialize({  # before connecting: an unsendable argument starts nothing
        "target": target,
        "kwargs": kwargs,
        "env": job_environment(),
        "cwd": os.getcwd(),
        "umask": _current_umask(),
        "log": str(Path(log_path).resolve()) if log_path else None,
    }, where="request")
    path = socket_path()
    check_private_dir(path.parent)
    conn = _connect(path)
    try:
        conn.sendall(request)
        reply = _await_reply(conn, target)
    finally:
        conn.close()
    if reply["ok"]:
        return
    if reply.get("exit_status") is not None:
        raise SystemExit(int(reply["exit_status"]))  # a deliberate exit, e.g. 143: saved a checkpoint and stopped
    if reply.get("interrupted"):
        raise KeyboardInterrupt
    raise JobFailed(reply["error"], input_error=bool(reply.get("input_error")))


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class _SignalForwarder:
    """While the job runs, SIGINT/SIGTERM/SIGUSR1 to the script go to the child as a message;
    a second one stops waiting (leaving call() closes the connection and kills the child)."""

    def __init__(self, conn: socket.socket):
        self.conn = conn
        self.received: int | None = None
        self.deadline: float | None = None
        self._old: dict = {}

    def __enter__(self):
        try:
            for s in FORWARDED_SIGNALS:
                self._old[s] = signal.signal(s, self._handler)
        except ValueError:  # not the main thread: signals stay with whoever handles them
            self._old = {}
        return self

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)
        return False

    def _handler(self, signum, frame):
        if self.received is not None:
            _stop_on(signum)
        self.received = signum
        self.deadline = time.monotonic() + STOP_GRACE_SECONDS
        try:
            _send(self.conn, {"signal": int(signum)})
        except OSError:  # the child is gone already; the reply loop finds out
            pass


def _stop_on(signum: int):
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + signum)


def _await_reply(conn: socket.socket, target: str) -> dict:
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    with _SignalForwarder(conn) as forwarder:
        while not poller.poll(250):
            if forwarder.deadline is not None and time.monotonic() > forwarder.deadline:
                print(f"the job did not stop within {STOP_GRACE_SECONDS} s of signal {forwarder.received}: killing it",
                      file=sys.stderr, flush=True)
                _stop_on(forwarder.received)
        reply = _recv(conn)
    if reply is None:
        if forwarder.received is not None:  # the child died of the signal it was passed
            _stop_on(forwarder.received)
        raise JobFailed(f"the warm worker's child died while running {target} (killed or out of memory?)")
    return reply


def _connect(path: Path, timeout: float = 120.0) -> socket.socket:
    deadline = time.time() + timeout
    started = False
    while True:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(str(path))
            break
        except (FileNotFoundError, ConnectionRefusedError):
            conn.close()
        if not started:
            _start_server(path)
            started = True
        if time.time() > deadline:
            raise JobFailed(f"no warm worker answered at {path} within {timeout:.0f} s")
        time.sleep(0.05)
    uid = peer_uid(conn)
    if uid != os.getuid():
        conn.close()
        raise _refuse(f"the warm worker at {path} runs as uid {uid}, not as you (uid {os.getuid()}): "
                      "refusing to send it a job")
    return conn


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
            [sys.executable, "-m", "lwob.plan.warm", str(path)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True, close_fds=True,
            env={**job_environment(), "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        deadline = time.time() + 120
        while not path.exists() and time.time() < deadline:
            time.sleep(0.05)


# --------------------------------------------------------------------------- server


def serve(path: Path, idle: float = IDLE_SECONDS, preload: tuple[str, ...] | None = None) -> None:
    check_private_dir(path.parent)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for name in PRELOAD if preload is None else preload:
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
            conn.settimeout(None)
            uid = peer_uid(conn)
            if uid != os.getuid():
                print(f"refused a connection from uid {uid} (this server runs as uid {os.getuid()})", flush=True)
                conn.close()
                continue
            if os.fork() == 0:
                sock.close()
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                code = 1
                try:
                    code = _child(conn)
                finally:
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
    # A process group of its own, and the adopter of its orphans: everything the job starts
    # can be found and killed with it.
    os.setpgid(0, 0)
    _become_subreaper()
    try:
        request = _recv(conn)
    except ProtocolError as e:
        print(f"refused a request: {e}", flush=True)
        conn.close()
        return 1
    if request is None:
        return 1
    finished = threading.Event()
    threading.Thread(target=_watch_client, args=(conn, finished), daemon=True).start()
    os.chdir(request["cwd"])
    os.umask(request["umask"])  # the job's outputs get the permissions they get in its own process
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
        reply = {"ok": True}
    except SystemExit as e:  # a deliberate exit (a preempted run saved its checkpoint): no traceback
        code = e.code
        if code is not None and not isinstance(code, int):
            print(code, file=sys.stderr)
        reply = {"ok": False, "exit_status": 0 if code is None else code if isinstance(code, int) else 1}
    except KeyboardInterrupt:
        traceback.print_exc()
        reply = {"ok": False, "interrupted": True}
    except BaseException as e:
        traceback.print_exc()
        from ..errors import ConfigError, DataError

        bad_input = isinstance(e, (ConfigError, DataError))
        reply = {"ok": False, "error": str(e) if bad_input else f"{type(e).__name__}: {e}", "input_error": bad_input}
    sys.stdout.flush()
    sys.stderr.flush()
    finished.set()
    kill_job_tree(include_self=False)  # what the job started and left running (an interrupted launcher's workers)
    try:
        _send(conn, reply)
    except OSError:
        pass
    return 0


def _watch_client(conn: socket.socket, finished: threading.Event) -> None:
    """The client only ever sends signals to pass on; when its end closes, the job dies."""
    while True:
        try:
            message = _recv(conn)
        except (OSError, ProtocolError):
            message = None
        if message is None:
            if not finished.is_set():
                kill_job_tree()
            return
        signum = message.get("signal")
        if signum not in {int(s) for s in FORWARDED_SIGNALS}:
            continue
        handler = signal.getsignal(signum)
        if handler == signal.SIG_DFL and signum != signal.SIGINT:
            kill_job_tree()  # what the signal would do to the job's own process, its descendants included
        elif handler != signal.SIG_IGN:
            os.kill(os.getpid(), signum)  # handled in the main thread, as in the job's own process


def kill_job_tree(include_self: bool = True) -> None:
    """SIGKILL every process this job started, then (include_self) the job itself.

    The process group alone is not enough: torch.distributed.run starts its workers in
    sessions of their own. Descendants are collected before any is killed (killing a parent
    first would orphan its children out of reach), and collected again for those that forked
    meanwhile (as the subreaper, this process adopts them)."""
    me = os.getpid()
    try:
        import psutil

        for _ in range(3):
            descendants = [p for p in psutil.Process(me).children(recursive=True)
                           if _alive(p)]
            if not descendants:
                break
            for p in descendants:
                try:
                    p.send_signal(signal.SIGKILL)
                except psutil.Error:
                    pass
    finally:
        if include_self:
            if os.getpgrp() == me:  # never the server's group, should setpgid have failed
                os.killpg(me, signal.SIGKILL)
            os.kill(me, signal.SIGKILL)


def _alive(process) -> bool:
    import psutil

    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _become_subreaper() -> None:
    try:
        import ctypes

        PR_SET_CHILD_SUBREAPER = 36
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # only Linux has it; the process group still catches the usual descendants


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
