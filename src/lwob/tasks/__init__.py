"""Registry of task kinds (classification, extractive QA, ...).

A task kind knows how to check a task's config entry, turn a normalised split into model
inputs (tokenised rows or sliding-window features), which HF head to load, which columns
are the loss targets, and how to score predictions. Every module in this package
registers its kind with ``@register("name")``; adding a kind is adding one module.

    get(kind) -> TaskKind subclass      (ConfigError for an unknown kind)
    known() -> list[str]
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import EVAL_SET_KINDS, REGISTRY, TaskKind, get, known, register  # noqa: F401

for _mod in pkgutil.iter_modules(__path__):
    if _mod.name != "base" and not _mod.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod.name}")
del _mod
