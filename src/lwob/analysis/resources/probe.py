"""One probe: the method built on the model as training builds it, the real optimizer and
fast path, a synthetic batch made by the task kind (`TaskKind.synthetic_batch`) of exactly
the study's batch size and length; peak memory and the median time of the timed steps."""

from __future__ import annotations

import gc
import resource
import statistics
import time
from pathlib import Path

from ...errors import ConfigError
from .spec import NOT_APPLICABLE, OK, OOM, SKIPPED

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


class NotApplicable(Exception):
    """The method cannot be built on this model (its build raised a ConfigError: BitFit on a
    model whose config.json does not say it has no bias terms, yet has none)."""


def not_applicable(cls, options, ctx_args: dict) -> str | None:
    """Why the method cannot apply to this model at any sequence length (its config check,
    with the model's layers, type and bias terms, refuses it), else None."""
    from ...methods import MethodContext

    try:
        cls.check(options, MethodContext(**ctx_args, max_length=None))
    except ConfigError as e:
        return str(e)
    return None


def fitting_length(cls, options, ctx_args: dict, seq_len: int) -> tuple[int, str | None]:
    """The longest length <= seq_len the method's config check accepts on this model (and
    within its positions), with the reason when shorter; (0, reason) when none fits."""
    from ...methods import MethodContext

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


def _train_steps(record: dict, *, model_dir, meta, method_type, method_options, spec, model_config, hp, device, fast,
                 length: int) -> None:
    """Build the run's model and optimizer and take the probe's steps; fills `record`
    (params, method notes, the timed steps)."""
    import torch

    from ... import tasks
    from ...run.training import build_run_model, make_optimizer

    batch, steps, warmup = (int(spec[k]) for k in ("batch_size", "steps", "warmup_steps"))
    try:
        model, cls, options, ctx, base_total = build_run_model(
            model_dir=model_dir, meta=meta, method_type=method_type, method_options=method_options,
            seed=int(spec.get("seed", 0)), total_steps=warmup + steps, model_config=model_config)
    except ConfigError as e:  # known only once the model is loaded (e.g. it has no bias terms)
        raise NotApplicable(str(e)) from None
    record["params"] = cls.parameter_counts(model, base_total)
    record["method_notes"] = ctx.notes
    model.to(device)
    model.train()
    core = fast.prepare(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(model, hp, device, method=cls)
    generator = torch.Generator().manual_seed(int(spec.get("seed", 0)))
    vocab = int(getattr(model.config, "vocab_size", None) or model.get_input_embeddings().num_embeddings)
    # The task kind makes the batch (its inputs and loss targets: labels, positions, tokens).
    data = tasks.get(spec["task_kind"]).synthetic_batch(batch_size=batch, length=length, vocab_size=vocab,
                                                         generator=generator, meta=meta)
    data = {k: v.to(device) for k, v in data.items()}
    for step in range(1, warmup + steps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        cls.before_step(core, optimizer, step - 1)  # as training does (HiFT: one group per step)
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
    the record's `status` is "skipped" (it would repeat another configuration, or no length
    fits), "not_applicable" (the method cannot apply to the model: its check or build refuses
    it) or "oom", with the `reason`.
    """
    import torch

    from ... import methods
    from ...run import provenance
    from ...run.fastpath import FastPath
    from ...models import model_info_from_dir
    from ...run.training import resolve_device, resolve_hyperparameters

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
    ctx_args = {"num_layers": info["num_layers"], "model_type": info["model_type"], "task_kind": spec["task_kind"],
                "total_steps": warmup + steps, "max_positions": positions, "bias_terms": info.get("bias_terms")}
    why = not_applicable(cls, options, ctx_args)
    if why:
        return finish(NOT_APPLICABLE, f"not applicable: {why}")
    if hp["processes"] > 1:
        record["notes"].append(f"trained with {hp['processes']} processes ({hp['parallel']}); "
                               "the probe measures one process holding the whole model")
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
    except NotApplicable as err:
        status, reason = NOT_APPLICABLE, f"not applicable: {err}"
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
    from ...io import write_json

    record = probe(model_dir=Path(model_record["path"]), method_type=method_type, method_options=method_options,
                   spec=spec, model_config=model_record.get("config_overrides"),
                   max_positions=model_record.get("max_positions"), threads=threads, run_id=run_id)
    write_json(out_json, record)
    return record
