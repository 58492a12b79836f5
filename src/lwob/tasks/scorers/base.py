"""Scorer: how the generation kind (lwob.tasks.generation) turns decoded completions into metrics.

A scorer is a class with class methods only; each module of this package registers one with
``@register("name")`` (the name a task's ``scorer:`` key gives). The generation kind hands it
the stripped completions, the references (the task's ``completion`` column) and, in
``context``, the eval examples' ``context_columns``; it gets back the metrics and one row of
parts per example, whose ``correct`` column (the headline metric's per-example score) is what
paired bootstrap statistics resample, so the mean of ``correct`` is the headline metric.

Nothing heavy is imported here (config validation imports the registry): pandas inside
``score``, sqlglot inside the sql scorer's functions.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from ...errors import ConfigError
from ...registry import Registry


class Scorer:
    name: ClassVar[str] = ""
    #: every metric the scorer reports, in order (fractions in [0, 1] or counts)
    metrics: ClassVar[tuple[str, ...]] = ()
    #: keys accepted under tasks.<t>.scorer_options (anything else: ConfigError at config time)
    option_keys: ClassVar[tuple[str, ...]] = ()
    #: columns of the eval examples the scorer needs besides the completion (e.g. ("db_id",)
    #: for execution match); the task kind passes them in `context`
    context_columns: ClassVar[tuple[str, ...]] = ()
    #: how a table's legend names each metric (e.g. {"exact_match": "exact match"})
    metric_display: ClassVar[dict[str, str]] = {}

    @classmethod
    def check_options(cls, task_name: str, options: dict) -> None:
        """Config-time checks of ``tasks.<task_name>.scorer_options``: unknown keys here,
        values in the subclasses (which call this first). Raises ConfigError naming the key."""
        if not isinstance(options, dict):
            raise ConfigError(f"config key 'tasks.{task_name}.scorer_options': expected a mapping, got {options!r}")
        for key in options:
            if key not in cls.option_keys:
                takes = (f"known: {', '.join(cls.option_keys)}" if cls.option_keys else "it takes none")
                raise ConfigError(f"config key 'tasks.{task_name}.scorer_options.{key}': not an option of "
                                  f"scorer '{cls.name}' ({takes})")

    @classmethod
    def context_columns_for(cls, options: dict) -> tuple[str, ...]:
        """The context columns a task with these options needs: ``context_columns`` unless
        a scorer's options add some (the sql scorer needs ``db_id`` only with ``databases``)."""
        return cls.context_columns

    @classmethod
    def headline(cls, options: dict) -> str:
        """The metric tables show and statistics compare (the mean of ``correct``)."""
        return cls.metrics[0]

    @classmethod
    def score(cls, predictions: list[str], references: list[str], context: dict[str, list],
              options: dict) -> tuple[dict, Any]:
        """(metrics, per_example): metrics maps every name in ``metrics`` to a float (None
        without examples) plus integer counts; per_example (a pandas DataFrame) has one row
        per prediction, in order, with a float ``correct`` column and the scorer's parts."""
        raise NotImplementedError


def option_key(task_name: str | None, key: str) -> str:
    """How messages name an option: 'tasks.<t>.scorer_options.<key>' (without the task
    where it is not known, e.g. in ``headline``)."""
    return f"tasks.{task_name}.scorer_options.{key}" if task_name else f"scorer_options.{key}"


def choice(task_name: str | None, options: dict, key: str, allowed: tuple[str, ...], default: str) -> str:
    """The value of a choice option, checked against ``allowed`` (ConfigError otherwise)."""
    value = options.get(key, default)
    if not isinstance(value, str) or value not in allowed:
        raise ConfigError(f"config key '{option_key(task_name, key)}': {value!r} is not one of {', '.join(allowed)}")
    return value


def check_lengths(predictions: list, references: list, context: dict[str, list], needed: tuple[str, ...]) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    for c in needed:
        if c not in context:
            raise ValueError(f"the scorer needs the eval examples' column {c!r} in its context")
        if len(context[c]) != len(references):
            raise ValueError(f"context column {c!r} has {len(context[c])} values for {len(references)} references")


_SPACES = re.compile(r"\s+")


def normalize_space(text: str) -> str:
    """Strip and collapse every run of whitespace to one space."""
    return _SPACES.sub(" ", str(text)).strip()


def mean(values: list) -> float | None:
    """The mean of a list of numbers, None when empty."""
    return float(sum(values) / len(values)) if values else None


def frame(columns: dict[str, list], correct: list[float]):
    """The per-example DataFrame: the parts in the given order, then ``correct`` (float)."""
    import numpy as np
    import pandas as pd

    def column(values: list):
        numeric = values and all(isinstance(v, (bool, int, float)) for v in values)
        return values if numeric else pd.Series(values, dtype=object)  # text with None kept as None

    df = pd.DataFrame({k: column(v) for k, v in columns.items()})
    df["correct"] = np.asarray(correct, dtype=np.float64)
    return df


def _check_scorer(cls: type) -> None:
    if not (isinstance(cls.metrics, tuple) and cls.metrics and all(isinstance(m, str) for m in cls.metrics)):
        raise TypeError(f"{cls.__name__}.metrics must be a non-empty tuple of names")
    for attr in ("option_keys", "context_columns"):
        if not isinstance(getattr(cls, attr), tuple):
            raise TypeError(f"{cls.__name__}.{attr} must be a tuple")
    unknown = set(cls.metric_display) - set(cls.metrics)
    if unknown:
        raise TypeError(f"{cls.__name__}.metric_display names unknown metrics {sorted(unknown)}")


REGISTRY = Registry("scorer", check=_check_scorer)
register, known, get = REGISTRY.register, REGISTRY.known, REGISTRY.get
