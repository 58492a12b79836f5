"""Prefix tuning (peft): trainable key/value prefixes in every layer + the head.

The prefix shifts position ids by num_virtual_tokens, so inputs must fit in
max_positions - num_virtual_tokens (usable positions; RoBERTa already minus 2).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError
from . import _peft
from .base import Method, register


@register("prefix")
class PrefixTuning(Method):
    display = "Prefix"
    color = "#8172B2"
    @dataclass
    class Options:
        num_virtual_tokens: int = field(default=20, metadata={"help": "Prefix length per layer."})
        prefix_projection: bool = field(default=False, metadata={"help": "Reparametrise the prefix through an MLP."})
        encoder_hidden_size: int | None = field(
            default=None, metadata={"help": "Hidden size of the projection MLP (default: model hidden size)."}
        )

        def __post_init__(self):
            if self.num_virtual_tokens < 1:
                raise ValueError("num_virtual_tokens must be >= 1")

    @classmethod
    def check(cls, options, ctx):
        if ctx.max_length is None or ctx.max_positions is None:
            return
        need = ctx.max_length + options.num_virtual_tokens
        if need > ctx.max_positions:
            raise ConfigError(
                f"prefix tuning does not fit the model's positions: max_length {ctx.max_length} + "
                f"num_virtual_tokens {options.num_virtual_tokens} = {need} > {ctx.max_positions} usable positions "
                f"(lower max_length to {ctx.max_positions - options.num_virtual_tokens} or fewer virtual tokens)"
            )

    @classmethod
    def build(cls, model, options, ctx):
        from peft import PrefixTuningConfig

        cls.check(options, ctx)
        kwargs = {}
        if options.prefix_projection and options.encoder_hidden_size:
            kwargs["encoder_hidden_size"] = options.encoder_hidden_size
        config = PrefixTuningConfig(
            task_type=_peft.task_type(ctx),
            num_virtual_tokens=options.num_virtual_tokens,
            prefix_projection=options.prefix_projection,
            **kwargs,
        )
        return _peft.wrap(model, config, ctx)

    @classmethod
    def increments(cls, model, initial):
        """The learned prefixes (there is no base value): per layer i, the key and value
        prefixes the layer attends to, `<layers>.<i>.prefix.key|value` of shape
        (num_virtual_tokens, hidden) (after the projection MLP when prefix_projection);
        plus the head as trained minus initial."""
        import torch

        from .base import encoder_layers, trained_minus_initial

        config = model.active_peft_config
        encoder = model.prompt_encoder[model.active_adapter]
        tokens = model.prompt_tokens[model.active_adapter][: config.num_virtual_tokens]
        was_training = encoder.training
        encoder.eval()
        with torch.no_grad():
            kv = encoder(tokens.unsqueeze(0).to(encoder.embedding.weight.device))[0].detach().cpu()
        encoder.train(was_training)
        n, L = config.num_virtual_tokens, config.num_layers
        kv = kv.view(n, L * 2, config.token_dim)
        base = model.get_base_model()
        layers = encoder_layers(base)
        prefix = next(name for name, m in base.named_modules() if m is layers)
        out = {}
        for i in range(L):
            out[f"{prefix}.{i}.prefix.key"] = kv[:, 2 * i].clone()
            out[f"{prefix}.{i}.prefix.value"] = kv[:, 2 * i + 1].clone()
        out.update(trained_minus_initial(model, initial, skip=lambda n: "prompt_encoder" in n))
        return out
