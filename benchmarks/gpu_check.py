#!/usr/bin/env python
"""The GPU check's stages (benchmarks/gpu_check.sh runs this; see docs/BENCHMARKS.md, "GPU check").

1. environment: torch, CUDA, the device, bf16 support.
2. train + evaluate: a generated sentiment task (a tokenizer trained here, a config-built
   BERT-shaped model with random weights; nothing from a hub) trained with FFT and with LoRA
   through the real entry `lwob.run.launch.train` at `precision: bf16`, `tf32: true`,
   `fused_optimizer: true`, then scored with `lwob.run.evaluation.evaluate_run`. Checked: the
   fast path in train.json (bf16, TF32, fused), that the optimizer built was the fused AdamW,
   TF32 switched on (CUDA), the peak GPU memory in train.json (a number on CUDA, null on the
   CPU), and that evaluation ran under autocast at the precision train.json recorded.
3. model FLOP utilisation against the measured bf16 matmul peak (benchmarks/bench_flops.py):
   a RoBERTa-base-shaped full fine-tuning step and a 1B-parameter Llama-shaped LoRA step.

    python benchmarks/gpu_check.py [--tiny] [--device cuda|cpu] [--out DIR]

--tiny shrinks every model and batch so that the whole check runs on a CPU in about a minute
(the dry mode of gpu_check.sh). Exit status 1 when a check fails; the figures are printed and
written to DIR/gpu_check.json and DIR/gpu_check.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

import torch  # noqa: E402

import bench_flops as bf  # noqa: E402

POS = ["good", "great", "wonderful", "excellent", "lovely", "superb", "fine", "brilliant"]
NEG = ["bad", "awful", "terrible", "poor", "boring", "dreadful", "weak", "horrible"]
NOUNS = ["movie", "film", "story", "plot", "cast", "ending", "script", "show"]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

#: Sizes: the real check (a GPU) and --tiny (the dry mode on a CPU).
SIZES = {
    "full": dict(task={"train": 512, "validation": 128, "origin": 256, "adv": 128}, epochs=2, batch=32,
                 small=dict(num_hidden_layers=4, hidden_size=256, num_attention_heads=4, intermediate_size=1024),
                 roberta=dict(shape=bf.BASE_SHAPE, batch=32, seq=128, warmup=3, reps=10),
                 llama=dict(shape=bf.LLAMA_1B_SHAPE, batch=4, seq=1024, warmup=3, reps=5),
                 peak_n=8192, peak_reps=20),
    "tiny": dict(task={"train": 48, "validation": 16, "origin": 24, "adv": 16}, epochs=1, batch=8,
                 small=dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64),
                 roberta=dict(shape=dict(bf.BASE_SHAPE, num_hidden_layers=2, hidden_size=64, num_attention_heads=2,
                                         intermediate_size=128, vocab_size=2000),
                              batch=2, seq=16, warmup=1, reps=2),
                 llama=dict(shape=dict(bf.LLAMA_1B_SHAPE, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                       num_attention_heads=4, num_key_value_heads=2, vocab_size=1000),
                            batch=2, seq=16, warmup=1, reps=2),
                 peak_n=256, peak_reps=3),
}


class Checks:
    def __init__(self):
        self.failed: list[str] = []

    def __call__(self, ok: bool, what: str) -> None:
        print(f"  [{'ok' if ok else 'FAILED'}] {what}", flush=True)
        if not ok:
            self.failed.append(what)


# --------------------------------------------------------------------------- the task and model


def sentences(n: int, seed: int) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.randrange(2)
        extra = " ".join(rng.choice(NOUNS) for _ in range(rng.randrange(0, 8)))
        rows.append((f"the {rng.choice(NOUNS)} was really {rng.choice(POS if label else NEG)} {extra}".strip(), label))
    return rows


def make_tokenizer(dest: Path):
    """A WordLevel tokenizer over the generator's words, [CLS] x [SEP], saved as a HF fast tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = sorted({w for s, _ in sentences(400, 0) for w in s.split()} | set(POS + NEG + NOUNS))
    vocab = {t: i for i, t in enumerate(SPECIALS + words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")
    fast.save_pretrained(str(dest))
    return fast


def write_task(directory: Path, tok, sizes: dict, max_length: int = 64) -> Path:
    """A tokenized task folder in lwob.data.tokenize's format (meta.json, train/validation
    parquet, eval/{name}.parquet + .json), as tests/training_data.py writes it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lwob.io import sha256_file, write_json

    (directory / "eval").mkdir(parents=True, exist_ok=True)
    parts = {}
    for i, (part, n) in enumerate(sizes.items()):
        rows = sentences(n, seed=100 + i)
        enc = tok([r[0] for r in rows], truncation=True, max_length=max_length)
        cols = {"row": pa.array(range(n), pa.int64()), "idx": pa.array(range(n), pa.int64()),
                "labels": pa.array([r[1] for r in rows], pa.int64()),
                "input_ids": pa.array(enc["input_ids"], pa.list_(pa.int32()))}
        training_part = part in ("train", "validation")
        path = (directory if training_part else directory / "eval") / f"{part}.parquet"
        pq.write_table(pa.table(cols), path)
        entry = {"records": n, "examples": n, "sha256": sha256_file(path),
                 "source": {"dataset": "generated", "split": part}}
        if training_part:
            parts[part] = {**entry, "kind": part, **({"scoring": {}} if part == "validation" else {})}
        else:
            write_json(directory / "eval" / f"{part}.json", {
                **entry, "task": "gen-sst2", "eval_set": part, "kind": "adv" if part == "adv" else "origin",
                "column": "gen-sst2", "scoring": {}, "raw_manifests": {}})
    write_json(directory / "meta.json", {
        "task": "gen-sst2", "kind": "classification", "model": "small", "tokenizer_path": str(directory),
        "pad_token_id": tok.pad_token_id, "max_length": max_length, "num_labels": 2, "parts": parts,
        "raw_manifests": {}})
    return directory


# --------------------------------------------------------------------------- stage 2


def train_and_evaluate(work: Path, device: torch.device, size: dict, check: Checks) -> list[dict]:
    import lwob.run.training as lt
    from lwob.io import read_json
    from lwob.run import fastpath
    from lwob.run.evaluation import evaluate_run
    from lwob.run.launch import train

    tok_dir = work / "tokenizer"
    tok = make_tokenizer(tok_dir)
    model_dir = bf.make_random_base_model(work / "small-bert", shape=dict(
        size["small"], vocab_size=len(tok), max_position_embeddings=128, type_vocab_size=2), tokenizer_dir=tok_dir)
    task = write_task(work / "tokenized" / "small" / "gen-sst2", tok, size["task"])

    optimizers: list = []
    make_optimizer = lt.make_optimizer

    def recording_make_optimizer(*args, **kwargs):  # what training really built
        opt = make_optimizer(*args, **kwargs)
        optimizers.append(opt)
        return opt

    autocasts: list = []
    autocast = fastpath.FastPath.autocast

    def recording_autocast(self, dev):  # the precision each forward pass ran at
        autocasts.append((self.precision, torch.device(dev).type))
        return autocast(self, dev)

    lt.make_optimizer = recording_make_optimizer
    fastpath.FastPath.autocast = recording_autocast
    out = []
    try:
        for method, options, lr in [("fft", {}, 1e-4), ("lora", {"r": 8, "alpha": 16, "dropout": 0.0}, 1e-3)]:
            run_dir = work / "runs" / method
            hp = {"epochs": size["epochs"], "batch_size": size["batch"], "eval_batch_size": 4 * size["batch"],
                  "lr": lr, "warmup_ratio": 0.1, "weight_decay": 0.01, "device": device.type,
                  "precision": "bf16", "tf32": True, "fused_optimizer": True, "group_by_length": False}
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            t0 = time.perf_counter()
            del optimizers[:]
            rec = train(model_dir=model_dir, tokenized_dir=task, method_type=method, method_options=options,
                        hyperparameters=hp, seed=0, out_dir=run_dir,
                        run_id={"model": "small", "task": "gen-sst2", "method": method, "seed": 0},
                        threads=None if device.type == "cuda" else 2)
            train_s = time.perf_counter() - t0
            on_disk = read_json(run_dir / "train.json")
            fast = on_disk["provenance"]["fast_path"]
            print(f"[train {method}] {train_s:.1f} s, device {on_disk['device']}, fast path {fast}, "
                  f"peak GPU memory {on_disk['peak_gpu_mem_mb']} MB", flush=True)
            check(on_disk["best_epoch"] == rec["best_epoch"], f"{method}: train.json written")
            check(fast.get("precision") == "bf16", f"{method}: train.json records bf16")
            check(fast.get("tf32") is True and fast.get("fused_optimizer") is True,
                  f"{method}: train.json records TF32 and the fused optimizer")
            check(len(optimizers) == 1 and bool(optimizers[0].defaults.get("fused")),
                  f"{method}: the optimizer built is AdamW(fused=True)")
            check(("bf16", device.type) in autocasts, f"{method}: training ran under bf16 autocast on {device.type}")
            if device.type == "cuda":
                check(device.type in on_disk["device"], f"{method}: trained on {on_disk['device']}")
                check(torch.backends.cuda.matmul.allow_tf32, f"{method}: TF32 matmuls on")
                check(isinstance(on_disk["peak_gpu_mem_mb"], (int, float)) and on_disk["peak_gpu_mem_mb"] > 0,
                      f"{method}: peak GPU memory recorded ({on_disk['peak_gpu_mem_mb']} MB)")
            else:
                check(on_disk["peak_gpu_mem_mb"] is None, f"{method}: no peak GPU memory on the CPU (null)")

            del autocasts[:]
            t0 = time.perf_counter()
            ev = evaluate_run(model_dir=model_dir, tokenized_dir=task, run_dir=run_dir, method_type=method,
                              method_options=options, eval_parts=[task / "eval" / f"{p}.json" for p in ("origin", "adv")],
                              out_json=work / "eval" / f"{method}.json",
                              out_predictions=work / "eval" / f"{method}.predictions.parquet")
            eval_s = time.perf_counter() - t0
            acc = {name: m.get("accuracy") for name, m in ev["metrics"].items()}
            print(f"[evaluate {method}] {eval_s:.1f} s, accuracy {acc}", flush=True)
            check(all(a is not None and 0 <= a <= 1 for a in acc.values()) and set(acc) == {"origin", "adv"},
                  f"{method}: both eval sets scored")
            recorded = fast["precision"]
            check(bool(autocasts) and set(autocasts) == {(recorded, device.type)},
                  f"{method}: evaluation ran at the recorded precision ({recorded}) on {device.type}: {set(autocasts)}")
            out.append({"method": method, "train_s": train_s, "eval_s": eval_s, "device": on_disk["device"],
                        "fast_path": fast, "peak_gpu_mem_mb": on_disk["peak_gpu_mem_mb"],
                        "train_samples_per_s": on_disk.get("train_samples_per_s"), "accuracy": acc})
    finally:
        lt.make_optimizer = make_optimizer
        fastpath.FastPath.autocast = autocast
    return out


# --------------------------------------------------------------------------- stage 3


def free(device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def utilisation(work: Path, device: torch.device, size: dict, check: Checks) -> dict:
    peaks = {"bf16": bf.matmul_peak(torch.bfloat16, n=size["peak_n"], reps=size["peak_reps"], device=device)}
    torch.backends.cuda.matmul.allow_tf32 = False
    peaks["fp32"] = bf.matmul_peak(torch.float32, n=size["peak_n"], reps=size["peak_reps"], device=device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        peaks["tf32"] = bf.matmul_peak(torch.float32, n=size["peak_n"], reps=size["peak_reps"], device=device)
    print("[peak] " + ", ".join(f"{k} {v / 1e12:.2f} TFLOP/s" for k, v in peaks.items())
          + f" ({size['peak_n']}^3 matmul, best of {size['peak_reps']})", flush=True)

    rob = size["roberta"]
    model_dir = bf.make_random_base_model(work / "roberta-base-random", shape=rob["shape"],
                                          tokenizer_dir=work / "tokenizer")
    args = SimpleNamespace(batch=rob["batch"], seq=rob["seq"], warmup=rob["warmup"], reps=rob["reps"], profile=[],
                           device=str(device))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    roberta = bf.run_variant("bf16-sdpa", model_dir, args, {"kind": "classification", "num_labels": 2,
                                                             "max_length": rob["seq"]})
    roberta["peak_gpu_mem_mb"] = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    roberta.pop("profile", None)
    free(device)
    lla = size["llama"]
    llama = bf.run_llama_lora(device, lla["batch"], lla["seq"], lla["warmup"], lla["reps"], shape=lla["shape"])
    free(device)
    rows = []
    for name, r in [("RoBERTa-base-shaped FFT (6NT)", roberta), ("Llama-1B-shaped LoRA r=8 (4NT + 2 N_tr T)", llama)]:
        mfu = r["flop_s"] / peaks["bf16"]
        rows.append({"step": name, "tokens": r.get("tokens_per_s", 0) * r["step_s_best"], "step_s": r["step_s_best"],
                     "tokens_per_s": r["tokens_per_s"], "tflop_s": r["flop_s"] / 1e12, "mfu_bf16": mfu,
                     "N": r["N"], "N_trainable": r["N_trainable"], "params_total": r.get("params_total"),
                     "peak_gpu_mem_mb": r.get("peak_gpu_mem_mb")})
        check(r["step_s_best"] > 0 and 0 < mfu < 1.5, f"{name}: utilisation measured ({100 * mfu:.1f}% of bf16 peak)")
    check(bool(llama["loss_finite"]) and llama["fused_optimizer"] and llama["precision"] == "bf16",
          "Llama LoRA step: finite loss, bf16 autocast, fused AdamW")
    if size is SIZES["full"]:
        check(1.0e9 <= llama["params_total"] <= 1.5e9, f"Llama shape has about 1B parameters ({llama['params_total'] / 1e9:.2f}B)")
    return {"peaks": peaks, "rows": rows, "roberta": roberta, "llama": llama}


def render(env: dict, runs: list, mfu: dict) -> str:
    lines = [f"GPU check, {env['date']}: {env['device_name']}; torch {env['torch']} (CUDA {env['cuda']}), "
             f"transformers {env['transformers']}, peft {env['peft']}.", "",
             "| run | train s | eval s | device | precision | TF32 | fused AdamW | peak GPU MB | accuracy origin / adv |",
             "|---|---:|---:|---|---|---|---|---:|---|"]
    for r in runs:
        fp = r["fast_path"]
        lines.append(f"| {r['method']} | {r['train_s']:.1f} | {r['eval_s']:.1f} | {r['device']} | {fp['precision']} "
                     f"| {fp['tf32']} | {fp['fused_optimizer']} | {r['peak_gpu_mem_mb'] if r['peak_gpu_mem_mb'] is None else format(r['peak_gpu_mem_mb'], '.0f')} "
                     f"| {r['accuracy']['origin']:.3f} / {r['accuracy']['adv']:.3f} |")
    p = mfu["peaks"]
    lines += ["", "Matmul peak: " + ", ".join(f"{k} {v / 1e12:.1f} TFLOP/s" for k, v in p.items()) + ".", "",
              "| step | params (N / trainable) | step s | tokens/s | TFLOP/s | MFU vs bf16 peak | peak GPU MB |",
              "|---|---|---:|---:|---:|---:|---:|"]
    for r in mfu["rows"]:
        mem = "-" if r["peak_gpu_mem_mb"] is None else f"{r['peak_gpu_mem_mb']:.0f}"
        lines.append(f"| {r['step']} | {r['N'] / 1e6:.1f}M / {r['N_trainable'] / 1e6:.2f}M | {r['step_s']:.3f} "
                     f"| {r['tokens_per_s']:.0f} | {r['tflop_s']:.2f} | {100 * r['mfu_bf16']:.1f}% | {mem} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="tiny models and batches (the dry mode, on a CPU)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "gpu_check")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: CUDA is not available (use --device cpu --tiny for the dry mode)")
        return 1
    if device.type == "cpu":
        torch.set_num_threads(min(2, os.cpu_count() or 1))
    size = SIZES["tiny" if args.tiny else "full"]
    import peft
    import transformers

    from lwob.models import quiet_transformers

    quiet_transformers()
    env = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "torch": torch.__version__,
           "cuda": torch.version.cuda, "transformers": transformers.__version__, "peft": peft.__version__,
           "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({bf.cpu_model()})",
           "bf16_supported": torch.cuda.is_bf16_supported() if device.type == "cuda" else None, "tiny": args.tiny}
    print(f"[environment] {json.dumps(env)}", flush=True)
    check = Checks()
    work = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    try:
        t0 = time.perf_counter()
        runs = train_and_evaluate(work, device, size, check)
        print(f"[stage train+evaluate] {time.perf_counter() - t0:.0f} s", flush=True)
        free(device)
        t0 = time.perf_counter()
        mfu = utilisation(work, device, size, check)
        print(f"[stage utilisation] {time.perf_counter() - t0:.0f} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = render(env, runs, mfu)
    total = time.perf_counter() - t_start
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.md").write_text(table + f"\n\nRun time: {total:.0f} s.\n")
    (out / "gpu_check.json").write_text(json.dumps(
        {"environment": env, "runs": runs, "peaks": mfu["peaks"], "utilisation": mfu["rows"],
         "roberta": mfu["roberta"], "llama": mfu["llama"], "failed": check.failed, "run_time_s": total},
        indent=2, default=str))
    print()
    print(table)
    print(f"\ngpu_check: {total:.0f} s; {len(check.failed)} check(s) failed; written {out / 'gpu_check.md'}")
    for what in check.failed:
        print(f"  FAILED: {what}")
    return 1 if check.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
