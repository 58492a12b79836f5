#!/usr/bin/env python
"""Training throughput of the lwob loop vs an HF ``transformers.Trainer``, per PEFT method.

For each fine-tuning method (options and learning rates from config/demo.yaml) both trainers
do exactly the same work: the same tokenized demo-sst2 train/validation parts, the same model
built by ``lwob.run.training.build_run_model`` (so the method is identical), the same epochs,
batch size, lr, warmup, weight decay, max grad norm, seed and torch threads, with an
evaluation on the validation part after every epoch.

Three trainers per method, in this order: lwob with its defaults (``precision: auto``, i.e.
bf16 autocast with fp32 master weights on a CPU with AVX512-BF16/AMX, fp32 elsewhere; fused
AdamW; length grouping from config/demo.yaml), the Trainer with its defaults (fp32: the
baseline of the ratio), and the Trainer with ``bf16=True`` (bf16 autocast, fp32 master
weights: a control that separates the precision from the loop).

Models (``--model``):

* ``demo``: the demo model all-MiniLM-L6-v2 (pretrained; 6 layers, hidden 384), default
  400 train examples x 3 epochs. Its validation accuracy is meaningful: the equality check
  (ours vs Trainer, within noise) is made here.
* ``roberta-base-random``: a RoBERTa-base-shaped encoder (12 layers, hidden 768, 12 heads,
  FFN 3072; BertConfig, vocab 30522) with random weights, saved with the demo model's
  tokenizer into a temp dir (``bench_flops.make_random_base_model``); default 128 train
  examples x 2 epochs so the 18 runs stay around 10 minutes on 2 cores. Its validation
  accuracy is chance level (random weights, few steps): meaningless, reported only for
  completeness.

Throughput definition (identical for both)::

    samples/s = train_examples * epochs / (wall time of the training loop, per-epoch validation included)

* lwob: ``train.json``'s ``train_time_s`` (the epoch loops) + the time spent in the
  per-epoch validation (``lwob.run.training.predict``, timed by wrapping it). train.json's own
  ``train_samples_per_s`` excludes validation; it is reported too (``ours_train_only``).
* Trainer: ``on_train_begin`` -> ``on_train_end`` (callback), which contains the epoch loops
  and the per-epoch ``evaluate()``; ``evaluate()`` is timed separately so a training-only
  figure is reported too (``trainer_train_only``).

Model loading, data loading and saving are outside the timed part for both.

    python benchmarks/bench_training.py [--model demo|roberta-base-random] [--methods fft,lora,...]
                                        [--epochs 3] [--n-train 400] [--threads 1] [--no-trainer-bf16]
                                        [--out benchmarks/out]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from machine import cpu_model, loadavg  # benchmarks/machine.py

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

ALL_METHODS = ["fft", "lora", "adalora", "prefix", "ia3", "bitfit"]
#: --model -> (default n_train, default epochs)
MODEL_DEFAULTS = {"demo": (400, 3), "roberta-base-random": (128, 2)}
TASK = "demo-sst2"
DATASET = "demo_sentiment"


# --------------------------------------------------------------------------- machine


def machine_info(threads: int) -> dict:
    cpu = cpu_model()
    import datasets
    import peft
    import transformers

    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    return {
        "cpu": cpu,
        "cores": affinity,
        "os_cpu_count": os.cpu_count(),
        "threads": threads,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "datasets": datasets.__version__,
        "platform": platform.platform(),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


# --------------------------------------------------------------------------- data


def prepare_data(config: dict, n_train: int, work: Path, model_dir: Path) -> Path:
    from lwob.data.sources import materialize
    from lwob.data.tokenize import prepare_task

    spec = dict(config["datasets"][DATASET])  # {source: demo, generator: sentiment, seed: 7}
    spec["n_train"] = int(n_train)
    raw = work / "raw" / DATASET
    materialize(DATASET, spec, raw)
    tok = work / "tokenized" / "minilm" / TASK
    prepare_task(TASK, config["tasks"][TASK], {DATASET: raw}, model_dir, "minilm", tok)
    return tok


# --------------------------------------------------------------------------- profiling


class OpProfile:
    """torch.profiler around one trainer's whole run (``--profile``): per-op self CPU time,
    kept to compare the two loops op by op (`compare_profiles`)."""

    def __init__(self):
        self.ops, self.total_ms = {}, 0.0

    def __enter__(self):
        from torch.profiler import ProfilerActivity, profile

        self._prof = profile(activities=[ProfilerActivity.CPU])
        self._prof.__enter__()
        return self

    def __exit__(self, *exc):
        self._prof.__exit__(*exc)
        for e in self._prof.key_averages():
            self.ops[e.key] = (e.self_cpu_time_total / 1000.0, e.count)
        self.total_ms = sum(ms for ms, _ in self.ops.values())
        return False


def compare_profiles(method: str, ours: OpProfile, other: OpProfile, top: int = 25) -> str:
    """The ops whose self time differs most between the loops (ms over the whole run, calls)."""
    keys = set(ours.ops) | set(other.ops)
    rows = sorted(keys, key=lambda k: -abs(ours.ops.get(k, (0, 0))[0] - other.ops.get(k, (0, 0))[0]))[:top]
    lines = [f"### {method}: ops by self CPU time, ours vs Trainer bf16 (whole run, ms; calls)", "",
             f"all ops: ours {ours.total_ms:.0f} ms, Trainer bf16 {other.total_ms:.0f} ms", "",
             "| op | ours ms | calls | Trainer ms | calls | ours - Trainer ms |", "|---|---:|---:|---:|---:|---:|"]
    for k in rows:
        (a, na), (b, nb) = ours.ops.get(k, (0.0, 0)), other.ops.get(k, (0.0, 0))
        lines.append(f"| `{k}` | {a:.0f} | {na} | {b:.0f} | {nb} | {a - b:+.0f} |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- lwob loop


def run_ours(*, model_dir, tok_dir, method: str, mcfg: dict, hp: dict, seed: int, threads: int, out: Path) -> dict:
    pred_time = [0.0]
    orig_predict = lt.predict

    def timed_predict(*a, **k):
        t0 = time.perf_counter()
        try:
            return orig_predict(*a, **k)
        finally:
            pred_time[0] += time.perf_counter() - t0

    lt.predict = timed_predict
    try:
        rec = lt.train_run(
            model_dir=model_dir, tokenized_dir=tok_dir, method_type=mcfg["type"],
            method_options=mcfg.get("options") or {}, hyperparameters=hp, seed=seed,
            out_dir=out / "runs" / method, run_id={"model": "minilm", "task": TASK, "method": method, "seed": seed},
            threads=threads,
        )
    finally:
        lt.predict = orig_predict
    n = rec["train_examples"] * rec["hyperparameters"]["epochs"]
    loop = rec["train_time_s"] + pred_time[0]
    accs = [e["val_score"] for e in rec["epochs"]]  # the primary metric: accuracy for classification
    return {
        "samples_per_s": n / loop,
        "train_only_samples_per_s": rec["train_samples_per_s"],
        "loop_s": loop,
        "eval_s": pred_time[0],
        "final_acc": accs[-1],
        "best_acc": rec["best_val_score"],
        "accs": accs,
        "threads": rec["threads"],
        "total_steps": rec["total_steps"],
        "notes": rec.get("method_notes"),
        "precision": ((rec.get("provenance") or {}).get("fast_path") or {}).get("precision", "fp32"),
    }


# --------------------------------------------------------------------------- HF Trainer


def hf_dataset(tok_dir: Path, part: str):
    import datasets
    import pyarrow.parquet as pq

    table = pq.read_table(tok_dir / f"{part}.parquet")
    cols = {"input_ids": table.column("input_ids").to_pylist(), "labels": table.column("labels").to_pylist()}
    if "token_type_ids" in table.column_names:
        cols["token_type_ids"] = table.column("token_type_ids").to_pylist()
    return datasets.Dataset.from_dict(cols)


def run_trainer(*, model_dir, tok_dir, method: str, mcfg: dict, hp: dict, seed: int, threads: int, out: Path,
                sampling: str = "random", bf16: bool = False) -> dict:
    from transformers import (AutoTokenizer, DataCollatorWithPadding, PrinterCallback, Trainer, TrainerCallback,
                              TrainingArguments)

    from lwob.io import read_json

    torch.set_num_threads(threads)
    meta = read_json(tok_dir / "meta.json")
    train_ds, val_ds = hf_dataset(tok_dir, "train"), hf_dataset(tok_dir, "validation")
    steps_per_epoch = math.ceil(len(train_ds) / hp["batch_size"])
    total_steps = steps_per_epoch * hp["epochs"]
    model, cls, _options, _ctx, _ = lt.build_run_model(
        model_dir=model_dir, meta=meta, method_type=mcfg["type"], method_options=mcfg.get("options") or {},
        seed=seed, total_steps=total_steps,
    )
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))

    class Timing(TrainerCallback):
        def __init__(self):
            self.t0 = self.t1 = None
            self.threads = None

        def on_train_begin(self, args, state, control, **kw):
            self.threads = torch.get_num_threads()
            self.t0 = time.perf_counter()

        def on_optimizer_step(self, args, state, control, **kw):
            # After optimizer.step(), before zero_grad() and before global_step += 1: the point
            # where the lwob loop calls Method.after_step(model, step + 1) (AdaLoRA
            # update_and_allocate needs the gradients, which on_step_end no longer has).
            cls.after_step(kw["model"], state.global_step + 1)

        def on_train_end(self, args, state, control, **kw):
            self.t1 = time.perf_counter()

    class TimedTrainer(Trainer):
        eval_s = 0.0

        def evaluate(self, *a, **k):
            t0 = time.perf_counter()
            try:
                return super().evaluate(*a, **k)
            finally:
                TimedTrainer.eval_s += time.perf_counter() - t0

    def compute_metrics(p):
        logits = p.predictions[0] if isinstance(p.predictions, tuple) else p.predictions
        labels = np.asarray(p.label_ids)
        keep = labels >= 0
        return {"accuracy": float((np.argmax(logits, -1)[keep] == labels[keep]).mean())}

    args = TrainingArguments(
        output_dir=str(out / ("trainer-bf16" if bf16 else "trainer") / method),
        per_device_train_batch_size=hp["batch_size"],
        per_device_eval_batch_size=hp["eval_batch_size"],
        num_train_epochs=hp["epochs"],
        learning_rate=hp["lr"],
        warmup_steps=hp["warmup_ratio"],  # transformers 5: a float in [0, 1) is a ratio (ceil(ratio * total))
        weight_decay=hp["weight_decay"],
        max_grad_norm=hp["max_grad_norm"],
        lr_scheduler_type=hp["lr_scheduler"],
        eval_strategy="epoch",
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        dataloader_num_workers=0,
        seed=seed,
        disable_tqdm=True,
        logging_strategy="no",
        remove_unused_columns=False,
        label_names=["labels"],
        train_sampling_strategy=sampling,
        bf16=bf16,  # False: the Trainer's default (fp32); True: bf16 autocast, fp32 master weights
    )
    timing = Timing()
    trainer = TimedTrainer(
        model=model, args=args, train_dataset=train_ds, eval_dataset=val_ds,
        data_collator=DataCollatorWithPadding(tokenizer), compute_metrics=compute_metrics, callbacks=[timing],
    )
    trainer.remove_callback(PrinterCallback)  # no per-epoch metric dicts on stdout
    TimedTrainer.eval_s = 0.0
    trainer.train()
    accs = [h["eval_accuracy"] for h in trainer.state.log_history if "eval_accuracy" in h]
    loop = timing.t1 - timing.t0
    n = len(train_ds) * hp["epochs"]
    return {
        "samples_per_s": n / loop,
        "train_only_samples_per_s": n / (loop - TimedTrainer.eval_s),
        "loop_s": loop,
        "eval_s": TimedTrainer.eval_s,
        "final_acc": accs[-1] if accs else None,
        "best_acc": max(accs) if accs else None,
        "accs": accs,
        "threads": timing.threads,
        "total_steps": trainer.state.global_step,
        "optim": getattr(args.optim, "value", str(args.optim)),
        "precision": "bf16" if bf16 else "fp32",
    }


# --------------------------------------------------------------------------- report


def warmup(model_dir: Path, tok_dir: Path, threads: int) -> None:
    """A few untimed forward/backward passes so one-off costs (oneDNN, allocator) hit neither side."""
    from lwob.io import read_json

    torch.set_num_threads(threads)
    meta = read_json(tok_dir / "meta.json")
    part = lt.load_part(tok_dir, "train", int(meta["pad_token_id"]), ("labels",))
    model, *_ = lt.build_run_model(model_dir=model_dir, meta=meta, method_type="fft", method_options={},
                                   seed=0, total_steps=10)
    model.train()
    for i in range(3):
        idx = torch.arange(i * 16, (i + 1) * 16) % len(part)
        model(**lt.collate(part, idx, torch.device("cpu")), labels=part.targets["labels"][idx]).loss.backward()


def fmt_acc(a) -> str:
    return "-" if a is None else f"{a:.3f}"


def _median_run(runs: list[dict]) -> dict:
    """The run of median throughput among repeats of the same work (the lower middle one for
    an even count), with every throughput seen, for the spread."""
    ordered = sorted(runs, key=lambda r: r["samples_per_s"])
    return {**ordered[(len(ordered) - 1) // 2], "all_samples_per_s": [r["samples_per_s"] for r in runs]}


def _ratio(a, b) -> str:
    return "-" if a is None or b is None else f"{a / b:.2f}x"


def _sps(a) -> str:
    return "-" if a is None else f"{a:.1f}"


def _spread(row: dict, who: str) -> str:
    """The median samples/s, and the range over the repeats when there were several."""
    seen = [float(x) for x in (row.get(f"{who}_samples_per_s_all") or "").split()]
    median = _sps(row[f"{who}_samples_per_s"])
    return median if len(seen) < 2 else f"{median} ({min(seen):.1f}-{max(seen):.1f})"


def render(rows: list[dict], machine: dict, settings: dict) -> tuple[str, str]:
    bf = any(r.get("trainer_bf16_samples_per_s") is not None for r in rows)
    head = ("| method | ours samples/s | Trainer samples/s | ratio (ours/Trainer) "
            + ("| Trainer bf16 samples/s | ratio (ours/Trainer bf16) | Trainer bf16/Trainer " if bf else "")
            + "| ours val acc (final / best) | Trainer val acc (final / best) "
            + ("| Trainer bf16 val acc (final / best) " if bf else "") + "|")
    lines = [head, "|---|---:|---:|---:|" + ("---:|---:|---:|" if bf else "") + "---:|---:|" + ("---:|" if bf else "")]
    for r in rows:
        cells = [r["method"], _spread(r, "ours"), _spread(r, "trainer"), f"{r['ratio']:.2f}x"]
        if bf:
            cells += [_spread(r, "trainer_bf16"), _ratio(r["ours_samples_per_s"], r["trainer_bf16_samples_per_s"]),
                      _ratio(r["trainer_bf16_samples_per_s"], r["trainer_samples_per_s"])]
        cells += [f"{fmt_acc(r['ours_val_acc_final'])} / {fmt_acc(r['ours_val_acc_best'])}",
                  f"{fmt_acc(r['trainer_val_acc_final'])} / {fmt_acc(r['trainer_val_acc_best'])}"]
        if bf:
            cells.append(f"{fmt_acc(r['trainer_bf16_val_acc_final'])} / {fmt_acc(r['trainer_bf16_val_acc_best'])}")
        lines.append("| " + " | ".join(cells) + " |")
    lines2 = ["| method | ours train-only samples/s | Trainer train-only samples/s | ratio "
              + ("| Trainer bf16 train-only samples/s | ratio (ours/Trainer bf16) " if bf else "")
              + "| ours eval s | Trainer eval s | ours val acc per epoch | Trainer val acc per epoch "
              + ("| Trainer bf16 val acc per epoch " if bf else "") + "|",
              "|---|---:|---:|---:|" + ("---:|---:|" if bf else "") + "---:|---:|---|---|" + ("---|" if bf else "")]
    for r in rows:
        cells = [r["method"], _sps(r["ours_train_only_samples_per_s"]), _sps(r["trainer_train_only_samples_per_s"]),
                 _ratio(r["ours_train_only_samples_per_s"], r["trainer_train_only_samples_per_s"])]
        if bf:
            cells += [_sps(r["trainer_bf16_train_only_samples_per_s"]),
                      _ratio(r["ours_train_only_samples_per_s"], r["trainer_bf16_train_only_samples_per_s"])]
        cells += [f"{r['ours_eval_s']:.2f}", f"{r['trainer_eval_s']:.2f}", r["ours_val_acc_epochs"],
                  r["trainer_val_acc_epochs"]]
        if bf:
            cells.append(r["trainer_bf16_val_acc_epochs"])
        lines2.append("| " + " | ".join(cells) + " |")
    mach = (f"Machine: {machine['cpu']}, {machine['cores']} cores available, torch {machine['torch']}, "
            f"transformers {machine['transformers']}, peft {machine['peft']}, python {machine['python']}, "
            f"torch threads {machine['threads']}, load average at start / end {machine.get('loadavg_at_start', '?')} / "
            f"{machine.get('loadavg_at_end', '?')}; {machine['date']}.")
    sett = ("Settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()) + ".")
    note = []
    if settings.get("model") == "roberta-base-random":
        note = ["Note: random weights - the validation accuracies are chance level and meaningless here; "
                "the equality of the metric is checked on the demo model.", ""]
    md = "\n".join([mach, "", sett, "", *note, *lines, "", "Training only (per-epoch validation excluded):", "",
                    *lines2, ""])
    console = "\n".join([*lines, "", *note, mach, sett])
    return md, console


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="demo", choices=sorted(MODEL_DEFAULTS),
                    help="demo: the pretrained demo MiniLM; roberta-base-random: RoBERTa-base shape, random weights")
    ap.add_argument("--methods", default=",".join(ALL_METHODS))
    ap.add_argument("--epochs", type=int, default=None, help="default: 3 (demo), 2 (roberta-base-random)")
    ap.add_argument("--n-train", type=int, default=None, help="default: 400 (demo), 128 (roberta-base-random)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    ap.add_argument("--config", type=Path, default=REPO / "config" / "demo.yaml")
    ap.add_argument("--ours-group-by-length", choices=["on", "off"], default=None,
                    help="lwob's training.group_by_length (default: the config's, on in the demo)")
    ap.add_argument("--trainer-sampling", default="random", choices=["random", "group_by_length"],
                    help="Trainer's train_sampling_strategy (default: the Trainer default, 'random')")
    ap.add_argument("--no-trainer-bf16", dest="trainer_bf16", action="store_false",
                    help="skip the control run of the Trainer with bf16=True")
    ap.add_argument("--repeats", type=int, default=1,
                    help="run each trainer this many times per method (interleaved) and report the run of median "
                         "throughput, with the spread of all; the accuracies are those of that run")
    ap.add_argument("--profile", action="store_true",
                    help="after the timed runs, one profiled run of ours and of the bf16 Trainer per method: "
                         "the ops whose self CPU time differs most (printed, and in bench_training*_profile.md)")
    ap.add_argument("--precision", default=None, choices=["auto", "fp32", "bf16"],
                    help="lwob's training.precision (default: the config's, i.e. auto)")
    args = ap.parse_args(argv)
    n_train_default, epochs_default = MODEL_DEFAULTS[args.model]
    args.n_train = n_train_default if args.n_train is None else args.n_train
    args.epochs = epochs_default if args.epochs is None else args.epochs
    t_start = time.perf_counter()

    from lwob.io import write_json

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    config = yaml.safe_load(args.config.read_text())
    unknown = [m for m in methods if m not in config["methods"]]
    if unknown:
        ap.error(f"unknown method(s) {unknown}; config has {sorted(config['methods'])}")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    machine = machine_info(args.threads)
    machine["loadavg_at_start"] = loadavg()

    # model (random one), data, lwob run folders (weights.safetensors) and Trainer output_dir: a temp
    # dir, removed at the end; only the report files go to --out.
    work = Path(tempfile.mkdtemp(prefix="bench_training_"))
    from bench_flops import demo_model_dir, make_random_base_model

    if args.model == "demo":
        model_dir = demo_model_dir()
    else:
        model_dir = make_random_base_model(work / "roberta-base-random", seed=args.seed)
    tok_dir = prepare_data(config, args.n_train, work / "data", model_dir)
    warmup(model_dir, tok_dir, args.threads)

    rows, profiles = [], []
    for method in methods:
        mcfg = config["methods"][method]
        hp = {**config.get("training", {}), **(mcfg.get("training") or {})}
        hp["epochs"] = args.epochs
        if args.precision:
            hp["precision"] = args.precision
        if args.ours_group_by_length is not None:
            hp["group_by_length"] = args.ours_group_by_length == "on"
        hp = lt.resolve_hyperparameters(hp)
        common = dict(model_dir=model_dir, tok_dir=tok_dir, method=method, mcfg=mcfg, hp=hp, seed=args.seed,
                      threads=args.threads, out=work)
        runs = {"ours": [], "hf": [], "hfb": []}
        for _ in range(max(1, args.repeats)):  # interleaved, so a busy spell of the machine hits all three
            runs["ours"].append(run_ours(**common))
            runs["hf"].append(run_trainer(**common, sampling=args.trainer_sampling))
            if args.trainer_bf16:
                runs["hfb"].append(run_trainer(**common, sampling=args.trainer_sampling, bf16=True))
        ours, hf = _median_run(runs["ours"]), _median_run(runs["hf"])
        hfb = _median_run(runs["hfb"]) if runs["hfb"] else None
        if args.profile:  # one more run of each, profiled (the profiler's overhead stays out of the figures above)
            with OpProfile() as ours_prof:
                run_ours(**common)
            with OpProfile() as hfb_prof:
                run_trainer(**common, sampling=args.trainer_sampling, bf16=True)
            profiles.append(compare_profiles(method, ours_prof, hfb_prof))
            print(profiles[-1], flush=True)
        for name, other in (("Trainer", hf), ("Trainer bf16", hfb)):
            if other is None:
                continue
            if ours["total_steps"] != other["total_steps"]:
                print(f"WARNING {method}: optimizer steps differ (ours {ours['total_steps']}, {name} {other['total_steps']})")
            if ours["threads"] != other["threads"]:
                print(f"WARNING {method}: torch threads differ (ours {ours['threads']}, {name} {other['threads']})")
        row = {
            "model": args.model,
            "method": method,
            "ours_samples_per_s": ours["samples_per_s"],
            "trainer_samples_per_s": hf["samples_per_s"],
            "ratio": ours["samples_per_s"] / hf["samples_per_s"],
            "ours_val_acc_final": ours["final_acc"],
            "ours_val_acc_best": ours["best_acc"],
            "trainer_val_acc_final": hf["final_acc"],
            "trainer_val_acc_best": hf["best_acc"],
            "ours_train_only_samples_per_s": ours["train_only_samples_per_s"],
            "trainer_train_only_samples_per_s": hf["train_only_samples_per_s"],
            "ours_loop_s": ours["loop_s"],
            "trainer_loop_s": hf["loop_s"],
            "ours_eval_s": ours["eval_s"],
            "trainer_eval_s": hf["eval_s"],
            "ours_val_acc_epochs": " ".join(fmt_acc(a) for a in ours["accs"]),
            "trainer_val_acc_epochs": " ".join(fmt_acc(a) for a in hf["accs"]),
            "steps": ours["total_steps"],
            "lr": hp["lr"],
            "trainer_optim": hf["optim"],
            "ours_precision": ours["precision"],
            "trainer_bf16_samples_per_s": hfb and hfb["samples_per_s"],
            "ratio_vs_trainer_bf16": hfb and ours["samples_per_s"] / hfb["samples_per_s"],
            "trainer_bf16_val_acc_final": hfb and hfb["final_acc"],
            "trainer_bf16_val_acc_best": hfb and hfb["best_acc"],
            "trainer_bf16_train_only_samples_per_s": hfb and hfb["train_only_samples_per_s"],
            "trainer_bf16_loop_s": hfb and hfb["loop_s"],
            "trainer_bf16_eval_s": hfb and hfb["eval_s"],
            "trainer_bf16_val_acc_epochs": hfb and " ".join(fmt_acc(a) for a in hfb["accs"]),
            "ours_samples_per_s_all": " ".join(f"{x:.1f}" for x in ours["all_samples_per_s"]),
            "trainer_samples_per_s_all": " ".join(f"{x:.1f}" for x in hf["all_samples_per_s"]),
            "trainer_bf16_samples_per_s_all": hfb and " ".join(f"{x:.1f}" for x in hfb["all_samples_per_s"]),
        }
        rows.append(row)
        print(f"[{method}] ours ({ours['precision']}) {row['ours_samples_per_s']:.1f}/s, Trainer {row['trainer_samples_per_s']:.1f}/s"
              + (f", Trainer bf16 {row['trainer_bf16_samples_per_s']:.1f}/s" if hfb else "")
              + f"; acc {fmt_acc(row['ours_val_acc_final'])} vs {fmt_acc(row['trainer_val_acc_final'])}"
              + (f" vs {fmt_acc(row['trainer_bf16_val_acc_final'])}" if hfb else ""), flush=True)

    meta_tok = json.loads((tok_dir / "meta.json").read_text())
    model_cfg = json.loads((model_dir / "config.json").read_text())
    settings = {
        "model": args.model,
        "model shape": f"{model_cfg['num_hidden_layers']} layers x hidden {model_cfg['hidden_size']} "
                       f"(FFN {model_cfg['intermediate_size']})",
        "task": TASK, "train examples": meta_tok["parts"]["train"]["records"],
        "validation examples": meta_tok["parts"]["validation"]["records"], "epochs": args.epochs,
        "batch_size": hp["batch_size"], "eval_batch_size": hp["eval_batch_size"],
        "warmup_ratio": hp["warmup_ratio"], "weight_decay": hp["weight_decay"],
        "max_grad_norm": hp["max_grad_norm"], "ours group_by_length": hp["group_by_length"],
        "ours precision": rows[-1]["ours_precision"] if rows else "-",
        "Trainer sampling": args.trainer_sampling, "Trainer optim": rows[-1]["trainer_optim"] if rows else "-",
        "Trainer precision": "fp32 (default)" + (" and bf16=True (control)" if args.trainer_bf16 else ""),
        "seed": args.seed, "repeats (median kept)": args.repeats,
    }
    shutil.rmtree(work, ignore_errors=True)
    machine["loadavg_at_end"] = loadavg()
    md, console = render(rows, machine, settings)
    total = time.perf_counter() - t_start
    suffix = "" if args.model == "demo" else f"_{args.model}"
    with open(out / f"bench_training{suffix}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) + ["cpu", "cores", "threads", "torch", "date"])
        w.writeheader()
        for r in rows:
            w.writerow({**r, **{k: machine[k] for k in ("cpu", "cores", "threads", "torch", "date")}})
    (out / f"bench_training{suffix}.md").write_text(md + f"\nBenchmark run time: {total:.0f} s.\n")
    if profiles:
        (out / f"bench_training{suffix}_profile.md").write_text("\n".join(profiles))
    write_json(out / f"bench_training{suffix}.json", {"machine": machine, "settings": settings, "rows": rows,
                                                      "run_time_s": total})
    print()
    print(console)
    print(f"Benchmark run time: {total:.0f} s; written {out / f'bench_training{suffix}.csv'} and "
          f"{out / f'bench_training{suffix}.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
