"""LoRA (peft): low-rank updates of the attention query/value projections + the head."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import _peft
from .base import Method, register


@register("lora")
class LoRA(Method):
    display = "LoRA"
    color = "#C44E52"
    @dataclass
    class Options:
        r: int = field(default=8, metadata={"help": "Rank of the update matrices."})
        alpha: float = field(default=16.0, metadata={"help": "Scaling: the update is multiplied by alpha / r."})
        dropout: float = field(default=0.1, metadata={"help": "Dropout on the LoRA input."})
        target_modules: list[str] | None = field(
            default=None, metadata={"help": "Module name suffixes to adapt; default query+value of the model family."}
        )

        def __post_init__(self):
            if self.r < 1:
                raise ValueError("r must be >= 1")

    @classmethod
    def build(cls, model, options, ctx):
        from peft import LoraConfig

        config = LoraConfig(
            task_type=_peft.task_type(ctx),
            r=options.r,
            lora_alpha=options.alpha,
            lora_dropout=options.dropout,
            target_modules=list(options.target_modules or _peft.default_qv(ctx)),
            bias="none",
        )
        return _peft.wrap(model, config, ctx)

    @classmethod
    def increments(cls, model, initial):
        """The merged low-rank update B A * alpha / r per adapted layer (+ the head)."""
        return _peft.lora_increments(model, initial)
