"""Evaluation of one trained run on its task's eval sets (clean and adversarial)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from ..errors import ConfigError
from ..io import atomic_write_bytes, read_json, verify_sha256, write_json
from ..models import placed_devices, spread_placement
from .fastpath import FastPath
from .training import build_run_model, load_part, load_tokenizer, resolve_device, score_part


def evaluate_run(*, model_dir, tokenized_dir, run_dir, method_type: str, method_options: dict,
                 eval_parts: list, out_json, out_predictions, threads: int | None = None,
                 batch_size: int | None = None, model_config: dict | None = None,
                 settings: dict | None = None, run_id: dict | None = None) -> dict:
    """Rebuild the run's model, load its trained tensors, score every eval set.

    A method that never trains (vanilla) has no run folder (`run_dir` None): the base model
    is built by the method and scored on the device and at the precision of `settings` (the
    evaluate job's, lwob.plan.config.evaluation_settings), and the record says it was not
    trained, with its parameter counts (0 trainable).

    `eval_parts` are the eval sets' metadata files (`data/tokenized/.../eval/{name}.json`).
    Writes the evaluation record `{model, task, method, seed, metrics: {eval_set: {<metric>:
    value, n, kind, column}}}` (metrics of the task kind: accuracy, or em/f1 and the
    adversarial scores for QA) and one predictions parquet over all sets: `eval_set`,
    `idx`, `correct` and the kind's own columns.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .. import methods, tasks

    if threads:
        torch.set_num_threads(int(threads))
    tokenized_dir = Path(tokenized_dir)
    meta = read_json(tokenized_dir / "meta.json")
    kind = tasks.get(meta.get("kind", "classification"))
    if run_dir is None:  # untrained: the base model as the method builds it
        record = {**{k: v for k, v in (run_id or {}).items()}, "seed": int((run_id or {})["seed"]),
                  "total_steps": None}
        hp = dict(settings or {})
        device = resolve_device(hp.get("device", "auto"))
        fast = FastPath.resolve(hp, device)
    else:
        run_dir = Path(run_dir)
        record_path, weights_path = run_dir / "train.json", run_dir / "weights.safetensors"
        record = read_json(record_path)
        # The weights must be the file training wrote (a truncated copy fails here, not in safetensors).
        verify_sha256(weights_path, record.get("weights_sha256"), output=record_path)
        hp = record.get("hyperparameters") or {}
        device = resolve_device(hp.get("device", "auto"))
        fast = FastPath.from_record(record)  # scored at the precision it was trained at
    seed = int(record["seed"])
    fast.apply_backend(device)
    # The evaluate job's setting (an evaluation-only setting, lwob.plan.config.EVALUATION_ONLY);
    # the run's recorded one when called without it.
    batch_size = int(batch_size or hp.get("eval_batch_size") or 128)

    # A model larger than one GPU: its layers loaded straight onto eval_devices GPUs (one process).
    eval_devices = int((settings or {}).get("eval_devices") or hp.get("eval_devices") or 1)
    placement = spread_placement(eval_devices, device)

    model, cls, _, _, base_total = build_run_model(
        model_dir=model_dir, meta=meta, method_type=method_type, method_options=method_options,
        seed=seed, total_steps=record["total_steps"],  # AdaLoRA is rebuilt with the run's schedule
        model_config=model_config, placement=placement,
    )
    if run_dir is not None:
        methods.load_trained(model, weights_path)
    untrained = {"trained": False, "params": cls.parameter_counts(model, base_total),
                 "fast_path": fast.record()} if run_dir is None else None
    devices = placed_devices(model)
    off_gpu = [d for d in devices if not d.startswith("cuda")]
    if placement is None:
        model.to(device)
    elif off_gpu:
        raise ConfigError(f"training.eval_devices is {eval_devices}: the model does not fit in those GPUs' free "
                          f"memory (parts of it were placed on {', '.join(off_gpu)}); raise eval_devices")
    model.eval()
    model.requires_grad_(False)  # nothing trains here: every linear weight may be stored in bf16
    fast.prepare(model)

    pad = int(meta["pad_token_id"])
    tokenizer = load_tokenizer(kind, model_dir)  # None unless the kind generates
    metrics: dict = {}
    frames = []
    for info_path in eval_parts:
        info_path = Path(info_path)
        info = read_json(info_path)
        name = info["eval_set"]
        part = load_part(info_path.parent, name, pad, entry=info, output=info_path)
        scores, predictions = score_part(kind, model, part, batch_size, device, info.get("scoring"), fast, tokenizer)
        metrics[name] = {**scores, "kind": info.get("kind"), "column": info.get("column")}
        predictions.insert(0, "eval_set", name)
        frames.append(predictions)
    table = pa.Table.from_pandas(pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        {"eval_set": pd.Series(dtype=str), "idx": pd.Series(dtype="int64"), "correct": pd.Series(dtype=float)}),
        preserve_index=False).replace_schema_metadata(None)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    predictions_bytes = sink.getvalue().to_pybytes()
    atomic_write_bytes(out_predictions, predictions_bytes)

    out = {k: record.get(k) for k in ("model", "task", "method")}
    out["seed"] = seed
    out["metrics"] = metrics
    # what a reader of the predictions (paired statistics) checks the file against
    out["predictions_sha256"] = hashlib.sha256(predictions_bytes).hexdigest()
    if untrained is not None:
        out["untrained"] = untrained
    if placement is not None:
        out["devices"] = devices  # the GPUs the model's layers were spread over, in order
    write_json(out_json, out)
    return out
