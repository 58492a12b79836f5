"""Registry of fine-tuning methods (config-driven, HF-peft style).

Every module in this package registers its method with ``@register("name")`` on a
``Method`` subclass; the modules are imported automatically (pkgutil), so adding a method
is adding one module. Public API::

    get(type_name) -> Method subclass          (ConfigError for unknown types)
    known() -> list[str]
    shown(name, methods) -> {type, display, color}   (how tables and figures show a method)
    parse_options(type_name, options, key) -> Method.Options instance
    MethodContext(num_layers, model_type, task_kind, total_steps, max_length, max_positions)
    save_trained / load_trained / count_parameters / trainable_state
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import (  # noqa: F401
    REGISTRY,
    Method,
    MethodContext,
    count_parameters,
    get,
    known,
    load_trained,
    parse_options,
    register,
    save_trained,
    shown,
    trainable_state,
)

for _mod in pkgutil.iter_modules(__path__):
    if _mod.name != "base" and not _mod.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod.name}")
del _mod
