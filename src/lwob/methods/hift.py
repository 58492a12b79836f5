"""HiFT: hierarchical full-parameter fine-tuning (Liu et al. 2024, "HiFT: A Hierarchical Full
Parameter Fine-Tuning Strategy", arXiv:2401.15207; reference code github.com/misonsky/HiFT).

Every parameter trains (the run's weights and counts are FFT's), but each optimizer step
updates one group of layers only:

- Layers: the model's parameters in order, as units: the embeddings (whatever of the base
  model comes before its first transformer layer), each transformer layer, and the head
  (everything after the last layer or outside the base model: BERT's pooler + classifier,
  RoBERTa's classifier, a causal LM's final norm + lm_head, a Llama classifier's norm +
  score). A model of L layers has L + 2 units.
- Groups: m = `group_size` consecutive units; ceil((L + 2) / m) groups, the last one
  possibly smaller. (The reference rotates a list by m units per step and counts
  (L + 2) // m steps per cycle, so when m does not divide L + 2 its groups drift from cycle
  to cycle; here the groups are fixed and a cycle visits each exactly once.)
- Tied weights (an lm_head tied to the input embeddings, as SmolLM2's or GPT-2's): the tensor
  is one parameter and belongs to one group only, the embeddings', where named_parameters()
  yields it (as in the reference, which groups by named_parameters). It trains once per cycle,
  on the gradient of both its uses; the head group then holds the final norm alone. Were it
  in two groups it would take two Adam steps per cycle on one state.
- Order per cycle (`order`): bottom2up (embeddings first, the reference's "down2up"),
  top2down (head first, "up2down") or random: a permutation per cycle from a generator
  seeded with the run's seed (`reshuffle: false`: one permutation drawn for the first cycle
  and kept, as the reference's random strategy does). The position in the cycle is the global
  step modulo the number of groups, so cycles run across epoch boundaries; checkpoints
  save the cycle's order and the generator (`extra_state`), so a resumed run continues the
  same order.
- Per step (`before_step`): the active group's parameters require grad and the others do not,
  so backward neither computes nor stores their gradients and stops below the lowest active
  layer; AdamW skips parameters without a gradient (no update, no weight decay, no state
  change) and gradient clipping sees the active group's gradients only. After the step
  (`after_step`) every parameter requires grad again, so checkpoints, the best epoch's weights
  and the saved file hold the whole model.
- Learning rate: the schedule advances once per full cycle (the reference steps its scheduler
  when the cycle is complete): every step of cycle c uses the schedule's value at c, over a
  schedule of ceil(total_steps / groups) cycles whose warmup is warmup_ratio of that. (The
  reference keeps max_steps as the schedule's length, so its linear decay only gets through
  1 / groups of the way; here the schedule spans the run.)
- Optimizer state (`offload`): on an accelerator, the Adam moments of the inactive groups
  live on the CPU and the active group's are moved to the device before its step (one group in
  and one out per step); a no-op when the model is on the CPU. Adam's scalar step counts stay
  where they are. After a resume torch loads the whole optimizer state onto the device; the
  first step moves the inactive groups' off again.

One process only (`multi_process = False`): DDP expects the same parameters to take gradients
every step, and FSDP shards what a group spans (`shardable = False`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import ConfigError
from .base import Method, count_parameters, encoder_layers, register

ORDERS = ("bottom2up", "top2down", "random")
#: Attribute of the built model that holds its HiFT state (groups, cycle, order, generator).
STATE_ATTR = "_lwob_hift"


def layer_units(model) -> list[tuple[str, list[tuple[str, object]]]]:
    """The model's layers as HiFT counts them, bottom to top: [(label, [(name, parameter)])]
    with labels "embeddings", "layer 0" .. "layer L-1", "head"; a tied tensor once, under the
    name named_parameters() gives it first (the embeddings'). Empty units are left out."""
    layers = encoder_layers(model)
    layer_of = {id(p): i for i, layer in enumerate(layers) for p in layer.parameters()}
    base = getattr(model, "base_model", model)
    in_base = {id(p) for p in base.parameters()}
    embeddings: list = []
    body: list[list] = [[] for _ in layers]
    head: list = []
    seen_layer = False
    for name, p in model.named_parameters():
        i = layer_of.get(id(p))
        if i is not None:
            body[i].append((name, p))
            seen_layer = True
        elif id(p) in in_base and not seen_layer:
            embeddings.append((name, p))
        else:
            head.append((name, p))
    units = [("embeddings", embeddings), *((f"layer {i}", u) for i, u in enumerate(body)), ("head", head)]
    return [(label, params) for label, params in units if params]


def _modules(params: list[tuple[str, object]]) -> list[str]:
    return list(dict.fromkeys(name.rsplit(".", 1)[0] for name, _ in params))


class HiftState:
    """A built model's HiFT state: its groups and where training stands in its cycle."""

    def __init__(self, groups: list[list], labels: list[list[str]], order: str, reshuffle: bool, offload: bool,
                 seed: int):
        import torch

        self.groups = groups  # per group, its parameters
        self.labels = labels  # per group, its units' labels
        self.order_kind, self.reshuffle, self.offload = order, reshuffle, offload
        self.generator = torch.Generator().manual_seed(int(seed))
        self.cycle = -1  # the cycle `order` belongs to (-1: none drawn yet)
        self.order: list[int] = []  # group indices in the order cycle `cycle` updates them
        self.active: int | None = None  # the group of the step under way (None between steps)
        #: groups whose optimizer state may be on the accelerator (None: unknown, e.g. after a
        #: resume loaded the whole state onto it)
        self.resident: set[int] | None = None

    @property
    def steps_per_cycle(self) -> int:
        return len(self.groups)

    def order_of(self, cycle: int) -> list[int]:
        """The group order of `cycle` (cycles are asked for in increasing order)."""
        import torch

        k = len(self.groups)
        while self.cycle < cycle:
            self.cycle += 1
            if self.order_kind == "bottom2up":
                self.order = list(range(k))
            elif self.order_kind == "top2down":
                self.order = list(range(k - 1, -1, -1))
            elif self.reshuffle or not self.order:
                self.order = torch.randperm(k, generator=self.generator).tolist()
        return self.order

    def group_of_step(self, step: int) -> int:
        cycle, position = divmod(step, len(self.groups))
        return self.order_of(cycle)[position]


def move_optimizer_state(optimizer, params, device=None) -> int:
    """Move the optimizer's state tensors of `params` to `device` (None: each parameter's own
    device); scalars (Adam's step count) stay where they are. Returns the bytes moved."""
    import torch

    moved = 0
    for p in params:
        state = optimizer.state.get(p)
        if not state:
            continue
        target = p.device if device is None else torch.device(device)
        for key, value in state.items():
            if torch.is_tensor(value) and value.dim() > 0 and value.device != target:
                state[key] = value.to(target)
                moved += value.numel() * value.element_size()
    return moved


def hift_state(model) -> HiftState:
    state = model.__dict__.get(STATE_ATTR)
    if state is None:
        raise RuntimeError(f"{type(model).__name__} was not built by the HiFT method (no {STATE_ATTR})")
    return state


@register("hift")
class HiFT(Method):
    display = "HiFT"
    color = "#DA8BC3"
    shardable = False
    multi_process = False

    @dataclass
    class Options:
        group_size: int = field(default=1, metadata={
            "help": "m: consecutive layers updated per step (the embeddings and the head count as layers)."})
        order: str = field(default="bottom2up", metadata={
            "choices": ORDERS, "help": "Group order per cycle: bottom2up, top2down or random."})
        reshuffle: bool = field(default=True, metadata={
            "help": "random order: a new permutation every cycle (false: one, drawn once, as the reference does)."})
        offload: bool = field(default=True, metadata={
            "help": "On an accelerator, keep the optimizer state of the inactive groups on the CPU."})

    @classmethod
    def check(cls, options, ctx):
        m = options.group_size
        if m < 1 or (ctx.num_layers is not None and m > ctx.num_layers + 2):
            most = f"{ctx.num_layers + 2} (the model's {ctx.num_layers} layers, its embeddings and its head)" \
                if ctx.num_layers is not None else "the number of layers + 2"
            raise ConfigError(f"HiFT: options.group_size must be from 1 to {most}, got {m}")

    @classmethod
    def build(cls, model, options, ctx):
        import torch

        cls.check(options, ctx)
        for p in model.parameters():
            p.requires_grad_(True)
        units = layer_units(model)
        m = options.group_size
        if m > len(units):
            raise ConfigError(f"HiFT: options.group_size {m} exceeds the model's {len(units)} layers "
                              "(its embeddings and its head included)")
        chunks = [units[i:i + m] for i in range(0, len(units), m)]
        groups = [[p for _, params in chunk for _, p in params] for chunk in chunks]
        labels = [[label for label, _ in chunk] for chunk in chunks]
        # torch.initial_seed(): the run's seed, which build_run_model set just before build
        state = HiftState(groups, labels, options.order, options.reshuffle, options.offload, torch.initial_seed())
        model.__dict__[STATE_ATTR] = state  # a plain attribute: not a submodule, not in the state dict
        ctx.notes["hift_groups"] = labels
        ctx.notes["hift_embeddings"] = _modules(units[0][1])
        ctx.notes["hift_head"] = _modules(units[-1][1])
        unit_of = {id(p): label for label, params in units for _, p in params}
        first: dict[int, str] = {}
        for name, p in model.named_parameters(remove_duplicate=False):
            if id(p) in first and name != first[id(p)]:  # tied: one tensor, one group
                ctx.notes.setdefault("hift_tied", {})[name] = f"is {first[id(p)]} (trains with the {unit_of[id(p)]})"
            first.setdefault(id(p), name)
        if ctx.total_steps:
            ctx.notes["hift_lr_schedule"] = {"steps_per_cycle": len(groups),
                                             "cycles": math.ceil(ctx.total_steps / len(groups))}
            if ctx.total_steps < len(groups):
                ctx.notes["hift_incomplete"] = (
                    f"{ctx.total_steps} optimizer steps for {len(groups)} groups: not one full cycle, "
                    f"{len(groups) - ctx.total_steps} group(s) never train, and the whole run is the "
                    "lr schedule's first step (lr 0 under a warmup)")
        return model

    @classmethod
    def parameter_counts(cls, model, base_total):
        """FFT's counts (every parameter trains), plus `trainable_per_step`: the largest group,
        what one step updates at most."""
        counts = count_parameters(model, base_total)
        counts["trainable_per_step"] = max(sum(p.numel() for p in group) for group in hift_state(model).groups)
        return counts

    @classmethod
    def before_step(cls, model, optimizer, step):
        state = hift_state(model)
        active = state.group_of_step(step)
        for i, group in enumerate(state.groups):
            for p in group:
                p.requires_grad_(i == active)
        state.active = active
        home = state.groups[active][0].device
        if state.offload and home.type != "cpu":
            for i in (range(len(state.groups)) if state.resident is None else state.resident):
                if i != active:
                    move_optimizer_state(optimizer, state.groups[i], "cpu")
            move_optimizer_state(optimizer, state.groups[active])
            state.resident = {active}

    @classmethod
    def after_step(cls, model, global_step):
        state = hift_state(model)
        for group in state.groups:
            for p in group:
                p.requires_grad_(True)
        state.active = None

    @classmethod
    def schedule_length(cls, model, total_steps):
        return math.ceil(total_steps / hift_state(model).steps_per_cycle)

    @classmethod
    def schedule_step(cls, model, step):
        return step // hift_state(model).steps_per_cycle

    @classmethod
    def extra_state(cls, model):
        state = hift_state(model)
        return {"cycle": state.cycle, "order": list(state.order), "generator": state.generator.get_state()}

    @classmethod
    def load_extra_state(cls, model, saved):
        state = hift_state(model)
        state.cycle, state.order = int(saved["cycle"]), [int(i) for i in saved["order"]]
        state.generator.set_state(saved["generator"])
        state.resident = None  # the optimizer state was loaded onto the model's device
