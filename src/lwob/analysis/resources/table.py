"""The finished runs' costs, the table's frame, the LaTeX table with its CSV twin, and the
`resource_table` rule's entry point (which also draws the figure, lwob.analysis.resources.figure)."""

from __future__ import annotations

import math
import re
from pathlib import Path

from .spec import NOT_APPLICABLE, OK, OOM, SKIPPED

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


# --------------------------------------------------------------------------- the paper's numbers

#: Where the paper's memory numbers are in the reference CSV (the config's `reference`): its
#: Table 7, GPU memory in GB of training at batch 8 x 512 tokens, as the (task, split, metric)
#: of those rows; a bound the paper gives ("80+") is stored as its number with the
#: `method_note` "reported as 80+".
PAPER_TABLE = "table7"
PAPER_KEY = ("memory", "train", "gpu_gb")
PAPER_SETTING = "batch 8, length 512"
_REPORTED_AS = re.compile(r"reported as (.+)")


def paper_numbers(reference, study: dict, models: dict, methods: dict) -> dict:
    """(model, method) -> (GB, note, the paper's model name) of the paper's Table 7, for the
    study's models and methods that have a number there, matched through the model's and
    method's names or `aliases` as the study tables match theirs (lwob.report.tables)."""
    import pandas as pd

    from ...report.tables import Column, _paper_value, _reference_lookup

    if reference is None or reference.empty:
        return {}
    ref = reference.reset_index(drop=True)
    # The lookup holds each row's position in place of its mean, so that the row matched by
    # tables._paper_value brings its note and model name along.
    lookup = _reference_lookup(ref.assign(mean=range(len(ref))), {"paper_table": PAPER_TABLE})
    column = Column("memory", "Memory", PAPER_KEY[1], "GB", ref=PAPER_KEY)
    out = {}
    for model in study["models"]:
        for method in study["methods"]:
            found = _paper_value(lookup, model, method, column, models or {}, methods or {})
            if found is None:
                continue
            row = ref.iloc[int(found[0])]
            note = row["method_note"] if "method_note" in ref.columns and pd.notna(row["method_note"]) else None
            out[(model, method)] = (float(row["mean"]), str(note) if note else None, str(row["model"]))
    return out


def paper_cell(gb, note: str | None) -> str:
    """The paper's number as it reports it: a bound ("reported as 80+") as written, else GB
    with 2 decimals; "--" where the paper has no number."""
    from ...report.escaping import latex_escape

    found = _REPORTED_AS.fullmatch(note.strip()) if isinstance(note, str) else None  # NaN: no note
    if found and _num(gb) is not None:
        return latex_escape(found.group(1).strip())
    return _fmt(gb)


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


def resource_frame(probes: list[dict], training, study: dict, reference=None, models: dict | None = None,
                   methods: dict | None = None) -> "pd.DataFrame":
    """One row per (model, method) in the study's order: the probe (a), the runs of the
    model's table task (b) and the paper's Table 7 memory (`reference`: the paper's numbers,
    matched through `models`' and `methods`' names and aliases; None: no paper column)."""
    import pandas as pd

    paper = paper_numbers(reference, study, models or {}, methods or {})
    by_key = {(p["model"], p["method"]): p for p in probes}
    train = {(r["model"], r["method"], r["task"]): r for r in training.to_dict("records")} if len(training) else {}
    rows = []
    for model in study["models"]:
        task = study["tasks"].get(model)
        for method in study["methods"]:
            p = by_key.get((model, method)) or {"status": SKIPPED, "reason": "no probe record"}
            t = train.get((model, method, task)) or {}
            gb, note, paper_model = paper.get((model, method), (None, None, None))
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
                "paper_gpu_gb": gb,
                "paper_note": note,
                "paper_model": paper_model,
            })
    frame = pd.DataFrame(rows)
    frame["paper_gpu_gb"] = pd.to_numeric(frame["paper_gpu_gb"], errors="coerce")
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
    """Render the table (methods as rows, a column group per model) and its CSV twin. With a
    `reference` in `study` (the config's paper numbers), each model's group has a "Paper (GB)"
    column beside the probe: the frame's `paper_gpu_gb` (resource_frame)."""
    from ...io import atomic_write_bytes
    from ...report.tables import _template_env, latex_escape, method_display, model_display

    batch, seq = study["batch_size"], study["seq_len"]
    probe_head = latex_escape(f"B = {batch}, L = {seq}")
    with_paper = bool(study.get("reference"))
    per_model = ["Trainable", "Mem. (GB)", "Samples/s", *(["Paper (GB)"] if with_paper else []),
                 "Mem. (GB)", "Samples/s", "Tokens/s", "Epoch (s)"]
    n = len(per_model)
    train_first = 4 if with_paper else 3  # offset of the training columns in a model's group
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
                   *([{"span": 1, "display": ""}] if with_paper else []),
                   {"span": 4, "display": latex_escape(f"Training runs: {task_label}" if task_label else "Training runs")}]
        cmid_mid += [(first + 1, first + 2), (first + train_first, first + n - 1)]
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
            elif r["probe_status"] == NOT_APPLICABLE:
                cells += ["n/a" + mark(r["probe_reason"] or "not applicable"), "--"]
            else:
                cells += ["--" + mark(r["probe_reason"] or "not measured"), "--"]
            if with_paper:
                cells.append(paper_cell(r["paper_gpu_gb"], r["paper_note"]))
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
              "-- marks a missing value" + ("; n/a: the method does not apply to the model (footnote: why)"
                                            if (frame["probe_status"] == NOT_APPLICABLE).any() else "") + ".")
    if with_paper:
        legend += " " + _paper_legend(frame, study, models)
    notes = [f"$^{{\\mathrm{{{m}}}}}${latex_escape(text)}" for text, m in marks.items()]
    setting = "the paper's memory setting" if (batch, seq) == (8, 512) else "the paper's Table 7: B = 8, L = 512"
    caption = (f"Training cost per method: parameters, peak memory and throughput of a probe at {probe_head} "
               f"({setting}) and in the training runs. " + legend + (" " + " ".join(notes) if notes else ""))
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


def _paper_legend(frame, study: dict, models: dict) -> str:
    """What the Paper column shows: its source, the paper's setting and hardware, the models
    whose numbers stand in (through aliases), and the config's `reference_note`."""
    from ...report.tables import latex_escape, model_display

    stand_ins = []
    for model in study["models"]:
        shown = sorted(set(frame.loc[frame["model"] == model, "paper_model"].dropna()) - {model})
        if shown:
            stand_ins.append(f"{model_display(model, models)}: {', '.join(shown)}")
    bounds = sorted({found.group(1).strip() for found in (_REPORTED_AS.fullmatch(str(note).strip())
                                                          for note in frame["paper_note"].dropna()) if found})
    text = (f"Paper (GB): the paper's Table 7, peak GPU memory in GB of training the method on the model at "
            f"{PAPER_SETTING} on the paper's GPUs (the config's reference numbers), not measured here"
            + (f"; numbers of the paper's model each model stands in for (aliases): {'; '.join(stand_ins)}"
               if stand_ins else "")
            + (f"; {', '.join(bounds)}: a bound, as the paper reports it" if bounds else "")
            + "; -- where the paper has no number.")
    note = study.get("reference_note")
    return latex_escape(text) + (f" {latex_escape(note)}" if note else "")


# --------------------------------------------------------------------------- entry point


def write_resource_study(*, probes: list, records: list, tokenized: dict, study: dict, models: dict, methods: dict,
                         tasks: dict, template_path, out_tex, out_csv, out_training_csv, out_pdf, out_png):
    """File-level entry point of the `resource_table` rule. `tokenized` maps "model/task" to
    the tokenized task's meta.json (tokens per epoch of the runs); `study["reference"]`, when
    set, is the paper's numbers (CSV; the rule's input too), shown beside the probes."""
    import pandas as pd

    from ...io import atomic_write_bytes, read_json
    from .figure import resource_figure

    probe_records = [read_json(p) for p in probes]
    run_records = [read_json(p) for p in records]
    tokens = {}
    for key, meta in tokenized.items():
        model, task = key.split("/", 1)
        tokens[(model, task)] = _train_tokens(Path(meta).parent)
    training = training_rows(run_records, tokens)
    atomic_write_bytes(out_training_csv,
                       training.to_csv(index=False, lineterminator="\n", float_format="%.6g").encode())
    reference = pd.read_csv(study["reference"]) if study.get("reference") else None
    frame = resource_frame(probe_records, training, study, reference, models, methods)
    resource_table(frame, study, models, methods, tasks, template_path, out_tex, out_csv)
    resource_figure(frame, study, models, methods, out_pdf, out_png)
    return frame
