"""Sequence classification (GLUE-style): one or two text fields, an integer label.

Config: ``text_fields`` (1 or 2 columns), ``num_labels``, ``max_length``, and optionally the
task's metrics: ``metric: matthews`` or ``metrics: [f1, accuracy]`` (default accuracy), the
first of them shown in tables, compared by the statistics and picking the best epoch. Known:
``accuracy``, ``f1`` (F1 of label 1, binary tasks as MRPC and QQP) and ``matthews``
(Matthews correlation, CoLA; multi-class by the Gorodkin formula). All are corpus metrics
over the labelled rows, computed by the functions in ``METRICS`` (vectorised over resamples,
so that the statistics' bootstrap recomputes exactly the same metric).
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError, DataError
from .base import TaskKind, int_lists, register


def _accuracy(labels: np.ndarray, preds: np.ndarray) -> np.ndarray:
    return (labels == preds).mean(axis=-1)


def _f1(labels: np.ndarray, preds: np.ndarray) -> np.ndarray:
    """F1 of label 1 (0 where there is no positive label or prediction), per row."""
    tp = ((labels == 1) & (preds == 1)).sum(axis=-1)
    denom = (labels == 1).sum(axis=-1) + (preds == 1).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2.0 * tp / np.maximum(denom, 1), 0.0)


def _matthews(labels: np.ndarray, preds: np.ndarray) -> np.ndarray:
    """Matthews correlation per row (Gorodkin's multi-class form; 0 when undefined, as sklearn)."""
    labels, preds = np.asarray(labels), np.asarray(preds)
    n = labels.shape[-1]
    classes = int(max(labels.max(initial=0), preds.max(initial=0))) + 1
    t = np.stack([(labels == k).sum(axis=-1) for k in range(classes)], axis=-1).astype(np.float64)
    p = np.stack([(preds == k).sum(axis=-1) for k in range(classes)], axis=-1).astype(np.float64)
    c = (labels == preds).sum(axis=-1).astype(np.float64)
    cov = c * n - (t * p).sum(axis=-1)
    denom = np.sqrt((n * n - (p * p).sum(axis=-1)) * (n * n - (t * t).sum(axis=-1)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, cov / np.where(denom > 0, denom, 1.0), 0.0)


def encode_text_rows(tokenizer, df, task: dict, label_type: str):
    """One row per example: its text fields (one, or a pair) tokenised with the model's
    special tokens, and its `label` as `label_type` (int64 classes, float32 scores)."""
    import numpy as np
    import pyarrow as pa

    texts = [df[c].astype(str).tolist() for c in task["text_fields"]]
    enc = tokenizer(*texts, truncation=True, max_length=task["max_length"], padding=False,
                    add_special_tokens=True)
    cols = {
        "row": pa.array(np.arange(len(df), dtype=np.int64)),
        "idx": pa.array(df["idx"].to_numpy(dtype=np.int64), type=pa.int64()),
        "labels": pa.array(df["label"].to_numpy(dtype=label_type), type=getattr(pa, label_type)()),
        "input_ids": int_lists(enc["input_ids"]),
    }
    if "token_type_ids" in enc:
        cols["token_type_ids"] = int_lists(enc["token_type_ids"])
    return pa.table(cols)


def configured_metrics(name: str, task: dict, known: dict, default: list[str], kind: str) -> list[str]:
    """A task's ``metric`` / ``metrics`` checked against ``known`` (ConfigError naming the key)."""
    if "metric" in task and "metrics" in task:
        raise ConfigError(f"config key 'tasks.{name}.metric': give either 'metric' or 'metrics', not both")
    if "metric" in task:
        key, value = "metric", [task["metric"]]
    elif "metrics" in task:
        key, value = "metrics", task["metrics"]
        if not isinstance(value, list) or not value:
            raise ConfigError(f"config key 'tasks.{name}.metrics': expected a non-empty list of metric names, "
                              f"got {value!r} (known: {', '.join(known)})")
    else:
        return list(default)
    for m in value:
        if not isinstance(m, str) or m not in known:
            raise ConfigError(f"config key 'tasks.{name}.{key}': unknown metric {m!r} for a task of kind "
                              f"'{kind}' (known: {', '.join(known)})")
    if len(set(value)) != len(value):
        raise ConfigError(f"config key 'tasks.{name}.{key}': a metric is listed twice in {value!r}")
    return list(value)


@register("classification")
class Classification(TaskKind):
    auto_model = "AutoModelForSequenceClassification"
    peft_task_type = "SEQ_CLS"
    head_names = ("classifier", "score")
    targets = ("labels",)
    outputs = ("logits",)
    per_token = False
    primary_metric = "accuracy"
    #: metric name -> f(labels, predictions) over the last axis (rows: resamples)
    METRICS = {"accuracy": _accuracy, "f1": _f1, "matthews": _matthews}
    metric_display = {"accuracy": "accuracy", "f1": "F1", "matthews": "Matthews correlation"}
    scoring_keys = ("metric", "metrics")
    required_keys = ("text_fields", "num_labels")

    @classmethod
    def metrics(cls, settings):
        settings = settings or {}
        if "metric" in settings:
            return [settings["metric"]]
        return list(settings.get("metrics") or [cls.primary_metric])

    @classmethod
    def check_task(cls, name, task):
        super().check_task(name, task)
        fields = task["text_fields"]
        if not isinstance(fields, list) or not 1 <= len(fields) <= 2 or not all(isinstance(f, str) for f in fields):
            raise ConfigError(f"config key 'tasks.{name}.text_fields': expected 1 or 2 column names, got {fields!r}")
        n = task["num_labels"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 2:
            raise ConfigError(f"config key 'tasks.{name}.num_labels': expected an integer >= 2, got {n!r}")
        metrics = configured_metrics(name, task, cls.METRICS, [cls.primary_metric], cls.name)
        if "f1" in metrics and n != 2:
            raise ConfigError(f"config key 'tasks.{name}.{'metric' if 'metric' in task else 'metrics'}': f1 is the F1 "
                              f"of label 1 and needs num_labels 2 (got {n})")

    @classmethod
    def stratify(cls, df):
        return df["label"].to_numpy()

    @classmethod
    def check_frame(cls, df, task, where, task_name):
        text_fields, num_labels = task["text_fields"], task["num_labels"]
        missing = [c for c in [*text_fields, "label", "idx"] if c not in df.columns]
        if missing:
            raise DataError(f"{where}: missing column(s) {missing} (columns: {list(df.columns)}); "
                            f"check tasks.{task_name}.text_fields or the dataset's 'columns' map")
        labels = df["label"].to_numpy()
        if labels.dtype.kind == "f":
            raise DataError(f"{where}: labels are not integers (e.g. {labels[0]!r}): a classification task needs "
                            f"class indices; a score to predict needs a task of kind 'regression'")
        if (labels == -1).any():
            raise DataError(f"{where}: {int((labels == -1).sum())} unlabelled row(s) (label -1) cannot be "
                            f"used for training or scored; use a labelled split")
        bad = (labels < 0) | (labels >= num_labels)
        if bad.any():
            raise DataError(f"{where}: labels outside 0..{num_labels - 1} "
                            f"(tasks.{task_name}.num_labels = {num_labels}): {sorted(set(labels[bad].tolist()))[:10]}")
        for c in text_fields:
            if df[c].isna().any():
                raise DataError(f"{where}: {int(df[c].isna().sum())} missing value(s) in text column {c!r}")

    @classmethod
    def encode(cls, tokenizer, df, task, *, train):
        return encode_text_rows(tokenizer, df, task, "int64"), None

    @classmethod
    def model_kwargs(cls, meta):
        return {"num_labels": int(meta["num_labels"]), "problem_type": "single_label_classification"}

    @classmethod
    def score(cls, outputs, features, examples, eval_set=None):
        import numpy as np
        import pandas as pd
        import torch

        logits = outputs["logits"]
        labels = torch.from_numpy(np.array(features.column("labels").to_numpy(), dtype=np.int64))  # a writable copy
        idx = features.column("idx").to_numpy()
        labelled = labels >= 0
        n = int(labelled.sum())
        if len(labels):
            prob, pred = torch.softmax(logits, dim=-1).max(dim=-1)
        else:
            prob, pred = torch.empty(0), torch.empty(0, dtype=torch.int64)
        correct = (pred == labels).numpy().astype(np.float64)
        acc = float(correct[labelled.numpy()].mean()) if n else None
        predictions = pd.DataFrame({"idx": idx.astype(np.int64), "label": labels.numpy().astype(np.int64),
                                    "pred": pred.numpy().astype(np.int64), "prob": prob.numpy().astype(np.float64),
                                    "correct": correct})
        metrics = {}
        for name in cls.metrics(eval_set):
            if name == "accuracy":
                metrics[name] = acc
            elif n:
                keep = labelled.numpy()
                metrics[name] = float(cls.METRICS[name](labels.numpy()[keep][None], pred.numpy()[keep][None])[0])
            else:
                metrics[name] = None
        return {**metrics, "n": n}, predictions
