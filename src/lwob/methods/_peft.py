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
    "mistral": ["q_proj", "v_proj"],
    "qwen2": ["q_proj", "v_proj"],
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


#: IA3 on Llama-style decoders: key, value and the FFN down projection (scaled on its
#: input), as the IA3 paper and peft's own defaults for llama do.
IA3_LLAMA = {
    "target": r".*\.layers\.\d+\.(self_attn\.(k_proj|v_proj)|mlp\.down_proj)",
    "feedforward": r".*\.layers\.\d+\.mlp\.down_proj",
}
LLAMA_LIKE = {"llama", "mistral", "qwen2"}


def ia3_defaults(model_type: str | None) -> dict | None:
    """Default IA3 targets of a model family, or None when there is no default."""
    if model_type in BERT_LIKE:
        return IA3_BERT_LIKE
    if model_type == "opt":
        return IA3_OPT
    if model_type in LLAMA_LIKE:
        return IA3_LLAMA
    return None


def default_qv(ctx) -> list[str]:
    try:
        return list(ATTENTION_QV[ctx.model_type])
    except KeyError:
        raise ConfigError(
            f"no default target_modules for model type '{ctx.model_type}': set options.target_modules"
        ) from None


def task_type(ctx):
    """peft's TaskType for the run's task kind (SEQ_CLS, QUESTION_ANS, CAUSAL_LM, ...)."""
    from peft import TaskType

    from .. import tasks

    return TaskType[tasks.get(ctx.task_kind).peft_task_type]


def wrap(model, config, ctx=None):
    """get_peft_model with its harmless FutureWarning silenced; the task head trains (when the
    run's task kind has one: a causal LM's CAUSAL_LM task type trains the adapter only)."""
    from peft import get_peft_model

    from ..models import TARGET_OPTIONS, check_target_modules

    # peft adapts the target entries that match and silently drops the others: check each
    # (config validation does the same once the model's record exists).
    names = [n for n, _ in model.named_modules() if n]
    for option in TARGET_OPTIONS:
        targets = getattr(config, option, None)
        check_target_modules(sorted(targets) if isinstance(targets, (set, list)) else targets, names,
                             f"options.{option}", type(model).__name__)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        wrapped = get_peft_model(model, config)
    from .base import has_task_head

    if ctx is not None and not has_task_head(ctx):
        return wrapped
    # peft's task types put the head (classifier, qa_outputs) into modules_to_save; check it trains.
    heads = set(head_names())
    head = [n for n, p in wrapped.named_parameters() if p.requires_grad and heads & set(n.split("."))]
    if not head:
        raise RuntimeError(f"peft did not make the task head ({', '.join(sorted(heads))}) trainable")
    return wrapped


def lora_increments(model, initial: dict) -> dict:
    """LoRA/AdaLoRA increments: per adapted layer the merged update peft itself would add
    on merge (`get_delta_weight`: B A * scaling; AdaLoRA B (A * E) * scaling / (ranknum + eps)),
    named `<layer>.weight`; the other trained tensors (the head) as trained minus initial."""
    import torch

    from .base import trained_minus_initial

    out = {}
    with torch.no_grad():
        for name, module in model.named_modules():
            lora_a = getattr(module, "lora_A", None)
            adapted = isinstance(lora_a, (torch.nn.ModuleDict, torch.nn.ParameterDict))
            if adapted and hasattr(module, "get_delta_weight"):
                for adapter in lora_a.keys():
                    out[f"{name}.weight"] = module.get_delta_weight(adapter).detach().cpu()
    out.update(trained_minus_initial(model, initial, skip=lambda n: ".lora_" in n))
    return out
