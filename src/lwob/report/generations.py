"""Per-example generations of a study's generation tasks, to read beside its table.

For each task x model x method of the study, the first `per_run` examples of one seed's
predictions (the study's first seed): prompt, generation, reference, whether it scored, why
decoding stopped, and the scorer's parts. Written as a CSV (every shown example) and a
self-contained HTML page (escaped text in <pre> cells), which the Snakemake report embeds.
"""

from __future__ import annotations

import html
import pandas as pd

from ..io import atomic_write_bytes

#: the columns shown first; the scorer's parts follow
SHOWN = ["task", "model", "method", "seed", "eval_set", "idx", "correct", "stop_reason", "prompt", "generation",
         "reference"]
EXCLUDED = {"new_tokens"}


def generation_rows(predictions: dict[tuple, str], per_run: int = 20) -> pd.DataFrame:
    """`predictions`: (model, task, method, seed) -> predictions parquet path."""
    frames = []
    for (model, task, method, seed), path in predictions.items():
        df = pd.read_parquet(path)
        if "generation" not in df.columns:
            continue
        df = df.groupby("eval_set", sort=False).head(per_run).copy()
        df.insert(0, "seed", int(seed))
        df.insert(0, "method", method)
        df.insert(0, "model", model)
        df.insert(0, "task", task)
        frames.append(df)
    if not frames:
        return pd.DataFrame(columns=SHOWN)
    out = pd.concat(frames, ignore_index=True)
    rest = [c for c in out.columns if c not in SHOWN and c not in EXCLUDED]
    return out[[c for c in SHOWN if c in out.columns] + rest]


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    text = html.escape("" if value is None else str(value))
    return f"<pre>{text}</pre>" if "\n" in text or len(text) > 40 else text


def render_html(rows: pd.DataFrame, title: str) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows.columns)
    body = "\n".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in r) + "</tr>"
                     for r in rows.itertuples(index=False))
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>"
            "body{font-family:sans-serif;font-size:13px}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top;text-align:left}"
            "pre{margin:0;white-space:pre-wrap;max-width:36em}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p>{len(rows)} examples: the first of each eval set per task, model and "
            "method, one seed; <code>correct</code> is the per-example score of the table's metric.</p>"
            f"<table><tr>{head}</tr>\n{body}</table></body></html>\n")


def write_generations(*, predictions: dict, study_name: str, title: str | None, out_csv, out_html,
                      per_run: int = 20) -> pd.DataFrame:
    """File-level entry point of the `generations` rule."""
    rows = generation_rows(predictions, per_run)
    atomic_write_bytes(out_csv, rows.to_csv(index=False, lineterminator="\n").encode())
    atomic_write_bytes(out_html, render_html(rows, f"Generations: {title or study_name}").encode())
    return rows
