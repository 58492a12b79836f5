"""Extractive question answering (SQuAD v1.1 style): predict an answer span in a context.

Config (``tasks.<name>``): ``max_length`` (window length, e.g. 384), ``stride`` (overlap
between windows, default 128), ``max_answer_length`` (tokens, default 30), ``n_best``
(start/end candidates per window, default 20), ``question_field`` / ``context_field``
(default ``question`` / ``context``). An eval set may set ``original_id``: the regex
whose first group is a question's original id (adversarial grouping, default: the id up
to the first '-', as in the Jia and Liang release).

Long contexts are split into overlapping windows (question first, so decoder models see
it before the context); answers are mapped back to the context through the offsets and
the best span over all windows of an example wins. Metrics are the official SQuAD v1.1
exact match and F1 (fractions), plus the Jia and Liang adversarial (worst-case) score on
sets that hold adversarial variants (see lwob.tasks.squad.score_set).
"""

from __future__ import annotations

from ..errors import ConfigError, DataError
from .base import TaskKind, int_lists, register

DEFAULTS = {"stride": 128, "max_answer_length": 30, "n_best": 20, "question_field": "question",
            "context_field": "context"}


def settings(task: dict) -> dict:
    return {k: task.get(k, v) for k, v in DEFAULTS.items()}


@register("extractive_qa")
class ExtractiveQA(TaskKind):
    auto_model = "AutoModelForQuestionAnswering"
    peft_task_type = "QUESTION_ANS"
    head_names = ("qa_outputs",)
    targets = ("start_positions", "end_positions")
    outputs = ("start_logits", "end_logits")
    per_token = True
    primary_metric = "f1"
    scoring_keys = ("max_answer_length", "n_best")

    @classmethod
    def check_task(cls, name, task):
        super().check_task(name, task)
        s = settings(task)
        for key in ("stride", "max_answer_length", "n_best"):
            v = s[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"config key 'tasks.{name}.{key}': expected a positive integer, got {v!r}")
        if s["stride"] >= task["max_length"] // 2:
            raise ConfigError(f"config key 'tasks.{name}.stride': {s['stride']} must be less than half of "
                              f"max_length {task['max_length']} (windows must advance)")
        import re

        for es_name, es in (task.get("eval_sets") or {}).items():
            pattern = es.get("original_id")
            if pattern is not None:
                try:
                    re.compile(pattern)
                except re.error as e:
                    raise ConfigError(f"config key 'tasks.{name}.eval_sets.{es_name}.original_id': "
                                      f"not a regular expression ({e})") from None

    @classmethod
    def check_frame(cls, df, task, where, task_name):
        s = settings(task)
        need = [s["question_field"], s["context_field"], "answer_text", "answer_start", "idx"]
        missing = [c for c in need if c not in df.columns]
        if missing:
            raise DataError(f"{where}: missing column(s) {missing} (columns: {list(df.columns)}); an "
                            f"extractive QA task needs a SQuAD-format dataset (format: squad) or "
                            f"tasks.{task_name}.question_field / context_field")
        empty = df["answer_text"].map(len) == 0
        if empty.any():
            first = df.loc[empty, "id"].iloc[0] if "id" in df.columns else int(df.loc[empty, "idx"].iloc[0])
            raise DataError(f"{where}: {int(empty.sum())} question(s) without a gold answer (first: {first!r}); "
                            f"SQuAD v1.1 scoring needs at least one")

    @classmethod
    def encode(cls, tokenizer, df, task, *, train):
        import numpy as np
        import pyarrow as pa

        from . import squad

        s = settings(task)
        questions = df[s["question_field"]].astype(str).tolist()
        contexts = df[s["context_field"]].astype(str).tolist()
        try:
            feats = squad.build_features(
                tokenizer, questions, contexts, max_length=task["max_length"], stride=s["stride"],
                answer_starts=[list(map(int, a)) for a in df["answer_start"]] if train else None,
                answer_texts=[list(map(str, a)) for a in df["answer_text"]] if train else None,
            )
        except squad.QuestionTooLong as e:
            qid = df["id"].iloc[e.example] if "id" in df.columns else int(df["idx"].iloc[e.example])
            raise DataError(f"question {qid!r} has {e.tokens} tokens, but a window of max_length "
                            f"{task['max_length']} with stride {s['stride']} holds at most {e.limit}: raise "
                            f"max_length or lower stride") from None
        cols = {
            "row": pa.array(np.asarray(feats["example"], dtype=np.int64)),
            "input_ids": int_lists(feats["input_ids"]),
        }
        if "token_type_ids" in feats:
            cols["token_type_ids"] = int_lists(feats["token_type_ids"])
        if train:
            cols["start_positions"] = pa.array(np.asarray(feats["start_positions"], dtype=np.int64))
            cols["end_positions"] = pa.array(np.asarray(feats["end_positions"], dtype=np.int64))
            return pa.table(cols), None
        cols["offset_start"] = int_lists(feats["offset_start"])
        cols["offset_end"] = int_lists(feats["offset_end"])
        examples = pa.table({
            "idx": pa.array(df["idx"].to_numpy(dtype=np.int64)),
            "id": pa.array(df["id"].astype(str).tolist() if "id" in df.columns else df["idx"].astype(str).tolist()),
            "context": pa.array(contexts),
            "answer_text": pa.array([list(map(str, a)) for a in df["answer_text"]], type=pa.list_(pa.string())),
        })
        return pa.table(cols), examples

    @classmethod
    def synthetic_batch(cls, *, batch_size, length, vocab_size, generator, meta):
        """Random ids and a random answer span: start and end positions anywhere in the window."""
        import torch

        ids = torch.randint(0, vocab_size, (batch_size, length), generator=generator)
        batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        for target in cls.targets:  # start_positions, then end_positions
            batch[target] = torch.randint(0, length, (batch_size,), generator=generator)
        return batch

    @classmethod
    def score(cls, outputs, features, examples, eval_set=None):
        import numpy as np
        import pandas as pd

        from . import squad

        options = {**{k: DEFAULTS[k] for k in cls.scoring_keys}, **(eval_set or {})}
        lengths = [len(x) for x in features.column("input_ids").to_pylist()]
        starts = outputs["start_logits"].numpy()
        ends = outputs["end_logits"].numpy()
        feats = {
            "example": features.column("row").to_numpy(),
            "offset_start": features.column("offset_start").to_pylist(),
            "offset_end": features.column("offset_end").to_pylist(),
        }
        contexts = examples.column("context").to_pylist()
        best = squad.postprocess(
            feats, [starts[i, :n] for i, n in enumerate(lengths)], [ends[i, :n] for i, n in enumerate(lengths)],
            contexts, n_best=int(options["n_best"]), max_answer_length=int(options["max_answer_length"]),
        )
        ids = examples.column("id").to_pylist()
        golds = examples.column("answer_text").to_pylist()
        texts = [b["text"] for b in best]
        pattern = options.get("original_id") or squad.DEFAULT_ORIGINAL_ID
        metrics = squad.score_set(ids, texts, golds, pattern) if ids else {"em": None, "f1": None, "n": 0}
        em, f1 = squad.per_question(ids, texts, golds) if ids else ([], [])
        predictions = pd.DataFrame({
            "idx": examples.column("idx").to_numpy().astype(np.int64), "id": ids, "prediction": texts,
            "original_id": squad.original_ids(ids, pattern) if ids else [],
            "em": np.asarray(em, dtype=np.float64), "f1": np.asarray(f1, dtype=np.float64),
            "correct": np.asarray(em, dtype=np.float64),
        })
        return metrics, predictions
