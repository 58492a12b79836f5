"""Resource study: what each method costs to train, per model (issue 7).

Two measurements per model and method, one table (methods as rows, models as column groups,
as in the paper's Table 7 and Xu et al.'s Table VII) and one figure:

(a) a probe at a fixed setting (the paper's Table 7: batch 8, sequence length 512): the
    method built on the model exactly as training builds it (`training.build_run_model`),
    the real optimizer (`training.make_optimizer`) and the run's fast path
    (`fastpath.FastPath`: precision, TF32, fused AdamW, compile), fed random token ids of
    exactly that length; a warm-up step, then `steps` timed steps (their median time). Peak memory is
    `torch.cuda.max_memory_allocated` on a GPU (weights, gradients, optimizer state and
    activations, reset before the model is moved there); on the CPU it is the increase of
    the process's resident set over its size just before the model is loaded (the peak RSS
    is reset first through /proc/self/clear_refs, so an earlier high-water mark of the
    process does not count; the absolute peak RSS is recorded too);
(b) the finished training runs of the studies: their `train.json` records (parameter counts,
    training time without validation, samples/s, peak memory), and their tokenized training
    parts for tokens/s (non-padding tokens).

A probe that cannot run is never a crash: a method that would repeat another (top-k with k
above the depth) is skipped with its reason; a sequence length that does not fit the
model's positions (prefix tuning: the prefix takes positions) is capped to the longest that
fits, and the table says so; running out of memory is recorded as "OOM" with the device's
size. Config: the optional top-level `resource_study` section (`check_config`).
"""

from __future__ import annotations

import gc
import math
import resource
import statistics
import time
from pathlib import Path

from ..errors import ConfigError

#: Defaults of the `resource_study` section: the paper's memory setting (Table 7).
DEFAULTS = {"batch_size": 8, "seq_len": 512, "steps": 3, "warmup_steps": 1}
#: Training settings that change what a step costs (the rest, e.g. lr, does not): only these
#: are a probe's params, so a learning-rate change does not rerun probes.
COST_SETTINGS = ("device", "precision", "tf32", "fused_optimizer", "compile", "weight_decay", "max_grad_norm",
                 "optimizer", "processes", "parallel")
#: Probe statuses.
OK, SKIPPED, OOM = "ok", "skipped", "oom"
DEFAULT_HEAD = {"task": None, "task_kind": "classification", "num_labels": 2}


# --------------------------------------------------------------------------- config


def section(config: dict) -> dict | None:
    """The enabled `resource_study` section with its defaults, else None."""
    sec = config.get("resource_study")
    if not sec or not sec.get("enabled", True):
        return None
    return {**DEFAULTS, **sec}


def check_config(config: dict) -> dict | None:
    """Cross-check the `resource_study` section (the schema checked its shape): every model,
    method and the task are configured. Raises ConfigError naming the key; returns section()."""
    sec = section(config)
    if sec is None:
        return None
    for key in ("models", "methods"):
        names = sec.get(key)
        if not names:
            raise ConfigError(f"config key 'resource_study.{key}': a non-empty list of {key} is required")
        for i, name in enumerate(names):
            if name not in config[key]:
                raise ConfigError(f"config key 'resource_study.{key}[{i}]': unknown {key[:-1]} '{name}' "
                                  f"(defined: {', '.join(config[key])})")
    task = sec.get("task")
    if task is not None and task not in config["tasks"]:
        raise ConfigError(f"config key 'resource_study.task': unknown task '{task}' "
                          f"(defined: {', '.join(config['tasks'])})")
    for key in ("batch_size", "seq_len", "steps", "warmup_steps"):
        value = sec[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < (0 if key == "warmup_steps" else 1):
            raise ConfigError(f"config key 'resource_study.{key}': expected a positive integer, got {value!r}")
    return sec


def model_task(config: dict, model: str) -> str | None:
    """The task whose head the probes of `model` use and whose runs the table shows: the
    section's `task`, else the first task (in study order) that `model` trains on; None when
    the model trains on nothing (the probe then uses a 2-label classification head)."""
    from ..plan import config as cfg

    sec = section(config) or {}
    if sec.get("task"):
        return sec["task"]
    return next((r.task for r in cfg.runs(config) if r.model == model), None)


def probe_spec(config: dict, model: str, method: str) -> dict:
    """Everything a probe needs besides the model and method (the `resource_probe` rule's
    params): the setting, the head, and the cost-relevant training settings of the run."""
    from ..plan import config as cfg

    sec = section(config)
    task = model_task(config, model)
    if task is not None:
        hp = cfg.hyperparameters(config, model, task, method)
        spec = config["tasks"][task]
        head = {"task": task, "task_kind": spec["kind"], "num_labels": spec.get("num_labels")}
    else:
        hp = dict(config["training"])
        for layer in (config["models"][model], config["methods"][method]):
            hp.update(layer.get("training") or {})
        hp.update((config["models"][model].get("method_training") or {}).get(method) or {})
        head = dict(DEFAULT_HEAD)
    return {
        **head,
        "batch_size": int(sec["batch_size"]),
        "seq_len": int(sec["seq_len"]),
        "steps": int(sec["steps"]),
        "warmup_steps": int(sec["warmup_steps"]),
        "seed": int(config["seeds"][0]),
        "hyperparameters": {k: hp[k] for k in COST_SETTINGS if k in hp},
    }


def study_models(config: dict) -> list[str]:
    return list((section(config) or {}).get("models") or [])


def study_methods(config: dict) -> list[str]:
    return list((section(config) or {}).get("methods") or [])


def probe_paths(config: dict) -> list[str]:
    return [f"results/resources/probe/{m}/{x}.json" for m in study_models(config) for x in study_methods(config)]


def final_outputs(config: dict) -> list[str]:
    """The study's final files (none without an enabled `resource_study` section)."""
    if section(config) is None:
        return []
    return ["results/tables/resources.tex", "results/tables/resources.csv",
            "results/figures/resources.pdf", "results/figures/resources.png"]


def study_runs(config: dict) -> list:
    """The study runs (lwob.plan.config.Run) of the resource study's models and methods, every task."""
    from ..plan import config as cfg

    models, methods = set(study_models(config)), set(study_methods(config))
    return [r for r in cfg.runs(config) if r.model in models and r.method in methods]


def table_spec(config: dict) -> dict:
    """The resolved section for the table rule: settings, models, methods, task per model."""
    sec = section(config)
    return {**{k: v for k, v in sec.items() if k != "task"}, "tasks": {m: model_task(config, m) for m in sec["models"]}}


# --------------------------------------------------------------------------- memory


def _host_rss_mb(field: str) -> float | None:
    """VmRSS / VmHWM of this process (MiB), None where /proc is unavailable."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def reset_host_peak() -> str:
    """Reset this process's peak RSS (VmHWM) to its current RSS. Returns how the peak is
    measured: 'vmhwm' (reset worked), else 'ru_maxrss' (the process's high-water mark since
    it started: an upper bound of the probe's own peak)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return "vmhwm"
    except OSError:
        return "ru_maxrss"


def host_peak_mb(how: str) -> float:
    if how == "vmhwm":
        peak = _host_rss_mb("VmHWM")
        if peak is not None:
            return peak
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _is_oom(err: BaseException) -> bool:
    if isinstance(err, MemoryError):
        return True
    import torch

    if isinstance(err, torch.cuda.OutOfMemoryError):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


# --------------------------------------------------------------------------- probe


def fitting_length(cls, options, ctx_args: dict, seq_len: int) -> tuple[int, str | None]:
    """The longest length <= seq_len the method's config check accepts on this model (and
    within its positions), with the reason when shorter; (0, reason) when none fits."""
    from ..methods import MethodContext

    def fits(length: int) -> str | None:
        ctx = MethodContext(**ctx_args, max_length=length)
        try:
            cls.check(options, ctx)
        except ConfigError as e:
            return str(e)
        positions = ctx_args.get("max_positions")
        if positions is not None and length > positions:
            return f"sequence length {length} > the model's {positions} usable positions"
        return None

    why = fits(seq_len)
    if why is None:
        return seq_len, None
    lo, hi = 0, seq_len  # fits(lo) is assumed, fits(hi) fails
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid) is None:
            lo = mid
        else:
            hi = mid
    return lo, why


def _random_batch(kind_name: str, num_labels, vocab: int, batch: int, length: int, generator, device):
    import torch

    ids = torch.randint(0, vocab, (batch, length), generator=generator)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if kind_name == "extractive_qa":
        targets = {"start_positions": torch.randint(0, length, (batch,), generator=generator),
                   "end_positions": torch.randint(0, length, (batch,), generator=generator)}
    else:
        targets = {"labels": torch.randint(0, int(num_labels or 2), (batch,), generator=generator)}
    return {k: v.to(device) for k, v in {**inputs, **targets}.items()}



def _train_steps(record: dict, *, model_dir, meta, method_type, method_options, spec, model_config, hp, device, fast,
                 length: int) -> None:
    """Build the run's model and optimizer and take the probe's steps; fills `record`
    (params, method notes, the timed steps)."""
    import torch

    from .. import methods
    from ..run.training import build_run_model, make_optimizer

    batch, steps, warmup = (int(spec[k]) for k in ("batch_size", "steps", "warmup_steps"))
    model, cls, options, ctx, base_total = build_run_model(
        model_dir=model_dir, meta=meta, method_type=method_type, method_options=method_options,
        seed=int(spec.get("seed", 0)), total_steps=warmup + steps, model_config=model_config)
    record["params"] = methods.count_parameters(model, base_total)
    record["method_notes"] = ctx.notes
    model.to(device)
    model.train()
    core = fast.prepare(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(model, hp, device)
    generator = torch.Generator().manual_seed(int(spec.get("seed", 0)))
    vocab = int(getattr(model.config, "vocab_size", None) or model.get_input_embeddings().num_embeddings)
    data = _random_batch(spec["task_kind"], spec.get("num_labels"), vocab, batch, length, generator, device)
    for step in range(1, warmup + steps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        with fast.autocast(device):
            loss = model(**data).loss
        loss.backward()
        if hp["max_grad_norm"] > 0:
            torch.nn.utils.clip_grad_norm_(trainable, hp["max_grad_norm"], foreach=True)
        optimizer.step()
        cls.after_step(core, step)
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if step > warmup:
            record["step_times_s"].append(time.perf_counter() - t0)


def probe(*, model_dir, method_type: str, method_options: dict, spec: dict, model_config: dict | None = None,
          max_positions: int | None = None, threads: int | None = None, run_id: dict | None = None) -> dict:
    """Measure one (model, method) at the spec's setting; returns the probe record.

    `spec` is probe_spec()'s dict. `max_positions` (the model record's, which may override
    config.json) bounds the sequence length. Never raises for a combination that cannot run:
    the record's `status` is "skipped" (with `reason`) or "oom".
    """
    import torch

    from .. import methods
    from ..run import provenance
    from ..run.fastpath import FastPath
    from ..models import model_info_from_dir
    from ..run.training import resolve_device, resolve_hyperparameters

    wall = time.perf_counter()
    if threads:
        torch.set_num_threads(int(threads))
    hp = resolve_hyperparameters({**spec["hyperparameters"], "batch_size": int(spec["batch_size"])})
    device = resolve_device(hp["device"])
    fast = FastPath.resolve(hp, device)
    fast.apply_backend(device)
    batch, requested, steps, warmup = (int(spec[k]) for k in ("batch_size", "seq_len", "steps", "warmup_steps"))
    record = {
        **(run_id or {}),
        "method_type": method_type,
        "method_options": dict(method_options or {}),
        "status": OK,
        "reason": None,
        "notes": [],
        "setting": {k: spec.get(k) for k in ("task", "task_kind", "num_labels", "batch_size", "seq_len", "steps",
                                             "warmup_steps", "seed")},
        "seq_len": None,
        "hyperparameters": hp,
        "fast_path": fast.record(),
        "device": str(device) if device.type == "cpu" else f"{device} ({torch.cuda.get_device_name(device)})",
        "device_memory_mb": (torch.cuda.get_device_properties(device).total_memory / 2**20
                             if device.type == "cuda" else None),
        "threads": torch.get_num_threads(),
        "params": None,
        "memory_kind": "gpu_max_allocated" if device.type == "cuda" else "host_rss_increase",
        "peak_mem_mb": None,
        "peak_gpu_mem_mb": None,
        "host_rss_baseline_mb": None,
        "host_peak_rss_mb": None,
        "host_rss_increase_mb": None,
        "host_peak_measure": None,
        "step_times_s": [],
        "step_s": None,
        "samples_per_s": None,
        "tokens_per_s": None,
    }

    def finish(status: str | None = None, reason: str | None = None) -> dict:
        if status:
            record["status"], record["reason"] = status, reason
        record["wall_time_s"] = time.perf_counter() - wall
        record["provenance"] = provenance.collect()
        return record

    cls = methods.get(method_type)
    options = methods.parse_options(method_type, method_options or {}, "method.options")
    info = model_info_from_dir(model_dir)
    positions = max_positions if max_positions is not None else info["max_positions"]
    redundant = cls.redundant(options, info["num_layers"])
    if redundant:
        return finish(SKIPPED, f"not run: {redundant} (it would repeat another configuration)")
    if hp["processes"] > 1:
        record["notes"].append(f"trained with {hp['processes']} processes ({hp['parallel']}); "
                               "the probe measures one process holding the whole model")
    ctx_args = {"num_layers": info["num_layers"], "model_type": info["model_type"], "task_kind": spec["task_kind"],
                "total_steps": warmup + steps, "max_positions": positions}
    length, why = fitting_length(cls, options, ctx_args, requested)
    if length < 1:
        return finish(SKIPPED, f"no sequence length fits: {why}")
    if length < requested:
        record["notes"].append(f"sequence length capped from {requested} to {length}: {why}")
    record["seq_len"] = length

    meta = {"kind": spec["task_kind"], "num_labels": spec.get("num_labels") or 2, "max_length": length}
    gc.collect()
    how = reset_host_peak()
    record["host_peak_measure"] = how
    baseline = _host_rss_mb("VmRSS") if how == "vmhwm" else host_peak_mb(how)
    record["host_rss_baseline_mb"] = baseline
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    try:  # in a function of its own, so that the model and optimizer are freed when it returns
        _train_steps(record, model_dir=model_dir, meta=meta, method_type=method_type, method_options=method_options,
                     spec=spec, model_config=model_config, hp=hp, device=device, fast=fast, length=length)
        status, reason = OK, None
    except Exception as err:  # only running out of memory is a result; anything else is a bug
        if not _is_oom(err):
            raise
        status = OOM
        reason = f"out of memory on {record['device']}" + (
            f" ({record['device_memory_mb'] / 1024:.0f} GB)" if record["device_memory_mb"] else "")
        record["oom_error"] = str(err).splitlines()[0][:300] if str(err) else type(err).__name__
    gc.collect()
    peak_host = host_peak_mb(how)
    record["host_peak_rss_mb"] = peak_host
    record["host_rss_increase_mb"] = peak_host - baseline if baseline is not None else None
    if device.type == "cuda":
        record["peak_gpu_mem_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        record["peak_mem_mb"] = record["peak_gpu_mem_mb"]
        torch.cuda.empty_cache()
    else:
        record["peak_mem_mb"] = record["host_rss_increase_mb"]
    if status == OK:
        record["step_s"] = statistics.median(record["step_times_s"])  # robust to a step slowed by another job
        record["samples_per_s"] = batch / record["step_s"]
        record["tokens_per_s"] = batch * length / record["step_s"]
    else:  # a peak reached before running out is a lower bound, not a measurement
        record["peak_mem_mb"] = None
    return finish(status, reason)


def probe_job(*, model_record: dict, method_type: str, method_options: dict, spec: dict, out_json,
              run_id: dict, threads: int | None = None) -> dict:
    """File-level entry point of the `resource_probe` rule."""
    from ..io import write_json

    record = probe(model_dir=Path(model_record["path"]), method_type=method_type, method_options=method_options,
                   spec=spec, model_config=model_record.get("config_overrides"),
                   max_positions=model_record.get("max_positions"), threads=threads, run_id=run_id)
    write_json(out_json, record)
    return record


# --------------------------------------------------------------------------- training runs


def _train_tokens(tokenized_dir) -> int | None:
    """Non-padding tokens of a tokenized training part (None when the part is absent)."""
    path = Path(tokenized_dir) / "train.parquet"
    if not path.is_file():
        return None
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    ids = pq.read_table(path, columns=["input_ids"]).column("input_ids")
    return int(pc.sum(pc.list_value_length(ids)).as_py() or 0)


def training_rows(records: list[dict], tokens: dict) -> "pd.DataFrame":
    """Per (model, method, task): the finished runs' cost, mean over seeds. `tokens` maps
    (model, task) to the non-padding tokens of the training part (None: unknown)."""
    import numpy as np
    import pandas as pd

    rows = []
    for r in records:
        hp = r.get("hyperparameters") or {}
        epochs = int(hp.get("epochs") or len(r.get("epochs") or []) or 1)
        train_time = r.get("train_time_s")
        n_tokens = tokens.get((r["model"], r["task"]))
        gpu = r.get("peak_gpu_mem_mb")
        rows.append({
            "model": r["model"], "method": r["method"], "task": r["task"], "seed": r.get("seed"),
            "trainable": (r.get("params") or {}).get("trainable"), "total": (r.get("params") or {}).get("total"),
            "device": r.get("device"), "batch_size": hp.get("batch_size"), "epochs": epochs,
            "precision": ((r.get("provenance") or {}).get("fast_path") or {}).get("precision", "fp32"),
            "train_rows": r.get("train_rows"),
            "train_time_s": train_time,
            "epoch_s": train_time / epochs if train_time else None,
            "samples_per_s": r.get("train_samples_per_s"),
            "tokens_per_s": n_tokens * epochs / train_time if n_tokens and train_time else None,
            "peak_mem_mb": gpu if gpu is not None else r.get("peak_host_mem_mb"),
            "memory_kind": "gpu_max_allocated" if gpu is not None else "host_peak_rss",
        })
    cols = ["model", "method", "task", "seed", "trainable", "total", "device", "batch_size", "epochs", "precision",
            "train_rows", "train_time_s", "epoch_s", "samples_per_s", "tokens_per_s", "peak_mem_mb", "memory_kind"]
    runs = pd.DataFrame(rows, columns=cols)
    numeric = ["trainable", "total", "train_rows", "train_time_s", "epoch_s", "samples_per_s", "tokens_per_s",
               "peak_mem_mb"]
    for c in numeric:
        runs[c] = pd.to_numeric(runs[c], errors="coerce")
    keys = ["model", "method", "task"]
    if runs.empty:
        return pd.DataFrame(columns=[*keys, "runs", "seeds", *[c for c in cols if c not in (*keys, "seed")]])
    out = runs.groupby(keys, sort=False).agg(
        runs=("seed", "size"), seeds=("seed", lambda s: ",".join(str(int(x)) for x in sorted(s))),
        trainable=("trainable", "first"), total=("total", "first"), device=("device", "first"),
        batch_size=("batch_size", "first"), epochs=("epochs", "first"), precision=("precision", "first"),
        train_rows=("train_rows", "first"), train_time_s=("train_time_s", "mean"), epoch_s=("epoch_s", "mean"),
        samples_per_s=("samples_per_s", "mean"), tokens_per_s=("tokens_per_s", "mean"),
        peak_mem_mb=("peak_mem_mb", "max"), memory_kind=("memory_kind", "first")).reset_index()
    return out.replace({np.nan: None}).infer_objects()


# --------------------------------------------------------------------------- table


def _num(value):
    """A finite number, else None (None, NaN, pandas' NA)."""
    try:  # float(pd.NA) raises TypeError
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _fmt_count(n) -> str:
    n = _num(n)
    if n is None:
        return "--"
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}" if n / scale < 100 else f"{n / scale:.0f}{unit}"
    return f"{n:.0f}"


def _fmt(value, digits: int = 2) -> str:
    value = _num(value)
    if value is None:
        return "--"
    return f"{value:,.{digits}f}".replace(",", "{,}")


def resource_frame(probes: list[dict], training, study: dict) -> "pd.DataFrame":
    """One row per (model, method) in the study's order: the probe (a) and the runs of the
    model's table task (b)."""
    import pandas as pd

    by_key = {(p["model"], p["method"]): p for p in probes}
    train = {(r["model"], r["method"], r["task"]): r for r in training.to_dict("records")} if len(training) else {}
    rows = []
    for model in study["models"]:
        task = study["tasks"].get(model)
        for method in study["methods"]:
            p = by_key.get((model, method)) or {"status": SKIPPED, "reason": "no probe record"}
            t = train.get((model, method, task)) or {}
            params = p.get("params") or {}
            rows.append({
                "model": model, "method": method, "method_type": p.get("method_type"),
                "trainable": params.get("trainable", t.get("trainable")),
                "total": params.get("total", t.get("total")),
                "base_total": params.get("base_total"),
                "trainable_pct": params.get("trainable_pct"),
                "probe_status": p.get("status"), "probe_reason": p.get("reason"),
                "probe_notes": "; ".join(p.get("notes") or []) or None,
                "probe_batch_size": (p.get("setting") or {}).get("batch_size"),
                "probe_seq_len": p.get("seq_len"),
                "probe_seq_len_requested": (p.get("setting") or {}).get("seq_len"),
                "probe_device": p.get("device"), "probe_precision": (p.get("fast_path") or {}).get("precision"),
                "probe_memory_kind": p.get("memory_kind"),
                "probe_peak_mem_mb": _num(p.get("peak_mem_mb")),
                "probe_host_peak_rss_mb": _num(p.get("host_peak_rss_mb")),
                "probe_step_s": _num(p.get("step_s")),
                "probe_samples_per_s": _num(p.get("samples_per_s")),
                "probe_tokens_per_s": _num(p.get("tokens_per_s")),
                "probe_epoch_s_est": (t["train_rows"] / p["samples_per_s"]
                                      if t.get("train_rows") and _num(p.get("samples_per_s")) else None),
                "train_task": task if t else None,
                "train_runs": t.get("runs", 0),
                "train_seeds": t.get("seeds"),
                "train_device": t.get("device"),
                "train_batch_size": t.get("batch_size"),
                "train_precision": t.get("precision"),
                "train_memory_kind": t.get("memory_kind"),
                "train_peak_mem_mb": _num(t.get("peak_mem_mb")),
                "train_samples_per_s": _num(t.get("samples_per_s")),
                "train_tokens_per_s": _num(t.get("tokens_per_s")),
                "train_epoch_s": _num(t.get("epoch_s")),
            })
    frame = pd.DataFrame(rows)
    for col in ("trainable", "total", "base_total", "probe_batch_size", "probe_seq_len", "probe_seq_len_requested",
                "train_runs", "train_batch_size"):  # counts stay exact integers in the CSV
        frame[col] = pd.to_numeric(frame[col], errors="coerce").round().astype("Int64")
    return frame


MEMORY_KIND = {
    "gpu_max_allocated": "peak GPU memory allocated by PyTorch (torch.cuda.max_memory_allocated)",
    "host_rss_increase": "increase of the process's resident memory over its size before the model was loaded",
    "host_peak_rss": "the training process's peak resident memory (whole process: interpreter, libraries, data)",
}


def resource_table(frame, study: dict, models: dict, methods: dict, tasks: dict, template_path, out_tex,
                   out_csv) -> str:
    """Render the table (methods as rows, a column group per model) and its CSV twin."""
    from ..io import atomic_write_bytes
    from ..report.tables import _template_env, latex_escape, method_display, model_display

    batch, seq = study["batch_size"], study["seq_len"]
    probe_head = latex_escape(f"B = {batch}, L = {seq}")
    per_model = ["Trainable", "Mem. (GB)", "Samples/s", "Mem. (GB)", "Samples/s", "Tokens/s", "Epoch (s)"]
    n = len(per_model)
    top, middle, cmid_top, cmid_mid = [], [], [], []
    first = 2
    marks: dict[str, str] = {}

    def mark(text: str) -> str:
        if text not in marks:
            marks[text] = "abcdefghijklmnopqrstuvwxyz"[len(marks) % 26]
        return rf"$^{{\mathrm{{{marks[text]}}}}}$"

    for model in study["models"]:
        task = study["tasks"].get(model)
        task_label = (tasks.get(task) or {}).get("display", task) if task else None
        top.append({"span": n, "display": latex_escape(model_display(model, models))})
        cmid_top.append((first, first + n - 1))
        middle += [{"span": 1, "display": ""}, {"span": 2, "display": probe_head},
                   {"span": 4, "display": latex_escape(f"Training runs: {task_label}" if task_label else "Training runs")}]
        cmid_mid += [(first + 1, first + 2), (first + 3, first + n - 1)]
        first += n
    rows = []
    for method in study["methods"]:
        cells = []
        for model in study["models"]:
            r = frame[(frame["model"] == model) & (frame["method"] == method)].iloc[0]
            pct = f" ({r['trainable_pct']:.2f}\\%)" if _num(r["trainable_pct"]) is not None else ""
            cells.append(_fmt_count(r["trainable"]) + pct)
            if r["probe_status"] == OK:
                note = mark(r["probe_notes"]) if r["probe_notes"] else ""
                mem = _num(r["probe_peak_mem_mb"])
                cells += [_fmt(mem / 1024 if mem is not None else None) + note, _fmt(r["probe_samples_per_s"], 1)]
            elif r["probe_status"] == OOM:
                cells += ["OOM" + mark(r["probe_reason"]), "--"]
            else:
                cells += ["--" + mark(r["probe_reason"] or "not measured"), "--"]
            if r["train_runs"]:
                mem = _num(r["train_peak_mem_mb"])
                cells += [_fmt(mem / 1024 if mem is not None else None),
                          _fmt(r["train_samples_per_s"], 1), _fmt(r["train_tokens_per_s"], 0),
                          _fmt(r["train_epoch_s"], 1)]
            else:
                cells += ["--"] * 4
        rows.append({"label": latex_escape(method_display(method, methods)), "cells": cells})

    kinds = sorted(set(frame["probe_memory_kind"].dropna()))
    train_kinds = sorted(set(frame["train_memory_kind"].dropna()))
    devices = sorted(set(frame["probe_device"].dropna()))
    legend = (f"Trainable parameters (percent of the model's). {probe_head}: one probe per method with random "
              f"token ids of exactly that length, batch {batch}, the method's real optimizer and precision, "
              f"{study['steps']} steps timed after {study['warmup_steps']} warm-up step(s) on "
              f"{latex_escape(', '.join(devices) or 'the job device')}; memory: "
              f"{latex_escape('; '.join(MEMORY_KIND[k] for k in kinds) or '--')}. Training: the finished runs, mean over "
              f"seeds (time per epoch without validation; tokens without padding); memory: "
              f"{latex_escape('; '.join(MEMORY_KIND[k] for k in train_kinds) or '--')}. GB = 2\\textsuperscript{{30}} bytes; "
              "-- marks a missing value.")
    notes = [f"$^{{\\mathrm{{{m}}}}}${latex_escape(text)}" for text, m in marks.items()]
    paper = "the paper's memory setting" if (batch, seq) == (8, 512) else "the paper's Table 7: B = 8, L = 512"
    caption = (f"Training cost per method: parameters, peak memory and throughput of a probe at {probe_head} "
               f"({paper}) and in the training runs. " + legend + (" " + " ".join(notes) if notes else ""))
    context = {
        "caption": caption,
        "label": "tab:resources",
        "colspec": "l" + "r" * (n * len(study["models"])),
        "headers": [{"cells": top, "cmidrules": cmid_top}, {"cells": middle, "cmidrules": cmid_mid}],
        "subs": [latex_escape(s) for s in per_model] * len(study["models"]),
        "rows": rows,
    }
    latex = _template_env(template_path).get_template(Path(template_path).name).render(**context)
    atomic_write_bytes(out_tex, latex.encode())
    atomic_write_bytes(out_csv, frame.to_csv(index=False, lineterminator="\n", float_format="%.6g").encode())
    return latex


# --------------------------------------------------------------------------- figure


def resource_figure(frame, study: dict, models: dict, methods: dict, out_pdf, out_png, dpi: int = 150) -> None:
    """Per model: peak memory (top) and training throughput in tokens/s (bottom; the runs:
    without padding) per method, in each method's colour; solid bars the probe, lighter
    hatched bars the runs."""
    import matplotlib
    import matplotlib.colors
    import matplotlib.style
    import numpy as np
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from ..report.figures import method_color, render_bytes
    from ..io import atomic_write_bytes
    from ..report.tables import method_display, model_display

    names = list(study["methods"])
    colors = [method_color(m, methods) for m in names]
    labels = [method_display(m, methods) for m in names]
    # Tokens/s, not samples/s: the probe's rows are far longer than most training rows.
    panels = [("peak_mem_mb", "Peak memory (GB)", 1 / 1024), ("tokens_per_s", "Training tokens/s", 1.0)]
    probe_label = f"probe B = {study['batch_size']}, L = {study['seq_len']}"
    with matplotlib.style.context("default"), matplotlib.rc_context({"svg.hashsalt": "lwob", "pdf.fonttype": 42}):
        fig = Figure(figsize=(min(0.55 * len(names) * len(study["models"]) + 3.0, 22.0), 6.0), dpi=dpi,
                     layout="constrained")
        axes = fig.subplots(2, len(study["models"]), squeeze=False)
        x = np.arange(len(names))
        width = 0.38
        for j, model in enumerate(study["models"]):
            sub = frame[frame["model"] == model].set_index("method").reindex(names)
            for i, (metric, ylabel, scale) in enumerate(panels):
                ax = axes[i][j]
                for k, (source, alpha, hatch) in enumerate((("probe", 1.0, None), ("train", 0.55, "///"))):
                    values = np.array([_num(v) for v in sub[f"{source}_{metric}"]], dtype=float) * scale
                    pos = x + (k - 0.5) * width
                    face = [matplotlib.colors.to_rgba(c, alpha) for c in colors]
                    ax.bar(pos, np.where(np.isfinite(values), values, 0.0), width, color=face, edgecolor=colors,
                           linewidth=0.6, hatch=hatch)
                    for p, v, m in zip(pos, values, names):
                        if np.isfinite(v):
                            continue
                        status = sub.loc[m, "probe_status"] if source == "probe" else None
                        text = "OOM" if status == OOM else ("skipped" if status == SKIPPED else "n/a")
                        ax.text(p, 0, f" {text}", ha="center", va="bottom", rotation=90, fontsize=6, color="gray")
                ax.set_xticks(x)
                ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=7)
                ax.tick_params(axis="y", labelsize=7)
                ax.grid(axis="y", linewidth=0.4, alpha=0.5)
                ax.set_axisbelow(True)
                if j == 0:
                    ax.set_ylabel(ylabel, fontsize=8)
                if i == 0:
                    ax.set_title(model_display(model, models), fontsize=9)
        handles = [Patch(facecolor="lightgray", edgecolor="black", label=probe_label),
                   Patch(facecolor=matplotlib.colors.to_rgba("lightgray", 0.55), edgecolor="black", hatch="///",
                         label="training runs (mean over seeds)")]
        fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=7, frameon=False)
        fig.suptitle("Memory and throughput per method", fontsize=10)
        png, pdf = render_bytes(fig, dpi)
    atomic_write_bytes(out_png, png)
    atomic_write_bytes(out_pdf, pdf)


# --------------------------------------------------------------------------- entry point


def write_resource_study(*, probes: list, records: list, tokenized: dict, study: dict, models: dict, methods: dict,
                         tasks: dict, template_path, out_tex, out_csv, out_training_csv, out_pdf, out_png):
    """File-level entry point of the `resource_table` rule. `tokenized` maps "model/task" to
    the tokenized task's meta.json (tokens per epoch of the runs)."""
    from ..io import atomic_write_bytes, read_json

    probe_records = [read_json(p) for p in probes]
    run_records = [read_json(p) for p in records]
    tokens = {}
    for key, meta in tokenized.items():
        model, task = key.split("/", 1)
        tokens[(model, task)] = _train_tokens(Path(meta).parent)
    training = training_rows(run_records, tokens)
    atomic_write_bytes(out_training_csv,
                       training.to_csv(index=False, lineterminator="\n", float_format="%.6g").encode())
    frame = resource_frame(probe_records, training, study)
    resource_table(frame, study, models, methods, tasks, template_path, out_tex, out_csv)
    resource_figure(frame, study, models, methods, out_pdf, out_png)
    return frame
