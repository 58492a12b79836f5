"""Shared glue for the methods implemented with peft (LoRA, AdaLoRA, prefix, IA3)."""

from __future__ import annotations

import warnings

from ..errors import ConfigError

#: Attention projections per model family (explicit: peft's defaults differ between them).
ATTENTION_QV = {
    "bert": ["query", "value"],
    "roberta": ["query", "value"],
    "xlm-roberta": ["query", "value"],
    "camembert": ["query", "value"],
    "electra": ["query", "value"],
    "deberta-v2": ["query_proj", "value_proj"],
    "distilbert": ["q_lin", "v_lin"],
}

#: IA3 on BERT-style encoders: key, value and the FFN output projection only. The FFN
#: output is `layer.N.output.dense`; `attention.output.dense` must not match (see FACTS).
IA3_BERT_LIKE = {
    "target": r".*\.layer\.\d+\.(attention\.self\.(key|value)|output\.dense)",
    "feedforward": r".*\.layer\.\d+\.output\.dense",
}
BERT_LIKE = {"bert", "roberta", "xlm-roberta", "camembert", "electra"}


def default_qv(ctx) -> list[str]:
    try:
        return list(ATTENTION_QV[ctx.model_type])
    except KeyError:
        raise ConfigError(
            f"no default target_modules for model type '{ctx.model_type}': set options.target_modules"
        ) from None


def task_type(ctx):
    from peft import TaskType

    if ctx.task_kind != "classification":
        raise ConfigError(f"task kind '{ctx.task_kind}' is not supported (classification only)")
    return TaskType.SEQ_CLS


def wrap(model, config):
    """get_peft_model with its harmless FutureWarning silenced; the head trains (SEQ_CLS)."""
    from peft import get_peft_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        wrapped = get_peft_model(model, config)
    # peft's SEQ_CLS task type puts the classifier into modules_to_save; check it trains.
    head = [n for n, p in wrapped.named_parameters() if p.requires_grad and (".classifier." in n or ".score." in n)]
    if not head:
        raise RuntimeError("peft did not make the classification head trainable")
    return wrapped
