"""BitFit: only the bias terms train (every `*.bias`), plus the task head (not in peft).

A model without bias terms (Llama-style decoders: `attention_bias` and `mlp_bias` false)
would train nothing: a config error, not an empty run."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from .base import Method, freeze_all, register, unfreeze_head


@register("bitfit")
class BitFit(Method):
    display = "BitFit"
    color = "#937860"
    @dataclass
    class Options:
        """BitFit has no options."""

    @classmethod
    def check(cls, options, ctx):
        if ctx.bias_terms is False:
            raise ConfigError(f"bitfit: model type '{ctx.model_type}' has no bias terms (its config.json turns "
                              f"them off), so BitFit would train nothing")

    @classmethod
    def build(cls, model, options, ctx):
        freeze_all(model)
        biases = 0
        for name, p in model.named_parameters():
            if name.endswith(".bias") or name == "bias":
                p.requires_grad_(True)
                biases += 1
        if not biases:
            raise ConfigError(f"bitfit: {type(model).__name__} has no bias terms, so BitFit would train nothing")
        unfreeze_head(model, ctx)
        return model
