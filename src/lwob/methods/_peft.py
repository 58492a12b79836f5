"""Shared glue for the methods implemented with peft (LoRA, AdaLoRA, prefix, IA3)."""

from __future__ import annotations

import warnings

from ..errors import ConfigError
from .base import head_names

#: Attention projections per model family (explicit: peft's defaults differ between them).
ATTENTION_QV = {
    "bert": ["query", "value"],
    "roberta": ["query", "value"],
    "xlm-roberta": ["query", "value"],
    "camembert": ["query", "value"],
    "electra": ["query", "value"],
    "deberta-v2": ["query_proj", "value_proj"],
    "distilbert": ["q_lin", "v_lin"],
    "opt": ["q_proj", "v_proj"],
    "llama": ["q_proj", "v_proj"],
    "gpt2": ["c_attn"],
}

#: IA3 on BERT-style encoders: key, value and the FFN output projection only. The FFN
#: output is `layer.N.output.dense`; `attention.output.dense` must not match (see FACTS).
IA3_BERT_LIKE = {
    "target": r".*\.layer\.\d+\.(attention\.self\.(key|value)|output\.dense)",
    "feedforward": r".*\.layer\.\d+\.output\.dense",
}
BERT_LIKE = {"bert", "roberta", "xlm-roberta", "camembert", "electra"}
#: IA3 on OPT decoders: key, value and the second FFN projection (fc2, scaled on its input).
IA3_OPT = {
    "target": r".*\.layers\.\d+\.(self_attn\.(k_proj|v_proj)|fc2)",
    "feedforward": r".*\.layers\.\d+\.fc2",
}


def ia3_defaults(model_type: str | None) -> dict | None:
    """Default IA3 targets of a model family, or None when there is no default."""
    if model_type in BERT_LIKE:
        return IA3_BERT_LIKE
    if model_type == "opt":
        return IA3_OPT
    return None


def default_qv(ctx) -> list[str]:
    try:
        return list(ATTENTION_QV[ctx.model_type])
    except KeyError:
        raise ConfigError(
            f"no default target_modules for model type '{ctx.model_type}': set options.target_modules"
        ) from None


def task_type(ctx):
    """peft's TaskType for the run's task kind (SEQ_CLS, QUESTION_ANS, ...)."""
    from peft import TaskType

    from .. import tasks

    return TaskType[tasks.get(ctx.task_kind).peft_task_type]


def wrap(model, config):
    """get_peft_model with its harmless FutureWarning silenced; the task head trains."""
    from peft import get_peft_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        wrapped = get_peft_model(model, config)
    # peft's task types put the head (classifier, qa_outputs) into modules_to_save; check it trains.
    heads = set(head_names())
    head = [n for n, p in wrapped.named_parameters() if p.requires_grad and heads & set(n.split("."))]
    if not head:
        raise RuntimeError(f"peft did not make the task head ({', '.join(sorted(heads))}) trainable")
    return wrapped
