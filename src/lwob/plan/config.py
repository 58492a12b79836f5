"""Load, validate and resolve the workflow configuration.

Everything the Snakefile needs to know about the config goes through this module: the
schema check, cross-reference checks (a study naming an unknown task, a task naming an
unknown dataset), method options, the prefix-length fit, the list of runs and the fully
resolved hyperparameters of each run. All problems raise ConfigError with the config key,
file or value at fault, before any job runs.
"""

from __future__ import annotations

import difflib
import itertools
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml

from ..errors import ConfigError

# libyaml's safe loader where PyYAML has it: the same result as yaml.safe_load, ten times faster.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Keys of a hyperparameter block whose values must be numbers. YAML 1.1 reads "5e-4"
# (no dot) as a string; we accept such strings as numbers rather than surprise users.
_NUMERIC_HP = ("lr", "warmup_ratio", "weight_decay", "max_grad_norm")

#: The one pattern every configured name matches (datasets, models, methods, tasks, eval sets,
#: studies, split names): names become folders and file names, so no '/', no leading '.'
#: ('..' would climb out of the working directory) and nothing a shell or a wildcard misreads.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
SAFE_NAME_RULE = "letters, digits and '_', '.', '+', '-', starting with a letter or digit"


@dataclass(frozen=True, order=True)
class Run:
    """One training run: the wildcard set used by every stage."""

    model: str
    task: str
    method: str
    seed: int

    @property
    def path(self) -> str:
        return f"{self.model}/{self.task}/{self.method}/seed{self.seed}"


# --------------------------------------------------------------------------- loading


class _DuplicateKey(Exception):
    def __init__(self, key, line: int, first_line: int):
        super().__init__(key, line, first_line)
        self.key, self.line, self.first_line = key, line, first_line


class _UniqueKeyLoader(_SafeLoader):
    """The safe loader, refusing a key twice in one mapping: plain YAML keeps the last silently,
    so a repeated `lr:` would quietly undo the first. Merge keys (`<<: *anchor`) still override."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first_line: dict = {}
            for key_node, _value in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    if key in first_line:
                        raise _DuplicateKey(key, key_node.start_mark.line + 1, first_line[key])
                    first_line[key] = key_node.start_mark.line + 1
                except TypeError:  # an unhashable key: the base loader reports it
                    pass
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: str | os.PathLike) -> dict:
    """A YAML (or JSON) config file as a dict; ConfigError on a missing file, bad YAML or a key
    given twice in one mapping (naming file, line and key)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    try:
        with open(path) as f:
            data = yaml.load(f, Loader=_UniqueKeyLoader)
    except _DuplicateKey as e:
        raise ConfigError(f"{path}, line {e.line}: duplicate key '{e.key}' (first given at line {e.first_line}); "
                          "YAML would silently keep only the last one: remove one") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def check_config_files(paths: Iterable[str | os.PathLike]) -> None:
    """Re-read the config files Snakemake loaded (`workflow.configfiles`) with the loader that
    refuses duplicate keys: Snakemake's own loader keeps the last of two silently."""
    for path in dict.fromkeys(str(p) for p in paths):
        load_yaml(path)


def _coerce_numbers(config: dict) -> None:
    blocks = [config.get("training")]
    for section in ("models", "methods", "tasks"):
        for entry in (config.get(section) or {}).values():
            if isinstance(entry, dict):
                blocks.append(entry.get("training"))
                per_method = entry.get("method_training")
                if isinstance(per_method, dict):
                    blocks.extend(per_method.values())
    grids = (config.get("selection") or {}).get("grids")
    for grid in (grids.values() if isinstance(grids, dict) else ()):
        if isinstance(grid, dict):
            for k, values in grid.items():
                if k in _NUMERIC_HP and isinstance(values, list):
                    grid[k] = [_number(v) for v in values]
    for block in blocks:
        if not isinstance(block, dict):
            continue
        for k in _NUMERIC_HP:
            if k in block:
                block[k] = _number(block[k])


def _number(value):
    """YAML reads `1e-5` (no dot) as a string: make it a float; anything else stays for the
    schema to report with the key's name."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


#: Text that would end or open a block inside an HTML <script> element. Snakemake's report
#: embeds every job's params (display names, titles) as JSON in <script> blocks unescaped.
_SCRIPT_BREAKERS = ("</", "<!--")


def check_values(value: Any, key: str = "") -> None:
    """No number anywhere in the config is infinite or NaN (YAML `.inf`, `.nan`, or "inf" made
    a number): a schema's `minimum` lets both through, and a NaN learning rate trains to NaN.
    No text holds `</` or `<!--`, which would break out of the report's script blocks."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"config key '{key or '<top level>'}': {value} is not a finite number")
    if isinstance(value, str) and any(b in value for b in _SCRIPT_BREAKERS):
        raise ConfigError(f"config key '{key or '<top level>'}': text may not contain '</' or '<!--' "
                          f"(it would end a script block of the HTML report): {value!r}")
    if isinstance(value, dict):
        for k, v in value.items():
            check_values(v, f"{key}.{k}" if key else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check_values(v, f"{key}[{i}]")


def check_names(config: dict) -> None:
    """Every configured name matches SAFE_NAME (ConfigError naming the key): names are folders
    and file names of the results (a study named `../../x` would write outside the working
    directory; two methods named `.` and `..` would share one)."""
    for section, what in (("datasets", "dataset"), ("models", "model"), ("methods", "method"), ("tasks", "task"),
                          ("studies", "study")):
        for name in config[section]:
            _check_name(name, section, f"{what} name")
    for task_name, task in config["tasks"].items():
        refs = {"train": task["train"], "validation": task["validation"]}
        for es_name, es in task["eval_sets"].items():
            _check_name(es_name, f"tasks.{task_name}.eval_sets", "eval set name")
            refs[f"eval_sets.{es_name}"] = es
        for where, ref in refs.items():
            if "split" in ref:  # raw splits are files data/raw/<dataset>/<split>.parquet
                _check_name(ref["split"], f"tasks.{task_name}.{where}.split", "split name")


def _check_name(name: Any, key: str, what: str) -> None:
    """ConfigError at `key` unless `name` matches SAFE_NAME."""
    if isinstance(name, str) and SAFE_NAME.match(name):
        return
    raise ConfigError(f"config key '{key}': {what} {name!r} is not allowed (names become file and folder "
                      f"names: {SAFE_NAME_RULE})")


def _unknown_key_message(err) -> str:
    """A readable line for an object given a key its schema does not allow: the key, the entry,
    a near match and the allowed keys (jsonschema's own message lists none of them)."""
    allowed = sorted(err.schema.get("properties") or {})
    unknown = [k for k in err.instance if k not in allowed]
    title = err.schema.get("title")
    where = ".".join(str(p) for p in err.absolute_path)
    entry = str(err.absolute_path[-1]) if err.absolute_path else ""
    lines = []
    for k in unknown:
        near = difflib.get_close_matches(str(k), allowed, n=1)
        lines.append(f"config key '{where + '.' if where else ''}{k}': unknown key"
                     + (f" in {title} '{entry}'" if title and entry else "")
                     + (f" (did you mean '{near[0]}'?)" if near else "")
                     + f"; allowed: {', '.join(allowed)}")
    return "\n  ".join(lines)


#: The closed choices of the training settings (`training`, `methods.*.training`, ...). The
#: schema's `hyperparameters` take their enums from here, and lwob.run.training checks what
#: its direct callers pass against the same lists.
TRAINING_CHOICES = {
    "optimizer": ("adamw",),
    "lr_scheduler": ("linear", "constant"),
    "device": ("auto", "cpu", "cuda"),
    "parallel": ("ddp", "fsdp"),
    "precision": ("auto", "fp32", "bf16"),
}


def check_schema(config: dict, schema_path: str | os.PathLike) -> None:
    import jsonschema

    schema = load_yaml(schema_path)
    for key, choices in TRAINING_CHOICES.items():
        schema["definitions"]["hyperparameters"]["properties"][key]["enum"] = list(choices)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    lines = []
    for err in errors[:5]:
        where = ".".join(str(p) for p in err.absolute_path)
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            lines.append(_unknown_key_message(err))
        else:
            lines.append(f"config key '{where or '<top level>'}': {err.message}")
    more = f"\n(and {len(errors) - 5} more)" if len(errors) > 5 else ""
    raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines) + more)


# --------------------------------------------------------------------------- registered names


def _registries() -> dict:
    """What each registry-backed config key may name: registry name -> its Registry (or the
    tuple of names the code defines). Imported on use: planning stays light (no torch)."""
    from .. import methods, tasks
    from ..analysis.increments import FIGURE1_LAYOUTS
    from ..data import demo
    from ..data.formats import ALL_FORMATS
    from ..data.sources import SOURCES
    from ..data.tokenize import EVAL_KINDS
    from ..report.figures import FIGURES
    from ..report.tables import LAYOUTS

    return {"method type": methods.REGISTRY, "task kind": tasks.REGISTRY, "table layout": LAYOUTS,
            "figure kind": FIGURES, "Figure 1 layout": FIGURE1_LAYOUTS, "dataset source": SOURCES,
            "file format": ALL_FORMATS, "eval set kind": EVAL_KINDS, "demo generator": demo.REGISTRY}


#: Config keys ('*': every entry of a mapping) whose values name what the code registers, and
#: which registry (`_registries`). The schema lists none of these names: the registries are
#: the one source, so a new method type, task kind, table layout or figure kind is one
#: registration (`check_registered_names` says which names are known).
REGISTERED_NAMES = {
    "methods.*.type": "method type",
    "tasks.*.kind": "task kind",
    "tasks.*.eval_sets.*.kind": "eval set kind",
    "studies.*.layout": "table layout",
    "studies.*.figure": "figure kind",
    "increments.layout": "Figure 1 layout",
    "datasets.*.source": "dataset source",
    "datasets.*.format": "file format",
    "datasets.*.generator": "demo generator",
}


def _values_at(node: Any, parts: list[str], where: str = ""):
    """(config key, value) of every value at the dotted path `parts` below `node`."""
    if not parts:
        yield where, node
        return
    if not isinstance(node, dict):
        return
    head, rest = parts[0], parts[1:]
    for key in (node if head == "*" else [head] if head in node else []):
        yield from _values_at(node[key], rest, f"{where}.{key}" if where else str(key))


def registered_names(registry: str) -> list[str]:
    """The names a registry-backed key accepts (REGISTERED_NAMES), sorted."""
    return sorted(_registries()[registry])


def check_registered_names(config: dict) -> None:
    """Each REGISTERED_NAMES key names a registered entry: ConfigError with one line naming
    the key, the name and the known names."""
    found = _registries()
    for path, registry in REGISTERED_NAMES.items():
        for key, name in _values_at(config, path.split(".")):
            known = found[registry]
            if hasattr(known, "register"):  # a Registry: its get loads a job's plugins and says what it knows
                try:
                    known.get(name)
                except ConfigError as e:
                    raise ConfigError(f"config key '{key}': {e}") from None
            elif name not in known:
                raise ConfigError(f"config key '{key}': unknown {registry} '{name}' (known: {', '.join(sorted(known))})")


def validate(config: dict, schema_path: str | os.PathLike, base_dir: str | os.PathLike = ".") -> dict:
    """Check the whole config; return it with defaults filled in. Raises ConfigError."""
    _coerce_numbers(config)
    check_values(config)
    check_schema(config, schema_path)
    check_names(config)
    base_dir = Path(base_dir)
    from .. import plugins

    plugins.activate(config, base_dir)  # before the registries are consulted: plugins add names
    check_registered_names(config)
    for study_name, study in config["studies"].items():
        study.setdefault("enabled", True)
        for section in ("models", "methods", "tasks"):
            for i, name in enumerate(study[section]):
                if name not in config[section]:
                    raise ConfigError(
                        f"config key 'studies.{study_name}.{section}[{i}]': unknown {section[:-1]} "
                        f"'{name}' (defined: {', '.join(config[section])})"
                    )
        for model, by_method in (study.get("not_run") or {}).items():
            for method in [model, *by_method]:
                section = "models" if method == model else "methods"
                if method not in study[section]:
                    raise ConfigError(f"config key 'studies.{study_name}.not_run.{model}"
                                      f"{'' if method == model else '.' + method}': not one of the study's {section}")
    for model_name, model in config["models"].items():
        for method_name in model.get("method_training") or {}:
            if method_name not in config["methods"]:
                raise ConfigError(f"config key 'models.{model_name}.method_training.{method_name}': unknown method "
                                  f"(defined: {', '.join(config['methods'])})")
    from .. import tasks as task_kinds

    for task_name, task in config["tasks"].items():
        try:
            task_kinds.get(task["kind"]).check_task(task_name, task)
        except ConfigError as e:
            raise ConfigError(str(e) if "config key" in str(e) else f"config key 'tasks.{task_name}.kind': {e}") from None
        refs = {"train": task["train"], **{f"eval_sets.{k}": v for k, v in task["eval_sets"].items()}}
        if "dataset" in task["validation"]:
            refs["validation"] = task["validation"]
        for where, ref in refs.items():
            if ref["dataset"] not in config["datasets"]:
                raise ConfigError(
                    f"config key 'tasks.{task_name}.{where}.dataset': unknown dataset '{ref['dataset']}' "
                    f"(defined: {', '.join(config['datasets'])})"
                )
        for name, es in task["eval_sets"].items():
            es.setdefault("column", task_name)
            if name in ("train", "validation"):
                raise ConfigError(f"config key 'tasks.{task_name}.eval_sets.{name}': reserved name")

    from ..data.sources import check_spec

    all_runs = runs(config)  # computed once: it reads every studied model's config.json
    used = used_datasets(config, run_list=all_runs)
    for name in used:
        check_spec(name, config["datasets"][name], base_dir)
    for task_name in {r.task for r in all_runs}:
        task = config["tasks"][task_name]
        for where, ref in (("train", task["train"]), ("validation", task["validation"])):
            if "dataset" in ref and not dataset_available(config, ref["dataset"], base_dir):
                raise ConfigError(
                    f"config key 'tasks.{task_name}.{where}.dataset': dataset '{ref['dataset']}' is optional and its "
                    f"file is absent; only eval sets may use optional datasets"
                )
        if not available_eval_sets(config, task_name, base_dir):
            raise ConfigError(f"config key 'tasks.{task_name}.eval_sets': every eval set uses an absent optional dataset")
        _check_task_columns(config, task_name, base_dir)

    from .. import methods as method_registry

    parsed = {}  # method name -> (class, options)
    for name, spec in config["methods"].items():
        cls = method_class(config, name)
        parsed[name] = cls, method_registry.parse_options(spec["type"], spec.get("options") or {}, f"methods.{name}.options")

    limits = {}  # model name -> positions/layers, read once per model
    recorded = {}  # model name -> its module names per task kind, from its record when fetched
    for run_model, run_task, run_method in sorted({(r.model, r.task, r.method) for r in all_runs}):
        if run_model not in limits:
            limits[run_model] = model_limits(run_model, config["models"][run_model], base_dir)
        info = limits[run_model]
        task_entry = config["tasks"][run_task]
        needed = task_kinds.get(task_entry["kind"]).positions_needed(task_entry)
        if info.get("max_positions") and needed > int(info["max_positions"]):
            extra = " plus max_new_tokens" if needed != task_entry["max_length"] else ""
            raise ConfigError(f"config key 'tasks.{run_task}.max_length': {task_entry['max_length']}{extra} "
                              f"({needed} positions) exceeds the {info['max_positions']} positions of model '{run_model}'")
        cls, options = parsed[run_method]
        ctx = method_registry.MethodContext(
            num_layers=info.get("num_layers"),
            model_type=info.get("model_type"),
            task_kind=config["tasks"][run_task]["kind"],
            total_steps=None,
            max_length=config["tasks"][run_task]["max_length"],
            max_positions=info.get("max_positions"),
            bias_terms=info.get("bias_terms"),
        )
        try:
            cls.check(options, ctx)
        except ConfigError as e:
            raise ConfigError(
                f"config keys 'methods.{run_method}' with 'tasks.{run_task}.max_length' on model '{run_model}': {e}"
            ) from None
        if run_model not in recorded:
            recorded[run_model] = recorded_modules(config, run_model, base_dir)
        check_targets(options, run_method, run_model, (recorded[run_model] or {}).get(ctx.task_kind))
        check_parallel(config, run_model, run_task, run_method, cls)
    figure1_runs(config, run_list=all_runs)  # raises ConfigError when the chosen runs are not in any study
    check_selection(config)
    return config


def recorded_modules(config: dict, model: str, base_dir: str | os.PathLike = ".") -> dict | None:
    """{task kind: module names} from the model's record (`fetch_model`), when the record was
    fetched for the model's current entry; else None (not fetched yet, or the entry changed).

    Reading the names from the record keeps planning free of torch; before the first fetch,
    wrapping the model checks the same at train time (lwob.methods._peft.wrap)."""
    from .dependencies import model_identity

    path = Path(base_dir) / "resources" / "models" / f"{model}.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("spec") != model_identity(config, model):
        return None
    return record.get("modules")


def check_targets(options: Any, method: str, model: str, module_names: list[str] | None) -> None:
    """A method's target options each match a module of the model (ConfigError naming the key
    and near matches); nothing to check without the model's module names."""
    if module_names is None:
        return
    from ..models import TARGET_OPTIONS, check_target_modules

    for option in TARGET_OPTIONS:
        check_target_modules(getattr(options, option, None), module_names, f"methods.{method}.options.{option}", model)


def check_selection(config: dict) -> None:
    sel = selection_config(config)
    if sel is None:
        return
    for key in ("models", "tasks", "methods"):
        for i, name in enumerate(sel.get(key) or []):
            if name not in config[key]:
                raise ConfigError(f"config key 'selection.{key}[{i}]': unknown {key[:-1]} '{name}'")
    types = {spec["type"] for spec in config["methods"].values()}
    for name in sel.get("grids") or {}:
        if name not in config["methods"] and name not in types:
            raise ConfigError(f"config key 'selection.grids.{name}': neither a method nor a method type in use "
                              f"(methods: {', '.join(config['methods'])}; types: {', '.join(sorted(types))})")
        type_name = config["methods"][name]["type"] if name in config["methods"] else name
        from .. import methods as registry

        if not registry.get(type_name).trains:
            raise ConfigError(f"config key 'selection.grids.{name}': method '{name}' does not train, so there is "
                              f"nothing to choose on a grid")

def increments_config(config: dict) -> dict | None:
    """The enabled `increments` section, else None."""
    inc = config.get("increments")
    return inc if inc and inc.get("enabled", True) else None


def figure1_runs(config: dict, *, run_list: list[Run] | None = None) -> dict[str, Run]:
    """Method -> the run whose increments Figure 1 shows (`increments` model, task, seed).

    `run_list`: runs(config) when the caller has it already (saves recomputing it)."""
    inc = increments_config(config)
    if inc is None:
        return {}
    known = set(runs(config) if run_list is None else run_list)
    out = {}
    for i, method in enumerate(inc["methods"]):
        run = Run(inc["model"], inc["task"], method, int(inc["seed"]))
        if run not in known:
            raise ConfigError(f"config key 'increments.methods[{i}]': run {run.path} is not part of any enabled "
                              "study (Figure 1 reads the weights of finished runs; it never trains)")
        out[method] = run
    for method in inc.get("module_by_method") or {}:
        if method not in out:
            raise ConfigError(f"config key 'increments.module_by_method.{method}': not one of increments.methods")
    return out


def increment_selector(config: dict, method: str) -> str:
    inc = increments_config(config) or {}
    return (inc.get("module_by_method") or {}).get(method) or inc.get("module") or "default"


def check_parallel(config: dict, model: str, task: str, method: str, method_cls) -> None:
    """A run's `training.processes`/`training.parallel` suit its method (ConfigError)."""
    hp = hyperparameters(config, model, task, method)
    check_strategy(method_cls, hp.get("processes", 1), hp.get("parallel", "ddp"), f"'training' of run {model}/{task}/{method}",
                   nodes=hp.get("nodes", 1))


def check_strategy(method_cls, processes: int, parallel: str, where: str, nodes: int = 1) -> None:
    """The one rule for multi-process training, used at planning time (here, without importing
    torch, which would add seconds to every `snakemake` call) and again by training itself
    (lwob.run.distributed.check): a method that cannot be sharded does not train under FSDP.
    `processes` are per node; a run on `nodes` nodes trains in nodes x processes."""
    if processes * nodes > 1 and not method_cls.multi_process:
        setting = "nodes" if nodes > 1 else "processes"
        raise ConfigError(f"{where}: method type '{method_cls.name}' trains in one process only "
                          f"(training.{setting}: {nodes if nodes > 1 else processes}); use {setting}: 1")
    if processes * nodes > 1 and parallel == "fsdp" and not method_cls.shardable:
        raise ConfigError(f"{where}: method type '{method_cls.name}' cannot train under FSDP "
                          "(training.parallel: fsdp); use parallel: ddp or processes: 1")


# --------------------------------------------------------------------------- models


def model_limits(name: str, spec: dict, base_dir: str | os.PathLike = ".") -> dict:
    """max_positions / num_layers / model_type, read cheaply at config time."""
    info = {k: spec[k] for k in ("max_positions", "num_layers") if k in spec}
    from ..models import converted_dir, gguf_file, gguf_info, local_model_dir, model_info_from_dir

    directory = local_model_dir(spec, base_dir)
    if spec["source"] == "gguf":  # the converted folder once fetch_model made it, else the file's header
        directory = converted_dir(name, base_dir)
        if not (directory / "config.json").is_file():
            try:
                return {**gguf_info(gguf_file(spec, base_dir)), **info}
            except ConfigError as e:
                raise ConfigError(f"config key 'models.{name}': {e}") from None
    if directory is None and spec["source"] == "hub":
        try:  # an already-cached config.json; the hub itself may be unreachable here
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(spec["path"], "config.json", revision=spec["revision"])
            if isinstance(cached, str):
                directory = Path(cached).parent
        except Exception:
            directory = None
    if directory is not None:
        if not (directory / "config.json").exists():
            raise ConfigError(f"config key 'models.{name}': no config.json in {directory}")
        read = model_info_from_dir(directory)
        info = {**read, **info}
    return info


# --------------------------------------------------------------------------- runs


def task_metrics(config: dict) -> dict[str, str]:
    """task -> the metric it is judged on: the first of its kind's metrics for its config
    entry (``metric:`` / ``metrics:``, else the kind's default; lwob.tasks). Tables show it,
    the statistics compare it, and it picks the best epoch."""
    from ..tasks.base import task_metric

    return {name: task_metric(task) for name, task in config["tasks"].items()}


def enabled_studies(config: dict) -> dict:
    """The enabled studies, each with its `omitted` runs (omitted_methods)."""
    limits: dict = {}  # model name -> model_limits, read once for all studies
    return {k: {**v, "omitted": omitted_methods(config, v, _limits=limits)}
            for k, v in config["studies"].items() if v.get("enabled", True)}


def study_seeds(config: dict, study: dict) -> list[int]:
    """A study's own seeds, else the top-level ones."""
    return list(study.get("seeds") or config["seeds"])


def method_class(config: dict, method: str):
    """The Method class of a configured method (ConfigError naming the config key)."""
    from .. import methods as registry

    try:
        return registry.get(config["methods"][method]["type"])
    except ConfigError as e:
        raise ConfigError(f"config key 'methods.{method}.type': {e}") from None


def trains(config: dict, method: str) -> bool:
    """Whether runs of `method` train (False: the base model evaluated as it is, e.g. vanilla)."""
    return method_class(config, method).trains


def trained_runs(config: dict, run_list: list[Run]) -> list[Run]:
    """The runs of `run_list` that have a train job (weights, a training record)."""
    memo: dict[str, bool] = {}
    return [r for r in run_list if memo.setdefault(r.method, trains(config, r.method))]


def omitted_methods(config: dict, study: dict, base_dir: str | os.PathLike = ".",
                    _limits: dict | None = None) -> dict[str, dict[str, str]]:
    """{model: {method: reason}} of the study's runs that would repeat another run (e.g.
    top-k layers with k above the model's depth): they are not trained, and the study's
    table leaves their rows out and says why.

    `_limits` (model name -> model_limits) lets one caller share the reads of the models'
    config.json over several studies of one config; it is filled in as models are read."""
    from .. import methods as registry

    limits = {} if _limits is None else _limits
    # Left out on purpose by the study (`not_run`), then those a method finds redundant.
    out: dict[str, dict[str, str]] = {m: dict(by_method) for m, by_method in (study.get("not_run") or {}).items()}
    for model in study["models"]:
        num_layers = None
        for method in study["methods"]:
            spec = config["methods"][method]
            cls = method_class(config, method)
            if cls.redundant.__func__ is registry.Method.redundant.__func__:
                continue
            if num_layers is None:
                if model not in limits:
                    limits[model] = model_limits(model, config["models"][model], base_dir)
                num_layers = limits[model].get("num_layers")
            options = registry.parse_options(spec["type"], spec.get("options") or {}, f"methods.{method}.options")
            reason = cls.redundant(options, num_layers)
            if reason:
                out.setdefault(model, {})[method] = reason
    return out


def study_runs(config: dict, study: dict) -> list[Run]:
    omitted = study["omitted"] if "omitted" in study else omitted_methods(config, study)
    seeds = study_seeds(config, study)
    return [
        Run(m, t, x, s)
        for m in study["models"]
        for t in study["tasks"]
        for x in study["methods"]
        if x not in omitted.get(m, {})
        for s in seeds
    ]


def generation_runs(config: dict, study: dict) -> list[Run]:
    """The runs whose per-example generations a study shows (lwob.report.generations): its
    runs of tasks whose kind decodes text, at the study's first seed."""
    from .. import tasks as task_kinds

    seeds = study_seeds(config, study)
    return [r for r in study_runs(config, study)
            if r.seed == seeds[0] and task_kinds.get(config["tasks"][r.task]["kind"]).needs_tokenizer]


def runs(config: dict, *, studies: dict | None = None) -> list[Run]:
    """Union of the runs of every enabled study, in a stable order.

    `studies`: enabled_studies(config) when the caller has it already (it reads the models'
    config.json files)."""
    seen: dict[Run, None] = {}
    for study in (enabled_studies(config) if studies is None else studies).values():
        for run in study_runs(config, study):
            seen.setdefault(run)
    return list(seen)


def used_datasets(config: dict, *, run_list: list[Run] | None = None) -> list[str]:
    names: dict[str, None] = {}
    for task in {r.task for r in (runs(config) if run_list is None else run_list)}:
        for ds in task_datasets(config["tasks"][task]):
            names.setdefault(ds)
    return sorted(names)


def _check_task_columns(config: dict, task_name: str, base_dir) -> None:
    """The columns a task reads (its template's fields, its completion...) exist in each of
    its datasets whose columns are known before loading (a demo generator's, Spider's, a
    local file's header); the others are checked when they are tokenized."""
    from .. import tasks as task_kinds
    from ..data.sources import known_columns

    task = config["tasks"][task_name]
    needed = task_kinds.get(task["kind"]).columns_needed(task)
    if not needed:
        return
    refs = {"train": task["train"], **({"validation": task["validation"]} if "dataset" in task["validation"] else {}),
            **{f"eval_sets.{k}": v for k, v in available_eval_sets(config, task_name, base_dir).items()}}
    for where, ref in refs.items():
        columns = known_columns(config["datasets"][ref["dataset"]], Path(base_dir))
        missing = [c for c in needed if columns is not None and c not in columns]
        if missing:
            raise ConfigError(f"config key 'tasks.{task_name}.{needed[missing[0]]}': dataset '{ref['dataset']}' "
                              f"({where}) has no column(s) {missing} (its columns: {', '.join(columns)}; rename "
                              f"with datasets.{ref['dataset']}.columns)")


def task_datasets(task: dict) -> list[str]:
    refs = [task["train"], *task["eval_sets"].values()]
    if "dataset" in task["validation"]:
        refs.append(task["validation"])
    return sorted({r["dataset"] for r in refs})


def training_datasets(task: dict) -> list[str]:
    """Datasets of the train and validation parts (what the tokenize rule reads)."""
    refs = [task["train"]] + ([task["validation"]] if "dataset" in task["validation"] else [])
    return sorted({r["dataset"] for r in refs})


def training_part_spec(config: dict, task_name: str) -> dict:
    """The task entry without its eval sets (what the training parts are tokenised from):
    adding or editing an eval set never re-tokenises the training parts, so never retrains."""
    return {k: v for k, v in config["tasks"][task_name].items() if k not in ("eval_sets", "training", "display")}


def eval_set_part_spec(config: dict, task_name: str, eval_set: str) -> dict:
    """The task entry with only this eval set: editing one set re-tokenises only that set."""
    return {**training_part_spec(config, task_name), "eval_sets": {eval_set: config["tasks"][task_name]["eval_sets"][eval_set]}}


def dataset_available(config: dict, name: str, base_dir: str | os.PathLike = ".") -> bool:
    """False only for an `optional: true` local dataset whose file is absent."""
    from ..data.sources import is_available

    return is_available(name, config["datasets"][name], Path(base_dir))


def available_eval_sets(config: dict, task_name: str, base_dir: str | os.PathLike = ".") -> dict:
    """The task's eval sets whose dataset is present, in config order."""
    task = config["tasks"][task_name]
    return {k: v for k, v in task["eval_sets"].items() if dataset_available(config, v["dataset"], base_dir)}


def skipped_eval_sets(config: dict, base_dir: str | os.PathLike = ".", *, run_list: list[Run] | None = None) -> dict:
    """{task: {eval set: reason}} for eval sets of optional datasets whose files are absent.

    Tables and the report flag these: a configured set is never silently missing.
    `run_list`: runs(config) when the caller has it already.
    """
    out: dict = {}
    for task_name in sorted({r.task for r in (runs(config) if run_list is None else run_list)}):
        for es_name, es in config["tasks"][task_name]["eval_sets"].items():
            if not dataset_available(config, es["dataset"], base_dir):
                spec = config["datasets"][es["dataset"]]
                files = spec.get("files") or {"": spec.get("file")}
                out.setdefault(task_name, {})[es_name] = (
                    f"not supplied: optional dataset '{es['dataset']}' file(s) absent "
                    f"({', '.join(str(f) for f in files.values())})"
                )
    return out


def hyperparameters(config: dict, model: str, task: str, method: str) -> dict:
    """Defaults <- model <- task <- method <- the model's entry for the method
    (`models.<model>.method_training.<method>`): the fully resolved training settings of a run."""
    hp = dict(config["training"])
    for layer in (config["models"][model], config["tasks"][task], config["methods"][method]):
        hp.update(layer.get("training") or {})
    hp.update((config["models"][model].get("method_training") or {}).get(method) or {})
    return hp


#: Settings that only change how a finished run is evaluated: they are not part of a train
#: job's params (editing them reruns evaluation, not training). Training's per-epoch
#: validation pass reads them at run time; batching changes no prediction beyond rounding.
EVALUATION_ONLY = ("eval_batch_size", "eval_devices")
#: The settings an untrained run's evaluation takes from the training settings (where it
#: runs and at what precision; lwob.run.fastpath).
UNTRAINED_EVALUATION = ("device", "precision", "tf32")


def training_settings(config: dict, model: str, task: str, method: str) -> dict:
    """A run's resolved settings less the evaluation-only ones (a train job's params)."""
    return {k: v for k, v in hyperparameters(config, model, task, method).items() if k not in EVALUATION_ONLY}


def evaluation_settings(config: dict, model: str, task: str, method: str) -> dict:
    """A run's resolved evaluation-only settings (an evaluate job's params). A method that
    never trains has no training record to take the device and precision from: its
    evaluation gets them here."""
    hp = hyperparameters(config, model, task, method)
    keys = EVALUATION_ONLY if trains(config, method) else (*EVALUATION_ONLY, *UNTRAINED_EVALUATION)
    return {k: hp[k] for k in keys if k in hp}


# --------------------------------------------------------------------------- selection


def selection_config(config: dict) -> dict | None:
    """The enabled `selection` section (hyperparameter grids chosen on validation), else None."""
    sel = config.get("selection")
    return sel if sel and sel.get("enabled", True) else None


def selection_grid(config: dict, model: str, task: str, method: str) -> list[dict]:
    """The grid cells (hyperparameter overrides) a run's settings are chosen from; [] when
    the run is not selected (no section, filtered out, or no grid for the method's name or
    type). Cells are the product of the grid's value lists, in key order."""
    sel = selection_config(config)
    if sel is None:
        return []
    for key, names in (("models", model), ("tasks", task), ("methods", method)):
        if sel.get(key) is not None and names not in sel[key]:
            return []
    grids = sel.get("grids") or {}
    grid = grids.get(method) or grids.get(config["methods"][method]["type"])
    if not grid:
        return []
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def cell_id(cell: dict) -> str:
    """A path-safe name of a grid cell, e.g. `lr0.0001_warmup_ratio0.06`."""
    return "_".join(f"{k}{v:g}" if isinstance(v, float) else f"{k}{v}" for k, v in cell.items())


def selection_seeds(config: dict) -> list[int]:
    return list((selection_config(config) or {}).get("seeds") or [config["seeds"][0]])


@dataclass(frozen=True)
class GridRun:
    """One training run of a grid cell: `run` (its seed among the selection seeds) and `cell`."""

    run: Run
    cell: str

    @property
    def path(self) -> str:
        r = self.run
        return f"{r.model}/{r.task}/{r.method}/{self.cell}/seed{r.seed}"


def selected_triples(config: dict, *, run_list: list[Run] | None = None) -> list[tuple[str, str, str]]:
    """(model, task, method) of the study runs whose settings are chosen on a grid.

    `run_list`: runs(config) when the caller has it already."""
    triples = dict.fromkeys((r.model, r.task, r.method) for r in (runs(config) if run_list is None else run_list))
    return [t for t in triples if selection_grid(config, *t)]


def grid_runs(config: dict, *, triples: list[tuple[str, str, str]] | None = None) -> list[GridRun]:
    """The grid runs of the selected triples (`triples`: selected_triples(config) when the
    caller has it already)."""
    seeds = selection_seeds(config)
    return [GridRun(Run(m, t, x, s), cell_id(cell))
            for m, t, x in (selected_triples(config) if triples is None else triples)
            for cell in selection_grid(config, m, t, x)
            for s in seeds]


def cell_hyperparameters(config: dict, model: str, task: str, method: str, cell: str) -> dict:
    """A grid run's settings: the run's resolved ones with the cell's values."""
    cells = {cell_id(c): c for c in selection_grid(config, model, task, method)}
    if cell not in cells:
        raise ConfigError(f"grid cell '{cell}' is not in the selection grid of {model}/{task}/{method}")
    return {**training_settings(config, model, task, method), **cells[cell]}


def method_spec(config: dict, method: str) -> dict:
    spec = config["methods"][method]
    return {"type": spec["type"], "options": dict(spec.get("options") or {})}


def run_resources(config: dict, model: str, processes: int = 1, nodes: int = 1) -> dict:
    """Compute request of a training or evaluation job of this model.

    A model's `resources` are per process: a run trained by several processes per node
    (`training.processes`, lwob.run.distributed) asks for that many CPUs and that much memory
    on each of its `nodes` (`training.nodes`), and for GPUs in all (`gpus`: the job's total,
    as SLURM's --gpus counts them).
    """
    res = dict(config.get("resources", {}).get("default") or {})
    res.update(config["models"][model].get("resources") or {})
    res = {"gpus": 0, "gpu_model": None, "cpus": 1, "mem_mb": 4000, "runtime_min": 60, **res}
    for k in ("gpus", "cpus", "mem_mb"):
        res[k] *= processes
    res["gpus"] *= nodes
    res["nodes"] = nodes
    return res


def train_resources(config: dict, model: str, task: str, method: str) -> dict:
    """Compute request of a training job: its model's, times the run's processes (per node)
    on its nodes."""
    hp = hyperparameters(config, model, task, method)
    return run_resources(config, model, hp.get("processes", 1), hp.get("nodes", 1))


def evaluation_resources(config: dict, model: str, task: str, method: str) -> dict:
    """Compute request of an evaluate job: its model's, with the GPUs times the run's
    `eval_devices` (one process spreading the model's layers over them)."""
    res = run_resources(config, model)
    res["gpus"] *= evaluation_settings(config, model, task, method).get("eval_devices", 1)
    return res


#: The SLURM executor's resources of a training job over several nodes (multi_node_resources).
MULTI_NODE_RESOURCES = ("nodes", "tasks", "tasks_per_gpu", "mpi")


def multi_node_resources(config: dict, model: str, task: str, method: str) -> dict:
    """The executor's settings for a run over several nodes (training.nodes): `nodes` nodes, one
    task on each (`tasks`; `tasks_per_gpu` 0 keeps the executor from deriving --ntasks-per-gpu
    from it), and `mpi`, which makes it run the job script itself on the first node rather than
    inside a one-task step, so that lwob.run.launch can `srun` a launcher on every node.
    {} for a run on one node (its sbatch line stays as it was)."""
    nodes = hyperparameters(config, model, task, method).get("nodes", 1)
    return {} if nodes == 1 else dict(zip(MULTI_NODE_RESOURCES, (nodes, nodes, 0, "srun")))


def placement(config: dict) -> dict:
    """Partition/account/QoS for cluster jobs; environment variables win over the config."""
    cfg = config.get("resources") or {}
    env = {
        "gpu_partition": "LWOB_GPU_PARTITION",
        "cpu_partition": "LWOB_CPU_PARTITION",
        "account": "LWOB_SLURM_ACCOUNT",
        "qos": "LWOB_SLURM_QOS",
    }
    return {k: os.environ.get(var) or cfg.get(k) for k, var in env.items()}


def slurm_resources(config: dict, partition_kind: str) -> dict:
    """SLURM executor resources for a rule placed on the `gpu` or `cpu` partition.

    Only what is set is returned: an empty value would make the executor pass an empty flag.
    QoS is the executor's own `qos` resource (it refuses `--qos` inside slurm_extra).
    """
    where = placement(config)
    wanted = {
        "slurm_partition": where[f"{partition_kind}_partition"],
        "slurm_account": where["account"],
        "qos": where["qos"],
    }
    return {k: v for k, v in wanted.items() if v}
