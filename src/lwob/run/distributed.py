"""Training one run across several processes: DDP through accelerate, or FSDP.

A run whose `training.processes` is above 1 is launched by its job with
`torch.distributed.run` (what `accelerate launch --multi_gpu` runs underneath), one process
per GPU, or per CPU slot with the gloo backend; every process runs `train_run` with a
`Parallel` that says which rows of each batch are its own and how to gather state.

- `ddp`: accelerate's `Accelerator` sets up the process group and the device and wraps the
  model in DistributedDataParallel (gradients averaged across processes).
- `fsdp`: torch's `fully_shard` (FSDP2, the API accelerate's FSDP v2 plugin calls) shards
  every transformer layer and the root, for models whose full training state does not fit
  on one GPU. It is applied directly because accelerate falls back to DDP on CPU, which
  would leave this path untested without GPUs.

Each global batch keeps its size: process r takes rows r, r+W, ... and scales its mean loss
by (its rows x W / batch rows), so the averaged gradient equals the single-process one.
With dropout off, two processes reach the single-process weights up to float summation
order (tests/test_distributed.py). Checkpoints hold full (unsharded) state and every
process's RNG, so a preempted multi-process run resumes like a single-process one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import ConfigError

STRATEGIES = ("ddp", "fsdp")


def check(method_cls, processes: int, parallel: str, where: str, nodes: int = 1) -> None:
    """A run's `training.processes`/`nodes`/`parallel` suit its method (ConfigError); the
    rule lives in lwob.plan.config, which applies it when the workflow is planned."""
    from ..plan.config import check_strategy

    check_strategy(method_cls, processes, parallel, where, nodes=nodes)


def in_worker() -> bool:
    """True inside a process started by torch.distributed.run."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


@dataclass
class Parallel:
    """The process's place in a multi-process run (world 1: a plain single-process run)."""

    strategy: str = "none"
    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    accelerator: Any = None

    @classmethod
    def start(cls, strategy: str, device_name: str) -> "Parallel":
        if not in_worker() or int(os.environ["WORLD_SIZE"]) == 1:
            return cls()
        if strategy not in STRATEGIES:
            raise ConfigError(f"training.parallel: one of {list(STRATEGIES)}, got {strategy!r}")
        from accelerate import Accelerator

        use_cpu = device_name == "cpu" or not torch.cuda.is_available()
        accelerator = Accelerator(cpu=use_cpu)
        return cls(strategy=strategy, rank=accelerator.process_index, world=accelerator.num_processes,
                   device=accelerator.device, accelerator=accelerator)

    @property
    def main(self) -> bool:
        return self.rank == 0

    # ---------------------------------------------------------------- model
    def wrap(self, model):
        if self.world == 1:
            return model
        if self.strategy == "ddp":
            return self.accelerator.prepare_model(model)
        from torch.distributed.fsdp import fully_shard

        for layers in _layer_lists(model):
            for layer in layers:
                fully_shard(layer)
        fully_shard(model)
        return model

    def unwrap(self, model):
        return model.module if self.strategy == "ddp" and self.world > 1 else model

    # ---------------------------------------------------------------- batches
    def local_rows(self, index: torch.Tensor) -> tuple[torch.Tensor, float | None]:
        """This process's rows of a global batch and its loss scale (None: leave the loss as is).

        A process left without rows (a last batch smaller than the world) runs one row at
        scale 0, so every process still takes part in the gradient all-reduce.
        """
        if self.world == 1:
            return index, None
        rows = index[self.rank :: self.world]
        if len(rows) == 0:
            return index[:1], 0.0
        return rows, len(rows) * self.world / len(index)

    # ---------------------------------------------------------------- collectives
    def any(self, *flags: bool) -> list[bool]:
        """Flags true on any process (a SIGTERM that reached only some of them)."""
        if self.world == 1:
            return [bool(f) for f in flags]
        t = torch.tensor([int(bool(f)) for f in flags], dtype=torch.int64, device=self._comm_device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return [bool(v) for v in t.tolist()]

    def sum(self, value: torch.Tensor | float) -> torch.Tensor:
        t = torch.as_tensor(value, dtype=torch.float64).to(self._comm_device).clone()
        if self.world > 1:
            torch.distributed.all_reduce(t)
        return t.cpu()

    def gather(self, obj) -> list:
        if self.world == 1:
            return [obj]
        out: list = [None] * self.world
        torch.distributed.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    @property
    def _comm_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")

    # ---------------------------------------------------------------- state
    def trainable_state(self, model) -> dict[str, torch.Tensor]:
        """Full trainable tensors on CPU under the unwrapped model's names (FSDP: gathered;
        only the main process receives them)."""
        if self.strategy != "fsdp" or self.world == 1:
            core = self.unwrap(model)
            return {n: p.detach().to("cpu", copy=True) for n, p in core.named_parameters() if p.requires_grad}
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        names = {n for n, p in model.named_parameters() if p.requires_grad}
        full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return {n: t for n, t in full.items() if n in names}

    def optimizer_state(self, model, optimizer) -> dict:
        if self.strategy != "fsdp" or self.world == 1:
            return optimizer.state_dict()  # DDP: the same on every process
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        return get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def load_optimizer_state(self, model, optimizer, state: dict) -> None:
        if self.strategy != "fsdp" or self.world == 1:
            optimizer.load_state_dict(state)
            return
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))

    def close(self) -> None:
        if self.world > 1 and torch.distributed.is_initialized():
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()


def _layer_lists(model) -> list[torch.nn.ModuleList]:
    """The model's stacks of transformer layers (encoder or decoder `layer`/`layers` lists)."""
    return [m for name, m in model.named_modules()
            if isinstance(m, torch.nn.ModuleList) and name.split(".")[-1] in ("layer", "layers", "h") and len(m)]
