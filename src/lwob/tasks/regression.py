"""Sequence regression (GLUE STS-B style): one or two text fields, a real-valued ``label``.

Config: ``text_fields`` (1 or 2 columns), ``max_length``, optionally ``label_range: [lo, hi]``
(STS-B: [0, 5]; labels outside it are a data error) and the task's metrics (``metric:`` /
``metrics:``, default ``[pearson, spearman]``; the first is shown in tables, compared by the
statistics and picks the best epoch). The head has one output (``num_labels`` 1,
``problem_type`` regression, mean-squared-error loss): a ``num_labels`` key is a config error.

Scoring: Pearson and Spearman correlation between predictions and labels over the set
(corpus metrics, computed by the functions in ``METRICS``, vectorised over resamples so that
the statistics' bootstrap recomputes exactly the same metric). Per example, ``correct`` is
``1 - |prediction - label| / width`` clipped to [0, 1] (width: the label range, else the
spread of the set's labels), and ``abs_error`` is kept beside it.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError, DataError
from .base import TaskKind, register
from .classification import configured_metrics, encode_text_rows


def _pearson(labels: np.ndarray, preds: np.ndarray) -> np.ndarray:
    """Pearson correlation over the last axis (NaN where either side is constant)."""
    x = np.asarray(preds, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    x = x - x.mean(axis=-1, keepdims=True)
    y = y - y.mean(axis=-1, keepdims=True)
    denom = np.sqrt((x * x).sum(axis=-1) * (y * y).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (x * y).sum(axis=-1) / np.where(denom > 0, denom, 1.0), np.nan)


def _spearman(labels: np.ndarray, preds: np.ndarray) -> np.ndarray:
    """Spearman correlation (Pearson of average ranks) over the last axis."""
    from scipy.stats import rankdata

    return _pearson(rankdata(labels, axis=-1), rankdata(preds, axis=-1))


@register("regression")
class Regression(TaskKind):
    auto_model = "AutoModelForSequenceClassification"
    peft_task_type = "SEQ_CLS"
    head_names = ("classifier", "score")
    targets = ("labels",)
    outputs = ("logits",)
    per_token = False
    primary_metric = "pearson"
    #: metric name -> f(labels, predictions) over the last axis (rows: resamples)
    METRICS = {"pearson": _pearson, "spearman": _spearman}
    metric_display = {"pearson": "Pearson correlation", "spearman": "Spearman correlation"}
    DEFAULT_METRICS = ("pearson", "spearman")
    scoring_keys = ("metric", "metrics", "label_range")
    required_keys = ("text_fields",)

    @classmethod
    def metrics(cls, settings):
        settings = settings or {}
        if "metric" in settings:
            return [settings["metric"]]
        return list(settings.get("metrics") or cls.DEFAULT_METRICS)

    @classmethod
    def check_task(cls, name, task):
        super().check_task(name, task)
        if "num_labels" in task:
            raise ConfigError(f"config key 'tasks.{name}.num_labels': a regression task has one output "
                              f"(num_labels 1, problem_type regression, set by the kind): remove the key")
        fields = task["text_fields"]
        if not isinstance(fields, list) or not 1 <= len(fields) <= 2 or not all(isinstance(f, str) for f in fields):
            raise ConfigError(f"config key 'tasks.{name}.text_fields': expected 1 or 2 column names, got {fields!r}")
        configured_metrics(name, task, cls.METRICS, list(cls.DEFAULT_METRICS), cls.name)
        lr = task.get("label_range")
        if lr is not None and not (isinstance(lr, list) and len(lr) == 2
                                   and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in lr)
                                   and lr[0] < lr[1]):
            raise ConfigError(f"config key 'tasks.{name}.label_range': expected [low, high] with low < high, got {lr!r}")

    @classmethod
    def check_frame(cls, df, task, where, task_name):
        missing = [c for c in [*task["text_fields"], "label", "idx"] if c not in df.columns]
        if missing:
            raise DataError(f"{where}: missing column(s) {missing} (columns: {list(df.columns)}); "
                            f"check tasks.{task_name}.text_fields or the dataset's 'columns' map")
        labels = df["label"].to_numpy(dtype=np.float64)
        if not np.isfinite(labels).all():
            raise DataError(f"{where}: {int((~np.isfinite(labels)).sum())} missing or non-finite label(s)")
        lr = task.get("label_range")
        if lr is not None:
            bad = (labels < lr[0]) | (labels > lr[1])
            if bad.any():
                raise DataError(f"{where}: {int(bad.sum())} label(s) outside tasks.{task_name}.label_range {lr} "
                                f"(e.g. {sorted(set(labels[bad].tolist()))[:5]}; -1 marks an unlabelled GLUE test "
                                f"row: use a labelled split)")
        for c in task["text_fields"]:
            if df[c].isna().any():
                raise DataError(f"{where}: {int(df[c].isna().sum())} missing value(s) in text column {c!r}")

    @classmethod
    def encode(cls, tokenizer, df, task, *, train):
        return encode_text_rows(tokenizer, df, task, "float32"), None

    @classmethod
    def model_kwargs(cls, meta):
        return {"num_labels": 1, "problem_type": "regression"}

    @classmethod
    def synthetic_batch(cls, *, batch_size, length, vocab_size, generator, meta):
        import torch

        ids = torch.randint(0, vocab_size, (batch_size, length), generator=generator)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids),
                "labels": torch.rand((batch_size,), generator=generator) * 5}

    @classmethod
    def score(cls, outputs, features, examples, eval_set=None):
        import pandas as pd

        logits = outputs["logits"]
        labels = np.array(features.column("labels").to_numpy(), dtype=np.float64)
        idx = features.column("idx").to_numpy().astype(np.int64)
        pred = logits[:, 0].numpy().astype(np.float64) if len(labels) else np.empty(0)
        n = int(len(labels))
        lr = (eval_set or {}).get("label_range")
        width = float(lr[1] - lr[0]) if lr else (float(np.ptp(labels)) if n else 0.0)
        err = np.abs(pred - labels)
        correct = np.clip(1.0 - err / width, 0.0, 1.0) if width > 0 else (err == 0).astype(np.float64)
        predictions = pd.DataFrame({"idx": idx, "label": labels, "pred": pred, "abs_error": err, "correct": correct})
        metrics = {}
        for name in cls.metrics(eval_set):
            value = float(cls.METRICS[name](labels[None], pred[None])[0]) if n >= 2 else math.nan
            metrics[name] = value if math.isfinite(value) else None
        return {**metrics, "n": n}, predictions
