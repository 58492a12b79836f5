"""Plugins: modules outside this package that register task kinds or methods.

The config's optional `plugins:` lists them, each a Python file (a path ending in `.py`,
relative to the working directory) or an importable module name. Importing one runs its
`@tasks.register(...)` / `@methods.register(...)` decorators, so a new kind or method is
one file plus config, without touching the package.

Every process that looks a name up must have imported them:

- config validation (`activate`, from lwob.plan.config.validate) imports them before the
  registries are consulted, and puts the resolved list into the environment (LWOB_PLUGINS),
  which every job inherits from Snakemake, as it inherits PYTHONPATH;
- a job process imports them on the first lookup of a name its registries do not know
  (lwob.registry.Registry.get -> `load_from_env`): a one-pass job that never looks up a plugin
  name never imports one, and a forked warm-worker job (which gets the job's environment) or
  a spawned training process loads them the same way.

Editing a plugin reruns the jobs it can change: lwob.plan.dependencies.code_of hashes the
active plugins' files into the code of every job that loads a registry.

No torch here: planning imports this module.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from pathlib import Path

from .errors import ConfigError

ENV = "LWOB_PLUGINS"

#: resolved plugin (absolute file path or module name) -> its module, once per process:
#: importing a file twice would register its classes twice.
_LOADED: dict = {}


def _is_file(entry: str) -> bool:
    return entry.endswith(".py") or os.sep in entry or "/" in entry


def resolve(entries, base_dir: str | os.PathLike = ".", key: str = "plugins") -> list[str]:
    """The config's entries with files made absolute (relative to `base_dir`); ConfigError
    naming `plugins[i]` for a file that does not exist or a module that cannot be found."""
    out = []
    for i, entry in enumerate(entries or []):
        if not isinstance(entry, str) or not entry:
            raise ConfigError(f"config key '{key}[{i}]': expected a module name or a .py file, got {entry!r}")
        if _is_file(entry):
            path = (Path(base_dir) / Path(entry).expanduser()).resolve()
            if not path.is_file():
                raise ConfigError(f"config key '{key}[{i}]': no such file {str(path)!r}")
            out.append(str(path))
        else:
            out.append(entry)
    return out


def load(resolved: list[str], key: str = "plugins") -> list:
    """Import each plugin once (files by location, modules by name); returns the modules."""
    modules = []
    for i, entry in enumerate(resolved):
        if entry in _LOADED:
            modules.append(_LOADED[entry])
            continue
        try:
            if _is_file(entry):
                path = Path(entry)
                name = f"lwob_plugin_{path.stem}"
                spec = importlib.util.spec_from_file_location(name, path)
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module  # dataclasses and pickling look classes up by module
                spec.loader.exec_module(module)
            else:
                module = importlib.import_module(entry)
        except ImportError as e:
            raise ConfigError(f"config key '{key}[{i}]': cannot import plugin {entry!r}: {e}") from None
        _LOADED[entry] = module
        modules.append(module)
    return modules


def activate(config: dict, base_dir: str | os.PathLike = ".") -> list[str]:
    """Config-time: resolve and import the config's plugins and pass them on to the jobs
    (environment variable ENV). Returns the resolved list."""
    resolved = resolve(config.get("plugins") or [], base_dir)
    load(resolved)
    if resolved:
        os.environ[ENV] = json.dumps(resolved)
    else:
        os.environ.pop(ENV, None)
    return resolved


def active() -> list[str]:
    """The plugins of this process's workflow (from the environment), resolved."""
    text = os.environ.get(ENV)
    if not text:
        return []
    try:
        value = json.loads(text)
    except ValueError:
        raise ConfigError(f"environment variable {ENV}: not a JSON list ({text[:80]!r})") from None
    return [str(v) for v in value] if isinstance(value, list) else []


def load_from_env() -> bool:
    """Job-time: import the workflow's plugins not imported yet; whether any was new."""
    todo = [e for e in active() if e not in _LOADED]
    load(todo, key=ENV)
    return bool(todo)


def files(resolved: list[str]) -> list[Path]:
    """The source files of resolved plugins (what their code hash covers), found without
    importing them where possible."""
    out = []
    for entry in resolved:
        if _is_file(entry):
            out.append(Path(entry))
            continue
        module = _LOADED.get(entry) or sys.modules.get(entry)
        origin = getattr(module, "__file__", None)
        if origin is None:
            try:
                spec = importlib.util.find_spec(entry)
            except (ImportError, ValueError):
                spec = None
            origin = spec.origin if spec is not None else None
        if origin and Path(origin).is_file():
            out.append(Path(origin))
    return out
