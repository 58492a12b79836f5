"""The warm worker on a shared machine: a private socket directory, the peer's uid checked
on both ends, a data-only wire format, and no credentials in what a job sends."""

from __future__ import annotations

import json
import os
import pickle
import socket
import struct
import time
from pathlib import Path, PurePosixPath
from types import SimpleNamespace

import pytest

from lwob.plan import jobs, warm
from lwob.errors import ConfigError
from conftest import start_server


def write_environment(path: str) -> None:
    """A job that records the environment it runs with."""
    Path(path).write_text(json.dumps(dict(os.environ)))


def _request(target: str, kwargs: dict, cwd: Path) -> bytes:
    return warm.serialize({"target": target, "kwargs": kwargs, "env": {}, "cwd": str(cwd), "log": None})


def _send_is_refused(conn: socket.socket, data: bytes, timeout: float = 10) -> bool:
    """True when the server closes the connection without a reply (it may close it before
    the message is even sent)."""
    conn.settimeout(timeout)
    try:
        conn.sendall(data)
        return conn.recv(1) == b""
    except (BrokenPipeError, ConnectionResetError):
        return True


# --------------------------------------------------------------------------- private directory


def test_private_dir_is_made_private_and_reused(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(warm.tempfile, "gettempdir", lambda: str(tmp_path))
    first = warm.private_dir()
    assert first == tmp_path / f"lwob-warm-{os.getuid()}"
    st = first.stat()
    assert (st.st_mode & 0o777, st.st_uid) == (0o700, os.getuid())
    assert warm.private_dir() == first
    assert warm.socket_path().parent == first


def test_private_dir_prefers_the_session_runtime_dir(tmp_path, monkeypatch):
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    assert warm.private_dir() == runtime / "lwob-warm"


@pytest.mark.parametrize("problem", ["mode", "owner", "symlink"])
def test_untrusted_dir_is_refused_with_one_line(tmp_path, monkeypatch, problem):
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(warm.tempfile, "gettempdir", lambda: str(tmp_path))
    path = tmp_path / f"lwob-warm-{os.getuid()}"
    if problem == "symlink":
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        path.symlink_to(tmp_path / "elsewhere")
        expected = "not a directory"
    else:
        path.mkdir(mode=0o700)
        if problem == "mode":
            path.chmod(0o755)
            expected = "mode 0755"
        else:
            real = os.getuid()
            monkeypatch.setattr(os, "getuid", lambda: real + 1)
            path = tmp_path / f"lwob-warm-{real + 1}"
            path.mkdir(mode=0o700)
            expected = f"belongs to uid {real}"
    with pytest.raises(ConfigError) as e:
        warm.private_dir()
    message = str(e.value)
    assert "\n" not in message and str(path) in message and expected in message
    assert "LWOB_WARM_WORKER=0" in message


def test_call_refuses_an_open_dir_before_starting_anything(tmp_path, monkeypatch):
    open_dir = tmp_path / "open"
    open_dir.mkdir(mode=0o755)
    open_dir.chmod(0o755)
    monkeypatch.setattr(warm, "socket_path", lambda: open_dir / "w.sock")
    with pytest.raises(ConfigError, match="mode 0755"):
        warm.call("lwob.io:write_json", {"path": tmp_path / "x.json", "obj": {}}, None)
    assert list(open_dir.iterdir()) == []  # no server, lock or log
    assert not (tmp_path / "x.json").exists()


# --------------------------------------------------------------------------- peer checks


def test_server_refuses_a_peer_of_another_uid(tmp_path):
    """The server asks the kernel who connected (SO_PEERCRED); here it is told a foreign uid."""
    sock = tmp_path / "foreign.sock"
    proc = start_server(sock, patch="warm.peer_uid = lambda conn: os.getuid() + 1")
    try:
        target = tmp_path / "written.json"
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(str(sock))
        assert _send_is_refused(conn, _request("lwob.io:write_json", {"path": target, "obj": {"ran": True}}, tmp_path))
        conn.close()
        time.sleep(0.5)
        assert not target.exists()
        assert f"refused a connection from uid {os.getuid() + 1}" in sock.with_suffix(".log").read_text()
    finally:
        proc.kill()
        proc.wait()


def test_client_refuses_a_server_of_another_uid(server_socket, tmp_path, monkeypatch):
    monkeypatch.setattr(warm, "socket_path", lambda: server_socket)
    monkeypatch.setattr(warm, "peer_uid", lambda conn: os.getuid() + 1)
    with pytest.raises(ConfigError, match=f"runs as uid {os.getuid() + 1}, not as you"):
        warm.call("lwob.io:write_json", {"path": tmp_path / "x.json", "obj": {}}, None)
    assert not (tmp_path / "x.json").exists()


# --------------------------------------------------------------------------- wire format


class _WritesOnUnpickle:
    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))  # unpickling this creates the file


def test_pickle_payload_is_refused_unread(server_socket, tmp_path):
    marker = tmp_path / "unpickled"
    payload = pickle.dumps({"target": "lwob.io:write_json", "kwargs": {}, "x": _WritesOnUnpickle(str(marker))})
    with pytest.raises(warm.ProtocolError, match="not a JSON message"):
        warm.decode(payload)
    assert not marker.exists()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(str(server_socket))
    assert _send_is_refused(conn, struct.pack("!Q", len(payload)) + payload)
    conn.close()
    time.sleep(0.5)
    assert not marker.exists()
    assert "refused a request: not a JSON message" in server_socket.with_suffix(".log").read_text()


class _Name(str):
    """As Snakemake's input and output names are: a str subclass."""


def test_job_arguments_round_trip_as_data():
    kwargs = {
        "path": Path("/a/b.json"), "pure": PurePosixPath("c/d"), "name": _Name("out.csv"),
        "shape": (1, (2, 3)), "by_seed": {0: "a", 42: "b"}, "tagged": {"__lwob__": "path", "value": "x"},
        "nested": [{"dirs": {"x": Path("x")}}, None, True, 1.5, float("inf")], "none": None,
    }
    got = warm.decode(warm.serialize(kwargs)[8:])
    assert got == {**kwargs, "pure": Path("c/d")}
    assert type(got["name"]) is str and isinstance(got["path"], Path) and got["tagged"] == kwargs["tagged"]


def test_unsendable_argument_names_its_key():
    with pytest.raises(TypeError, match=r"request\['kwargs'\]\['methods'\]\[1\] is a set"):
        warm.serialize({"kwargs": {"methods": ["fft", {"lora"}]}}, where="request")


# --------------------------------------------------------------------------- credentials


def test_credentials_are_not_sent():
    environ = {
        "HF_TOKEN": "hf_x", "HUGGING_FACE_HUB_TOKEN": "hf_y", "GITHUB_TOKEN": "g", "AWS_SECRET_ACCESS_KEY": "a",
        "AWS_ACCESS_KEY_ID": "b", "WANDB_API_KEY": "w", "DB_PASSWORD": "p", "SSH_AUTH_SOCK": "/tmp/ssh",
        "GOOGLE_APPLICATION_CREDENTIALS": "/k.json", "my_secret": "s",
        "PATH": "/bin", "HOME": "/home/u", "HF_HOME": "/hf", "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
    }
    assert warm.job_environment(environ) == {k: environ[k] for k in (
        "PATH", "HOME", "HF_HOME", "OMP_NUM_THREADS", "TOKENIZERS_PARALLELISM", "HF_HUB_OFFLINE")}


def test_job_in_the_warm_worker_runs_without_credentials(server_socket, tmp_path, monkeypatch):
    monkeypatch.setattr(warm, "socket_path", lambda: server_socket)
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    monkeypatch.setenv("LWOB_TEST_MARK", "kept")
    out = tmp_path / "env.json"
    warm.call("test_warm_security:write_environment", {"path": str(out)}, None)
    seen = json.loads(out.read_text())
    assert seen["LWOB_TEST_MARK"] == "kept" and "HF_TOKEN" not in seen


def test_server_starts_without_credentials(tmp_path, monkeypatch):
    started = {}

    class Recorder:
        def __init__(self, cmd, **kwargs):
            started.update(kwargs)
            Path(cmd[-1]).touch()  # as if it were serving

    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    monkeypatch.setattr(warm.subprocess, "Popen", Recorder)
    warm._start_server(tmp_path / "w.sock")
    assert "HF_TOKEN" not in started["env"] and started["env"]["PATH"] == os.environ["PATH"]


def _fake_snakemake(tmp_path: Path) -> SimpleNamespace:
    return SimpleNamespace(log=[str(tmp_path / "job.log")], config={"execution": {"warm_worker": True}},
                           rule="r", wildcards={})


def test_network_jobs_never_use_the_warm_worker(tmp_path, monkeypatch):
    sent = []
    monkeypatch.delenv("LWOB_WARM_WORKER", raising=False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setattr(warm, "call", lambda target, kwargs, log: sent.append(target))
    jobs.run_job(_fake_snakemake(tmp_path), "lwob.io:write_json", offline=False, path=tmp_path / "x.json", obj={})
    assert sent == [] and (tmp_path / "x.json").exists()
    assert "(own process)" in (tmp_path / "job.log").read_text()
    jobs.run_job(_fake_snakemake(tmp_path), "lwob.io:write_json", path=tmp_path / "y.json", obj={})
    assert sent == ["lwob.io:write_json"]  # an offline compute job does go to the warm worker



def test_another_checkout_of_the_same_code_gets_its_own_server(tmp_path, monkeypatch):
    """A server imports modules lazily from its own checkout: a copy of the package elsewhere
    (a test's copy of the repository, edited or deleted later) must never serve this one's jobs."""
    import shutil

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    here, code = warm.socket_path(), warm._source_hash()
    copy = tmp_path / "copy" / "lwob"
    shutil.copytree(Path(warm.__file__).resolve().parents[1], copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(warm, "__file__", str(copy / "plan" / "warm.py"))
    assert warm._source_hash() == code  # the same code...
    assert warm.socket_path() != here  # ...in another place: another server


def test_job_writes_with_the_scripts_umask(server_socket, tmp_path, monkeypatch):
    """The child takes the script's umask, not the server's: outputs get the same permissions
    as in the job's own process."""
    monkeypatch.setattr(warm, "socket_path", lambda: server_socket)
    old = os.umask(0o027)
    try:
        warm.call("test_warm_security:write_environment", {"path": str(tmp_path / "env.json")}, None)
    finally:
        os.umask(old)
    assert (tmp_path / "env.json").stat().st_mode & 0o777 == 0o640
