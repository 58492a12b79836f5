"""IA3 (peft): learned rescaling of key, value and the FFN output input + the head.

Targets are explicit (see FACTS): on BERT-like encoders `attention.self.key`,
`attention.self.value` and the FFN output `layer.N.output.dense` (not the attention output
`attention.output.dense`, which shares the suffix); feedforward_modules is the FFN one.
On OPT decoders: `self_attn.k_proj`, `self_attn.v_proj` and `fc2` (feed-forward).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError
from . import _peft
from .base import Method, register


@register("ia3")
class IA3(Method):
    display = "IA3"
    color = "#55A868"
    @dataclass
    class Options:
        target_modules: list[str] | str | None = field(
            default=None, metadata={"help": "Modules to rescale (names or one regex); default key, value, FFN output."}
        )
        feedforward_modules: list[str] | str | None = field(
            default=None, metadata={"help": "Which targets are feed-forward (scaled on the input); default FFN output."}
        )

    @classmethod
    def build(cls, model, options, ctx):
        from peft import IA3Config

        if options.target_modules is None:
            defaults = _peft.ia3_defaults(ctx.model_type)
            if defaults is None:
                raise ConfigError(f"no default IA3 targets for model type '{ctx.model_type}': set options.target_modules")
            target, ff = defaults["target"], defaults["feedforward"]
        else:
            target, ff = options.target_modules, options.feedforward_modules
            if ff is None:
                raise ConfigError("IA3: set options.feedforward_modules together with options.target_modules")
        config = IA3Config(task_type=_peft.task_type(ctx), target_modules=target, feedforward_modules=ff)
        wrapped = _peft.wrap(model, config, ctx)
        n_ia3 = sum(1 for n, _ in wrapped.named_parameters() if "ia3_l" in n)
        if n_ia3 == 0:
            raise ConfigError("IA3 target_modules matched no module")
        return wrapped

    @classmethod
    def increments(cls, model, initial):
        """The learned scaling vectors minus one (`<layer>.ia3_l`; no rescaling = 1) + the head."""
        from .base import trained_minus_initial

        out = {n: (p.detach() - 1.0).cpu() for n, p in model.named_parameters() if p.requires_grad and ".ia3_l" in n}
        out.update(trained_minus_initial(model, initial, skip=lambda n: ".ia3_l" in n))
        return out
