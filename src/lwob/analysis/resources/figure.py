"""The study's figure: peak memory and training tokens/s per method and model."""

from __future__ import annotations

from .spec import NOT_APPLICABLE, OOM, SKIPPED
from .table import _num

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

    from ...report.figures import method_color, render_bytes
    from ...io import atomic_write_bytes
    from ...report.tables import method_display, model_display

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
                        status = sub.loc[m, "probe_status"]
                        if source == "probe":
                            text = {OOM: "OOM", SKIPPED: "skipped", NOT_APPLICABLE: "not applicable"}.get(status, "n/a")
                        else:  # no training run (or the method does not apply to the model)
                            text = "not applicable" if status == NOT_APPLICABLE else "n/a"
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
