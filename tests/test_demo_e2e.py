"""The README's offline demo end to end, then the rerun semantics users rely on.

Runs in a copy of the workflow so that touching a template does not touch the checkout.
Every test runs on the demo at CI size (conftest.reduced_demo_config: the same studies,
methods and tasks with fewer examples, epochs and seeds; `make test`) and on the full demo
(`pytest -m demo`, about 40 minutes on an idle 2-core machine).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO, load_config, planned_jobs, reduced_demo_config

# The module's first test also runs the demo (the fixture): about 20 minutes at CI size and 39
# for the full demo on an idle 2-core machine; the limit leaves
# room for a loaded one (at CI size it took 40 minutes beside other jobs at load 5).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(4200)]

# The config the demo fixture ran (the full demo's or the CI-size one), in the copy.
USED = "config/used.yaml"
DEMO = ["--profile", "profiles/local", "--configfile", USED]
SIZES = {"ci": reduced_demo_config, "full": lambda: load_config("demo.yaml")}


def snakemake(workdir: Path, *args: str, timeout: int = 3600) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module", params=[pytest.param("ci"), pytest.param("full", marks=pytest.mark.demo)])
def demo(request, tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp(f"demo-{request.param}") / "repo"
    work.mkdir()
    for item in ["Snakefile", "rules", "workflow", "reports", "config", "src", "profiles", "slurm", "envs"]:
        src = REPO / item
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, work / item)
    (work / USED).write_text(yaml.safe_dump(SIZES[request.param](), sort_keys=False))
    (work / "SIZE").write_text(request.param)
    start = time.time()
    result = snakemake(work, "all", *DEMO)
    assert result.returncode == 0, result.stderr[-5000:]
    print(f"demo wall time: {time.time() - start:.0f} s")
    result = snakemake(work, "--report", "results/report.html", *DEMO)
    assert result.returncode == 0, result.stderr[-5000:]
    return work


def demo_runs(config: dict) -> list:
    from lwob.plan import config as cfg

    return cfg.runs(config)


def test_demo_outputs(demo):
    cfg = yaml.safe_load((demo / USED).read_text())
    tex = (demo / "results/tables/table3.tex").read_text()
    for method in ["FFT", "LoRA", "AdaLoRA", "Prefix", "IA3", "BitFit"]:
        assert f"({method})" in tex
    assert "\\textbf" in tex and "\\toprule" in tex
    summary = pd.read_csv(demo / "results/summary.csv")
    table3 = cfg["studies"]["table3"]
    acc = summary[(summary.metric == "accuracy") & summary.method.isin(table3["methods"])
                  & summary.task.isin(table3["tasks"])]
    assert set(acc.n) == {len(cfg["seeds"])}
    assert len(acc) == 6 * 2 * 2  # methods x tasks x (origin, adv)
    # The adversarial sets are harder: a real drop on average.
    mean = acc.groupby("kind")["mean"].mean()
    assert mean["adv"] < mean["origin"] - 0.02, mean
    assert mean["origin"] > 0.7, mean
    runs = pd.read_csv(demo / "results/runs.csv")
    # Table 3 (the config's seeds); Tables 4, 5 (2 seeds); Tables 9, 10 add top-1/3/6 on 2 + 1 tasks and
    # the budget study LoRA r=64 (2 seeds); GLUE's other tasks FFT and LoRA on 3 tasks (2 seeds);
    # Table 1's Vanilla, LoRA, HiFT and FFT on 3 generation tasks (2 seeds; Vanilla untrained).
    assert len(runs) == len(demo_runs(cfg)) == (6 * 2 * len(cfg["seeds"]) + (8 + 5) * 2 + 3 * 3 * 2 + 2 + 2 * 3 * 2
                                                + 4 * 3 * 2)
    untrained = runs.method == "vanilla"
    assert untrained.sum() == 6 and (runs.loc[untrained, "trainable_params"] == 0).all()
    assert (runs.loc[~untrained, "trainable_params"] > 0).all()
    studies = ["table3", "table4", "table5", "table9", "table10", "budget_squad", "glue_metrics", "table1"]
    for study in [*studies, "figure1"]:
        for ext in ["pdf", "png"]:
            assert (demo / f"results/figures/{study}.{ext}").stat().st_size > 1000
    html = (demo / "results/report.html").read_text(errors="replace")
    assert all(s in html for s in [*studies, "figure1", "increments.csv"]) and len(html) > 10000


def test_demo_qa_tables(demo):
    """Tables 4 and 5 from real QA training: EM/F1 per adversarial set, the unsupplied sets
    flagged, and a real adversarial drop (the Jia-Liang worst case below the originals)."""
    for study, rows in [("table4", ["FFT", "LoRA", "LoRA (r=16)", "LoRA (r=32)", "AdaLoRA", "Prefix", "IA3", "BitFit"]),
                        ("table5", ["FFT", "LoRA", "AdaLoRA", "Prefix", "IA3"])]:
        tex = (demo / f"results/tables/{study}.tex").read_text()
        assert "EM & F1" in tex and "{AS}" in tex and "{AA}" in tex and "{Origin}" in tex
        assert "n/s" in tex and "not supplied" in tex
        for row in rows:
            assert f"({row})" in tex, (study, row)
        csv = pd.read_csv(demo / f"results/tables/{study}.csv")
        supplied = csv[csv.skipped.isna()]
        assert supplied["mean"].notna().all() and (supplied["n"] == 2).all()
        assert set(csv[csv.skipped.notna()]["column"]) == {"AAE", "AAC", "ANA"}
    summary = pd.read_csv(demo / "results/summary.csv")
    qa = summary[summary.task == "demo-squad"].set_index(["model", "method", "eval_set", "metric"])["mean"]
    # Learned, not guessed (an untrained head scores near 0); the CI size trains on 200 questions.
    assert qa.loc[("minilm", "fft", "origin", "f1")] > {"full": 0.4, "ci": 0.2}[(demo / "SIZE").read_text()]
    for method in ["fft", "lora"]:
        for es in ["addsent", "addany"]:
            assert qa.loc[("minilm", method, es, "adv_f1")] <= qa.loc[("minilm", method, es, "orig_f1")]
    # Table 5 on the pretrained decoder (SmolLM2, a span head on a causal LM), every method scored
    decoder = summary[(summary.task == "demo-squad-lm") & (summary.eval_set == "origin") & (summary.metric == "f1")]
    assert set(decoder["model"]) == {"smollm2"} and len(decoder) == 5 and decoder["mean"].notna().all()
    # AddSent-like distractors bite: on average over methods a clear drop.
    adv = summary[(summary.task == "demo-squad") & (summary.eval_set == "addsent")].pivot_table(
        index=["model", "method"], columns="metric", values="mean")
    assert (adv["orig_f1"] - adv["adv_f1"]).mean() > 0.1, adv


def test_demo_table1_generation(demo):
    """Table 1 on the real pretrained decoder: Vanilla (untrained), LoRA, HiFT and FFT on the
    three generation stand-ins, in each task's metric, beside the paper's numbers, with the
    per-example generations; fine-tuning learns what the untuned model cannot."""
    tex = (demo / "results/tables/table1.tex").read_text()
    for row in ["Vanilla", "LoRA", "HiFT", "FFT"]:
        assert f"SmolLM2-135M ({row})" in tex
    assert "AVG" in tex and "ViGGO (demo)" in tex
    table = pd.read_csv(demo / "results/tables/table1.csv")
    assert set(table["metric"].dropna()) == {"exact_match", "flexible_accuracy"}
    avg = table[table.column == "average"].set_index("method")["mean"]
    assert avg["fft"] > avg["vanilla"] and avg["lora-llama"] > avg["vanilla"], avg
    side = pd.read_csv(demo / "results/tables/paper/table1.csv")
    assert side["paper_mean"].notna().sum() >= 12  # 4 methods x 3 tasks matched through the aliases
    shown = pd.read_csv(demo / "results/generations/table1.csv")
    assert {"prompt", "generation", "reference", "correct", "stop_reason"} <= set(shown.columns)
    assert set(shown["method"]) == {"vanilla", "lora-llama", "hift", "fft"}
    record = json.loads((demo / "resources/models/smollm2.json").read_text())
    assert record["source"] == "gguf" and record["model_type"] == "llama" and record["num_layers"] == 30
    train = json.loads((demo / "results/runs/smollm2/demo-viggo/hift/seed0/train.json").read_text())
    assert train["params"]["trainable"] == train["params"]["total"] > train["params"]["trainable_per_step"]


def test_nothing_to_do_after_a_complete_run(demo):
    result = snakemake(demo, "all", "-n", *DEMO)
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_learning_rate_change_reruns_only_that_method(demo):
    config = yaml.safe_load((demo / USED).read_text())
    config["methods"]["lora"]["training"]["lr"] = 1.0e-3
    changed = demo / "config/demo-lr.yaml"
    changed.write_text(yaml.safe_dump(config, sort_keys=False))
    result = snakemake(demo, "all", "-n", "--profile", "profiles/local", "--configfile", str(changed))
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = planned_jobs(result)
    n_lora = sum(r.method == "lora" for r in demo_runs(config))
    # Table 3 (seeds x 2 tasks); Tables 4 and 5 (2 seeds each); GLUE's other tasks (3 tasks x 2 seeds)
    assert n_lora == len(config["seeds"]) * 2 + 2 * 2 + 3 * 2
    assert jobs.get("train") == n_lora and jobs.get("evaluate") == n_lora, jobs
    assert "tokenize" not in jobs and "download" not in jobs
    out = result.stdout + result.stderr
    trained = re.findall(r"rule train:.*?wildcards: ([^\n]*)", out, flags=re.S)
    assert len(trained) == n_lora and all("method=lora" in w for w in trained), trained


def test_template_edit_reruns_only_tables(demo):
    template = demo / "reports/templates/robustness_table.tex.j2"
    original = template.read_text()
    template.write_text(original + "\n")
    try:
        result = snakemake(demo, "all", "-n", *DEMO)
    finally:  # later tests plan against the unchanged template
        template.write_text(original)
    assert result.returncode == 0
    # The eight studies' tables, and the side-by-side tables that read six of them.
    assert planned_jobs(result) == {"table": 8, "paper_table": 6, "all": 1}


def test_supplying_an_optional_set_evaluates_without_retraining(demo):
    """A user-supplied adversarial file appears: it is downloaded, tokenised and evaluated,
    the tables and figures are redrawn, and nothing is retrained or re-tokenised."""
    import json

    frame = pd.read_parquet(demo / "data/raw/demo_qa/addsent.parquet")
    data = {"data": [{"title": "demo", "paragraphs": [
        {"context": r.context, "qas": [{"id": r.id, "question": r.question, "answers": [
            {"text": t, "answer_start": int(s)} for t, s in zip(r.answer_text, r.answer_start)]}]}
        for r in frame.itertuples()]}]}
    supplied = demo / "data/external/demo/addansctx.json"
    supplied.parent.mkdir(parents=True, exist_ok=True)
    supplied.write_text(json.dumps(data))
    try:
        result = snakemake(demo, "all", "-n", *DEMO)
    finally:
        supplied.unlink()
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = planned_jobs(result)
    assert "train" not in jobs and "tokenize" not in jobs, jobs
    assert jobs["download"] == 1 and jobs["tokenize_eval"] == 2  # minilm's QA task and the decoder's (Table 5)
    assert jobs["evaluate"] == (8 + 5 + 3 + 1) * 2  # every QA run, none of the classification runs
    # Tables and figures read the aggregated CSVs, so all are redrawn (Table 3's unchanged).
    assert jobs["aggregate"] == 1 and jobs["table"] == jobs["figure"] == 8


def test_budget_studies_and_figure1(demo):
    """Tables 9/10 (top-k vs FFT), the budget figures and Figure 1 from the demo's runs."""
    tex = (demo / "results/tables/table9.tex").read_text()
    assert all(f"({m})" in tex for m in ["Top-1", "Top-3", "Top-6", "FFT"]) and "(Top-12)" not in tex
    assert "Top-12 on MiniLM-L6 (k = 12 exceeds the model's 6 layers)" in tex
    runs = pd.read_csv(demo / "results/runs.csv")
    params = runs[runs.task == "demo-squad"].groupby("method")["trainable_params"].mean()
    assert params["top1"] < params["top3"] < params["top6"] < params["fft"]
    assert params["lora"] < params["lora-r16"] < params["lora-r32"] < params["lora-r64"]
    stats = pd.read_csv(demo / "results/increments.csv")
    assert len(stats[["model", "task", "method", "seed"]].drop_duplicates()) == (runs.method != "vanilla").sum()
    bitfit = stats[(stats.method == "bitfit") & (stats.part == "layer")]
    assert len(bitfit) and bitfit["name"].str.endswith("bias").all()
    shown = pd.read_csv(demo / "results/increments/figure1.csv").set_index("method")
    assert set(shown.index) == {"fft", "lora", "adalora", "bitfit", "ia3", "prefix"}
    assert (shown["n"] > 0).all()


def test_choosing_another_module_reruns_only_figure1(demo):
    config = yaml.safe_load((demo / USED).read_text())
    config["increments"]["module"] = "-2.attention.self.key"
    changed = demo / "config/demo-module.yaml"
    changed.write_text(yaml.safe_dump(config, sort_keys=False))
    result = snakemake(demo, "all", "-n", "--profile", "profiles/local", "--configfile", str(changed))
    assert result.returncode == 0, result.stderr[-3000:]
    # Only the methods shown at the default module (ia3 and prefix have their own selector),
    # and the claims, one of which reads Figure 1's numbers.
    assert planned_jobs(result) == {"increment_module": 4, "figure1": 1, "claims": 1, "all": 1}


def test_selection_on_validation_and_statistics(demo):
    """LoRA's and IA3's learning rates chosen on the validation set, then used by the study's
    runs; FFT compared with every method (paired tests, corrections, gaps) from real runs."""
    import html
    import json

    sel = pd.read_csv(demo / "results/selection.csv")
    assert len(sel) == 2 * 2 * 2  # (LoRA, IA3) x 2 tasks x 2 cells, seed 0
    assert (sel.groupby(["task", "method"])["chosen"].sum() == 1).all()
    for row in sel[sel.chosen].itertuples():
        best = sel[(sel.task == row.task) & (sel.method == row.method)]["mean_val_score"].max()
        assert row.mean_val_score == best
        record = json.loads((demo / f"results/runs/minilm/{row.task}/{row.method}/seed42/train.json").read_text())
        assert record["hyperparameters"]["lr"] == row.hp_lr
        assert record["provenance"]["selection"]["cell"] == row.cell
    comp = pd.read_csv(demo / "results/statistics/comparisons.csv")
    cls = comp[(comp.model == "minilm") & (comp.task == "demo-sst2")]
    assert set(cls.method) == {"lora", "adalora", "prefix", "ia3", "bitfit", "top1", "top3", "top6"}
    seeds = yaml.safe_load((demo / USED).read_text())["seeds"]
    three = cls[cls.method == "lora"]
    assert len(seeds) >= 2 and (three.n_seeds == len(seeds)).all() and three.p_t.between(0, 1).all()
    assert (comp.p_t_holm.dropna() >= comp.p_t.dropna().loc[comp.p_t_holm.dropna().index] - 1e-12).all()
    assert (cls.boot_low <= cls.boot_diff).all() and (cls.boot_diff <= cls.boot_high).all()
    adv = cls[cls.kind == "adv"]
    assert adv.gap_ref.notna().all() and adv.gap_method.notna().all()
    side = pd.read_csv(demo / "results/tables/paper/table3.csv")  # ours beside the paper (stand-ins)
    assert len(side) and side["paper_mean"].notna().all() and set(side["column"]) >= {"demo-sst2", "demo-rte"}
    assert "not a reproduction" in (demo / "results/tables/paper/table3.tex").read_text()
    claims = pd.read_csv(demo / "results/claims.csv")
    # The demo has every study a claim needs: each gets a verdict, none is "not evaluated".
    assert len(claims) == 7 and set(claims.status) <= {"holds", "does not hold", "inconclusive"}, claims
    page = (demo / "results/claims.html").read_text()
    assert all(html.escape(title).replace("&#x27;", "&#39;") in page for title in claims.title)  # jinja2 escapes ' as &#39;
    stab = pd.read_csv(demo / "results/statistics/stability.csv")
    assert {"std", "stability_rank", "performance_rank"} <= set(stab.columns) and len(stab)


# --------------------------------------------------------------------------- publication-ready outputs
# pdflatex and headless Chromium on the demo's outputs; the tools (the `publication_tools`
# fixture in conftest.py: installed when missing, a failed install fails), the standalone
# wrapper and the report checks are shared with tests/test_publication.py (tests/publishing.py).

from publishing import (  # noqa: E402
    assert_compiles, compile_table, console_errors, listed_paths, open_in_chromium, report_listing,
)


def _demo_studies(demo: Path) -> list[str]:
    cfg = yaml.safe_load((demo / USED).read_text())
    return [name for name, s in cfg["studies"].items() if s.get("enabled", True)]


@pytest.mark.tex
def test_demo_tables_compile_with_pdflatex(demo, publication_tools, tmp_path):
    """Every generated table (the studies' and the side-by-side ones under paper/), in the
    standalone wrapper (article, booktabs, graphicx, longtable)."""
    tables = sorted((demo / "results/tables").rglob("*.tex"))
    assert {t.stem for t in tables} >= set(_demo_studies(demo)), tables
    assert len([t for t in tables if t.parent.name == "paper"]) == 6  # Tables 1, 3, 4, 5, 9, 10
    failed = []
    for tex in tables:
        name = f"{tex.parent.name}-{tex.stem}"
        result = compile_table(tex.read_text(), tmp_path / name, name, publication_tools.pdflatex)
        if not result.ok:
            failed.append((tex.name, result.returncode, result.errors, result.log[-1500:]))
            continue
        assert_compiles(result, tex.name)  # prints its warnings (overfull boxes), if any
    assert not failed, failed


@pytest.mark.tex
def test_demo_report_opens_in_headless_chromium(demo, publication_tools, tmp_path):
    """results/report.html in headless Chromium without network: its scripts run without an
    error, the app renders its navigation, and it lists every table, figure and data file."""
    dom, console = open_in_chromium(demo / "results/report.html", tmp_path, publication_tools.chromium)
    listing = report_listing(dom)
    assert listing["rendered"], dom[:3000]
    assert not console_errors(console), console
    assert not listing["external"], listing["external"]  # self-contained: opens offline
    for category in ["Tables", "Figures", "Data", "Provenance", "Claims", "Statistics", "Protocol"]:
        assert category in listing["nav"], listing["nav"][:40]
    expected = {"results/increments.csv", "results/figures/figure1.png", "results/metrics.csv",
                "results/summary.csv", "results/runs.csv", "results/claims.html", "results/selection.csv",
                "results/statistics/comparisons.csv", "results/statistics/stability.csv",
                "results/tables/paper/table3.tex"}
    for study in _demo_studies(demo):
        expected |= {f"results/tables/{study}.tex", f"results/tables/{study}.csv", f"results/figures/{study}.png"}
        assert (demo / f"results/figures/{study}.pdf").read_bytes().startswith(b"%PDF")  # the vector twin
    assert expected <= listed_paths(listing), sorted(expected - listed_paths(listing))
    assert expected <= set(listing["results"]), sorted(expected - set(listing["results"]))
