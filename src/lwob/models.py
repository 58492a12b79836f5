"""Locate or download model weights, read their limits, load them for a task.

`model_info_from_dir` reads config.json only (config-validation time: no torch import).
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

from .errors import ConfigError
from .io import sha256_file

#: Model families whose position ids start at pad_token_id + 1 (2 positions unusable).
ROBERTA_LIKE = {"roberta", "xlm-roberta", "camembert", "longformer", "roberta-prelayernorm", "data2vec-text"}

WEIGHT_SUFFIXES = (".safetensors", ".bin")
HUB_PATTERNS = ["config.json", "*.safetensors", "tokenizer*", "vocab*", "merges.txt", "special_tokens_map.json",
                "spiece.model", "sentencepiece*", "added_tokens.json"]


def model_info_from_dir(path: str | os.PathLike) -> dict:
    """{max_positions (usable), num_layers, model_type, hidden_size} from config.json."""
    cfg_path = Path(path) / "config.json"
    try:
        cfg = json.loads(cfg_path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"no config.json in {path}") from None
    model_type = cfg.get("model_type")
    mpe = cfg.get("max_position_embeddings", cfg.get("n_positions"))
    usable = None
    if mpe is not None:
        usable = int(mpe)
        if model_type in ROBERTA_LIKE:
            usable -= int(cfg.get("pad_token_id", 1) if cfg.get("pad_token_id") is not None else 1) + 1
    layers = cfg.get("num_hidden_layers", cfg.get("n_layer", cfg.get("num_layers")))
    return {
        "max_positions": usable,
        "num_layers": int(layers) if layers is not None else None,
        "model_type": model_type,
        "hidden_size": cfg.get("hidden_size", cfg.get("d_model", cfg.get("n_embd"))),
    }


def _package_dir(package: str) -> Path:
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise ConfigError(f"model package '{package}' is not installed (pip install {package.replace('_', '-')})")
    return Path(list(found.submodule_search_locations)[0])


def local_model_dir(spec: dict, base_dir: str | os.PathLike = ".") -> Path | None:
    """The model's directory when it is on this machine without a download, else None."""
    if spec.get("source") == "package":
        return _package_dir(spec["package"]) / spec.get("subdir", "")
    if spec.get("source") == "local":
        return (Path(base_dir) / Path(spec["path"]).expanduser()).resolve()
    return None


def weight_hashes(path: str | os.PathLike) -> dict:
    path = Path(path)
    return {
        f.name: sha256_file(f)
        for f in sorted(path.iterdir())
        if f.is_file() and f.name.endswith(WEIGHT_SUFFIXES)
    }


def resolve_model(spec: dict) -> dict:
    """Materialise/locate a model: returns {path, source, revision, weight_sha256, max_positions,
    num_layers, model_type, hidden_size}.

    spec: {source: package, package, subdir} | {source: local, path} |
    {source: hub, path (repo id), revision}. A `max_positions`/`num_layers` in the spec
    overrides the value read from config.json.
    """
    source = spec.get("source")
    revision = None
    if source == "local":
        path = local_model_dir(spec)
    elif source == "package":
        path = local_model_dir(spec)
        try:
            from importlib.metadata import version

            revision = f"{spec['package']}=={version(spec['package'].replace('_', '-'))}"
        except Exception:
            revision = None
    elif source == "hub":
        from huggingface_hub import snapshot_download

        revision = spec.get("revision")
        path = Path(
            snapshot_download(repo_id=spec["path"], revision=revision, allow_patterns=spec.get("allow_patterns", HUB_PATTERNS))
        )
    else:
        raise ConfigError(f"unknown model source '{source}' (package, local, hub)")
    if not (path / "config.json").is_file():
        raise ConfigError(f"model directory {path} has no config.json")
    hashes = weight_hashes(path)
    if not hashes:
        raise ConfigError(f"model directory {path} has no weight files (*.safetensors, *.bin)")
    info = model_info_from_dir(path)
    for k in ("max_positions", "num_layers"):
        if spec.get(k) is not None:
            info[k] = int(spec[k])
    return {"path": str(path), "source": source, "revision": revision, "weight_sha256": hashes, **info}


def quiet_transformers() -> None:
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def load_for_task(path: str | os.PathLike, kind, meta: dict, config_overrides: dict | None = None):
    """The model with the task kind's head (kind.auto_model) from a local folder, quietly, fp32.

    `config_overrides` replaces entries of config.json (e.g. ``is_decoder: true`` turns a
    BERT encoder into a causal-attention decoder).
    """
    quiet_transformers()
    import warnings

    import transformers

    auto = getattr(transformers, kind.auto_model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = auto.from_pretrained(str(path), **kind.model_kwargs(meta), **(config_overrides or {}))
    return model


def write_model_record(*, name: str, spec: dict, out_json) -> dict:
    """File-level entry point of the `fetch_model` rule."""
    from .io import write_json

    record = {"model": name, **resolve_model(spec), "config_overrides": dict(spec.get("config") or {})}
    write_json(out_json, record)
    return record
