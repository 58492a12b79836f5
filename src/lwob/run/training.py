"""Training of one run: own loop (no HF Trainer), dynamic padding (or packed rows for a
causal LM's fine-tuning: `collate_packed`, training.packing), best-epoch weights.

Also the one implementation of reading tokenized parts, batching and collation that
evaluation reuses (`load_part`, `train_batches`, `eval_batches`, `collate`,
`collate_targets`, `predict`, `score_part`, `build_run_model`). What differs between task
kinds (targets per row or per token, how they predict, scoring) comes from lwob.tasks; what
differs between methods (what trains, its count, the optimizer's parameter groups, what
trains at each step and how the learning-rate schedule counts steps: Method.before_step,
after_step, schedule_length, schedule_step) from lwob.methods.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from ..plan.config import TRAINING_CHOICES
from ..io import read_json, sha256_file, verify_sha256, write_json
from ..models import forward_parameters, prompt_learning, unwrapped

HP_DEFAULTS: dict[str, Any] = {
    "epochs": 10,
    "batch_size": 32,
    "eval_batch_size": 128,
    # GPUs one evaluation (the evaluate job, one process) spreads the model over, consecutive
    # layers on each (lwob.models.spread_placement): a model larger than one GPU. Training
    # shards such a model with FSDP over its processes instead.
    "eval_devices": 1,
    "lr": 2.0e-5,
    "warmup_ratio": 0.06,
    "weight_decay": 0.0,
    "optimizer": "adamw",
    "max_grad_norm": 1.0,
    "lr_scheduler": "linear",
    "device": "auto",
    "group_by_length": False,
    # Supervised fine-tuning of a causal LM (per-token targets): each batch's examples are
    # packed several to a row (position ids restarting per example, attention kept within each
    # example, logits only where a label counts) instead of padded to the longest; the loss is
    # the same per-token mean. `pack_length`: the longest packed row (None: the task's max_length).
    # Where packing does not apply (per-row targets, prompt-learning methods) batches are
    # length-grouped instead (train.json's `batching` records which and why).
    "packing": False,
    "pack_length": None,
    # Processes for one run (GPUs, or CPU processes with gloo) and how they share the work:
    # "ddp" replicates the model, "fsdp" shards it (lwob.run.distributed).
    "processes": 1,
    "parallel": "ddp",
    # Nodes of one run (processes on each): a multi-node SLURM job (lwob.run.launch).
    "nodes": 1,
    # The fast path (lwob.run.fastpath): bf16 autocast with fp32 master weights where the hardware
    # has bf16 ("auto"), TF32 on CUDA, fused AdamW, optional torch.compile.
    "precision": "auto",
    "tf32": True,
    "fused_optimizer": True,
    "compile": False,
}
#: Length-grouped batching sorts within windows of this many batches (as HF does).
GROUP_WINDOW_BATCHES = 50
#: On an accelerator the non-finite-loss flag is read every this many steps (and at every
#: checkpoint and epoch end): reading it makes the host wait for the device.
LOSS_CHECK_EVERY_STEPS = 50


class NonFiniteLoss(ConfigError):
    """The training loss became NaN or infinite (almost always too high a learning rate):
    the run fails and writes nothing (a grid cell records it instead: GridCellDivergence)."""

    def __init__(self, message: str, step: int, epoch: int):
        super().__init__(message)
        self.step, self.epoch = step, epoch


def resolve_hyperparameters(hp: dict | None) -> dict:
    hp = dict(hp or {})
    unknown = sorted(set(hp) - set(HP_DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown training hyperparameter(s) {unknown} (known: {', '.join(HP_DEFAULTS)})")
    out = {**HP_DEFAULTS, **hp}
    for key, choices in TRAINING_CHOICES.items():
        if key != "device" and out[key] not in choices:  # device: resolve_device (also "cuda:1")
            raise ConfigError(f"training.{key}: one of {', '.join(choices)}, got {out[key]!r}")
    for k in ("epochs", "batch_size", "eval_batch_size", "eval_devices", "processes", "nodes"):
        if not isinstance(out[k], int) or isinstance(out[k], bool) or out[k] < 1:
            raise ConfigError(f"training.{k}: expected a positive integer, got {out[k]!r}")
    for k in ("lr", "warmup_ratio", "weight_decay", "max_grad_norm"):
        out[k] = float(out[k])
    for k in ("group_by_length", "packing", "tf32", "fused_optimizer", "compile"):
        if not isinstance(out[k], bool):
            raise ConfigError(f"training.{k}: expected true or false, got {out[k]!r}")
    k = "pack_length"
    if out[k] is not None and (not isinstance(out[k], int) or isinstance(out[k], bool) or out[k] < 1):
        raise ConfigError(f"training.{k}: expected a positive integer or null (the task's max_length), got {out[k]!r}")
    return out


def resolve_device(name: str) -> torch.device:
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(name).startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"training.device is {name!r} but CUDA is not available")
    return torch.device(name)


# --------------------------------------------------------------------------- data / batching


@dataclass
class Part:
    """A tokenized part held as one padded matrix; a batch slices it to its longest row."""

    name: str
    table: Any  # pa.Table: every column of the tokenized rows (scoring reads its extra columns)
    input_ids: torch.Tensor  # int64 (N, Lmax), right-padded with pad_token_id
    lengths: torch.Tensor  # int64 (N,)
    token_type_ids: torch.Tensor | None  # int64 (N, Lmax) or None
    targets: dict  # loss-target column -> int64 (N,) tensor, or (N, Lmax) padded with IGNORE_INDEX per token
    examples: Any = None  # pa.Table of the examples, for kinds whose rows are not examples (QA windows)
    pad_token_id: int = 0  # what input_ids are padded with (packed rows pad their tails with it)

    def __len__(self) -> int:
        return len(self.lengths)


def _pad_matrix(rows, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    width = int(lengths.max()) if len(rows) else 1
    out = np.full((len(rows), max(width, 1)), pad, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return torch.from_numpy(out), torch.from_numpy(lengths)


def load_part(directory, part: str, pad_token_id: int, targets: tuple[str, ...] = (), entry: dict | None = None,
              output=None) -> Part:
    """Read `{part}.parquet` (and `{part}.examples.parquet` when present) from `directory`.

    `entry`: the part's record in meta.json (or an eval set's json), whose sha256 and
    examples_sha256 the files must match; `output` is the rule output that rewrites them."""
    import pyarrow.parquet as pq

    directory = Path(directory)
    if entry is not None:
        verify_sha256(directory / f"{part}.parquet", entry.get("sha256"), output)
        if entry.get("examples_sha256"):
            verify_sha256(directory / f"{part}.examples.parquet", entry["examples_sha256"], output)
    table = pq.read_table(directory / f"{part}.parquet")
    cols = set(table.column_names)
    ids_rows = [np.asarray(r, dtype=np.int64) for r in table.column("input_ids").to_numpy(zero_copy_only=False)]
    input_ids, lengths = _pad_matrix(ids_rows, pad_token_id)
    token_type = None
    if "token_type_ids" in cols:
        tt_rows = [np.asarray(r, dtype=np.int64) for r in table.column("token_type_ids").to_numpy(zero_copy_only=False)]
        token_type, _ = _pad_matrix(tt_rows, 0)
    examples_path = directory / f"{part}.examples.parquet"
    return Part(
        name=part,
        table=table,
        input_ids=input_ids,
        lengths=lengths,
        token_type_ids=token_type,
        targets={t: _target_tensor(table.column(t)) for t in targets if t in cols},
        examples=pq.read_table(examples_path) if examples_path.is_file() else None,
        pad_token_id=int(pad_token_id),
    )


def _target_tensor(column) -> torch.Tensor:
    """A target column as int64: (N,) for one value per row, (N, Lmax) for one list per row
    (per-token targets, e.g. a causal LM's labels), padded with IGNORE_INDEX so padding adds
    nothing to the loss."""
    import pyarrow as pa

    from ..tasks.base import IGNORE_INDEX

    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        rows = [np.asarray(r, dtype=np.int64) for r in column.to_numpy(zero_copy_only=False)]
        return _pad_matrix(rows, IGNORE_INDEX)[0]
    values = column.to_numpy()
    if values.dtype.kind == "f":  # a regression target (e.g. an STS-B score) stays a float
        return torch.from_numpy(values.astype(np.float32))
    return torch.from_numpy(values.astype(np.int64))


def _unlabelled(part: Part, target: str) -> bool:
    """Whether a row lacks its target: a negative value per row, or per token no position
    that counts (every one IGNORE_INDEX, e.g. an empty completion)."""
    value = part.targets[target]
    if value.dim() == 2:
        return bool((value < 0).all(dim=1).any()) if len(value) else False
    return bool((value < 0).any())


def train_batches(part: Part, batch_size: int, generator: torch.Generator, group_by_length: bool) -> list[torch.Tensor]:
    """One epoch's batches (index tensors): a seeded shuffle; with group_by_length, rows are
    sorted by length (longest first) within windows of GROUP_WINDOW_BATCHES batches and the
    batch order is shuffled again, so padding is small but batches stay random."""
    n = len(part)
    perm = torch.randperm(n, generator=generator)
    if not group_by_length:
        return list(perm.split(batch_size))
    window = batch_size * GROUP_WINDOW_BATCHES
    batches: list[torch.Tensor] = []
    for chunk in perm.split(window):
        order = torch.argsort(part.lengths[chunk], descending=True, stable=True)
        batches.extend(chunk[order].split(batch_size))
    shuffle = torch.randperm(len(batches), generator=generator)
    return [batches[i] for i in shuffle.tolist()]


def eval_batches(part: Part, batch_size: int) -> list[torch.Tensor]:
    """Batches of rows sorted by length (least padding); predictions are put back in order."""
    order = torch.argsort(part.lengths, descending=True, stable=True)
    return list(order.split(batch_size))


def collate(part: Part, index: torch.Tensor, device: torch.device) -> dict:
    """Dynamic padding: slice the padded matrix to the batch's longest row."""
    width = int(part.lengths[index].max())
    ids = part.input_ids[index, :width]
    mask = (torch.arange(width).unsqueeze(0) < part.lengths[index].unsqueeze(1)).long()
    batch = {"input_ids": ids, "attention_mask": mask}
    if part.token_type_ids is not None:
        batch["token_type_ids"] = part.token_type_ids[index, :width]
    if device.type != "cpu":
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    return batch


def collate_targets(part: Part, index: torch.Tensor, device: torch.device, loss_logits_only: bool = False) -> dict:
    """The batch's loss targets: per row as they are, per token sliced to the batch's width
    (as `collate` slices the inputs). With `loss_logits_only` (what the function of that name
    says for the run), the model computes logits only where a label counts (`keep_loss_logits`)."""
    out = {}
    for name, value in part.targets.items():
        if value.dim() == 2:
            value = value[index, : int(part.lengths[index].max())]
        else:
            value = value[index]
        out[name] = value
    if loss_logits_only and "labels" in out and out["labels"].dim() == 2:
        out = keep_loss_logits(out)
    return {k: v.to(device) for k, v in out.items()}


def keep_loss_logits(targets: dict) -> dict:
    """Per-token `labels` (B, W) as a boolean `logits_to_keep` (B, W) and the `shift_labels`
    of the kept positions: a causal LM then projects only those hidden states onto its
    vocabulary and takes the cross-entropy over them. The loss is the same mean over the same
    tokens; the positions whose label is IGNORE_INDEX (a prompt, padding) cost no logits,
    which on a 49k-word vocabulary is a fifth of the forward pass and most of its memory."""
    from ..tasks.base import IGNORE_INDEX

    # `labels` stays: transformers computes a loss only when it is given (shift_labels then wins).
    shifted = torch.nn.functional.pad(targets["labels"], (0, 1), value=IGNORE_INDEX)[:, 1:]
    keep = shifted != IGNORE_INDEX
    return {**targets, "logits_to_keep": keep, "shift_labels": shifted[keep]}


def loss_logits_only(kind, core) -> bool:
    """Whether a run's model can compute logits only where a label counts: a causal LM's
    per-token targets, a forward that takes `logits_to_keep`, and inputs left in place
    (prompt learning prepends virtual tokens, which would move the positions)."""
    if kind.target_level != "token" or kind.auto_model != "AutoModelForCausalLM" or prompt_learning(core):
        return False
    return "logits_to_keep" in forward_parameters(core)


# --------------------------------------------------------------------------- packing

#: Row counts pack_rows tries beyond the fewest that can hold a batch (the best is almost
#: always within a few; each try costs a pass over the batch).
PACK_ROW_COUNTS_TRIED = 32


def pack_rows(lengths: list[int], pack_length: int) -> list[list[int]]:
    """How a batch's examples share packed rows: positions into `lengths`, one list per row,
    each row's total at most `pack_length`.

    The rows minimise the positions computed (rows x the longest row; ties: more and shorter
    rows, since attention grows with the square of a row's length). For each row count k from
    the fewest that can hold the batch up, the examples go longest first to the least-filled
    row (ties: the lower row; equal lengths keep the batch's order), so the rows are a function
    of the batch alone and the run's seeded shuffle fixes them. k = len(lengths) (one example
    per row, no padding beyond the longest) is always possible."""
    import heapq

    n = len(lengths)
    if n == 0:
        return []
    longest, total = max(lengths), sum(lengths)
    if longest > pack_length:
        raise ConfigError(f"training.pack_length: {pack_length} is shorter than an example of {longest} tokens")
    order = sorted(range(n), key=lambda k: -lengths[k])  # stable: equal lengths keep the batch's order
    tried = [(n * longest, -n, [[k] for k in order])]  # (positions, -rows, rows)
    first = max(1, -(-total // pack_length))
    for k in range(first, min(n, first + PACK_ROW_COUNTS_TRIED)):
        if k * longest > min(tried)[0]:  # k rows are at least k x longest wide: no better from here on
            break
        heap = [(0, r) for r in range(k)]
        rows: list[list[int]] = [[] for _ in range(k)]
        for i in order:
            fill, r = heapq.heappop(heap)
            rows[r].append(i)
            heapq.heappush(heap, (fill + lengths[i], r))
        width = max(fill for fill, _ in heap)
        if width <= pack_length:
            tried.append((k * width, -k, rows))
    return min(tried, key=lambda t: t[:2])[2]


@dataclass(frozen=True)
class Packing:
    """How a run's training batches are packed (`collate_packed`): rows at most `pack_length`
    long; `logits_to_keep`: the model computes logits only where a label counts (a boolean
    `logits_to_keep` and the matching `shift_labels`; transformers' causal LMs that take them)."""

    pack_length: int
    logits_to_keep: bool = True


def collate_packed(part: Part, index: torch.Tensor, device: torch.device, packing: Packing,
                   rows: list[list[int]] | None = None) -> tuple[dict, dict]:
    """(inputs, targets) of a packed batch of per-token targets (a causal LM's labels).

    The batch's examples are concatenated several to a row (`pack_rows`), each row's tail
    padded. Position ids restart at 0 with every example (and the tail), no attention mask is
    given and the cache is off, which is transformers' packed format: the causal mask is then
    block-diagonal, so each token attends only within its example (sdpa and eager get the
    mask, flash attention the sequence boundaries). Each example's first label is IGNORE_INDEX:
    shifted, it would be the target of the previous example's last token, and unpacked it is
    never a target. The loss is the mean over the labels that count, as unpacked; with
    `logits_to_keep` only their logits are computed. `rows`: the layout (positions into
    `index` per row) instead of `pack_rows`'s."""
    from ..tasks.base import IGNORE_INDEX

    lengths = part.lengths[index].tolist()
    if rows is None:
        rows = pack_rows(lengths, packing.pack_length)
    width = max(sum(lengths[k] for k in members) for members in rows)
    src_ids = part.input_ids.numpy()
    token_targets = {name: value.numpy() for name, value in part.targets.items() if value.dim() == 2}
    ids = np.full((len(rows), width), part.pad_token_id, dtype=np.int64)
    pos = np.empty((len(rows), width), dtype=np.int64)
    labels = {name: np.full((len(rows), width), IGNORE_INDEX, dtype=np.int64) for name in token_targets}
    for r, members in enumerate(rows):
        start = 0
        for k in members:
            i, n = int(index[k]), lengths[k]
            ids[r, start:start + n] = src_ids[i, :n]
            pos[r, start:start + n] = np.arange(n)
            for name, value in token_targets.items():
                labels[name][r, start + 1:start + n] = value[i, 1:n]
            start += n
        pos[r, start:] = np.arange(width - start)  # the tail: a segment of its own, attending to no example
    batch = {"input_ids": torch.from_numpy(ids), "position_ids": torch.from_numpy(pos), "use_cache": False}
    targets = {name: torch.from_numpy(value) for name, value in labels.items()}
    if packing.logits_to_keep and "labels" in targets:
        targets = keep_loss_logits(targets)
        batch["logits_to_keep"] = targets.pop("logits_to_keep")
    if device.type != "cpu":
        batch = {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        targets = {k: v.to(device) for k, v in targets.items()}
    return batch, targets


def resolve_packing(hp: dict, kind, core, meta: dict, part: Part) -> tuple[Packing | None, str | None]:
    """The run's Packing, or None with why packing does not apply (None, None: not asked for).
    It applies to a causal LM's per-token targets with a method that leaves the model's inputs
    as they are (prompt learning prepends virtual tokens and a cache: not packed)."""
    if not hp["packing"]:
        return None, None
    if kind.target_level != "token" or kind.auto_model != "AutoModelForCausalLM":
        return None, f"task kind '{kind.name}' has no per-token targets of a causal LM"
    if prompt_learning(core):
        return None, "a prompt-learning method (virtual tokens and a cache in every forward pass)"
    if "position_ids" not in forward_parameters(core):
        return None, f"{type(unwrapped(core)).__name__} takes no position_ids"
    longest = int(part.lengths.max()) if len(part) else 1
    pack_length = int(hp["pack_length"] or meta.get("max_length") or longest)
    if longest > pack_length:
        raise ConfigError(f"training.pack_length: {pack_length} is shorter than the longest training example "
                          f"({longest} tokens)")
    return Packing(pack_length=pack_length, logits_to_keep=loss_logits_only(kind, core)), None


#: How close a packed batch's loss must be to the same examples' padded loss (relative), per
#: the precision the run trains in. A token attending across examples moves it far more.
PACKING_CHECK_RTOL = {"fp32": 1e-4, "bf16": 2e-2}


def check_packing(model, part: Part, packing: Packing, device: torch.device, fast) -> dict:
    """The loss of the part's shortest examples (up to 8) packed and padded as usual, without
    gradients and in eval mode (no dropout, no random numbers drawn). They are packed in order,
    as many to a row as fit, so several share a row. A model whose attention does not honour
    the packed format gives a different loss: `train_run` then falls back to length-grouped
    batches."""
    index = torch.argsort(part.lengths, stable=True)[:8]
    rows: list[list[int]] = []
    fill = packing.pack_length
    for k, n in enumerate(part.lengths[index].tolist()):
        if fill + n > packing.pack_length:
            rows.append([])
            fill = 0
        rows[-1].append(k)
        fill += n
    was_training = model.training
    model.eval()
    with torch.no_grad(), fast.autocast(device):
        unpacked = float(model(**collate(part, index, device), **collate_targets(part, index, device)).loss)
        batch, targets = collate_packed(part, index, device, packing, rows)
        packed = float(model(**batch, **targets).loss)
    if was_training:
        model.train()
    rtol = PACKING_CHECK_RTOL.get(fast.precision, 2e-2)
    return {"examples": len(index), "rows": len(batch["input_ids"]), "packed_loss": packed, "unpacked_loss": unpacked,
            "rtol": rtol, "equal": bool(abs(packed - unpacked) <= rtol * abs(unpacked))}


def predict(model, part: Part, batch_size: int, device: torch.device, outputs: tuple[str, ...] = ("logits",),
            per_token: bool = False, fast=None) -> dict[str, torch.Tensor]:
    """Model outputs in the part's row order, fp32 on CPU: name -> (N, classes), or with
    per_token (N, Lmax) where positions past a row's length hold -inf. Under inference mode
    and the run's precision (`fast`, a lwob.run.fastpath.FastPath; None: fp32)."""

    was_training = model.training
    model.eval()
    out: dict[str, torch.Tensor] = {}
    width = part.input_ids.shape[1]
    with torch.inference_mode(), (fast.autocast(device) if fast is not None else contextlib.nullcontext()):
        for index in eval_batches(part, batch_size):
            result = model(**collate(part, index, device))
            for name in outputs:
                value = getattr(result, name).float().cpu()
                if name not in out:
                    shape = (len(part), width) if per_token else (len(part), value.shape[1])
                    out[name] = torch.full(shape, -math.inf) if per_token else torch.empty(shape)
                if per_token:
                    out[name][index, : value.shape[1]] = value
                else:
                    out[name][index] = value
    if was_training:
        model.train()
    for name in outputs:
        out.setdefault(name, torch.empty((0, 0)))
    return out


def score_part(kind, model, part: Part, batch_size: int, device: torch.device, scoring: dict | None = None,
               fast=None, tokenizer=None):
    """(metrics, predictions frame) of `model` on a tokenized part: predicted and scored by
    the task kind (one forward pass by default; generation for a kind that generates)."""
    outputs = kind.predict(model, part, batch_size=batch_size, device=device, fast=fast, scoring=scoring,
                           tokenizer=tokenizer)
    return kind.score(outputs, part.table, part.examples, scoring)


def load_tokenizer(kind, model_dir):
    """The model's tokenizer when the task kind predicts with it (generation), else None:
    one-pass kinds never pay for loading it."""
    if not kind.needs_tokenizer:
        return None
    from ..models import quiet_transformers

    quiet_transformers()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))


# --------------------------------------------------------------------------- model


def set_seed(seed: int) -> None:
    from transformers import set_seed as hf_set_seed

    hf_set_seed(int(seed))


def build_run_model(*, model_dir, meta: dict, method_type: str, method_options: dict, seed: int,
                    total_steps: int | None, model_config: dict | None = None, placement: dict | None = None):
    """set_seed -> load base model -> set_seed -> method.build. Returns (model, method class,
    options, ctx, base_total). `model_config` overrides entries of the model's config.json;
    `placement` (lwob.models.spread_placement) loads it over several GPUs."""
    from .. import methods, tasks
    from ..models import load_for_task, model_info_from_dir

    cls = methods.get(method_type)
    options = methods.parse_options(method_type, method_options or {}, "method.options")
    info = model_info_from_dir(model_dir)
    ctx = methods.MethodContext(
        num_layers=info["num_layers"],
        model_type=info["model_type"],
        task_kind=meta.get("kind", "classification"),
        total_steps=total_steps,
        max_length=meta.get("max_length"),
        max_positions=info["max_positions"],
        bias_terms=info.get("bias_terms"),
    )
    cls.check(options, ctx)
    set_seed(seed)
    kind = tasks.get(ctx.task_kind)
    model = load_for_task(model_dir, kind, meta, model_config, placement)
    base_total = methods.base.unique_parameter_count(model)
    set_seed(seed)
    model = cls.build(model, options, ctx)
    return model, cls, options, ctx, base_total


def _decay_groups(model, weight_decay: float) -> list[dict]:
    """AdamW groups: weight decay on everything but biases and LayerNorm parameters (the
    default of Method.param_groups, kept here under its old name for benchmarks)."""
    from ..methods.base import decay_groups

    return decay_groups(model, weight_decay)


def make_optimizer(model, hp: dict, device: torch.device, method=None) -> torch.optim.Optimizer:
    """AdamW over the method's parameter groups (`Method.param_groups`; default: weight decay
    on all but biases and norms); the fused kernel (CPU and CUDA; `fused_optimizer`) when every
    trainable tensor is floating point: on CPU it is about 7x faster than the foreach one for a
    22M-parameter model."""
    if method is None:
        from ..methods.base import Method as method
    groups = method.param_groups(model, hp["weight_decay"])
    fused = hp.get("fused_optimizer", True) and all(p.is_floating_point() for g in groups for p in g["params"]) and device.type in ("cpu", "cuda")
    try:
        return torch.optim.AdamW(groups, lr=hp["lr"], fused=fused, foreach=None if fused else True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, lr=hp["lr"], foreach=True)


def lr_factor(step: int, total: int, warmup: int, kind: str) -> float:
    """Multiplier of the peak lr before optimizer step `step` (0-based).

    Both schedules warm up linearly over `warmup` steps (warmup_ratio 0 means none):
    "linear" then decays to 0 like HF's linear schedule; "constant" then stays at 1,
    i.e. HF's "constant_with_warmup".
    """
    if step < warmup:
        return step / max(1, warmup)
    if kind == "constant":
        return 1.0
    return max(0.0, (total - step) / max(1, total - warmup))


def _peak_host_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def run_name(run_id: dict) -> str:
    """model/task/method[/cell]/seedN, as the run's folders are named."""
    parts = [str(run_id[k]) for k in ("model", "task", "method", "cell") if run_id.get(k) is not None]
    return "/".join(parts + [f"seed{run_id.get('seed')}"])


class LossWatch:
    """The first optimizer step whose loss was not finite. The flag lives on the device, so
    watching costs no host-device wait; `check` reads it (every step on a CPU, where reading
    costs nothing, else every LOSS_CHECK_EVERY_STEPS steps, before a checkpoint and before
    validation) and raises NonFiniteLoss. It reads the loss only: training is unchanged."""

    def __init__(self, device: torch.device, what: str, steps_per_epoch: int, lr: float, grid_cell: bool = False):
        self.first_bad = torch.zeros((), dtype=torch.int64, device=device)  # 0: none (steps count from 1)
        self.every = 1 if device.type == "cpu" else LOSS_CHECK_EVERY_STEPS
        self.what, self.steps_per_epoch, self.lr, self.grid_cell = what, steps_per_epoch, lr, grid_cell

    def update(self, loss: torch.Tensor, step: int) -> None:
        bad = ~torch.isfinite(loss.detach()) & (self.first_bad == 0)
        self.first_bad = torch.where(bad, step, self.first_bad)

    def due(self, step: int) -> bool:
        return step % self.every == 0

    def check(self, par, step: int) -> None:
        local = int(self.first_bad)
        if not par.any(local > 0)[0]:
            return
        # Another process's NaN reaches this one through the gradient all-reduce one step later.
        bad = local if local > 0 else step
        epoch = (bad - 1) // self.steps_per_epoch + 1
        outcome = ("recorded as this grid cell's result, without a validation score, so the selection skips it"
                   if self.grid_cell else "no weights or record written. Lower training.lr "
                   f"(now {self.lr:g}) or check the data")
        raise NonFiniteLoss(f"{self.what}: the training loss became NaN or infinite at optimizer step {bad} "
                            f"(epoch {epoch}); {outcome}", bad, epoch)


class GridCellDivergence:
    """Around a run's training loop: for a grid cell (run_id with a `cell`), a diverged run is
    that cell's result, not a failure (a learning-rate grid may well reach a rate that
    diverges): the error is kept in `error` and the run records no validation score, so the
    selection (which skips cells without one) never chooses it. Other runs fail."""

    def __init__(self, run_id: dict):
        self.grid_cell = run_id.get("cell") is not None
        self.error: NonFiniteLoss | None = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self.grid_cell and isinstance(exc, NonFiniteLoss):
            self.error = exc
            print(exc, flush=True)
            return True
        return False


# --------------------------------------------------------------------------- train


def train_run(*, model_dir, tokenized_dir, method_type: str, method_options: dict, hyperparameters: dict,
              seed: int, out_dir, run_id: dict, threads: int | None = None,
              provenance_extra: dict | None = None, model_config: dict | None = None,
              checkpoint_minutes: float | None = None) -> dict:
    """Train one run; write out_dir/weights.safetensors (best epoch) and out_dir/train.json.

    Preemption-safe (lwob.run.checkpoint): SIGTERM saves out_dir/checkpoint.pt and exits 143; a
    later call resumes from it; `checkpoint_minutes` also saves one periodically.
    One process of a run; lwob.run.launch.train starts `processes` of them.
    """
    from . import checkpoint, distributed, provenance
    from .. import methods, tasks
    from .fastpath import FastPath, first_position_last_layer, heap_allocations

    start = time.perf_counter()
    hp = resolve_hyperparameters(hyperparameters)
    distributed.check(methods.get(method_type), hp["processes"], hp["parallel"], "training", nodes=hp["nodes"])
    par = distributed.Parallel.start(hp["parallel"], hp["device"])
    if threads and par.world == 1:
        torch.set_num_threads(int(threads))
    device = par.device if par.world > 1 else resolve_device(hp["device"])
    fast = FastPath.resolve(hp, device)
    fast.apply_backend(device)
    tokenized_dir, out_dir = Path(tokenized_dir), Path(out_dir)
    meta_path = tokenized_dir / "meta.json"
    meta = read_json(meta_path)
    kind = tasks.get(meta.get("kind", "classification"))
    pad = int(meta["pad_token_id"])
    train = load_part(tokenized_dir, "train", pad, kind.targets, entry=meta["parts"]["train"], output=meta_path)
    val = load_part(tokenized_dir, "validation", pad, entry=meta["parts"]["validation"], output=meta_path)
    val_scoring = meta["parts"]["validation"].get("scoring")
    val_metric = kind.metrics(val_scoring)[0]  # the task's first metric picks the best epoch
    for t in kind.targets:
        if t not in train.targets or _unlabelled(train, t):
            raise ValueError(f"{tokenized_dir}/train.parquet lacks target '{t}' or has unlabelled rows")
    tokenizer = load_tokenizer(kind, model_dir)  # None unless the kind generates

    steps_per_epoch = math.ceil(len(train) / hp["batch_size"])
    total_steps = steps_per_epoch * hp["epochs"]
    model, cls, options, ctx, base_total = build_run_model(
        model_dir=model_dir, meta=meta, method_type=method_type, method_options=method_options,
        seed=seed, total_steps=total_steps, model_config=model_config,
    )
    params = cls.parameter_counts(model, base_total)
    # Resume from a checkpoint of this very run (saved on SIGTERM or periodically).
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = out_dir / checkpoint.FILENAME
    fp = checkpoint.fingerprint(hp=hp, method=method_type, options=dataclasses.asdict(options), seed=int(seed),
                                model_config=model_config or {}, data={k: v.get("sha256") for k, v in meta["parts"].items()},
                                model=str(model_dir))
    resumed = checkpoint.load(ckpt_path, fp, remove_stale=par.main)
    if resumed is not None:  # full tensors, loaded before the model is wrapped or sharded
        with torch.no_grad():
            named = dict(model.named_parameters())
            for n, t in resumed["trainable"].items():
                named[n].copy_(t)
    # The last layer computes only the position the head reads, where that is all it reads
    # (before wrapping, so DDP and FSDP call the layer as it is then).
    first_position_only = first_position_last_layer(model, kind) is None
    model.to(device)
    model.train()
    model = par.wrap(model)
    # the model itself, for method hooks (sharded parameters are left as they are)
    core = fast.prepare(par.unwrap(model), cast_frozen=par.world == 1)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(model, hp, device, method=cls)
    # The lr schedule's length and position in the method's units (default: optimizer steps;
    # HiFT: cycles over its groups); warmup is warmup_ratio of that length.
    schedule_total = cls.schedule_length(core, total_steps)
    warmup = math.ceil(hp["warmup_ratio"] * schedule_total)
    generator = torch.Generator().manual_seed(int(seed))
    if par.world > 1:
        torch.manual_seed(int(seed) * 1000 + par.rank)  # own dropout masks per process
    # Packed batches (several examples a row) where asked for and exact; else length-grouped
    # where packing was asked for but does not apply; else as group_by_length says.
    packing, not_packed = resolve_packing(hp, kind, core, meta, train)
    batching = {"mode": "length-grouped" if hp["group_by_length"] else "random"}
    if packing is not None:
        check = check_packing(model, train, packing, device, fast)
        if check["equal"]:
            batching = {"mode": "packed", "pack_length": packing.pack_length,
                        "logits_to_keep": packing.logits_to_keep, "check": check}
        else:
            packing, not_packed = None, (f"the packed loss {check['packed_loss']:.6g} differs from the unpacked "
                                         f"{check['unpacked_loss']:.6g}: the model does not keep attention "
                                         f"within packed examples")
    if not_packed is not None:
        batching = {"mode": "length-grouped", "packing_not_applied": not_packed}
        print(f"training.packing: not applied ({not_packed}); length-grouped batches instead", flush=True)
    group_by_length = batching["mode"] == "length-grouped"
    # A causal LM's logits only where a label counts (its prompt and padding cost none).
    logits_only = loss_logits_only(kind, core)
    batching["loss_logits_only"] = logits_only
    batching["last_layer_first_position_only"] = first_position_only
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    divergence = GridCellDivergence(run_id)
    loss_watch = LossWatch(device, f"run {run_name(run_id)} ({out_dir})", steps_per_epoch, hp["lr"],
                           divergence.grid_cell)

    epochs: list[dict] = []
    best: dict | None = None
    best_state: dict | None = None
    step = 0
    train_time = 0.0
    start_epoch, start_batch, batches = 1, 0, None
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    n_seen = 0
    if resumed is not None:
        par.load_optimizer_state(model, optimizer, resumed["optimizer"])
        cls.load_extra_state(core, resumed["method_state"])
        generator.set_state(resumed["generator"])
        checkpoint.set_rng_state(resumed["rng"][par.rank] if par.world > 1 else resumed["rng"])
        step, epochs, best, best_state = resumed["step"], resumed["epochs"], resumed["best"], resumed["best_state"]
        train_time, start_epoch, start_batch, batches = (resumed["train_time"], resumed["epoch"],
                                                         resumed["batch"], resumed["batches"])
        if par.main:  # the epoch's running loss so far, summed over processes
            loss_sum, n_seen = resumed["loss_sum"].to(device), resumed["n_seen"]

    def snapshot(epoch: int, batch: int, epoch_batches, reason: str) -> dict:
        """The whole training state; collective (every process calls it, the main one saves it)."""
        rng = checkpoint.rng_state()
        return {
            "fingerprint": fp, "reason": reason, "epoch": epoch, "batch": batch, "batches": epoch_batches, "step": step,
            "trainable": par.trainable_state(model), "optimizer": par.optimizer_state(model, optimizer),
            "method_state": cls.extra_state(core), "generator": generator.get_state(),
            "rng": par.gather(rng) if par.world > 1 else rng, "loss_sum": par.sum(loss_sum),
            "n_seen": int(par.sum(n_seen)), "epochs": epochs, "best": best, "best_state": best_state,
            "train_time": train_time + (time.perf_counter() - t0),
        }

    with divergence, checkpoint.Preemption(checkpoint_minutes) as preemption, heap_allocations(device) as on_heap:
        for epoch in range(start_epoch, hp["epochs"] + 1):
            t0 = time.perf_counter()
            if batches is None:  # a fresh epoch (not the one a checkpoint stopped in)
                batches = train_batches(train, hp["batch_size"], generator, group_by_length)
                start_batch = 0
                loss_sum = torch.zeros((), dtype=torch.float64, device=device)
                n_seen = 0
            for b in range(start_batch, len(batches)):
                index = batches[b]
                cls.before_step(core, optimizer, step)  # e.g. HiFT: which parameters take gradients now
                factor = lr_factor(cls.schedule_step(core, step), schedule_total, warmup, hp["lr_scheduler"])
                for group in optimizer.param_groups:
                    group["lr"] = hp["lr"] * factor
                rows, scale = par.local_rows(index)
                if packing is not None:
                    batch, targets = collate_packed(train, rows, device, packing)
                else:
                    batch = collate(train, rows, device)
                    targets = collate_targets(train, rows, device, logits_only)
                with fast.autocast(device):
                    loss = model(**batch, **targets).loss
                (loss if scale is None else loss * scale).backward()
                if hp["max_grad_norm"] > 0:  # over the gradients this step computed (grad None: skipped)
                    torch.nn.utils.clip_grad_norm_(trainable, hp["max_grad_norm"], foreach=True)
                optimizer.step()
                step += 1
                cls.after_step(core, step)
                optimizer.zero_grad(set_to_none=True)
                if scale != 0.0:
                    loss_sum += loss.detach().double() * len(rows)
                    n_seen += len(rows)
                loss_watch.update(loss, step)
                stop, due = par.any(preemption.requested, preemption.periodic_due())
                if stop or due or loss_watch.due(step) or b == len(batches) - 1:
                    loss_watch.check(par, step)  # never checkpoint or validate a diverged run
                if stop or due:
                    state = snapshot(epoch, b + 1, batches, preemption.reason if stop else "periodic")
                    if par.main:
                        checkpoint.save(ckpt_path, state)
                    par.barrier()
                    if stop:
                        print(f"{preemption.signal_name}: saved {ckpt_path} at step {step}; "
                              f"the next attempt resumes there", flush=True)
                        raise checkpoint.Preempted(ckpt_path, preemption.exit_code)
            batches = None
            train_time += time.perf_counter() - t0
            val_metrics, _ = score_part(kind, model, val, hp["eval_batch_size"], device, val_scoring, fast, tokenizer)
            val_score = val_metrics.get(val_metric)
            entry = {"epoch": epoch, "val_score": val_score, "val_metrics": val_metrics,
                     "train_loss": float(par.sum(loss_sum)) / max(1, int(par.sum(n_seen)))}
            epochs.append(entry)
            if best is None or (val_score is not None and (best["val_score"] is None or val_score > best["val_score"])):
                best = entry
                best_state = par.trainable_state(model)

    if not par.main:  # the main process writes the outputs
        par.close()
        return {}
    out_dir.mkdir(parents=True, exist_ok=True)
    weights_path = out_dir / "weights.safetensors"
    if divergence.error is not None:  # nothing trained is worth keeping; the rule still expects the file
        best, best_state = {"epoch": None, "val_score": None}, {}
    methods.save_trained(core, weights_path, state=best_state)
    record = {
        **{k: run_id[k] for k in ("model", "task", "method", "cell", "seed") if k in run_id},
        "seed": int(seed),
        "task_kind": kind.name,
        "method_type": method_type,
        "method_options": dataclasses.asdict(options),
        "method_notes": ctx.notes,
        "hyperparameters": hp,
        "total_steps": total_steps,
        "params": params,
        "epochs": epochs,
        "best_epoch": best["epoch"],
        "val_metric": val_metric,
        "best_val_score": best["val_score"],
        # what evaluation and weight analysis check the weights file against before they use it
        "weights_sha256": sha256_file(weights_path),
        "train_examples": int(meta["parts"]["train"].get("examples", len(train))),
        "train_rows": len(train),  # model inputs: QA windows can outnumber examples
        "validation_examples": int(meta["parts"]["validation"].get("examples", len(val))),
        "wall_time_s": time.perf_counter() - start,
        "train_time_s": train_time,
        "train_samples_per_s": len(train) * hp["epochs"] / train_time if train_time > 0 else None,
        # input tokens trained on (padding not counted) per second of the epoch loops
        "train_tokens_per_s": int(train.lengths.sum()) * hp["epochs"] / train_time if train_time > 0 else None,
        "batching": batching,
        "peak_host_mem_mb": _peak_host_mb(),
        "peak_gpu_mem_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
        "device": str(device) if device.type == "cpu" else f"{device} ({torch.cuda.get_device_name(device)})",
        "threads": torch.get_num_threads(),
        "processes": par.world,
        "parallel": par.strategy if par.world > 1 else None,
        "provenance": {
            **provenance.collect(),
            # Which data exactly: the raw datasets' manifest hashes and the tokenized parts'.
            "data": {
                "raw_manifests": meta.get("raw_manifests", {}),
                "tokenized_parts": {k: v.get("sha256") for k, v in meta.get("parts", {}).items()},
            },
            "fast_path": fast.record(),
            "heap_allocations": on_heap,  # lwob.run.fastpath.heap_allocations (no number depends on it)
            **(provenance_extra or {}),
        },
    }
    if divergence.error is not None:
        record["diverged"] = {"step": divergence.error.step, "epoch": divergence.error.epoch}
        record["train_samples_per_s"] = record["train_tokens_per_s"] = None  # it stopped part-way: no measure of speed
    record["resumed"] = resumed is not None
    if resumed is not None:  # where from: a checkpoint saved on SIGTERM or a periodic one
        record["resumed_from"] = {"step": resumed["step"], "reason": resumed.get("reason")}
    write_json(out_dir / "train.json", record)
    ckpt_path.unlink(missing_ok=True)
    par.close()
    return record
