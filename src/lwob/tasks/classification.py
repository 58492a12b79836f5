"""Sequence classification (GLUE-style): one or two text fields, an integer label.

Config: ``text_fields`` (1 or 2 columns), ``num_labels``, ``max_length``. Metric: accuracy
over labelled rows.
"""

from __future__ import annotations

from ..errors import ConfigError, DataError
from .base import TaskKind, int_lists, register


@register("classification")
class Classification(TaskKind):
    auto_model = "AutoModelForSequenceClassification"
    peft_task_type = "SEQ_CLS"
    head_names = ("classifier", "score")
    targets = ("labels",)
    outputs = ("logits",)
    per_token = False
    primary_metric = "accuracy"
    required_keys = ("text_fields", "num_labels")

    @classmethod
    def check_task(cls, name, task):
        super().check_task(name, task)
        fields = task["text_fields"]
        if not isinstance(fields, list) or not 1 <= len(fields) <= 2 or not all(isinstance(f, str) for f in fields):
            raise ConfigError(f"config key 'tasks.{name}.text_fields': expected 1 or 2 column names, got {fields!r}")
        n = task["num_labels"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 2:
            raise ConfigError(f"config key 'tasks.{name}.num_labels': expected an integer >= 2, got {n!r}")

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
        import numpy as np
        import pyarrow as pa

        texts = [df[c].astype(str).tolist() for c in task["text_fields"]]
        enc = tokenizer(*texts, truncation=True, max_length=task["max_length"], padding=False,
                        add_special_tokens=True)
        cols = {
            "row": pa.array(np.arange(len(df), dtype=np.int64)),
            "idx": pa.array(df["idx"].to_numpy(dtype=np.int64), type=pa.int64()),
            "labels": pa.array(df["label"].to_numpy(dtype=np.int64), type=pa.int64()),
            "input_ids": int_lists(enc["input_ids"]),
        }
        if "token_type_ids" in enc:
            cols["token_type_ids"] = int_lists(enc["token_type_ids"])
        return pa.table(cols), None

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
        return {"accuracy": acc, "n": n}, predictions
