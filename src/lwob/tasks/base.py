"""TaskKind: what differs between task kinds, in one place.

The data stage calls ``check_frame`` and ``encode``; training and evaluation call
``model_class``, ``model_kwargs``, ``targets``, ``outputs`` and ``score``. torch and
transformers are imported lazily: the registry is used at config-validation time too.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..errors import ConfigError
from ..registry import Registry



class TaskKind:
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

    @classmethod
    def check_task(cls, name: str, task: dict) -> None:
        """Config-time checks of ``tasks.<name>`` (raise ConfigError naming the key)."""
        for key in cls.required_keys:
            if key not in task:
                raise ConfigError(f"config key 'tasks.{name}.{key}': required for a task of kind '{cls.name}'")

    @classmethod
    def stratify(cls, df) -> Any:
        """Labels a validation holdout is stratified on (None: a plain random holdout)."""
        return None

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
    def score(cls, outputs: dict, features, examples, eval_set: dict | None = None):
        """(metrics dict, per-example predictions DataFrame) from the model outputs.

        ``outputs`` maps each name in ``outputs`` to a float tensor (rows x classes, or rows
        x tokens for per-token outputs, padded past each row's length). The predictions
        frame has at least ``idx`` and ``correct`` (per-example score in [0, 1]; what paired
        statistics resample).
        """
        raise NotImplementedError


REGISTRY = Registry("task kind")
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
