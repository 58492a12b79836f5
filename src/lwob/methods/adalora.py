"""AdaLoRA (peft): SVD-shaped LoRA whose rank budget is reallocated during training.

peft needs the number of optimizer steps (`total_step`, from ctx.total_steps) and a
budgeting phase: tinit < total_step - tfinal. When a run is too short for the configured
tinit/tfinal (tinit + tfinal >= total_step / 2), both are scaled down proportionally so
that together they take half of the run (the effective values go to the training record's
method_notes). The training loop calls `after_step` (update_and_allocate) every step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError
from . import _peft
from .base import Method, register


def effective_schedule(tinit: int, tfinal: int, total_step: int) -> tuple[int, int]:
    """(tinit, tfinal) that leave a budgeting phase of at least half of the run."""
    if tinit + tfinal < total_step / 2:
        return tinit, tfinal
    scale = (total_step / 2) / (tinit + tfinal)
    return int(tinit * scale), int(tfinal * scale)


@register("adalora")
class AdaLoRA(Method):
    display = "AdaLoRA"
    color = "#DD8452"
    # Its orthogonality regulariser and rank allocator read whole lora_A/lora_B matrices
    # outside their forward, where FSDP holds only shards (DDP works).
    shardable = False

    @dataclass
    class Options:
        init_r: int = field(default=12, metadata={"help": "Initial rank of every adapted matrix."})
        target_r: int = field(default=8, metadata={"help": "Average target rank after budget allocation."})
        alpha: float = field(default=32.0, metadata={"help": "Scaling numerator (lora_alpha)."})
        dropout: float = field(default=0.1, metadata={"help": "Dropout on the adapter input."})
        tinit: int = field(default=200, metadata={"help": "Initial steps without pruning (scaled down for short runs)."})
        tfinal: int = field(default=1000, metadata={"help": "Final steps at the target budget (scaled down for short runs)."})
        deltaT: int = field(default=10, metadata={"help": "Steps between two budget allocations."})
        beta1: float = field(default=0.85, metadata={"help": "EMA factor of the importance sensitivity."})
        beta2: float = field(default=0.85, metadata={"help": "EMA factor of the importance uncertainty."})
        orth_reg_weight: float = field(default=0.5, metadata={"help": "Weight of the orthogonality regulariser."})
        target_modules: list[str] | None = field(
            default=None, metadata={"help": "Module name suffixes to adapt; default query+value of the model family."}
        )

        def __post_init__(self):
            if not 1 <= self.target_r <= self.init_r:
                raise ValueError("need 1 <= target_r <= init_r")
            if self.tinit < 0 or self.tfinal < 0 or self.deltaT < 1:
                raise ValueError("need tinit >= 0, tfinal >= 0, deltaT >= 1")

    @classmethod
    def build(cls, model, options, ctx):
        from peft import AdaLoraConfig

        total = ctx.total_steps
        if not total or total < 2:
            raise ConfigError(f"AdaLoRA needs the number of training steps (>= 2), got {total}")
        tinit, tfinal = effective_schedule(options.tinit, options.tfinal, total)
        if (tinit, tfinal) != (options.tinit, options.tfinal):
            ctx.notes["adalora_schedule"] = (
                f"run of {total} steps too short for tinit={options.tinit}, tfinal={options.tfinal}: "
                f"scaled to tinit={tinit}, tfinal={tfinal}"
            )
        ctx.notes["adalora_effective"] = {"total_step": total, "tinit": tinit, "tfinal": tfinal}
        config = AdaLoraConfig(
            task_type=_peft.task_type(ctx),
            init_r=options.init_r,
            target_r=options.target_r,
            lora_alpha=options.alpha,
            lora_dropout=options.dropout,
            tinit=tinit,
            tfinal=tfinal,
            deltaT=options.deltaT,
            beta1=options.beta1,
            beta2=options.beta2,
            orth_reg_weight=options.orth_reg_weight,
            total_step=total,
            target_modules=list(options.target_modules or _peft.default_qv(ctx)),
        )
        return _peft.wrap(model, config, ctx)

    @classmethod
    def increments(cls, model, initial):
        """The merged update B (A * E) * alpha / (ranknum + eps) per adapted layer (+ the head)."""
        return _peft.lora_increments(model, initial)

    @classmethod
    def after_step(cls, model, global_step: int) -> None:
        model.base_model.update_and_allocate(global_step)

    @classmethod
    def extra_state(cls, model) -> dict:
        """The budget allocator's importance scores and the rank pattern (checkpoints)."""
        import copy

        alloc = model.base_model.rankallocator
        config = model.base_model.peft_config[model.base_model.trainable_adapter_name]
        return copy.deepcopy({"ipt": alloc.ipt, "exp_avg_ipt": alloc.exp_avg_ipt,
                              "exp_avg_unc": alloc.exp_avg_unc, "rank_pattern": config.rank_pattern})

    @classmethod
    def load_extra_state(cls, model, state: dict) -> None:
        alloc = model.base_model.rankallocator
        alloc.ipt, alloc.exp_avg_ipt, alloc.exp_avg_unc = state["ipt"], state["exp_avg_ipt"], state["exp_avg_unc"]
        model.base_model.peft_config[model.base_model.trainable_adapter_name].rank_pattern = state["rank_pattern"]
