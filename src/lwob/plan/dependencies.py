"""What each job's result depends on: the one place that decides what an edit reruns.

Snakemake reruns a job when an input file is newer, or when a `params` value, the rule's
code or its software environment changed. So every rule's params hold exactly what changes
its result, and nothing else:

- code: `code_of(script)` hashes the job's script and every module of this package the script
  imports, followed transitively through the package (top-level and function-level imports,
  relative or absolute, and every module of a registry package that loads its modules with
  pkgutil, i.e. `lwob.methods` and `lwob.tasks`). Derived from the source itself, so it cannot
  drift from what the job really runs. The job runner (`RUNNER_MODULES`: how a job's process is
  started, never what it computes) is not followed: the warm worker's results are tested to
  equal a cold process's.
- a model's identity (`model_identity`): what changes its weights, tokenizer or config; not
  its cluster resources, display name, aliases or training settings.
- a run's training settings without the settings that only affect evaluation
  (lwob.plan.config.training_settings / evaluation_settings).
- what tables and figures show (`presentation`): display names, aliases, method types (the
  colours), task columns.
- local data files: inputs of the download job (`local_data_files`).

Planning code: imports neither torch nor the job modules.
"""

from __future__ import annotations

import ast
import hashlib
import os
from functools import lru_cache
from pathlib import Path

PACKAGE = "lwob"
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # src/lwob
SCRIPTS_DIR = PACKAGE_DIR.parents[1] / "workflow" / "scripts"

#: How a job's process runs (its log, offline environment, own process or a fork of the warm
#: worker), not what it computes: their imports are not followed and editing them reruns nothing.
RUNNER_MODULES = frozenset({f"{PACKAGE}.plan.warm", f"{PACKAGE}.plan.jobs"})

#: The keys of a model entry that change its weights, tokenizer or model config.
MODEL_IDENTITY = ("source", "path", "revision", "package", "subdir", "file", "config", "max_positions", "num_layers")

#: What tables, figures and the claims page show of each config section.
PRESENTED = {
    "models": ("display", "aliases"),
    "methods": ("type", "display", "aliases"),
    # the metric a task is judged on: its kind's, from `metric(s)` or a generation task's scorer
    "tasks": ("display", "kind", "metric", "metrics", "scorer", "scorer_options", "eval_sets"),
}
PRESENTED_EVAL_SET = ("kind", "column", "display", "paper_column")


# --------------------------------------------------------------------------- code


def module_file(name: str) -> Path | None:
    """The source file of package module `name` ("lwob.run.training"), or None outside the package."""
    if name != PACKAGE and not name.startswith(PACKAGE + "."):
        return None
    base = PACKAGE_DIR.joinpath(*name.split(".")[1:])
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _is_package(name: str) -> bool:
    f = module_file(name)
    return f is not None and f.name == "__init__.py"


def _loads_all_submodules(tree: ast.Module) -> bool:
    """A registry package: its __init__ imports every module of the package (pkgutil)."""
    return any(isinstance(node, ast.Attribute) and node.attr == "iter_modules"
               and isinstance(node.value, ast.Name) and node.value.id == "pkgutil"
               for node in ast.walk(tree))


def _submodules(package: str) -> list[str]:
    folder = module_file(package).parent
    out = []
    for f in sorted(folder.iterdir()):
        if f.suffix == ".py" and f.name != "__init__.py":
            out.append(f"{package}.{f.stem}")
        elif (f / "__init__.py").is_file():
            out.append(f"{package}.{f.name}")
    return out


def _imported_names(tree: ast.Module, module: str | None, is_package: bool) -> set[str]:
    """Package modules named by the import statements of a module (anywhere in it) and by
    `"lwob.x:function"` job targets (strings passed to lwob.plan.jobs.run_job)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = module.split(".") if module else []
                base_parts = parts if is_package else parts[:-1]
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            # `from lwob import tasks` imports the module lwob.tasks
            names.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and ":" in node.value:
            target = node.value.split(":", 1)[0]
            if target.startswith(PACKAGE + ".") and target.replace(".", "").replace("_", "").isalnum():
                names.add(target)
    return {n for n in names if module_file(n) is not None}


def _with_parents(name: str) -> list[str]:
    """Importing a.b.c runs a/__init__ and a/b/__init__ first."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


@lru_cache(maxsize=None)
def _direct_imports(name: str) -> frozenset[str]:
    tree = ast.parse(module_file(name).read_bytes())
    found = _imported_names(tree, name, _is_package(name))
    if _is_package(name) and _loads_all_submodules(tree):
        found.update(_submodules(name))
    return frozenset(found)


def module_closure(roots: set[str] | frozenset[str]) -> list[str]:
    """Every package module that importing `roots` can run, sorted."""
    seen: set[str] = set()
    todo = [p for r in roots for p in _with_parents(r)]
    while todo:
        name = todo.pop()
        if name in seen or module_file(name) is None:
            continue
        seen.add(name)
        if name in RUNNER_MODULES:
            continue
        for dep in _direct_imports(name):
            todo.extend(_with_parents(dep))
    return sorted(seen - RUNNER_MODULES)


@lru_cache(maxsize=None)
def script_modules(script: str) -> tuple[str, ...]:
    """The package modules a job script (`workflow/scripts/<script>.py`) runs."""
    path = SCRIPTS_DIR / f"{script}.py"
    return tuple(module_closure(_imported_names(ast.parse(path.read_bytes()), None, False)))


#: Registry packages that plugins (lwob.plugins) extend: a job that loads one may run plugin code.
PLUGIN_REGISTRIES = frozenset({f"{PACKAGE}.tasks", f"{PACKAGE}.methods"})


def code_of(script: str) -> str:
    """Hash of a job script and of every package module it runs (a rule's `code` param),
    and of the config's plugins (lwob.plugins.activate) when the job loads a registry."""
    from .. import plugins

    return _code_of(script, tuple(plugins.active()))


@lru_cache(maxsize=None)
def _code_of(script: str, active_plugins: tuple[str, ...]) -> str:
    from .. import plugins

    h = hashlib.sha256()
    modules = script_modules(script)
    for name in modules:
        f = module_file(name)
        h.update(str(f.relative_to(PACKAGE_DIR)).encode())
        h.update(f.read_bytes())
    if PLUGIN_REGISTRIES & set(modules):
        for f in plugins.files(list(active_plugins)):
            h.update(f"plugin:{f.name}".encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- config


def _pick(entry: dict, keys) -> dict:
    return {k: entry[k] for k in keys if k in entry}


def model_identity(config: dict, model: str) -> dict:
    """The part of a model's entry that changes its weights, tokenizer or config."""
    return _pick(config["models"][model], MODEL_IDENTITY)


def presentation(config: dict) -> dict:
    """What tables, figures and the claims page show of the models, methods and tasks."""
    out = {section: {name: _pick(entry, keys) for name, entry in config[section].items()}
           for section, keys in PRESENTED.items()}
    for task in out["tasks"].values():
        if "eval_sets" in task:
            task["eval_sets"] = {name: _pick(es, PRESENTED_EVAL_SET) for name, es in task["eval_sets"].items()}
    return out


def local_data_files(spec: dict) -> list[str]:
    """The files of a `source: local` dataset that exist (inputs of its download job), as
    configured (relative to the working directory, `~` expanded)."""
    from ..data.sources import local_paths  # every file the spec names (Spider's tables.json too)

    return [os.path.expanduser(str(p)) for p in local_paths(spec) if Path(os.path.expanduser(str(p))).is_file()]


def claims_view(config: dict) -> dict:
    """The part of the config the claims page reads: what it shows, method options and
    learning rates (a fallback for records without them), and Figure 1's runs."""
    view = presentation(config)
    for name, method in view["methods"].items():
        method.update(_pick(config["methods"][name], ("options", "training")))
    view["training"] = _pick(config.get("training") or {}, ("lr",))
    view["increments"] = config.get("increments")
    return view
