"""Materialise one dataset (hub, local files or the offline demo generator) once.

Output (``data/raw/{dataset}/``): ``{split}.parquet`` per split, normalised (see
``lwob.data.formats.normalise``), and ``manifest.json``::

    {dataset, source, spec, revision, files: {split: {path, sha256, records}},
     source_files: {path: sha256}}

Local files may be SQuAD JSON (``format: squad``, or any ``.zip`` holding one SQuAD ``.json``):
those splits are extractive-QA frames (see ``lwob.data.formats.read_squad``). Spider's original
JSON files (``format: spider``) also need the dataset's ``tables: path/to/tables.json`` (Spider's
schemas, one of the dataset's source files: checksummed and recorded like its split files).

A hub or local dataset with ``labelled: false`` (text generation data: ViGGO, SQL, GSM8K) has
no ``label``: its splits keep their (renamed) columns and get ``idx`` (see
``lwob.data.formats.normalise``). A local dataset
with ``optional: true`` (e.g. a user-supplied adversarial set with no public download) may
have its files absent: ``check_spec`` accepts that and ``is_available`` says False, so
callers can skip the dataset and flag it.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd

from lwob.plan.config import SAFE_NAME, SAFE_NAME_RULE
from lwob.data import formats
from lwob.errors import ConfigError, DataError
from lwob.io import sha256_file, write_json

#: The keys each source takes, and no others (a misspelt `sha265:` would silently skip the
#: checksum). config/schemas/config.schema.yaml has the same lists (a test keeps them equal).
SOURCE_KEYS = {
    "hub": ("source", "path", "name", "revision", "splits", "label_map", "columns", "labelled", "split_off"),
    "local": ("source", "format", "file", "files", "tables", "sha256", "label_map", "columns", "labelled",
              "optional", "split_off"),
    "demo": ("source", "generator", "seed", "n_train", "n_validation", "n_test", "perturbations", "label_noise",
             "adversaries", "variants", "sentences"),
}
SOURCES = tuple(SOURCE_KEYS)
#: Why a source does not take a key that another one does.
_NOT_FOR = {("hub", "sha256"): "only local datasets take checksums: a hub dataset is pinned by its revision"}


# --------------------------------------------------------------------------- checking

def _key(name: str, *parts: str) -> str:
    return ".".join(["datasets", name, *parts])


def _resolve(path: str, base_dir: Path | None) -> Path:
    p = Path(os.path.expanduser(str(path)))
    if not p.is_absolute():
        p = Path(base_dir if base_dir is not None else Path.cwd()) / p
    return p


def _check_split_name(name: str, key: str, split: Any) -> None:
    if not isinstance(split, str) or not SAFE_NAME.match(split):
        raise ConfigError(f"{key}: invalid split name {split!r} for dataset {name!r} "
                          f"(used as a file name: {SAFE_NAME_RULE})")


def _local_files(name: str, spec: dict) -> list[tuple[str, str, str, str]]:
    """(split-or-'*', config key, path as written, format) for each local file; structure checks."""
    fmt = spec.get("format")
    if "file" in spec or fmt == "advglue":
        if fmt != "advglue":
            raise ConfigError(f"{_key(name, 'format')}: a single 'file' needs format: advglue "
                              f"(got {fmt!r}); use 'files: {{split: path}}' for other formats")
        if "files" in spec:
            raise ConfigError(f"{_key(name)}: give either 'file' (format advglue) or 'files', not both")
        f = spec.get("file")
        if not isinstance(f, str) or not f:
            raise ConfigError(f"{_key(name, 'file')}: missing or not a path for dataset {name!r}")
        return [("*", _key(name, "file"), f, "advglue")]
    files = spec.get("files")
    if not isinstance(files, dict) or not files:
        raise ConfigError(f"{_key(name)}: a local dataset needs 'files: {{split: path}}' "
                          f"or 'format: advglue' with 'file'")
    out = []
    for split, f in files.items():
        key = _key(name, "files", str(split))
        _check_split_name(name, key, split)
        if not isinstance(f, str) or not f:
            raise ConfigError(f"{key}: not a path ({f!r})")
        ffmt = fmt if fmt is not None else formats.format_from_path(f)
        if ffmt is None:
            raise ConfigError(f"{key}: cannot tell the format of {f!r} from its extension "
                              f"(known: {', '.join(formats.EXTENSIONS)}); set datasets.{name}.format "
                              f"(SQuAD .json files need format: squad)")
        if ffmt not in formats.FILE_FORMATS:
            raise ConfigError(f"{_key(name, 'format')}: unknown format {ffmt!r} for 'files' "
                              f"(known: {', '.join(formats.FILE_FORMATS)})")
        out.append((split, key, f, ffmt))
    return out


def _aux_files(name: str, spec: dict) -> list[tuple[str, str, str]]:
    """(role, config key, path as written) of the files a local dataset reads besides its
    split files: Spider's ``tables`` file. Structure checks (ConfigError)."""
    fmt = spec.get("format")
    if "tables" not in spec:
        if fmt == "spider":
            raise ConfigError(f"{_key(name, 'tables')}: required for format: spider "
                              f"(Spider's tables.json, the schemas of its databases)")
        return []
    if fmt != "spider":
        raise ConfigError(f"{_key(name, 'tables')}: only format: spider takes a tables file (format is {fmt!r})")
    f = spec["tables"]
    if not isinstance(f, str) or not f:
        raise ConfigError(f"{_key(name, 'tables')}: not a path ({f!r})")
    return [("tables", _key(name, "tables"), f)]


def _check_sha_keys(name: str, spec: dict, entries: list[tuple[str, str, str, str]]) -> None:
    sha = spec.get("sha256")
    if sha is None:
        return
    if not isinstance(sha, dict):
        raise ConfigError(f"{_key(name, 'sha256')}: expected a mapping split_or_file -> hex digest")
    known = set()
    for split, _key_, f, _fmt in entries:
        known.update({split, f, Path(f).name})
    known.discard("*")
    for k, v in sha.items():
        if k not in known:
            raise ConfigError(f"{_key(name, 'sha256', str(k))}: matches no split or file of dataset "
                              f"{name!r} (known: {', '.join(sorted(known))})")
        if not isinstance(v, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", v):
            raise ConfigError(f"{_key(name, 'sha256', str(k))}: not a SHA-256 hex digest: {v!r}")


def _expected_sha(spec: dict, split: str, f: str) -> str | None:
    sha = spec.get("sha256") or {}
    for k in (split, f, Path(f).name):
        if k in sha:
            return str(sha[k]).lower()
    return None


def _file_entries(name: str, spec: dict) -> list[tuple[str, str, str, str]]:
    """Every file a local dataset reads: its split files (``_local_files``), then the others
    (``_aux_files``, with their role, e.g. ``tables``, in place of a split and no format)."""
    return _local_files(name, spec) + [(role, key, f, "") for role, key, f in _aux_files(name, spec)]


def _check_structure(name: str, spec: Any) -> list[tuple[str, str, str, str]]:
    if not isinstance(spec, dict):
        raise ConfigError(f"{_key(name)}: expected a mapping, got {type(spec).__name__}")
    source = spec.get("source")
    if source not in SOURCES:
        raise ConfigError(f"{_key(name, 'source')}: unknown source {source!r} (known: {', '.join(SOURCES)})")
    for k in ("label_map", "columns"):
        if k in spec and spec[k] is not None and not isinstance(spec[k], dict):
            raise ConfigError(f"{_key(name, k)}: expected a mapping")
    columns = spec.get("columns") or {}
    for k, v in columns.items():
        if not isinstance(v, str) or not v:
            raise ConfigError(f"{_key(name, 'columns', str(k))}: the new name must be a non-empty string, got {v!r}")
    dup = sorted({v for v in columns.values() if list(columns.values()).count(v) > 1})
    if dup:
        which = [str(k) for k, v in columns.items() if v == dup[0]]
        raise ConfigError(f"{_key(name, 'columns')}: columns {which} are all renamed to {dup[0]!r}")
    labelled = spec.get("labelled", True)
    if not isinstance(labelled, bool):
        raise ConfigError(f"{_key(name, 'labelled')}: expected true or false, got {labelled!r}")
    if not labelled and spec.get("label_map"):
        raise ConfigError(f"{_key(name, 'label_map')}: a dataset with labelled: false has no labels to map")
    optional = spec.get("optional", False)
    if not isinstance(optional, bool):
        raise ConfigError(f"{_key(name, 'optional')}: expected true or false, got {optional!r}")
    if optional and source != "local":
        raise ConfigError(f"{_key(name, 'optional')}: only local datasets can be optional "
                          f"(dataset {name!r} has source {source!r})")
    unknown = [k for k in spec if k not in SOURCE_KEYS[source]]
    if unknown:
        near = difflib.get_close_matches(str(unknown[0]), SOURCE_KEYS[source], n=1)
        raise ConfigError(f"{_key(name, str(unknown[0]))}: unknown key for a {source} dataset"
                          + (f" ({_NOT_FOR[source, unknown[0]]})" if (source, unknown[0]) in _NOT_FOR else "")
                          + (f" (did you mean '{near[0]}'?)" if near else "")
                          + f"; allowed: {', '.join(sorted(SOURCE_KEYS[source]))}")
    lm = spec.get("label_map")
    if lm:
        for k, v in lm.items():
            if isinstance(v, bool) or not isinstance(v, int) or v < -1:
                raise ConfigError(f"{_key(name, 'label_map', str(k))}: labels must be integers >= -1, got {v!r}")
    if source == "hub":
        for k in ("path", "revision"):
            if not isinstance(spec.get(k), str) or not spec.get(k):
                raise ConfigError(f"{_key(name, k)}: required for a hub dataset (a string)")
        splits = spec.get("splits")
        if not isinstance(splits, list) or not splits:
            raise ConfigError(f"{_key(name, 'splits')}: required for a hub dataset (a list of split names)")
        for s in splits:
            _check_split_name(name, _key(name, "splits"), s)
        return []
    if source == "demo":
        from lwob.data import demo

        try:
            demo.resolve_spec(spec)
        except ConfigError as e:
            raise ConfigError(f"{_key(name)}: {e}") from None
        return []
    if spec.get("format") == "spider" and spec.get("labelled", True):
        raise ConfigError(f"{_key(name, 'labelled')}: format: spider gives unlabelled text-to-SQL data "
                          f"(question, context, answer, db_id): set labelled: false")
    entries = _file_entries(name, spec)
    _check_sha_keys(name, spec, entries)
    return entries


#: The split that `split_off` carves new splits from, and the seed of its draw (fixed: the same
#: rows go to each split on every machine, for every run).
SPLIT_OFF_FROM, SPLIT_OFF_SEED = "train", 20240101


def _check_split_off(name: str, spec: dict) -> None:
    """`split_off: {new split: fraction of train}` (a dataset released with one split, e.g.
    sql-create-context): fractions in (0, 1) summing below 1, names new and safe."""
    carve = spec.get("split_off")
    if carve is None:
        return
    key = _key(name, "split_off")
    if not isinstance(carve, dict) or not carve:
        raise ConfigError(f"{key}: expected {{split: fraction of {SPLIT_OFF_FROM}}}, got {carve!r}")
    known = split_names({k: v for k, v in spec.items() if k != "split_off"})  # the released splits
    if known is not None and SPLIT_OFF_FROM not in known:
        raise ConfigError(f"{key}: splits are carved from '{SPLIT_OFF_FROM}', which the dataset does not have "
                          f"(splits: {', '.join(known)})")
    for split, frac in carve.items():
        _check_split_name(name, f"{key}.{split}", split)
        if split == SPLIT_OFF_FROM or (known is not None and split in known):
            raise ConfigError(f"{key}.{split}: the dataset already has a split '{split}'")
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 < frac < 1:
            raise ConfigError(f"{key}.{split}: expected a fraction in (0, 1), got {frac!r}")
    if sum(carve.values()) >= 1:
        raise ConfigError(f"{key}: the fractions sum to {sum(carve.values()):g}; something must stay in "
                          f"'{SPLIT_OFF_FROM}'")


def split_off(frames: dict, name: str, carve: dict | None) -> dict:
    """`frames` with each `carve` split drawn from the train split (a fixed-seed permutation:
    the first round(fraction * n) rows to the first split, and so on), rows in their original
    order within each split, `idx` kept (the row's id in the released file)."""
    if not carve:
        return frames
    import numpy as np

    train = frames[SPLIT_OFF_FROM]
    order = np.random.default_rng(SPLIT_OFF_SEED).permutation(len(train))
    start, out = 0, dict(frames)
    for split, frac in carve.items():
        k = int(round(float(frac) * len(train)))
        if k < 1:
            raise DataError(f"dataset {name!r}: split_off.{split} = {frac} of {len(train)} rows takes none")
        out[split] = train.iloc[np.sort(order[start:start + k])].reset_index(drop=True)
        start += k
    out[SPLIT_OFF_FROM] = train.iloc[np.sort(order[start:])].reset_index(drop=True)
    return out


def check_spec(name: str, spec: dict, base_dir: Path | None = None) -> None:
    """Config-time checks without reading data: raises ConfigError naming the config key.

    Checks the source and format, the required keys, and that local files exist
    (relative paths are resolved against ``base_dir``, default the working directory).
    The files of an ``optional: true`` dataset may be absent (see ``is_available``).
    """
    entries = _check_structure(name, spec)
    _check_split_off(name, spec)
    if spec.get("optional", False):
        return
    for _split, key, f, _fmt in entries:
        p = _resolve(f, base_dir)
        if not p.is_file():
            raise ConfigError(f"{key}: file not found: {f!r} (resolved to {str(p)!r}) for dataset {name!r}")


def local_paths(spec: Any) -> list[str]:
    """Every file path a ``source: local`` spec names, as written (split files, ``file``, Spider's
    ``tables``); [] for other sources. Never raises (for DAG inputs, before any check)."""
    if not isinstance(spec, dict) or spec.get("source") != "local":
        return []
    files = spec.get("files")
    out = [f for f in files.values() if isinstance(f, str) and f] if isinstance(files, dict) else []
    out += [spec[k] for k in ("file", "tables") if isinstance(spec.get(k), str) and spec[k]]
    return out


def split_names(spec: Any) -> list[str] | None:
    """The splits a dataset spec materialises, known without reading data: a hub dataset's
    ``splits``, a local dataset's ``files`` keys; None when only the data tells (AdvGLUE's
    single file, demo generators) or the spec is malformed. Never raises."""
    if not isinstance(spec, dict):
        return None
    carved = [str(s) for s in spec["split_off"]] if isinstance(spec.get("split_off"), dict) else []
    if spec.get("source") == "hub" and isinstance(spec.get("splits"), list):
        return [str(s) for s in spec["splits"]] + carved
    if spec.get("source") == "local" and spec.get("format") != "advglue" and isinstance(spec.get("files"), dict):
        return [str(s) for s in spec["files"]] + carved
    return None


def known_columns(spec: Any, base_dir: Path | None = None) -> list[str] | None:
    """The columns a dataset's rows will have, where they are known before it is loaded (so that
    a task naming a column it lacks is refused at config time): a demo text generator's, Spider's
    (``formats.SPIDER_COLUMNS``), or the header of a local CSV/TSV file or the first record of a
    JSONL file that is present, renamed by the spec's ``columns`` map. None where only loading
    tells (hub datasets, other formats, absent files). Never raises."""
    if not isinstance(spec, dict):
        return None
    columns = None
    if spec.get("source") == "demo":
        from lwob.data.demo import REGISTRY
        from lwob.data.demo._base import GenerationGenerator

        generator = REGISTRY.get(spec.get("generator"))  # a text generator's rows are its columns (+ idx)
        if isinstance(generator, type) and issubclass(generator, GenerationGenerator):
            columns = list(generator.columns)
    elif spec.get("source") == "local" and spec.get("format") == "spider":
        columns = list(formats.SPIDER_COLUMNS)
    elif spec.get("source") == "local":
        columns = _header_columns(spec, base_dir)
    if columns is None:
        return None
    rename = spec.get("columns") if isinstance(spec.get("columns"), dict) else {}
    return [str(rename.get(c, c)) for c in columns]


def _header_columns(spec: dict, base_dir: Path | None) -> list[str] | None:
    """The columns of the first present CSV/TSV (header line) or JSONL (first record) file."""
    import csv
    import json

    try:
        entries = _local_files("", spec)
    except ConfigError:
        return None  # check_spec names the problem
    for _split, _key_, f, fmt in entries:
        path = _resolve(f, base_dir)
        if fmt not in ("csv", "tsv", "jsonl") or not path.is_file():
            continue
        try:
            with open(path, encoding="utf-8-sig", newline="") as fh:  # a byte-order mark is not a column
                if fmt == "jsonl":
                    line = next((ln for ln in fh if ln.strip()), "")
                    record = json.loads(line) if line else None
                    return [str(k) for k in record] if isinstance(record, dict) else None
                # TSV as formats.read_table reads it: quotes are never interpreted
                reader = (csv.reader(fh) if fmt == "csv" else csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
                return [str(c) for c in next(reader, [])] or None
        except (OSError, UnicodeDecodeError, ValueError, csv.Error):
            return None  # loading names the problem
    return None


def is_available(name: str, spec: dict, base_dir: Path | None = None) -> bool:
    """False when ``spec`` is an ``optional: true`` local dataset with a file absent; else True.

    Checks the spec's structure like ``check_spec`` (raises ConfigError). A non-optional
    dataset is always "available": its missing files are errors (``check_spec``, ``load``).
    """
    entries = _check_structure(name, spec)
    if not spec.get("optional", False):
        return True
    return all(_resolve(f, base_dir).is_file() for _split, _key_, f, _fmt in entries)


# --------------------------------------------------------------------------- loading

def _load_hub(name: str, spec: dict) -> dict[str, pd.DataFrame]:
    import datasets  # heavy: only when needed

    out = {}
    for split in spec["splits"]:
        try:
            ds = datasets.load_dataset(spec["path"], spec.get("name"), revision=spec["revision"], split=split)
        except Exception as e:  # noqa: BLE001 - datasets raises many types; report them as one
            raise DataError(f"dataset {name!r}: cannot load {spec['path']!r} (config {spec.get('name')!r}, "
                            f"revision {spec['revision']!r}, split {split!r}) from the hub: "
                            f"{type(e).__name__}: {e}") from None
        out[split] = ds.to_pandas()
    return out


def _load_local(name: str, spec: dict, entries, base_dir: Path | None):
    frames: dict[str, tuple[pd.DataFrame, str]] = {}
    source_files: dict[str, str] = {}
    paths: dict[tuple[str, str], Path] = {}
    for split, _key_, f, fmt in entries:  # every file first: present, and its checksum as given
        p = _resolve(f, base_dir)
        if not fmt:  # not a split file: the file's role (Spider's tables)
            where = f"dataset {name!r}, {split} file {str(p)!r}"
        else:
            where = f"dataset {name!r}" + ("" if split == "*" else f", split {split!r}") + f", file {str(p)!r}"
        if not p.is_file():
            hint = (" (the dataset is optional: skip it when lwob.data.sources.is_available() is False)"
                    if spec.get("optional", False) else "")
            raise DataError(f"{where}: file not found{hint}")
        digest = sha256_file(p)
        expected = _expected_sha(spec, split, f)
        if expected is not None and digest != expected:
            raise DataError(f"{where}: checksum mismatch: expected sha256 {expected}, got {digest}")
        source_files[f] = digest
        paths[split, f] = p
    contexts = None
    if spec.get("format") == "spider":
        contexts = formats.read_spider_tables(paths["tables", spec["tables"]], name)
    for split, _key_, f, fmt in entries:
        p = paths[split, f]
        if not fmt:  # not a split file (the spider tables file)
            continue
        if fmt == "spider":
            frames[split] = (formats.read_spider(p, contexts, paths["tables", spec["tables"]], name, split), str(p))
        elif fmt == "advglue":
            for s, df in formats.read_advglue(p, name).items():
                frames[s] = (df, str(p))
        else:
            frames[split] = (formats.read_table(p, fmt, name, split), str(p))
    return frames, source_files


def load(name: str, spec: dict, base_dir: Path | None = None) -> tuple[dict[str, pd.DataFrame], dict, str | None]:
    """Load and normalise every split: (frames, source_files, revision). Writes nothing."""
    entries = _check_structure(name, spec)
    label_map = spec.get("label_map") or None
    columns = spec.get("columns") or None
    labelled = spec.get("labelled", True)
    source = spec["source"]
    if source == "demo":
        from lwob.data import demo

        frames = demo.generate(spec)
        return frames, {}, demo.version(spec)
    if source == "hub":
        raw = {s: (df, None) for s, df in _load_hub(name, spec).items()}
        source_files: dict[str, str] = {}
        revision = spec["revision"]
    else:
        raw, source_files = _load_local(name, spec, entries, base_dir)
        revision = None
    frames = {}
    for split, (df, file) in raw.items():
        _check_split_name(name, f"dataset {name!r} split", split)
        frames[split] = formats.normalise(df, name, split, file, label_map=label_map, columns=columns,
                                          labelled=labelled)
    return split_off(frames, name, spec.get("split_off")), source_files, revision


def materialize(name: str, spec: dict, out_dir: Path, base_dir: Path | None = None) -> dict:
    """Materialise dataset ``name`` into ``out_dir`` ({split}.parquet + manifest.json).

    Returns the manifest. The manifest is written last, so its presence means the
    split files are complete.
    """
    out_dir = Path(out_dir)
    frames, source_files, revision = load(name, spec, base_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for split, df in frames.items():
        path = out_dir / f"{split}.parquet"
        formats.write_parquet(df, path)
        files[split] = {"path": path.name, "sha256": sha256_file(path), "records": int(len(df))}
    manifest = {
        "dataset": name,
        "source": spec["source"],
        "spec": spec,
        "revision": revision,
        "files": files,
        "source_files": source_files,
    }
    write_json(out_dir / "manifest.json", manifest)
    return manifest
