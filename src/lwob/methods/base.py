"""Method base class, registry, option parsing and the shared save/load of trained tensors.

torch/peft are imported lazily: the registry is also used at config-validation time
(Snakefile parse), which must stay cheap.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..errors import ConfigError
from ..registry import Registry




def head_names() -> tuple[str, ...]:
    """Names of task-head modules in HF models (classifier, score, qa_outputs, ...): the
    union over the task kinds of lwob.tasks, so a new kind brings its own head."""
    from .. import tasks

    return tuple(dict.fromkeys(n for kind in tasks.REGISTRY.values() for n in kind.head_names))


@dataclass
class MethodContext:
    """What a method may need to know about the model, the task and the run."""

    num_layers: int | None = None
    model_type: str | None = None
    task_kind: str = "classification"
    total_steps: int | None = None  # number of optimizer steps (AdaLoRA needs it)
    max_length: int | None = None  # longest tokenized input of the task
    max_positions: int | None = None  # usable positions of the model (RoBERTa: mpe - 2)
    #: whether the model has bias terms (False: config.json turns them off, as Llama's does;
    #: None: unknown, assumed present)
    bias_terms: bool | None = None
    #: effective-setting notes a method adds during check/build (copied into train.json)
    notes: dict = field(default_factory=dict)


class Method:
    """A fine-tuning method. Subclasses declare ``Options`` (a dataclass) and ``build``."""

    name: ClassVar[str] = ""
    #: Whether the method trains under FSDP (lwob.run.distributed), i.e. only touches a
    #: parameter inside its module's forward, where the sharded tensors are gathered.
    shardable: ClassVar[bool] = True
    #: How tables and figures name the method and the colour figures draw it in (shades of it
    #: for a second method of the type, lwob.report.figures.method_color). A config's
    #: `methods.<name>.display` wins; None: the method's name upper-cased, a spare colour.
    display: ClassVar[str | None] = None
    color: ClassVar[str | None] = None
    #: Whether runs of the method train. An untrained method (vanilla: the base model as it
    #: is) has no train job; evaluation builds its model from the base weights.
    trains: ClassVar[bool] = True
    #: Whether the method trains in several processes at all (`training.processes` > 1, DDP or
    #: FSDP). A method that changes which parameters take gradients between steps (HiFT) does
    #: not: DDP's reducer expects the same parameters to get gradients every step.
    multi_process: ClassVar[bool] = True

    @dataclass
    class Options:
        pass

    @classmethod
    def check(cls, options: Any, ctx: MethodContext) -> None:
        """Config-time checks (raise ConfigError). Default: nothing to check."""

    @classmethod
    def redundant(cls, options: Any, num_layers: int | None) -> str | None:
        """Why a run of these options on a model of `num_layers` layers need not train (it
        would repeat another run), else None. Such runs are left out of a study and its
        table says why. Default: never."""
        return None

    @classmethod
    def build(cls, model, options: Any, ctx: MethodContext):
        """Freeze/wrap `model` and return the module to train."""
        raise NotImplementedError

    @classmethod
    def parameter_counts(cls, model, base_total: int) -> dict:
        """Exact parameter counts of the built model (count_parameters' keys). Default: every
        element of a tensor with requires_grad trains; a method that trains part of a tensor
        (a sparse mask) or freezes a block between steps counts what really changes."""
        return count_parameters(model, base_total)

    @classmethod
    def param_groups(cls, model, weight_decay: float) -> list[dict]:
        """The optimizer's parameter groups (lwob.run.training.make_optimizer). Default:
        weight decay on every trainable tensor but biases and norm weights (decay_groups).
        A method overrides it to give its own tensors their own settings, or to leave out
        tensors it updates itself."""
        return decay_groups(model, weight_decay)

    @classmethod
    def before_step(cls, model, optimizer, step: int) -> None:
        """Called before the forward pass of every optimizer step, `step` being the number of
        steps already taken (0-based, as lr_factor counts), with the optimizer the loop steps.
        A method that trains part of the model per step (HiFT: one group of layers) sets
        requires_grad here, so backward computes and stores gradients for that part only
        (the others keep grad None: AdamW skips them and clipping ignores them), and may move
        optimizer state between devices. No-op by default."""

    @classmethod
    def after_step(cls, model, global_step: int) -> None:
        """Called after optimizer.step() and before zero_grad() (AdaLoRA; HiFT makes every
        parameter trainable again, so checkpoints and the best epoch's weights hold them all).
        No-op by default."""

    @classmethod
    def schedule_length(cls, model, total_steps: int) -> int:
        """Length of the learning-rate schedule of a run of `total_steps` optimizer steps, in
        the units `schedule_step` counts (its warmup is `warmup_ratio` of it). Default: one per
        optimizer step."""
        return total_steps

    @classmethod
    def schedule_step(cls, model, step: int) -> int:
        """Position in the learning-rate schedule before optimizer step `step` (0-based).
        Default: the step itself; HiFT: the number of full cycles over its groups."""
        return step

    @classmethod
    def extra_state(cls, model) -> dict:
        """Training state outside the parameters and the optimizer (for checkpoints)."""
        return {}

    @classmethod
    def load_extra_state(cls, model, state: dict) -> None:
        """Restore what extra_state saved."""

    @classmethod
    def increments(cls, model, initial: dict) -> dict:
        """What training changed in the model (the weight-increment analysis, lwob.analysis.increments).

        `model` is the rebuilt run model with its trained tensors loaded, `initial` the
        {name: tensor} snapshot of its trainable parameters right after `build` (the base
        model's weights, the seeded head and adapter initialisation). Returns {name: tensor}
        with names in the built model's namespace (peft wrappers are normalised away by
        lwob.analysis.increments). Default: trained minus initial of every trainable parameter (FFT,
        top-k, BitFit, and the task head of every method).
        """
        return trained_minus_initial(model, initial)


def _check_options(cls: type) -> None:
    if not dataclasses.is_dataclass(cls.Options):
        raise TypeError(f"{cls.__name__}.Options must be a dataclass")


REGISTRY = Registry("method type", check=_check_options)
register, known, get = REGISTRY.register, REGISTRY.known, REGISTRY.get


def shown(name: str, methods: dict) -> dict:
    """How tables and figures show method `name` of the config's `methods` block (the one place
    they read it): its `type`, its `display` (the entry's own, else its type's Method.display,
    else the name upper-cased) and its type's `color` (None: none registered). A name without
    an entry is taken as its own type."""
    spec = methods.get(name) or {}
    mtype = str(spec.get("type") or name)
    cls = REGISTRY[mtype] if mtype in REGISTRY else None
    return {"type": mtype, "display": str(spec.get("display") or getattr(cls, "display", None) or name.upper()),
            "color": getattr(cls, "color", None)}


# --------------------------------------------------------------------------- options


def _matches(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if tp is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return isinstance(value, (list, tuple)) and all(_matches(v, args[0]) for v in value) if args else True
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) if isinstance(tp, type) else str(tp).replace("typing.", "")


def parse_options(type_name: str, options: dict | None, key: str = "options") -> Any:
    """Validate a config's options against the method's Options dataclass.

    `key` is the config key of the options block (``methods.<name>.options``); errors name
    ``<key>.<option>``. An option whose field metadata has ``choices`` takes one of them.
    """
    cls = get(type_name)
    options = dict(options or {})
    hints = typing.get_type_hints(cls.Options)
    fields = {f.name: f for f in dataclasses.fields(cls.Options)}
    for opt, value in options.items():
        if opt not in fields:
            raise ConfigError(
                f"config key '{key}.{opt}': unknown option for method type '{type_name}' "
                f"(known: {', '.join(fields) or 'none'})"
            )
        tp = hints[opt]
        if not _matches(value, tp):
            raise ConfigError(
                f"config key '{key}.{opt}': expected {_type_name(tp)}, got {type(value).__name__} {value!r}"
            )
        choices = fields[opt].metadata.get("choices")  # an option with a fixed set of values
        if choices is not None and value not in choices:
            raise ConfigError(f"config key '{key}.{opt}': one of {', '.join(map(str, choices))}, got {value!r}")
        if tp is float or (typing.get_origin(tp) in (typing.Union, types.UnionType) and float in typing.get_args(tp)):
            if isinstance(value, int) and not isinstance(value, bool):
                options[opt] = float(value)
    try:
        return cls.Options(**options)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config key '{key}': {e}") from None


def options_dict(options: Any) -> dict:
    return dataclasses.asdict(options)


# --------------------------------------------------------------------------- helpers for methods


def freeze_all(model) -> None:
    for p in model.parameters():
        p.requires_grad_(False)


def has_task_head(ctx: MethodContext) -> bool:
    """Whether the run's task kind adds a task head (classifier, qa_outputs); a causal LM's
    kind does not: it trains through the model's own LM head, which is pretrained and, like
    any other pretrained weight, trains only where the method says so."""
    from .. import tasks

    return bool(tasks.get(ctx.task_kind).head_names)


def head_module_names(model) -> list[str]:
    """Top-level-relative names of the task head (``classifier``/``score``/``qa_outputs``)."""
    names = head_names()
    return [n for n, _ in model.named_children() if n in names]


def unfreeze_head(model, ctx: MethodContext | None = None) -> None:
    """Make the task head train (every method trains it). Nothing to do for a kind without a
    separate head (`has_task_head`); otherwise a model without one is an error."""
    if ctx is not None and not has_task_head(ctx):
        return
    names = head_module_names(model)
    if not names:
        raise ConfigError(f"{type(model).__name__} has no task head ({', '.join(head_names())})")
    for n in names:
        for p in getattr(model, n).parameters():
            p.requires_grad_(True)


def encoder_layers(model):
    """The ModuleList of transformer layers of an (unwrapped) HF encoder model."""
    base = getattr(model, "base_model", model)
    for path in ("encoder.layer", "layers", "h", "layer", "transformer.layer", "model.layers", "decoder.layers"):
        obj = base
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        import torch

        if isinstance(obj, torch.nn.ModuleList):
            return obj
    raise ConfigError(f"cannot find the transformer layers of {type(model).__name__}")


def trained_minus_initial(model, initial: dict, skip=lambda name: False) -> dict:
    """{name: trained - initial} over the trainable parameters whose name `skip` rejects not."""
    return {n: (p.detach() - initial[n].to(p.device)).cpu() for n, p in model.named_parameters()
            if p.requires_grad and not skip(n)}


def decay_groups(model, weight_decay: float) -> list[dict]:
    """AdamW groups: weight decay on everything but biases and norm parameters (norm modules
    recognised by class: torch's LayerNorm, or a class name containing "layernorm" or
    "rmsnorm", as Llama's LlamaRMSNorm)."""
    import torch

    no_decay: set[int] = set()
    for module in model.modules():
        kind = type(module).__name__.lower()
        if isinstance(module, torch.nn.LayerNorm) or "layernorm" in kind or "rmsnorm" in kind:
            no_decay.update(id(p) for p in module.parameters(recurse=False))
    decay, plain = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (plain if (name.endswith("bias") or id(p) in no_decay) else decay).append(p)
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": weight_decay})
    if plain:
        groups.append({"params": plain, "weight_decay": 0.0})
    return groups


# --------------------------------------------------------------------------- save / load / count


def trainable_state(model) -> dict:
    """{name: tensor} of the parameters that train (names as in named_parameters())."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def save_trained(model, path, state: dict | None = None) -> None:
    """Write the trainable tensors (or a given snapshot of them) to safetensors, atomically."""
    from safetensors.torch import save as st_save

    from ..io import atomic_write_bytes

    state = trainable_state(model) if state is None else state
    tensors = {n: t.detach().to("cpu").contiguous().clone() for n, t in state.items()}
    atomic_write_bytes(path, st_save(tensors, metadata={"format": "pt"}))


def load_trained(model, path) -> None:
    """Load saved trainable tensors into a freshly built model, strictly.

    Raises if a saved key is not a parameter of the model or a trainable parameter of the
    model is not in the file (a different method/options than at training time).
    """
    import torch
    from safetensors.torch import load_file

    saved = load_file(str(path))
    params = dict(model.named_parameters())
    trainable = {n for n, p in params.items() if p.requires_grad}
    missing_in_model = sorted(set(saved) - set(params))
    missing_in_file = sorted(trainable - set(saved))
    if missing_in_model or missing_in_file:
        raise ValueError(
            f"{Path(path).name} does not match the built model: "
            f"{len(missing_in_model)} saved tensor(s) not in the model {missing_in_model[:5]}, "
            f"{len(missing_in_file)} trainable parameter(s) not saved {missing_in_file[:5]}"
        )
    with torch.no_grad():
        for n, t in saved.items():
            p = params[n]
            if p.shape != t.shape:
                raise ValueError(f"{Path(path).name}: shape of {n} is {tuple(t.shape)}, model has {tuple(p.shape)}")
            p.copy_(t.to(p.device, p.dtype))


def count_parameters(model, base_total: int) -> dict:
    """Exact parameter counts of a built model.

    trainable: unique parameters with requires_grad (tied weights once);
    total: unique parameters of the built model (for peft: base + adapter + the trainable
    copy of the head that peft keeps beside the frozen original);
    base_total: parameters of the unmodified model with its head;
    head: trainable parameters inside the classification head;
    trainable_pct: 100 * trainable / base_total.
    """
    seen: set[int] = set()
    trainable = total = head = 0
    heads = set(head_names())
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in seen:
            continue
        seen.add(id(p))
        n = p.numel()
        total += n
        if p.requires_grad:
            trainable += n
            if heads & set(name.split(".")):
                head += n
    return {
        "trainable": trainable,
        "total": total,
        "base_total": int(base_total),
        "head": head,
        "trainable_pct": 100.0 * trainable / base_total if base_total else None,
    }


def unique_parameter_count(model) -> int:
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total
