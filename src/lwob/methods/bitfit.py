"""BitFit: only the bias terms train (every `*.bias`), plus the task head (not in peft)."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Method, freeze_all, register, unfreeze_head


@register("bitfit")
class BitFit(Method):
    @dataclass
    class Options:
        """BitFit has no options."""

    @classmethod
    def build(cls, model, options, ctx):
        freeze_all(model)
        for name, p in model.named_parameters():
            if name.endswith(".bias") or name == "bias":
                p.requires_grad_(True)
        unfreeze_head(model)
        return model
