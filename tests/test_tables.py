"""lwob.report.tables: the study table (LaTeX via the jinja2 template, CSV twin)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from lwob.analysis.aggregate import collect
from lwob.report.tables import latex_escape, study_table

from conftest import SYNTHETIC_TASKS

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "reports" / "templates" / "robustness_table.tex.j2"
REFERENCE = REPO / "config" / "reference" / "paper_tables.csv"

MODELS_CFG = {"rb": {"display": "RoBERTa-base"}, "my_model": {}}
METHODS_CFG = {"fft": {"display": "FFT"}, "lora": {"display": "LoRA"}, "bit_fit": {"type": "bitfit"}}
METHODS = ["fft", "lora", "bit_fit"]
SEEDS = [0, 1, 2]
TASKS = SYNTHETIC_TASKS
STUDY = {"models": ["rb", "my_model"], "methods": METHODS, "tasks": ["sst2", "mnli"], "title": "Robust_ness"}
DELTA = {0: -0.01, 1: 0.0, 2: 0.01}


def base(model, method, eval_set, task):
    """Mean accuracy (fraction) of a cell; seeds add -0.01, 0, +0.01 (std 1.00 in percent)."""
    order = ["origin", "adv", "origin-mm", "adv-mm"]
    b = 0.5 + 0.1 * METHODS.index(method) + 0.01 * order.index(eval_set) + (0.05 if task == "mnli" else 0)
    if model == "my_model":
        b += 0.02
    if model == "rb" and method == "fft" and task == "sst2" and eval_set == "adv":
        b = 0.95  # FFT best in this one column of the rb block
    return b


def summary_for(tmp_path, seeds=SEEDS, skip=()):
    evals = []
    for m in STUDY["models"]:
        for t, task in TASKS.items():
            for x in METHODS:
                for s in seeds:
                    if (m, t, x, s) in skip:
                        continue
                    metrics = {es: {"accuracy": base(m, x, es, t) + DELTA.get(s, 0.0), "n": 50, **spec}
                               for es, spec in task["eval_sets"].items()}
                    p = tmp_path / f"{m}_{t}_{x}_{s}.json"
                    p.write_text(json.dumps({"model": m, "task": t, "method": x, "seed": s, "metrics": metrics}))
                    evals.append(p)
    return collect(evals, [])[1]


def render(tmp_path, summary, **kw):
    return study_table(summary, STUDY, TASKS, MODELS_CFG, METHODS_CFG, TEMPLATE,
                            tmp_path / "table3.tex", tmp_path / "table3.csv", **kw)


def test_latex_cells_bold_and_escaping(tmp_path):
    latex, df = render(tmp_path, summary_for(tmp_path))
    assert (tmp_path / "table3.tex").read_text() == latex
    for needle in [r"\toprule", r"\midrule", r"\bottomrule", r"\caption{Robust\_ness.", r"\label{tab:table3}",
                   r"\multicolumn{2}{c}{SST-2}", r"\multicolumn{2}{c}{MNLI}", r"\multicolumn{2}{c}{MNLI-mm}",
                   r"\multicolumn{2}{c}{Avg}", r"\cmidrule(lr){2-3}", "RoBERTa-base (FFT) & ",
                   r"my\_model (BitFit) & ", "Method & Origin & Adv"]:
        assert needle in latex, needle
    assert "my_model" not in latex and "bit_fit" not in latex
    lines = {line.split(" & ")[0]: line for line in latex.splitlines() if " & " in line and "\\\\" in line}
    rb_fft = lines["RoBERTa-base (FFT)"].rstrip(" \\").split(" & ")[1:]
    # sst2 origin 50.00, sst2 adv 95.00 (best, bold), mnli origin 55.00, ...
    assert rb_fft[0] == "50.00(1.00)"
    assert rb_fft[1] == r"\textbf{95.00(1.00)}"
    assert rb_fft[2] == "55.00(1.00)"
    # Avg origin over sst2/mnli/mnli-mm = (50 + 55 + 57) / 3 = 54.00; std over per-seed averages = 1.00
    assert rb_fft[6] == "54.00(1.00)"
    rb_bitfit = lines["RoBERTa-base (BitFit)"].rstrip(" \\").split(" & ")[1:]
    assert rb_bitfit[0] == r"\textbf{70.00(1.00)}" and rb_bitfit[1] == "71.00(1.00)"
    # Bold is per model block: my_model's BitFit is bold too.
    my_bitfit = lines[r"my\_model (BitFit)"].rstrip(" \\").split(" & ")[1:]
    assert all(c.startswith(r"\textbf{") for c in my_bitfit)
    assert latex.count(r"\textbf{") == 2 * 8
    assert len(df) == 2 * 3 * 4 * 2


def test_csv_twin_values(tmp_path):
    _, _ = render(tmp_path, summary_for(tmp_path))
    df = pd.read_csv(tmp_path / "table3.csv")
    assert len(df) == 48
    r = df[(df.model == "my_model") & (df.method == "lora") & (df.column == "mnli-mm") & (df.split == "adv")].iloc[0]
    assert r["mean"] == pytest.approx(100 * (0.5 + 0.1 + 0.03 + 0.05 + 0.02))
    assert r["std"] == pytest.approx(1.0) and r["n"] == 3 and not r["best"] and not r["missing"]
    assert r["cell"] == "70.00(1.00)" and r["row_label"] == "my_model (LoRA)"
    best = df[(df.model == "rb") & (df.column == "sst2") & (df.split == "adv") & df.best]
    assert list(best["method"]) == ["fft"]
    assert df[["paper_mean", "diff"]].isna().all().all()
    assert list(df.columns) == ["study", "model", "method", "row_label", "column", "column_display", "split",
                                "metric", "task", "eval_set", "mean", "std", "n", "cell", "best", "missing",
                                "skipped", "failed", "failure", "paper_mean", "paper_std", "diff"]
    assert (df["metric"] == "accuracy").all() and df["skipped"].isna().all()
    assert not df["failed"].any() and df["failure"].isna().all()
    assert (df["study"] == "table3").all()
    plain = df[df.column != "average"]
    assert set(zip(plain.column, plain.split, plain.task, plain.eval_set)) == {
        ("sst2", "origin", "sst2", "origin"), ("sst2", "adv", "sst2", "adv"), ("mnli", "origin", "mnli", "origin"),
        ("mnli", "adv", "mnli", "adv"), ("mnli-mm", "origin", "mnli", "origin-mm"), ("mnli-mm", "adv", "mnli", "adv-mm")}
    assert df[df.column == "average"][["task", "eval_set"]].isna().all().all()


def test_explicit_layout_is_the_default(tmp_path):
    summary = summary_for(tmp_path)
    default, _ = render(tmp_path, summary)
    explicit, _ = study_table(summary, {**STUDY, "layout": "robustness_table"}, TASKS, MODELS_CFG, METHODS_CFG,
                              TEMPLATE, tmp_path / "table3.tex", tmp_path / "table3.csv")
    assert explicit == default


def test_missing_runs_give_dashes(tmp_path):
    skip = {("my_model", "sst2", "lora", s) for s in SEEDS} | {("rb", "mnli", "fft", 1)}
    latex, df = render(tmp_path, summary_for(tmp_path, skip=skip))
    line = next(l for l in latex.splitlines() if l.startswith(r"my\_model (LoRA)"))
    cells = line.rstrip(" \\").split(" & ")[1:]
    assert cells[0] == "--" and cells[1] == "--" and cells[6] == "--" and cells[7] == "--"
    assert cells[2] == "67.00(1.00)"
    miss = df[df.missing]
    assert set(zip(miss.model, miss.method, miss.column)) == {("my_model", "lora", "sst2"),
                                                              ("my_model", "lora", "average")}
    # rb FFT MNLI lacks seed 1: the column has n=2 and the average has a mean but no std.
    rb = df[(df.model == "rb") & (df.method == "fft")]
    assert (rb[rb.column == "mnli"]["n"] == 2).all()
    avg = rb[(rb.column == "average") & (rb.split == "origin")].iloc[0]
    assert avg["mean"] == pytest.approx(54.0) and math.isnan(avg["std"]) and avg["cell"] == "54.00"


def test_single_seed_has_no_std(tmp_path):
    latex, df = render(tmp_path, summary_for(tmp_path, seeds=[42]))
    assert "50.00 & " in latex and "(" not in latex.split(r"\midrule", 1)[1].replace("(FFT)", "").replace(
        "(LoRA)", "").replace("(BitFit)", "")
    assert (df["n"] == 1).all()


def test_reference_lookup_and_difference(tmp_path):
    summary = summary_for(tmp_path)
    summary["model"] = summary["model"].replace({"rb": "roberta-base"})
    study = {**STUDY, "models": ["roberta-base"], "paper_table": "table3", "label": "tab:mine",
             "caption": "Our numbers & the paper's"}
    reference = pd.read_csv(REFERENCE)
    latex, df = study_table(summary, study, TASKS, {"roberta-base": {"display": "RoBERTa-base"}},
                                 METHODS_CFG, TEMPLATE, tmp_path / "t.tex", tmp_path / "t.csv", reference=reference)
    assert r"\label{tab:mine}" in latex and r"\caption{Our numbers \& the paper's}" in latex
    r = df[(df.method == "fft") & (df.column == "sst2") & (df.split == "origin")].iloc[0]
    assert r["paper_mean"] == pytest.approx(94.8) and r["paper_std"] == pytest.approx(0.5)
    assert r["diff"] == pytest.approx(50.0 - 94.8)
    avg = df[(df.method == "fft") & (df.column == "average") & (df.split == "adv")].iloc[0]
    assert avg["paper_mean"] == pytest.approx(36.58)
    assert df[df.method == "bit_fit"]["paper_mean"].isna().all()  # not a method name of the paper


def test_reference_matches_through_aliases(tmp_path):
    """Our names differ from the paper's: the model's and method's `aliases` find its numbers."""
    summary = summary_for(tmp_path)
    study = {**STUDY, "models": ["rb"], "paper_table": "table3"}
    models = {"rb": {"display": "RoBERTa-base", "aliases": ["roberta-base"]}}
    methods = {**METHODS_CFG, "bit_fit": {"type": "bitfit", "aliases": ["bitfit"]}}
    _, df = study_table(summary, study, TASKS, models, methods, TEMPLATE, tmp_path / "t.tex", tmp_path / "t.csv",
                        reference=pd.read_csv(REFERENCE))
    r = df[(df.method == "bit_fit") & (df.column == "sst2") & (df.split == "adv")].iloc[0]
    assert r["paper_mean"] == pytest.approx(19.59) and r["paper_std"] == pytest.approx(1.9)
    assert r["diff"] == pytest.approx(100 * base("rb", "bit_fit", "adv", "sst2") - 19.59)
    r = df[(df.method == "lora") & (df.column == "sst2") & (df.split == "origin")].iloc[0]
    assert r["paper_mean"] == pytest.approx(95.1)
    # without the aliases nothing matches
    _, df = study_table(summary, study, TASKS, {"rb": {}}, METHODS_CFG, TEMPLATE, tmp_path / "u.tex",
                        tmp_path / "u.csv", reference=pd.read_csv(REFERENCE))
    assert df["paper_mean"].isna().all()


def test_skipped_sets_read_not_supplied(tmp_path):
    skipped = {"mnli": {"adv-mm": "optional file data/x.json absent"}}
    summary = summary_for(tmp_path)
    summary = summary[~((summary.task == "mnli") & (summary.eval_set == "adv-mm"))]  # never evaluated
    latex, df = render(tmp_path, summary, skipped=skipped)
    line = next(l for l in latex.splitlines() if l.startswith("RoBERTa-base (LoRA) & "))
    cells = line.rstrip(" \\").split(" & ")[1:]
    assert cells[5] == "n/s" and cells[4] == "67.00(1.00)"
    # the Adv average is over the supplied sets only: sst2 and mnli = (61 + 66) / 2
    assert cells[7] == "63.50(1.00)"
    assert "n/s: set not supplied (MNLI-mm: optional files absent)" in latex
    ns = df[df.cell == "n/s"]
    assert len(ns) == 2 * 3 and set(ns.column) == {"mnli-mm"} and set(ns.split) == {"adv"}
    assert (ns["skipped"] == "optional file data/x.json absent").all() and ns["missing"].all()
    assert df[df.cell != "n/s"]["skipped"].isna().all()
    assert "n/s" not in render(tmp_path, summary_for(tmp_path))[0]


# --------------------------------------------------------------------------- QA layout (Tables 4/5)

QA_TASKS = {"squad": {"display": "SQuAD", "kind": "extractive_qa", "eval_sets": {
    "origin": {"kind": "origin", "column": "Origin"}, "addsent": {"kind": "adv", "column": "AS"},
    "addany": {"kind": "adv", "column": "AA"}}}}
QA_STUDY = {"models": ["rb"], "methods": ["fft", "lora"], "tasks": ["squad"], "layout": "qa_robustness_table",
            "title": "QA", "paper_table": "table4"}
QA_BASE = {"origin": {"em": 0.80, "f1": 0.88},
           "addsent": {"em": 0.50, "f1": 0.60, "adv_em": 0.40, "adv_f1": 0.52, "orig_em": 0.79, "orig_f1": 0.87},
           "addany": {"em": 0.70, "f1": 0.78, "adv_em": 0.62, "adv_f1": 0.70, "orig_em": 0.79, "orig_f1": 0.87}}


def qa_summary(tmp_path, seeds=(0, 1), skip_sets=()):
    evals = []
    for x, shift in (("fft", 0.0), ("lora", -0.05)):
        for s in seeds:
            metrics = {es: {**{k: v + shift + 0.01 * s for k, v in QA_BASE[es].items()}, "n": 10,
                            **QA_TASKS["squad"]["eval_sets"][es]}
                       for es in QA_BASE if es not in skip_sets}
            p = tmp_path / f"qa_{x}_{s}.json"
            p.write_text(json.dumps({"model": "rb", "task": "squad", "method": x, "seed": s, "metrics": metrics}))
            evals.append(p)
    return collect(evals, [])[1]


def _qa_render(tmp_path, summary, study=QA_STUDY, **kw):
    return study_table(summary, study, QA_TASKS, {"rb": {"display": "RoBERTa-base", "aliases": ["roberta-base"]}},
                       {"fft": {}, "lora": {"aliases": ["lora-r8"]}}, TEMPLATE, tmp_path / "t4.tex",
                       tmp_path / "t4.csv", **kw)


def test_qa_layout_columns_and_worst_case_scores(tmp_path):
    latex, df = _qa_render(tmp_path, qa_summary(tmp_path), reference=pd.read_csv(REFERENCE))
    for needle in [r"\multicolumn{2}{c}{AS}", r"\multicolumn{2}{c}{AA}", r"\multicolumn{2}{c}{Average}",
                   r"\multicolumn{2}{c}{Origin}", r"\cmidrule(lr){2-3}", r"\cmidrule(lr){8-9}",
                   "Method & EM & F1 & EM & F1 & EM & F1 & EM & F1", "EM and F1 (\\%)",
                   "worst case over each original question"]:
        assert needle in latex, needle
    assert [(c, sp) for c, sp in zip(df.column, df.split)][:8] == [
        ("AS", "em"), ("AS", "f1"), ("AA", "em"), ("AA", "f1"), ("average", "em"), ("average", "f1"),
        ("origin", "em"), ("origin", "f1")]
    fft = df[df.method == "fft"].set_index(["column", "split"])
    assert fft.loc[("AS", "em"), "metric"] == "adv_em" and fft.loc[("origin", "f1"), "metric"] == "f1"
    # seeds 0 and 1 add 0 and 0.01: mean +0.005, std 0.71 (percent)
    assert fft.loc[("AS", "em"), "mean"] == pytest.approx(40.5)
    assert fft.loc[("AS", "em"), "cell"] == r"40.50(0.71)"
    assert fft.loc[("average", "f1"), "mean"] == pytest.approx((52.5 + 70.5) / 2)
    assert fft.loc[("average", "f1"), "std"] == pytest.approx(100 * 0.01 / math.sqrt(2))
    assert fft.loc[("origin", "em"), "mean"] == pytest.approx(80.5)
    assert fft["best"].all() and not df[df.method == "lora"]["best"].any()
    lora = df[df.method == "lora"].set_index(["column", "split"])
    assert lora.loc[("AS", "em"), "paper_mean"] == pytest.approx(61.15)  # through the alias lora-r8
    assert lora.loc[("origin", "f1"), "paper_mean"] == pytest.approx(86.97)
    assert fft.loc[("AS", "em"), "paper_mean"] == pytest.approx(63.7)
    assert fft.loc[("average", "em"), "paper_mean"] == pytest.approx(70.06)


def test_qa_layout_plain_score_and_skipped_set(tmp_path):
    study = {**QA_STUDY, "adversarial_score": "plain"}
    latex, df = _qa_render(tmp_path, qa_summary(tmp_path, skip_sets=("addany",)), study=study,
                           skipped={"squad": {"addany": "absent"}})
    assert "plain score on the adversarial questions" in latex and "n/s: set not supplied (AA" in latex
    fft = df[df.method == "fft"].set_index(["column", "split"])
    assert fft.loc[("AS", "em"), "metric"] == "em" and fft.loc[("AS", "em"), "mean"] == pytest.approx(50.5)
    assert fft.loc[("AA", "f1"), "cell"] == "n/s" and fft.loc[("AA", "f1"), "skipped"] == "absent"
    assert fft.loc[("average", "em"), "mean"] == pytest.approx(50.5)  # only AS supplied


def test_template_edit_is_used(tmp_path):
    custom = tmp_path / "custom.tex.j2"
    custom.write_text(r"\BLOCK{for b in blocks}\BLOCK{for r in b.rows}\VAR{r.label};\BLOCK{endfor}\BLOCK{endfor}" "\n")
    latex, _ = study_table(summary_for(tmp_path), STUDY, TASKS, MODELS_CFG, METHODS_CFG, custom,
                                tmp_path / "x.tex", tmp_path / "x.csv")
    assert latex.startswith("RoBERTa-base (FFT);RoBERTa-base (LoRA);")


def test_latex_escape():
    assert latex_escape("a_b & c%#$~^{}\\") == (r"a\_b \& c\%\#\$\textasciitilde{}\textasciicircum{}\{\}"
                                                r"\textbackslash{}")


def test_paper_column_alias_and_side_by_side_table(tmp_path):
    """An eval set's `paper_column` finds the paper's column; the side-by-side table lists
    every cell with a paper number: ours, theirs, the difference."""
    import copy

    from lwob.report.tables import paper_comparison

    tasks = copy.deepcopy(TASKS)
    summary = summary_for(tmp_path)
    for es in tasks["sst2"]["eval_sets"].values():
        es["column"], es["paper_column"] = "demo-sst2", "sst2"
    summary["column"] = summary["column"].replace({"sst2": "demo-sst2"})
    study = {**STUDY, "models": ["rb"], "paper_table": "table3", "title": "Mine"}
    models = {"rb": {"display": "RoBERTa-base", "aliases": ["roberta-base"]}}
    _, df = study_table(summary, study, tasks, models, METHODS_CFG, TEMPLATE, tmp_path / "t.tex", tmp_path / "t.csv",
                        reference=pd.read_csv(REFERENCE))
    r = df[(df.method == "fft") & (df.column == "demo-sst2") & (df.split == "origin")].iloc[0]
    assert r["paper_mean"] == pytest.approx(94.8)
    latex, side = paper_comparison(pd.read_csv(tmp_path / "t.csv"), study, REPO / "reports/templates/paper_comparison.tex.j2",
                                   tmp_path / "p.tex", tmp_path / "p.csv", "mine", note="Stand-ins.")
    assert len(side) == df["paper_mean"].notna().sum() > 0
    assert set(side.method) == {"fft", "lora"}  # bit_fit has no alias of the paper's bitfit
    row = side[(side.method == "fft") & (side.column == "demo-sst2") & (side.split == "origin")].iloc[0]
    assert row["diff"] == pytest.approx(row["mean"] - 94.8)
    assert r"\begin{longtable}" in latex and "94.80(0.50)" in latex and "Stand-ins." in latex
    assert f"{row['diff']:+.2f}" in latex


def test_label_study_name_and_caption_cannot_escape_latex(tmp_path):
    """A config label, study name or title cannot close a brace, start a command or end the
    `%` comment line the study name sits in (defect: `\\label{tab:<study>}` was not escaped)."""
    study = {**STUDY, "label": "tab:x}\\input{/etc/passwd}", "title": "T\n\n\\input{/etc/passwd}"}
    latex, _ = study_table(summary_for(tmp_path), study, TASKS, MODELS_CFG, METHODS_CFG, TEMPLATE,
                           tmp_path / "t.tex", tmp_path / "t.csv", study_name="s}\n\\input{x}")
    assert "\\input" not in latex
    assert "\\label{tab:x-input-/etc/passwd-}" in latex
    assert "(study s\\}  \\textbackslash{}input\\{x\\})." not in latex  # one line: the newline is a space
    assert "(study s\\} \\textbackslash{}input\\{x\\})." in latex
    default = study_table(summary_for(tmp_path), {**STUDY}, TASKS, MODELS_CFG, METHODS_CFG, TEMPLATE,
                          tmp_path / "d.tex", tmp_path / "d.csv", study_name="my study#1")[0]
    assert "\\label{tab:my-study-1}" in default


FAILED_LORA = {"model": "rb", "task": "mnli", "method": "lora", "seed": 1, "rule": "train", "status": "failed",
               "error": "FloatingPointError: loss_is NaN", "log": "logs/train/rb/mnli/lora/seed1.log"}


def test_failed_run_reads_err_with_its_error_and_log(tmp_path):
    """A failed run's cells read "err" (not "--", not a number of the seeds that finished),
    are never bold, and the caption and CSV say which job failed, why, and where the log is."""
    summary = summary_for(tmp_path, skip={("rb", "mnli", "lora", 1)})
    latex, df = render(tmp_path, summary, failed=[FAILED_LORA])
    lora = df[(df.model == "rb") & (df.method == "lora")]
    on_mnli = lora[lora.column.isin(["mnli", "mnli-mm", "average"])]
    assert (on_mnli["cell"] == "err").all() and on_mnli["failed"].all() and not on_mnli["best"].any()
    assert on_mnli["failure"].str.contains("rb/mnli/lora/seed1: train failed: FloatingPointError").all()
    assert on_mnli["failure"].str.contains("logs/train/rb/mnli/lora/seed1.log").all()
    on_sst2 = lora[lora.column == "sst2"]  # its sst2 runs finished: numbers as before
    assert not on_sst2["failed"].any() and on_sst2["cell"].str.match(r"\d+\.\d\d\(").all()
    assert df[df.model == "my_model"]["failed"].sum() == 0
    assert "RoBERTa-base (LoRA) & " in latex and " & err & err" in latex
    assert "err: a run of the cell failed" in latex and "logs/train/rb/mnli/lora/seed1.log" in latex
    assert r"loss\_is NaN" in latex  # the error is LaTeX-escaped in the caption


def test_no_failures_no_err(tmp_path):
    latex, df = render(tmp_path, summary_for(tmp_path), failed=[])
    assert "err" not in set(df["cell"]) and "a run of the cell failed" not in latex
