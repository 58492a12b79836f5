"""Registry of the generation track's scorers (lwob.tasks.generation: ``tasks.<t>.scorer``).

    exact_match   whitespace-normalised string equality
    viggo         ViGGO meaning representations: exact match, function type, slot P/R/F1
    sql           SQL exact match after sqlglot normalisation; execution match on sqlite
    gsm8k         GSM8K answer accuracy, strict (``#### N``) and flexible extraction

Every module of this package registers its scorer with ``@register("name")``; adding a
scorer is adding one module. Importing the package imports no torch, pandas or sqlglot.

    get(name) -> Scorer subclass      (ConfigError for an unknown name)
    known() -> list[str]
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import REGISTRY, Scorer, get, known, register  # noqa: F401

for _mod in pkgutil.iter_modules(__path__):
    if _mod.name != "base" and not _mod.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod.name}")
del _mod
