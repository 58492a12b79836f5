"""Full fine-tuning: every parameter trains."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Method, register


@register("fft")
class FullFineTuning(Method):
    display = "FFT"
    color = "#4C72B0"
    @dataclass
    class Options:
        """FFT has no options."""

    @classmethod
    def build(cls, model, options, ctx):
        for p in model.parameters():
            p.requires_grad_(True)
        return model
