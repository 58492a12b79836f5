"""Evaluation of one trained run on its task's eval sets (clean and adversarial)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .io import atomic_write_bytes, read_json, write_json
from .training import accuracy, build_run_model, load_part, predict, resolve_device

RESERVED_PARTS = ("train", "validation")


def evaluate_run(*, model_dir, tokenized_dir, run_dir, method_type: str, method_options: dict,
                 eval_sets: list[str] | None, out_json, out_predictions, threads: int | None = None,
                 batch_size: int = 128) -> dict:
    """Rebuild the run's model, load its trained tensors, predict every eval set.

    Writes the evaluation record `{model, task, method, seed, metrics: {eval_set: {accuracy,
    n, kind, column}}}` and a predictions parquet (eval_set, idx, label, pred, prob).
    Accuracy is over labelled rows (label >= 0); n counts them.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from . import methods

    if threads:
        torch.set_num_threads(int(threads))
    tokenized_dir, run_dir = Path(tokenized_dir), Path(run_dir)
    meta = read_json(tokenized_dir / "meta.json")
    record = read_json(run_dir / "train.json")
    seed = int(record["seed"])
    hp = record.get("hyperparameters") or {}
    device = resolve_device(hp.get("device", "auto"))
    # The run's own eval batch size; `batch_size` is only the fallback for records without one.
    batch_size = int(hp.get("eval_batch_size") or batch_size)

    model, _, _, _, _ = build_run_model(
        model_dir=model_dir, meta=meta, method_type=method_type, method_options=method_options,
        seed=seed, total_steps=record["total_steps"],  # AdaLoRA is rebuilt with the run's schedule
    )
    methods.load_trained(model, run_dir / "weights.safetensors")
    model.to(device)
    model.eval()

    parts = meta["parts"]
    names = list(eval_sets) if eval_sets is not None else [p for p in parts if p not in RESERVED_PARTS]
    pad = int(meta["pad_token_id"])
    metrics: dict = {}
    tables = []
    for name in names:
        if name not in parts:
            raise ValueError(f"eval set '{name}' is not a part of {tokenized_dir} (parts: {', '.join(parts)})")
        part = load_part(tokenized_dir, name, pad)
        logits = predict(model, part, batch_size, device)
        acc, n = accuracy(logits, part.labels) if len(part) else (None, 0)
        info = parts[name]
        metrics[name] = {"accuracy": acc, "n": n, "kind": info.get("kind"), "column": info.get("column")}
        if len(part):
            probs = torch.softmax(logits, dim=-1)
            prob, pred = probs.max(dim=-1)
        else:
            prob, pred = torch.empty(0), torch.empty(0, dtype=torch.int64)
        tables.append(pa.table({
            "eval_set": pa.array([name] * len(part), pa.string()),
            "idx": pa.array(part.idx, pa.int64()),
            "label": pa.array(part.labels.numpy(), pa.int64()),
            "pred": pa.array(pred.numpy().astype(np.int64), pa.int64()),
            "prob": pa.array(prob.numpy().astype(np.float64), pa.float64()),
        }))
    schema = pa.schema([("eval_set", pa.string()), ("idx", pa.int64()), ("label", pa.int64()),
                        ("pred", pa.int64()), ("prob", pa.float64())])
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    atomic_write_bytes(out_predictions, sink.getvalue().to_pybytes())

    out = {k: record.get(k) for k in ("model", "task", "method")}
    out["seed"] = seed
    out["metrics"] = metrics
    write_json(out_json, out)
    return out
