"""TaskKind: what differs between task kinds, in one place.

A kind owns four things, each with a default that the one-pass kinds (classification,
extractive QA) use as they are:

- encoding (``encode``, called by the data stage with ``check_frame``);
- loss targets (``targets``), one per row (a class, a span position) or, with
  ``target_level = "token"``, one per input token (a causal LM's ``labels``, -100 outside
  the completion; lwob.run.training pads them with IGNORE_INDEX);
- prediction (``predict``): by default one forward pass (lwob.run.training.predict); a kind
  that generates overrides it and calls lwob.run.generation.generate (batched greedy
  decoding with left padding, KV cache, stop strings and a token budget);
- scoring (``score``), plus the batch the resource probe measures (``synthetic_batch``).

The model comes from ``auto_model`` (e.g. AutoModelForCausalLM: a kind without a separate
task head, ``head_names = ()``, trains the model's own LM head or none of it, as the method
decides). torch and transformers are imported lazily: the registry is used at
config-validation time too.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..errors import ConfigError
from ..registry import Registry



class TaskKind:
    #: how a table's legend names each metric the kind reports (a name not here shows as is)
    metric_display: ClassVar[dict[str, str]] = {}
    name: ClassVar[str] = ""
    #: transformers Auto class that loads the model with this kind's head
    auto_model: ClassVar[str] = ""
    #: peft TaskType member for peft-based methods
    peft_task_type: ClassVar[str] = ""
    #: names of the task-head modules (trained by every method)
    head_names: ClassVar[tuple[str, ...]] = ()
    #: per-row columns of the tokenised parts passed to the model as loss targets
    targets: ClassVar[tuple[str, ...]] = ()
    #: model outputs kept by prediction; per_token: one value per input token (else per row)
    outputs: ClassVar[tuple[str, ...]] = ()
    per_token: ClassVar[bool] = False
    #: validation metric that picks the best epoch (higher is better)
    primary_metric: ClassVar[str] = ""
    #: task settings that scoring needs (recorded with each tokenised part that is scored)
    scoring_keys: ClassVar[tuple[str, ...]] = ()
    #: config keys a task of this kind must / may have (besides the common ones)
    required_keys: ClassVar[tuple[str, ...]] = ()
    #: "row": each target column holds one int per row; "token": one list per row, as long as
    #: its input_ids (padded with IGNORE_INDEX, which the loss skips)
    target_level: ClassVar[str] = "row"
    #: whether prediction needs the tokenizer (a generating kind decodes text): the run
    #: loads it from the model folder only then
    needs_tokenizer: ClassVar[bool] = False

    @classmethod
    def check_task(cls, name: str, task: dict) -> None:
        """Config-time checks of ``tasks.<name>`` (raise ConfigError naming the key)."""
        for key in cls.required_keys:
            if key not in task:
                raise ConfigError(f"config key 'tasks.{name}.{key}': required for a task of kind '{cls.name}'")

    @classmethod
    def positions_needed(cls, task: dict) -> int:
        """Positions one input of the task can take (checked against the model's at config
        time): ``max_length``; a generating kind adds its token budget."""
        return int(task["max_length"])

    @classmethod
    def metrics(cls, settings: dict | None) -> list[str]:
        """The task's metrics, in order: the first is what tables show, what statistics
        compare and what picks the best epoch (higher is better). ``settings``: the task's
        config entry or the scoring settings recorded with a part. Default: the kind's
        ``primary_metric``; a kind whose tasks choose (``metric:`` / ``metrics:``) overrides it."""
        return [cls.primary_metric]

    @classmethod
    def metric_names(cls, settings: dict | None) -> dict[str, str]:
        """How legends name the task's metrics (``metric_display``; a kind whose metrics
        depend on the task's settings, e.g. its scorer, overrides it)."""
        return cls.metric_display

    @classmethod
    def stratify(cls, df) -> Any:
        """Labels a validation holdout is stratified on (None: a plain random holdout)."""
        return None

    @classmethod
    def columns_needed(cls, task: dict) -> dict[str, str]:
        """Columns the task reads from its datasets' rows, each with the task's config key that
        names it (checked at config time where a dataset's columns are known before loading:
        lwob.data.sources.known_columns); {}: the kind checks its columns at load time only."""
        return {}

    @classmethod
    def check_frame(cls, df, task: dict, where: str, task_name: str) -> None:
        """Data checks of a normalised split before encoding (raise DataError)."""

    @classmethod
    def encode(cls, tokenizer, df, task: dict, *, train: bool):
        """(features: pa.Table, examples: pa.Table | None) for one split.

        features: one row per model input with ``row`` (int64, index of the example in
        the split), ``input_ids`` (list<int32>), optional ``token_type_ids`` and the kind's
        target and scoring columns. examples: what scoring needs besides the features.
        """
        raise NotImplementedError

    @classmethod
    def model_kwargs(cls, meta: dict) -> dict:
        """Extra ``from_pretrained`` arguments for the head (e.g. num_labels)."""
        return {}

    @classmethod
    def predict(cls, model, part, *, batch_size: int, device, fast=None, scoring: dict | None = None,
                tokenizer=None) -> dict:
        """What ``score`` reads, for every row of a tokenized part (lwob.run.training.Part).

        Default: one forward pass per batch, keeping the ``outputs`` (lwob.run.training.predict).
        A generating kind returns e.g. ``{"generations": lwob.run.generation.Generations}``
        from lwob.run.generation.generate, with its budget and stop strings from ``scoring``
        (the task settings recorded with the part: ``scoring_keys``). ``tokenizer`` is the
        model's, given when ``needs_tokenizer``.
        """
        from ..run.training import predict

        return predict(model, part, batch_size, device, cls.outputs, cls.per_token, fast)

    @classmethod
    def score(cls, outputs: dict, features, examples, eval_set: dict | None = None):
        """(metrics dict, per-example predictions DataFrame) from what ``predict`` returned.

        By default ``outputs`` maps each name in ``outputs`` to a float tensor (rows x
        classes, or rows x tokens for per-token outputs, padded past each row's length). The
        predictions frame has at least ``idx`` and ``correct`` (per-example score in [0, 1];
        what paired statistics resample).
        """
        raise NotImplementedError

    @classmethod
    def synthetic_batch(cls, *, batch_size: int, length: int, vocab_size: int, generator, meta: dict) -> dict:
        """A random training batch of exactly batch_size x length tokens, with this kind's
        loss targets: what the resource probe (lwob.analysis.resources.probe) measures.

        Default: uniform token ids, a full attention mask, then per target column either a
        class index in [0, meta's num_labels or 2) per row, or (token-level targets) the
        input ids themselves (a causal LM's labels: every token is a completion token).
        The draws come from ``generator`` in that order, so a probe is reproducible.
        """
        import torch

        ids = torch.randint(0, vocab_size, (batch_size, length), generator=generator)
        batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        for target in cls.targets:
            if cls.target_level == "token":
                batch[target] = ids.clone()
            else:
                batch[target] = torch.randint(0, int(meta.get("num_labels") or 2), (batch_size,), generator=generator)
        return batch


#: Target value the loss ignores (PyTorch's cross-entropy default): pads token-level targets
#: and masks the prompt of a causal LM's labels.
IGNORE_INDEX = -100


def _check_kind(cls: type) -> None:
    if cls.target_level not in ("row", "token"):
        raise TypeError(f"{cls.__name__}.target_level must be 'row' or 'token', got {cls.target_level!r}")


def task_metric(task: dict) -> str:
    """The metric a task is judged on: the first of its kind's metrics for its config entry
    (``metric:`` / ``metrics:``, else the kind's default). Tables show it, the statistics and
    the claims compare it, and it picks the best epoch."""
    return get(task.get("kind", "classification")).metrics(task)[0]


def metric_display(task: dict, metric: str) -> str:
    """How a legend names `metric` of `task` (its kind's `metric_display`, else the name)."""
    return get(task.get("kind", "classification")).metric_names(task).get(metric, metric)


#: The kinds of eval set a task has and how tables and figures name them: the original test
#: set and an adversarial one (tasks.<t>.eval_sets.<e>.kind; the tables' Origin/Adv columns).
EVAL_SET_KINDS = {"origin": "Origin", "adv": "Adv"}

REGISTRY = Registry("task kind", check=_check_kind)
register, known, get = REGISTRY.register, REGISTRY.known, REGISTRY.get


def int_lists(seqs, dtype: str = "int32"):
    """A pyarrow list<int> array from Python lists of ints (fast path through numpy)."""
    import numpy as np
    import pyarrow as pa

    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int32, count=len(seqs))
    offsets = np.zeros(len(seqs) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.fromiter((t for s in seqs for t in s), dtype=dtype, count=int(offsets[-1]))
    return pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), pa.array(flat))
