"""Publication-ready outputs: the generated LaTeX tables compile with pdflatex (Debian's TeX
Live) and the HTML report opens in headless Chromium (Debian's chromium) without errors.

A session fixture (`publication_tools`, tests/conftest.py) makes pdflatex, booktabs and
chromium available: used as found on PATH, else installed with tools/publish/install.sh
(Debian packages texlive-latex-base, texlive-latex-recommended, chromium; needs root and
apt-get). Without them, or when the install fails, the tests using it fail (never skip);
they are marked `tex` (deselect with -m 'not tex'). The helpers (`latex_document`,
`compile_table`, `open_in_chromium`, `report_listing`) live in tests/publishing.py, shared
with the demo's end-to-end tests (tests/test_demo_e2e.py), which compile every table of a
demo run and open its report.

Here: a table of every layout (lwob.report.tables.LAYOUTS) rendered from small synthetic summaries
with special characters in every name, "n/s" and "--" cells, omitted-row notes and bold best
cells, compiled in a standalone wrapper; self-checks that a broken table and a page with a
JavaScript error are caught; and that every figure colours and names a method alike
(lwob.report.figures.method_color, lwob.report.tables.method_display).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lwob.tasks.base import task_metric

from publishing import TEMPLATE, assert_compiles, compile_table, console_errors, open_in_chromium, report_listing


def needs_tools(test):
    """The tests that need pdflatex/chromium (marked slow and tex): they install Debian
    packages (about 170 MB to download, 570 MB on disk) on first use, within the time limit
    of the first test that asks (the install's own limit is 1200 s)."""
    return pytest.mark.slow(pytest.mark.tex(pytest.mark.timeout(1500)(test)))

# --------------------------------------------------------------------------- tables of every layout

ODD = r"A_b & c% #1 $x^2$ {y} ~z \ é"  # every character latex_escape handles, and a non-ASCII one
MODELS = {"m_1": {"display": f"Model {ODD}"}, "m2": {}}
METHODS = {"fft": {"type": "fft"}, "lo_ra": {"type": "lora", "display": f"LoRA {ODD}"},
           "ia3": {"type": "ia3"}, "bit%fit": {"type": "bitfit"}}
TASKS = {
    "cls": {"display": f"SST {ODD}", "eval_sets": {
        "origin": {"kind": "origin", "column": "cls"}, "adv": {"kind": "adv", "column": "cls"}}},
    "nli": {"display": "MNLI", "eval_sets": {
        "origin": {"kind": "origin", "column": "nli"}, "adv": {"kind": "adv", "column": "nli"},
        "origin-mm": {"kind": "origin", "column": "nli-mm"}, "adv-mm": {"kind": "adv", "column": "nli-mm"}}},
    "squad": {"display": "SQuAD", "eval_sets": {
        "origin": {"kind": "origin"}, "addsent": {"kind": "adv", "column": "AS", "display": f"AS {ODD}"},
        "addany": {"kind": "adv", "column": "AA"}, "addnegans": {"kind": "adv", "column": "ANA"}}},
    "gen_mr": {"kind": "generation", "scorer": "viggo", "display": f"ViGGO {ODD}",
               "eval_sets": {"test": {"kind": "origin", "column": "gen_mr"}}},
    "gsm": {"kind": "generation", "scorer": "gsm8k", "display": "GSM8k",
            "eval_sets": {"test": {"kind": "origin", "column": "gsm"}}},
}
STUDIES = {
    "robustness_table": {"layout": "robustness_table", "models": ["m_1", "m2"], "methods": list(METHODS),
                         "tasks": ["cls", "nli"], "title": f"Accuracy {ODD}",
                         "omitted": {"m2": {"ia3": f"would repeat {ODD}"}}},
    "qa_robustness_table": {"layout": "qa_robustness_table", "models": ["m_1", "m2"], "methods": list(METHODS),
                            "tasks": ["squad"], "title": f"QA {ODD}",
                            "omitted": {"m_1": {"bit%fit": "same as FFT_here"}}},
    "generation_table": {"layout": "generation_table", "models": ["m_1", "m2"], "methods": list(METHODS),
                         "tasks": ["gen_mr", "gsm"], "title": f"Generation {ODD}",
                         "omitted": {"m2": {"ia3": "not on this GPU"}}},
}
SKIPPED = {"nli": {"adv-mm": "optional file absent"}, "squad": {"addnegans": "optional file absent"},
           "gsm": {"test": "optional file absent"}}
SEEDS = [0, 42, 421]


def synthetic_summary(study: dict) -> pd.DataFrame:
    """results/summary.csv rows for `study`: three seeds per cell, except one cell with one
    seed (no std) and one missing cell per model ("--")."""
    rows = []
    for mi, model in enumerate(study["models"]):
        for xi, method in enumerate(study["methods"]):
            for task in study["tasks"]:
                for es, spec in TASKS[task]["eval_sets"].items():
                    metrics = (["accuracy"] if study["layout"] == "robustness_table" else
                               [task_metric(TASKS[task])] if study["layout"] == "generation_table" else
                               ["em", "f1"] if spec["kind"] == "origin" else ["adv_em", "adv_f1"])
                    for k, metric in enumerate(metrics):
                        if (xi, es, k) == (1, "adv", 0) and task == "cls":
                            continue  # a missing result
                        if (xi, es) == (2, "addany") and mi == 0:
                            continue
                        if (xi, task, mi) == (1, "gen_mr", 1):
                            continue  # a missing generation result
                        values = [0.4 + 0.1 * xi + 0.02 * mi + 0.01 * k + 0.005 * s for s in range(len(SEEDS))]
                        seeds = SEEDS if xi != 3 else SEEDS[:1]
                        values = values[:len(seeds)]
                        mean = sum(values) / len(values)
                        std = (pd.Series(values).std() if len(values) > 1 else float("nan"))
                        rows.append({"model": model, "method": method, "task": task, "eval_set": es,
                                     "kind": spec["kind"], "metric": metric, "mean": mean, "std": std,
                                     "n": len(seeds), "seeds": ",".join(map(str, seeds)),
                                     "values": ",".join(f"{v:.6f}" for v in values)})
    return pd.DataFrame(rows)


@needs_tools
@pytest.mark.parametrize("layout", sorted(STUDIES))
def test_every_layout_compiles_with_pdflatex(layout, publication_tools, tmp_path):
    from lwob.report.tables import LAYOUTS, study_table

    assert set(STUDIES) == set(LAYOUTS), "add a study of the new layout to STUDIES"
    study = STUDIES[layout]
    latex, df = study_table(synthetic_summary(study), study, TASKS, MODELS, METHODS, TEMPLATE,
                            tmp_path / "t.tex", tmp_path / "t.csv", study_name=f"odd_{layout}",
                            skipped=SKIPPED)
    # The table exercises what can go wrong: escaped names, n/s, --, bold, the omitted-row note.
    assert r"\_b \& c\% \#1 \$x\textasciicircum{}2\$ \{y\} \textasciitilde{}z \textbackslash{} é" in latex
    assert "n/s" in latex and "--" in latex and r"\textbf{" in latex and "Not run" in latex
    assert df["missing"].any() and df["best"].any() and df["skipped"].notna().any()
    result = compile_table(latex, tmp_path / "pdf", layout, publication_tools.pdflatex)
    assert_compiles(result, layout)
    assert result.pdf.read_bytes().startswith(b"%PDF")


@needs_tools
def test_a_table_with_failed_runs_and_an_odd_label_compiles(publication_tools, tmp_path):
    """The failure tables (lwob.report.failures): "err" cells, the failures in the caption (error and log
    path with LaTeX specials), and a configured label with braces and a backslash."""
    from lwob.report.tables import study_table

    study = {**STUDIES["robustness_table"], "label": "tab:x}\\input{y}"}
    failed = [{"model": "m_1", "task": "cls", "method": "lo_ra", "seed": 0, "rule": "train", "status": "failed",
               "error": f"RuntimeError: {ODD}", "log": "logs/train/m_1/cls/lo_ra/seed0.log"}]
    latex, df = study_table(synthetic_summary(study), study, TASKS, MODELS, METHODS, TEMPLATE, tmp_path / "t.tex",
                            tmp_path / "t.csv", study_name="odd_failed", skipped=SKIPPED, failed=failed)
    assert " & err" in latex and df["failed"].any() and "\\input" not in latex
    result = compile_table(latex, tmp_path / "pdf", "failed", publication_tools.pdflatex)
    assert_compiles(result, "table with failed runs")


@needs_tools
def test_a_broken_table_is_caught(publication_tools, tmp_path):
    bad = "\\begin{table}\\begin{tabular}{ll}\\toprule a & \\undefinedmacro \\\\\\bottomrule\\end{tabular}\\end{table}"
    result = compile_table(bad, tmp_path, "bad", publication_tools.pdflatex)
    assert not result.ok and any("Undefined control sequence" in e for e in result.errors), result.errors


@needs_tools
def test_a_script_error_in_a_page_is_caught(publication_tools, tmp_path):
    page = tmp_path / "page.html"
    page.write_text('<html><body><div id="app">x</div><script>document.getElementById("app").textContent = '
                    '"rendered"; null.boom();</script><img src="https://example.org/x.png"></body></html>')
    dom, console = open_in_chromium(page, tmp_path / "chromium", publication_tools.chromium)
    assert ">rendered<" in dom  # the DOM after the scripts ran
    assert any("Uncaught TypeError" in e for e in console_errors(console)), console
    assert report_listing(dom)["external"] == ['<img src="https://example.org/x.png']


# --------------------------------------------------------------------------- one palette, one name per method


def test_method_color_by_type_with_shades_for_variants():
    from lwob.report.figures import METHOD_TYPE_COLORS, method_color

    methods = {"fft": {"type": "fft"}, "lora": {"type": "lora"}, "lora-r16": {"type": "lora"},
               "lora-r32": {"type": "lora"}, "top1": {"type": "topk"}, "top3": {"type": "topk"},
               "mine": {"type": "brand-new"}}
    assert method_color("fft", methods) == METHOD_TYPE_COLORS["fft"].lower()
    assert method_color("lora", methods) == METHOD_TYPE_COLORS["lora"].lower()
    assert method_color("top1", methods) == METHOD_TYPE_COLORS["topk"].lower()
    shades = [method_color(m, methods) for m in ("lora", "lora-r16", "lora-r32")]
    assert len(set(shades)) == 3  # variants: shades of the type's colour
    assert method_color("mine", methods) == method_color("mine", methods)  # unknown type: a fixed spare colour
    assert method_color("fft", {}) == method_color("fft", methods)  # a bare name is its own type
    assert len({method_color(m, methods) for m in methods}) == len(methods)


def _drawn(monkeypatch, draw) -> tuple[set[str], set[str]]:
    """(colours, texts) of every artist of the figure `draw()` renders."""
    import matplotlib.colors as mcolors
    from lwob.report import figures

    seen = {}
    real = figures.render_bytes

    def capture(fig, dpi):
        seen["fig"] = fig
        return real(fig, dpi)

    monkeypatch.setattr(figures, "render_bytes", capture)
    draw()
    colors, texts = set(), set()
    for artist in seen["fig"].findobj():
        for getter in ("get_facecolor", "get_color", "get_markerfacecolor", "get_edgecolor"):
            try:
                value = getattr(artist, getter)()
            except (AttributeError, TypeError, ValueError):
                continue
            values = value if getattr(value, "ndim", 0) == 2 else [value]
            for v in values:
                try:
                    colors.add(mcolors.to_hex(v, keep_alpha=False))
                except (ValueError, TypeError):
                    pass
        if hasattr(artist, "get_text"):
            texts.add(artist.get_text())
    return colors, texts


def test_every_figure_colours_and_names_a_method_alike(monkeypatch, tmp_path):
    """The study figure, the budget figure and Figure 1 draw a method in the same colour
    (method_color) and under the same name (method_display)."""
    import numpy as np

    from lwob.analysis import increments as inc
    from lwob.report.figures import budget_figure, method_color, origin_vs_adv
    from lwob.report.tables import method_display

    from test_budget import METHODS, STUDY as BUDGET_STUDY, _frames
    from test_figures import MODELS_CFG, STUDY as FIG_STUDY, TASKS as FIG_TASKS, metrics_frame

    metrics, runs = _frames()
    figures = {
        "study": (FIG_STUDY["methods"], lambda: origin_vs_adv(
            metrics_frame(), FIG_STUDY, FIG_TASKS, METHODS, MODELS_CFG, tmp_path / "s.pdf", tmp_path / "s.png")),
        "budget": (BUDGET_STUDY["methods"], lambda: budget_figure(
            metrics, runs, BUDGET_STUDY, FIG_TASKS, METHODS, MODELS_CFG, tmp_path / "b.pdf", tmp_path / "b.png")),
    }
    shown = ["fft", "lora", "lora-r16", "bitfit"]
    rng = np.random.default_rng(0)
    monkeypatch.setattr(inc, "load_selected", lambda path: (
        {"weight": rng.normal(0, 1e-3, 200)}, {"method_type": METHODS[Path(path).stem]["type"], "module": "q",
                                               "selector": "last.query"}))
    figures["figure1"] = (shown, lambda: inc.write_increment_figure(
        selected={m: tmp_path / f"{m}.safetensors" for m in shown}, methods=METHODS,
        out_pdf=tmp_path / "f.pdf", out_png=tmp_path / "f.png"))
    for name, (methods, draw) in figures.items():
        colors, texts = _drawn(monkeypatch, draw)
        for m in methods:
            assert method_color(m, METHODS) in colors, (name, m, method_color(m, METHODS), sorted(colors))
            assert any(method_display(m, METHODS) == t or t.startswith(method_display(m, METHODS) + " (")
                       for t in texts), (name, m, sorted(texts))
