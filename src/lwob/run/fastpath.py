"""The fast training path's switches: mixed precision, TF32, the fused optimizer, torch.compile.

Each is a training setting (`training.precision`, `.tf32`, `.fused_optimizer`, `.compile`,
at any level of the config) resolved once per run for its device; what was resolved is
recorded in the run's provenance (`train.json` -> provenance.fast_path) and evaluation
reuses it, so a run is always scored the way it was trained.

- precision: "bf16" runs forward and backward under bf16 autocast while the weights, their
  gradients and the optimizer state stay fp32 (the master weights); "fp32" runs everything
  in fp32; "auto" (the default) picks bf16 where the hardware computes it natively (CUDA
  GPUs with bf16, CPUs with AVX512-BF16 or AMX) and fp32 elsewhere.
- tf32: lets CUDA matmuls and convolutions of fp32 tensors use TF32 (no effect on CPU).
- fused_optimizer: AdamW's fused kernel (CPU and CUDA) instead of the per-tensor loop.
- compile: torch.compile of the model (dynamic shapes, since batches are padded per batch);
  off by default, as compiling costs more than it saves on short runs.

Around the training loop on a CPU, `heap_allocations` keeps large buffers on the heap
(glibc), which changes no number: see there.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import asdict, dataclass

import torch

from ..errors import ConfigError
from ..plan.config import TRAINING_CHOICES

PRECISIONS = TRAINING_CHOICES["precision"]


@functools.lru_cache(maxsize=None)
def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 matmuls natively (AVX512-BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def native_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return cpu_has_native_bf16()
    return False


@dataclass(frozen=True)
class FastPath:
    precision: str = "fp32"
    tf32: bool = True
    fused_optimizer: bool = True
    compile: bool = False

    @classmethod
    def resolve(cls, hp: dict, device: torch.device) -> "FastPath":
        precision = hp.get("precision", "auto")
        if precision not in PRECISIONS:
            raise ConfigError(f"training.precision: one of {', '.join(PRECISIONS)}, got {precision!r}")
        if precision == "auto":
            precision = "bf16" if native_bf16(device) else "fp32"
        return cls(precision=precision, tf32=bool(hp.get("tf32", True)),
                   fused_optimizer=bool(hp.get("fused_optimizer", True)), compile=bool(hp.get("compile", False)))

    @classmethod
    def from_record(cls, record: dict) -> "FastPath":
        """The fast path a finished run was trained with (fp32 for records from before it)."""
        recorded = (record.get("provenance") or {}).get("fast_path") or {}
        return cls(**{k: v for k, v in recorded.items() if k in cls.__dataclass_fields__})

    def apply_backend(self, device: torch.device) -> None:
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = self.tf32
            torch.backends.cudnn.allow_tf32 = self.tf32

    def autocast(self, device: torch.device):
        """The context forward passes (and the loss) run in."""
        if self.precision == "bf16":
            return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def prepare(self, model, cast_frozen: bool = True):
        """The model as the loop calls it (compiled in place: names and state dict unchanged).

        Under bf16, the frozen weights of linear layers are stored in bf16 once
        (`cast_frozen`): autocast would cast them to bf16 in every forward anyway, so the
        results are the same, bit for bit, without the copy per step (and with half their
        memory). Trainable tensors stay fp32 (the master weights); so do layer norms and
        embeddings, which autocast runs in fp32.
        """
        if self.precision == "bf16" and cast_frozen:
            cast_frozen_linear_weights(model)
        if self.compile:
            model.compile(dynamic=True)
        return model

    def record(self) -> dict:
        return asdict(self)


def cast_frozen_linear_weights(model, dtype=torch.bfloat16) -> int:
    """Store the frozen weight and bias of every nn.Linear in `dtype`; returns how many
    tensors were cast."""
    n = 0
    for module in model.modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        for name in ("weight", "bias"):
            param = getattr(module, name, None)
            if param is not None and not param.requires_grad and param.dtype != dtype:
                param.data = param.data.to(dtype)
                n += 1
    return n


#: glibc's mallopt parameters (malloc.h) and the defaults `heap_allocations` restores.
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
GLIBC_DEFAULTS = {M_TRIM_THRESHOLD: 128 * 1024, M_MMAP_MAX: 65536}


@contextlib.contextmanager
def heap_allocations(device: torch.device):
    """On a CPU with glibc: large buffers come from the heap and go back to it, instead of
    fresh memory-mapped pages for every allocation above 32 MB (glibc's largest mmap
    threshold) that are unmapped again when freed. A training step allocates the same large
    buffers every time (MiniLM's word-embedding gradient is 47 MB, SmolLM2's 113 MB), and
    first touching fresh pages (page faults) cost FFT of MiniLM about 13% of its time
    (docs/BENCHMARKS.md). Only where memory comes from changes: every number is the same, bit
    for bit. Yields whether it applied; on leaving, glibc's defaults are set again and the
    heap's free memory is returned to the system."""
    libc = None
    if device.type == "cpu":
        import ctypes
        import ctypes.util

        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            if not (libc.mallopt(M_MMAP_MAX, 0) and libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)):
                libc = None
        except (OSError, AttributeError):  # not glibc (musl, macOS): its allocator as it is
            libc = None
    try:
        yield libc is not None
    finally:
        if libc is not None:
            for param, value in GLIBC_DEFAULTS.items():
                libc.mallopt(param, value)
            libc.malloc_trim(0)


#: Model types whose sequence-classification head reads only the first position's last hidden
#: state (BERT's pooler, RoBERTa's classification head: `[CLS]` / `<s>`), with BERT's layer
#: layout (attention.self.query/key/value, attention.output, feed_forward_chunk).
FIRST_POSITION_HEADS = ("bert", "roberta")


def first_position_last_layer(core, kind) -> str | None:
    """Where the task head reads only the first position of the last layer's output, make that
    layer compute only it: its queries, attention output and feed-forward for one position
    instead of every one (keys and values still over every position). The head's input, the
    logits and the gradients are the same function of the weights; about a sixth of MiniLM's
    forward and backward (most of one layer of six) is not computed. The layer's dropout masks
    are drawn over the one position, so a run's numbers are not bitwise those of the full
    layer. None when applied, else why not (the model is then left as it is)."""
    import sys
    import types

    from ..methods.base import encoder_layers
    from ..models import prompt_learning, unwrapped

    base = unwrapped(core)
    config = getattr(base, "config", None)
    if kind.auto_model != "AutoModelForSequenceClassification":
        return "the task's head reads every position"
    if getattr(config, "model_type", None) not in FIRST_POSITION_HEADS:
        return f"not known to read only the first position ({getattr(config, 'model_type', None)})"
    if prompt_learning(core):
        return "prompt learning adds positions inside the attention"
    if config.is_decoder or config.add_cross_attention or config.chunk_size_feed_forward:
        return "a decoder, cross-attention or chunked feed-forward layer"
    layer = encoder_layers(base)[-1]
    attention = getattr(getattr(layer, "attention", None), "self", None)
    if attention is None or not all(hasattr(attention, k) for k in ("query", "key", "value", "scaling")):
        return "the last layer is not laid out as BERT's"
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    eager = sys.modules[type(attention).__module__].eager_attention_forward

    def forward(self, hidden_states, attention_mask=None, encoder_hidden_states=None, encoder_attention_mask=None,
                past_key_values=None, **kwargs):
        attn = self.attention.self
        batch, length, _ = hidden_states.shape
        first = hidden_states[:, :1]
        heads = (batch, -1, attn.num_attention_heads, attn.attention_head_size)
        query = attn.query(first).view(*heads).transpose(1, 2)
        key = attn.key(hidden_states).view(*heads).transpose(1, 2)
        value = attn.value(hidden_states).view(*heads).transpose(1, 2)
        if attention_mask is not None and attention_mask.dim() == 4 and attention_mask.shape[-2] == length:
            attention_mask = attention_mask[:, :, :1, :]  # the first query's row
        interface = ALL_ATTENTION_FUNCTIONS.get_interface(attn.config._attn_implementation, eager)
        context, _ = interface(attn, query, key, value, attention_mask,
                               dropout=0.0 if not attn.training else attn.dropout.p, scaling=attn.scaling, **kwargs)
        attention_output = self.attention.output(context.reshape(batch, 1, -1).contiguous(), first)
        return self.feed_forward_chunk(attention_output)  # (batch, 1, hidden): what the head reads

    layer.forward = types.MethodType(forward, layer)
    return None
