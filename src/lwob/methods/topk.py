"""Top-k layers: the k transformer layers nearest the output train, plus the pooler (when
the model has one) and the task head; embeddings and lower layers are frozen. A causal LM's
task kind has no separate head: its LM head (often tied to the input embeddings) stays
frozen with the embeddings, and only the k top decoder layers train.

k larger than the number of layers is capped (noted in the training record); k < 1 is an
error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError
from .base import Method, encoder_layers, freeze_all, register, unfreeze_head


@register("topk")
class TopK(Method):
    color = "#17A2B8"
    @dataclass
    class Options:
        k: int = field(default=1, metadata={"help": "Number of top transformer layers that train."})

    @classmethod
    def check(cls, options, ctx):
        if options.k < 1:
            raise ConfigError(f"top-k layers: k must be >= 1, got {options.k}")
        if ctx.num_layers is not None and options.k > ctx.num_layers:
            ctx.notes["topk_capped"] = f"k={options.k} > {ctx.num_layers} layers: capped to {ctx.num_layers}"

    @classmethod
    def redundant(cls, options, num_layers):
        # The paper's k in {1, 3, 6, 12, 24} is capped at the model's depth: a larger k
        # would train the same layers as k = depth.
        if num_layers is not None and options.k > num_layers:
            return f"k = {options.k} exceeds the model's {num_layers} layers"
        return None

    @classmethod
    def build(cls, model, options, ctx):
        layers = encoder_layers(model)
        if ctx.num_layers is None:
            ctx.num_layers = len(layers)
        cls.check(options, ctx)
        k = min(options.k, len(layers))
        ctx.notes["topk_layers"] = list(range(len(layers) - k, len(layers)))
        freeze_all(model)
        for layer in list(layers)[len(layers) - k:]:
            for p in layer.parameters():
                p.requires_grad_(True)
        base = getattr(model, "base_model", model)
        pooler = getattr(base, "pooler", None)
        if pooler is not None:
            for p in pooler.parameters():
                p.requires_grad_(True)
        unfreeze_head(model, ctx)
        return model
