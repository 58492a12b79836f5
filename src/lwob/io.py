"""Small file helpers shared by every stage: atomic writes, JSON, checksums, and the one
check that an output read by a later job is the file its job wrote."""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import DataError


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write via a temporary file and rename, so a killed job never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------------- damaged outputs

def damaged_output(path: str | os.PathLike, problem: str, output: str | os.PathLike | None = None) -> DataError:
    """The one message for a workflow output that is not what its job wrote: the file, what is
    wrong, and how to rebuild it. `output` is the rule output whose rebuild rewrites `path`
    (a tokenized parquet is rewritten with its meta.json); default `path` itself."""
    target = output if output is not None else path
    return DataError(f"{path}: {problem}; it was damaged or changed after its job wrote it: "
                     f"delete {target} and rerun: snakemake {target}")


def verify_sha256(path: str | os.PathLike, expected: str | None, output: str | os.PathLike | None = None) -> None:
    """Check `path` against the sha256 recorded when it was written (DataError naming the file
    and how to rebuild it). `expected` None: nothing was recorded (a record from before hashes
    were kept), so there is nothing to check against."""
    if expected is None:
        return
    if not Path(path).is_file():
        raise damaged_output(path, "file not found", output)
    found = sha256_file(path)
    if found != expected:
        raise damaged_output(path, f"sha256 {found[:12]}... differs from the recorded {expected[:12]}...", output)


# --------------------------------------------------------------------------- JSON

def _default(o: Any) -> Any:
    if hasattr(o, "item"):  # numpy / torch scalars
        return o.item()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, set):
        return sorted(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _non_finite(obj: Any, where: str = "") -> tuple[str, float] | None:
    """(key path, value) of the first NaN or infinity in `obj`, or None."""
    if hasattr(obj, "item") and not isinstance(obj, (dict, list, tuple)):
        try:
            obj = obj.item()
        except (TypeError, ValueError):
            return None
    if isinstance(obj, float) and not math.isfinite(obj):
        return where or "the value", obj
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    else:
        return None
    for k, v in items:
        found = _non_finite(v, f"{where}.{k}" if where else str(k))
        if found:
            return found
    return None


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Strict JSON (NaN and infinity are not JSON): a writer records an undefined number as
    null; a non-finite one reaching here is a bug, reported with its key path."""
    try:
        text = json.dumps(obj, indent=2, sort_keys=True, default=_default, allow_nan=False) + "\n"
    except ValueError:
        found = _non_finite(obj)
        if found is None:
            raise
        raise ValueError(f"{path}: not written: {found[0]} is {found[1]}, which JSON cannot hold "
                         f"(record an undefined number as null)") from None
    atomic_write_bytes(path, text.encode())


def read_json(path: str | os.PathLike, output: str | os.PathLike | None = None) -> Any:
    """A JSON file a job wrote; unparsable (truncated, edited): DataError naming the file and
    how to rebuild it (`output` as in damaged_output)."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise damaged_output(path, f"not valid JSON ({e})", output) from None
