"""Vanilla: the base model as it is, evaluated with the task's prompt and never trained (the
paper's Table 1 "Vanilla" rows). It has no train job: evaluation builds the model from the
base weights (lwob.run.evaluation) and records 0 trainable parameters."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Method, freeze_all, register


@register("vanilla")
class Vanilla(Method):
    display = "Vanilla"
    color = "#8C8C8C"
    trains = False

    @dataclass
    class Options:
        """Vanilla has no options."""

    @classmethod
    def build(cls, model, options, ctx):
        freeze_all(model)
        return model
