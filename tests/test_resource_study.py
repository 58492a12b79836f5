"""Resource study (lwob.analysis.resources): probes, the table and figure, config checks, the DAG."""

from __future__ import annotations

import copy
import json
import re

import pandas as pd
import pytest

from conftest import REPO, planned_jobs, run_snakemake

from training_data import MINILM, _train  # noqa: E402

from lwob.analysis.resources import probe as rprobe  # noqa: E402
from lwob.analysis.resources import spec as rspec  # noqa: E402
from lwob.analysis.resources import table as rtable  # noqa: E402
from lwob.errors import ConfigError  # noqa: E402

TEMPLATE = REPO / "reports" / "templates" / "resources_table.tex.j2"
#: The paper's numbers (Table 7's memory among them), as the configs name them.
REFERENCE = REPO / "config" / "reference" / "paper_tables.csv"
#: A small setting: the demo MiniLM, batch 2 of length 32, one timed step after one warm-up.
SMALL = {"batch_size": 2, "seq_len": 32, "steps": 1, "warmup_steps": 1}
METHODS = {"fft": ("fft", {}), "lora": ("lora", {"r": 4, "alpha": 8, "dropout": 0.1}),
           "adalora": ("adalora", {"init_r": 6, "target_r": 4}), "prefix": ("prefix", {"num_virtual_tokens": 10}),
           "ia3": ("ia3", {}), "bitfit": ("bitfit", {}), "top12": ("topk", {"k": 12})}


def _config(demo_config: dict, **setting) -> dict:
    config = copy.deepcopy(demo_config)
    config["resource_study"] = {"models": ["minilm"], "methods": ["fft", "lora", "prefix", "top12"],
                                **SMALL, **setting}
    return config


def _spec(**overrides) -> dict:
    return {"task": "demo-sst2", "task_kind": "classification", "num_labels": 2, "seed": 0,
            "hyperparameters": {"device": "cpu", "max_grad_norm": 1.0, "weight_decay": 0.0},
            **SMALL, **overrides}


def _probe(method: str, **spec) -> dict:
    mtype, options = METHODS[method]
    return rprobe.probe(model_dir=MINILM, method_type=mtype, method_options=options, spec=_spec(**spec), threads=1,
                    run_id={"model": "minilm", "method": method})


@pytest.fixture(scope="module")
def probes() -> dict:
    return {m: _probe(m) for m in ("fft", "lora", "prefix", "top12")}


# --------------------------------------------------------------------------- probes


def test_probe_records_have_the_keys_and_positive_numbers(probes):
    for method in ("fft", "lora", "prefix"):
        rec = probes[method]
        assert rec["status"] == "ok" and rec["reason"] is None, rec
        for key in ("peak_mem_mb", "host_peak_rss_mb", "step_s", "samples_per_s", "tokens_per_s", "wall_time_s"):
            assert rec[key] > 0, (method, key, rec[key])
        assert rec["memory_kind"] == "host_rss_increase" and rec["device"] == "cpu"
        assert rec["seq_len"] == 32 and len(rec["step_times_s"]) == 1
        assert rec["tokens_per_s"] == pytest.approx(rec["samples_per_s"] * 32)
        assert rec["samples_per_s"] == pytest.approx(2 / rec["step_s"])
        params = rec["params"]
        assert 0 < params["trainable"] <= params["total"] and params["base_total"] > 0
        assert rec["fast_path"]["precision"] in ("fp32", "bf16") and rec["provenance"]["packages"]["torch"]
    assert probes["fft"]["params"]["trainable"] == probes["fft"]["params"]["base_total"]
    assert probes["lora"]["params"]["trainable"] < probes["fft"]["params"]["trainable"]
    # Adam state and full gradients: FFT needs more memory than LoRA, measured per probe.
    assert probes["fft"]["peak_mem_mb"] > probes["lora"]["peak_mem_mb"]


@pytest.mark.parametrize("method", ["lora", "adalora", "prefix", "ia3"])
def test_trainable_parameters_equal_those_training_reports(method, tokenized, tmp_path):
    mtype, options = METHODS[method]
    record = _train(tokenized, tmp_path / method, method=mtype, options=options, hp={"epochs": 1})
    probe = rprobe.probe(model_dir=MINILM, method_type=mtype, method_options=options, spec=_spec(), threads=1)
    assert probe["status"] == "ok"
    assert probe["params"] == record["params"]


def test_a_probe_that_cannot_run_is_reported_not_raised(probes, monkeypatch):
    top12 = probes["top12"]  # k above MiniLM's 6 layers: it would repeat top-6
    assert top12["status"] == "skipped" and "exceeds the model's 6 layers" in top12["reason"]
    assert top12["peak_mem_mb"] is None and top12["samples_per_s"] is None
    # A prefix longer than every position: no length fits.
    mtype = "prefix"
    rec = rprobe.probe(model_dir=MINILM, method_type=mtype, method_options={"num_virtual_tokens": 600}, spec=_spec())
    assert rec["status"] == "skipped" and "no sequence length fits" in rec["reason"]
    # Running out of device memory is a result ("OOM"), not a crash.
    import torch

    def out_of_memory(record, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(rprobe, "_train_steps", out_of_memory)
    rec = _probe("lora")
    assert rec["status"] == "oom" and rec["reason"].startswith("out of memory on cpu")
    assert rec["peak_mem_mb"] is None and rec["samples_per_s"] is None

    def bug(record, **kwargs):
        raise ValueError("a bug")

    monkeypatch.setattr(rprobe, "_train_steps", bug)
    with pytest.raises(ValueError, match="a bug"):  # anything else is a bug and fails the job
        _probe("lora")


def _tiny_llama(path, bias_switches: bool):
    """A 2-layer Llama without bias terms (random weights); its config.json says so only
    with `bias_switches` (Llama-2's own config.json predates attention_bias/mlp_bias)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
    LlamaForCausalLM(config).save_pretrained(path)
    cfg = json.loads((path / "config.json").read_text())
    for key in ("attention_bias", "mlp_bias"):
        cfg.pop(key, None)
        if bias_switches:
            cfg[key] = False
    (path / "config.json").write_text(json.dumps(cfg))
    return path


def test_a_method_that_does_not_apply_is_reported_with_why(tmp_path):
    spec = _spec(task="gen", task_kind="generation", num_labels=None, seq_len=16)
    # The config.json says there are no bias terms: BitFit's check refuses before the model loads.
    told = _tiny_llama(tmp_path / "told", bias_switches=True)
    rec = rprobe.probe(model_dir=told, method_type="bitfit", method_options={}, spec=spec,
                       run_id={"model": "llama", "method": "bitfit"})
    assert rec["status"] == "not_applicable" and rec["reason"].startswith("not applicable: bitfit:"), rec["reason"]
    assert "no bias terms" in rec["reason"] and rec["params"] is None
    assert rec["peak_mem_mb"] is None and rec["samples_per_s"] is None and rec["seq_len"] is None
    # It does not say so: building BitFit on the loaded model finds no bias to train.
    silent = _tiny_llama(tmp_path / "silent", bias_switches=False)
    rec = rprobe.probe(model_dir=silent, method_type="bitfit", method_options={}, spec=spec)
    assert rec["status"] == "not_applicable" and "has no bias terms" in rec["reason"], rec["reason"]
    assert rec["peak_mem_mb"] is None and rec["samples_per_s"] is None
    # Other methods run on the same model, HiFT stepping one group of layers at a time.
    for mtype, options in (("fft", {}), ("hift", {"group_size": 1})):
        rec = rprobe.probe(model_dir=silent, method_type=mtype, method_options=options, spec=spec)
        assert rec["status"] == "ok" and rec["peak_mem_mb"] is not None and rec["seq_len"] == 16, rec
    # A HiFT group larger than the model (2 layers + embeddings + head) cannot apply either.
    rec = rprobe.probe(model_dir=silent, method_type="hift", method_options={"group_size": 5}, spec=spec)
    assert rec["status"] == "not_applicable" and "group_size must be from 1 to 4" in rec["reason"], rec["reason"]


def test_prefix_length_is_capped_to_the_positions_and_said_so():
    rec = _probe("prefix", batch_size=1, seq_len=512, warmup_steps=0)
    assert rec["status"] == "ok" and rec["seq_len"] == 502  # 512 positions - 10 virtual tokens
    assert rec["setting"]["seq_len"] == 512
    assert any("capped from 512 to 502" in n for n in rec["notes"]), rec["notes"]
    assert rec["tokens_per_s"] == pytest.approx(rec["samples_per_s"] * 502)


# --------------------------------------------------------------------------- config


def test_probe_spec_takes_the_runs_settings_and_head(demo_config):
    config = _config(demo_config)
    spec = rspec.probe_spec(config, "minilm", "lora")
    assert spec["task"] == "demo-sst2" and spec["task_kind"] == "classification" and spec["num_labels"] == 2
    assert spec["batch_size"] == 2 and spec["seq_len"] == 32 and spec["steps"] == 1
    assert spec["hyperparameters"]["device"] == "cpu"
    assert "lr" not in spec["hyperparameters"]  # a learning-rate change does not rerun probes
    config["resource_study"]["task"] = "demo-squad"
    assert rspec.probe_spec(config, "minilm", "lora")["task_kind"] == "extractive_qa"
    config["resource_study"]["task"] = None
    for study in config["studies"].values():
        study["enabled"] = False
    assert rspec.probe_spec(config, "minilm", "lora")["task"] is None  # no runs: a 2-label classification head
    assert rspec.section({**config, "resource_study": None}) is None


@pytest.mark.parametrize("key, value, named", [
    ("models", ["minilm", "roberta-huge"], "resource_study.models[1]"),
    ("methods", ["lora", "dora"], "resource_study.methods[1]"),
    ("task", "glue-mystery", "resource_study.task"),
])
def test_a_bad_config_key_is_a_config_error_naming_it(demo_config, key, value, named):
    config = _config(demo_config, **{key: value})
    with pytest.raises(ConfigError, match=re.escape(named)):
        rspec.check_config(config)


def test_the_paper_config_plans_every_probe_and_the_table(paper_config):
    """The paper's study (HiFT and LLaMA2-7B among its methods and models, BitFit on a Llama
    without bias terms): the section checks, every probe has its spec, the table its reference."""
    sec = rspec.check_config(paper_config)
    assert "hift" in sec["methods"] and "llama2-7b" in sec["models"] and "bitfit" in sec["methods"]
    for model in sec["models"]:
        for method in sec["methods"]:
            spec = rspec.probe_spec(paper_config, model, method)
            assert spec["batch_size"] == 8 and spec["seq_len"] == 512 and spec["task_kind"]
    table = rspec.table_spec(paper_config)
    assert table["reference"] == paper_config["reference"] and table["tasks"]["llama2-7b"]


def test_the_schema_knows_the_section(demo_config):
    from lwob.plan.config import check_schema

    schema = REPO / "config" / "schemas" / "config.schema.yaml"
    check_schema(_config(demo_config), schema)
    with pytest.raises(ConfigError, match="resource_study"):
        check_schema(_config(demo_config, seq_length=512), schema)
    with pytest.raises(ConfigError, match="resource_study.steps"):
        check_schema(_config(demo_config, steps=0), schema)


# --------------------------------------------------------------------------- table and figure


def _record(model, method, task, seed, trainable, samples, mem, epochs=2, gpu=None):
    return {"model": model, "method": method, "task": task, "seed": seed, "device": "cpu",
            "params": {"trainable": trainable, "total": 1000}, "hyperparameters": {"epochs": epochs, "batch_size": 8},
            "train_rows": 100, "train_time_s": 100 * epochs / samples, "train_samples_per_s": samples,
            "peak_host_mem_mb": mem, "peak_gpu_mem_mb": gpu}


def _two_model_frame(probes):
    """Probes of two models (the second is the first renamed) with an OOM, and runs."""
    study = {"models": ["minilm", "other_model"], "methods": ["fft", "lora", "prefix", "top12"],
             "tasks": {"minilm": "demo-sst2", "other_model": None}, **SMALL}
    records = []
    for model in study["models"]:
        for method in study["methods"]:
            rec = {**probes[method], "model": model}
            if model == "other_model" and method == "fft":
                rec = {**rec, "status": "oom", "reason": "out of memory on cuda:0 (80 GB)", "peak_mem_mb": None,
                       "samples_per_s": None}
            records.append(rec)
    runs = [_record("minilm", m, "demo-sst2", s, probes[m]["params"]["trainable"], 50.0 + s, 600.0)
            for m in ("fft", "lora", "prefix") for s in (0, 1)]
    runs.append(_record("minilm", "lora", "demo-rte", 0, 10, 40.0, 500.0))  # another task: not in the table
    training = rtable.training_rows(runs, {("minilm", "demo-sst2"): 2000})
    return rtable.resource_frame(records, training, study), study, training


def test_table_layout_csv_and_notes(probes, tmp_path, demo_config):
    frame, study, training = _two_model_frame(probes)
    methods = {**demo_config["methods"], "top12": {"type": "topk", "display": "Top-12"}}
    models = {"minilm": {"display": "MiniLM-L6"}, "other_model": {}}
    latex = rtable.resource_table(frame, study, models, methods, demo_config["tasks"], TEMPLATE,
                              tmp_path / "r.tex", tmp_path / "r.csv")
    csv = pd.read_csv(tmp_path / "r.csv")
    assert len(csv) == len(study["models"]) * len(study["methods"])  # one row per model and method
    assert list(csv.drop_duplicates("method")["method"]) == study["methods"]
    # Shape: every body row and the column headers have 1 + 7 per model cells; header spans add up.
    ncols = 1 + 7 * len(study["models"])
    body = latex.split("\\midrule", 1)[1].split("\\bottomrule")[0]
    rows = [line for line in body.splitlines() if line.strip().endswith("\\\\")]
    assert len(rows) == len(study["methods"])
    for line in rows + [next(line for line in latex.splitlines() if line.startswith("Method &"))]:
        assert len(re.split(r"(?<!\\)&", line)) == ncols, line
    for header in re.findall(r"^ & \\multicolumn.*\\\\$", latex, flags=re.M):
        assert sum(int(s) for s in re.findall(r"\\multicolumn\{(\d+)\}", header)) == ncols - 1
    assert latex.count("\\begin{tabular}") == 1 and "\\toprule" in latex and "\\bottomrule" in latex
    assert "MiniLM-L6" in latex and "other\\_model" in latex and "Training runs: SST-2 (demo)" in latex
    assert "OOM" in latex and "out of memory on cuda:0 (80 GB)" in latex
    assert "k = 12 exceeds the model's 6 layers" in latex
    lora = csv[(csv.model == "minilm") & (csv.method == "lora")].iloc[0]
    assert lora.train_runs == 2 and lora.train_task == "demo-sst2" and lora.train_samples_per_s == pytest.approx(50.5)
    assert lora.train_tokens_per_s == pytest.approx(2000 / 100 * 50.5)  # tokens per row x rows/s
    assert lora.train_epoch_s == pytest.approx((100 / 50 + 100 / 51) / 2, rel=1e-5)  # CSV: 6 digits
    assert lora.probe_status == "ok" and lora.probe_peak_mem_mb > 0
    assert csv[(csv.model == "other_model")].train_runs.eq(0).all()
    # The per-task training costs keep the other task.
    assert set(training.task) == {"demo-sst2", "demo-rte"} and len(training) == 4


def _paper_frame(probes):
    """MiniLM (standing in for RoBERTa-base through its alias) and LLaMA2-7B, whose BitFit
    does not apply; prefix tuning under another name that aliases the paper's."""
    study = {"models": ["minilm", "llama2-7b"], "methods": ["fft", "lora", "pt", "bitfit", "top12"],
             "tasks": {"minilm": "demo-sst2", "llama2-7b": None}, **SMALL, "reference": str(REFERENCE),
             "reference_note": "Demo: MiniLM-L6 only stands in for RoBERTa-base."}
    source = {"fft": "fft", "lora": "lora", "pt": "prefix", "bitfit": "lora", "top12": "top12"}
    records = [{**probes[source[method]], "model": model, "method": method}
               for model in study["models"] for method in study["methods"]]
    records[-2] = {"model": "llama2-7b", "method": "bitfit", "status": "not_applicable",
                   "reason": "not applicable: bitfit: model type 'llama' has no bias terms"}
    models = {"minilm": {"display": "MiniLM-L6", "aliases": ["roberta-base"]}, "llama2-7b": {"display": "LLaMA2-7B"}}
    methods = {"fft": {"display": "FFT"}, "lora": {"display": "LoRA", "aliases": ["lora-r8"]},
               "pt": {"display": "Prefix", "aliases": ["prefix"]}, "bitfit": {"display": "BitFit"},
               "top12": {"display": "Top-12"}}
    frame = rtable.resource_frame(records, rtable.training_rows([], {}), study, pd.read_csv(REFERENCE), models,
                                  methods)
    return frame, study, models, methods


def test_the_paper_column_beside_the_probes(probes, tmp_path, demo_config):
    frame, study, models, methods = _paper_frame(probes)
    latex = rtable.resource_table(frame, study, models, methods, demo_config["tasks"], TEMPLATE,
                                  tmp_path / "r.tex", tmp_path / "r.csv")
    csv = pd.read_csv(tmp_path / "r.csv").set_index(["model", "method"])
    # Table 7's GPU memory (GB), through the model's and the method's aliases; none for BitFit or top-k.
    expected = {("minilm", "fft"): 5.67, ("minilm", "lora"): 2.63, ("minilm", "pt"): 2.66,
                ("llama2-7b", "fft"): 80.0, ("llama2-7b", "lora"): 43.24, ("llama2-7b", "pt"): 40.69}
    for key in csv.index:
        assert csv.loc[key, "paper_gpu_gb"] == pytest.approx(expected[key]) if key in expected \
            else pd.isna(csv.loc[key, "paper_gpu_gb"]), key
    assert csv.loc[("minilm", "lora"), "paper_model"] == "roberta-base"
    assert csv.loc[("llama2-7b", "fft"), "paper_note"] == "reported as 80+"
    assert pd.isna(csv.loc[("llama2-7b", "lora"), "paper_note"])
    assert csv.loc[("llama2-7b", "bitfit"), "probe_status"] == "not_applicable"
    # LaTeX: a "Paper (GB)" column per model, beside the probe's; 80+ as the paper reports it.
    ncols = 1 + 8 * len(study["models"])
    header = next(line for line in latex.splitlines() if line.startswith("Method &"))
    assert header.count("Paper (GB)") == 2 and len(re.split(r"(?<!\\)&", header)) == ncols
    body = latex.split("\\midrule", 1)[1].split("\\bottomrule")[0]
    rows = {line.split("&")[0].strip(): [c.strip() for c in re.split(r"(?<!\\)&", line)[1:]]
            for line in body.splitlines() if line.strip().endswith("\\\\")}
    assert all(len(cells) == ncols - 1 for cells in rows.values())
    paper = {m: (cells[3], cells[8 + 3].rstrip("\\ ")) for m, cells in rows.items()}
    assert paper == {"FFT": ("5.67", "80+"), "LoRA": ("2.63", "43.24"), "Prefix": ("2.66", "40.69"),
                     "BitFit": ("--", "--"), "Top-12": ("--", "--")}
    assert rows["BitFit"][8 + 1].startswith("n/a$^") and "has no bias terms" in latex
    for header in re.findall(r"^ & \\multicolumn.*\\\\$", latex, flags=re.M):
        assert sum(int(s) for s in re.findall(r"\\multicolumn\{(\d+)\}", header)) == ncols - 1
    # The caption says what the column is, whose numbers stand in, and the config's note.
    assert "Paper (GB): the paper's Table 7" in latex and "MiniLM-L6: roberta-base" in latex
    assert "80+: a bound" in latex and "Demo: MiniLM-L6 only stands in for RoBERTa-base." in latex
    assert "n/a: the method does not apply to the model" in latex
    from lwob.analysis.resources.figure import resource_figure

    resource_figure(frame, study, models, methods, tmp_path / "r.pdf", tmp_path / "r.png")  # marks it too
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


def test_without_a_reference_there_is_no_paper_column(probes, tmp_path, demo_config):
    frame, study, models, methods = _paper_frame(probes)
    study = {**study, "reference": None}
    latex = rtable.resource_table(frame, study, models, methods, demo_config["tasks"], TEMPLATE,
                                  tmp_path / "r.tex", tmp_path / "r.csv")
    assert "Paper (GB)" not in latex and "Table 7, peak GPU memory" not in latex
    assert "paper_gpu_gb" in pd.read_csv(tmp_path / "r.csv").columns  # the CSV keeps its columns


@pytest.mark.slow  # may install TeX Live (tests/publishing.py; its own limit is 1200 s)
@pytest.mark.tex
@pytest.mark.timeout(1500)
def test_table_compiles_with_pdflatex(probes, tmp_path, demo_config, publication_tools):
    from publishing import assert_compiles, compile_table

    tools = publication_tools
    frame, study, _ = _two_model_frame(probes)
    latex = rtable.resource_table(frame, study, {}, demo_config["methods"], demo_config["tasks"], TEMPLATE,
                              tmp_path / "r.tex", tmp_path / "r.csv")
    assert_compiles(compile_table(latex, tmp_path / "tex", "resources", tools.pdflatex), "resources table")
    # With the paper's column, a bound (80+), a method that does not apply and the demo's note.
    frame, study, models, methods = _paper_frame(probes)
    latex = rtable.resource_table(frame, study, models, methods, demo_config["tasks"], TEMPLATE,
                                  tmp_path / "p.tex", tmp_path / "p.csv")
    assert_compiles(compile_table(latex, tmp_path / "tex-paper", "resources", tools.pdflatex),
                    "resources table with the paper's column")


def test_write_resource_study_from_files(probes, tokenized, tmp_path):
    record = _train(tokenized, tmp_path / "run", method="lora", hp={"epochs": 1})
    paths = []
    for method in ("fft", "lora", "top12"):
        path = tmp_path / "probe" / f"{method}.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps({**probes[method], "model": "minilm"}))
        paths.append(path)
    run = {**json.loads((tmp_path / "run" / "train.json").read_text()), "method": "lora"}
    (tmp_path / "run" / "train.json").write_text(json.dumps(run))
    study = {"models": ["minilm"], "methods": ["fft", "lora", "top12"], "tasks": {"minilm": "demo-sst2"}, **SMALL,
             "reference": str(REFERENCE)}
    out = {k: tmp_path / "out" / name for k, name in [("out_tex", "r.tex"), ("out_csv", "r.csv"),
                                                        ("out_training_csv", "t.csv"), ("out_pdf", "r.pdf"),
                                                        ("out_png", "r.png")]}
    kwargs = dict(probes=paths, records=[tmp_path / "run" / "train.json"],
                  tokenized={"minilm/demo-sst2": tokenized / "meta.json"}, study=study,
                  models={"minilm": {"aliases": ["roberta-base"]}}, methods={},
                  tasks={}, template_path=TEMPLATE, **out)
    frame = rtable.write_resource_study(**kwargs)
    lora = frame.set_index("method").loc["lora"]
    assert lora["train_runs"] == 1 and lora["trainable"] == record["params"]["trainable"]
    assert lora["train_tokens_per_s"] > lora["train_samples_per_s"] > 0
    assert lora["probe_epoch_s_est"] == pytest.approx(48 / probes["lora"]["samples_per_s"])
    # The paper's number, read from the study's reference file (the rule's input).
    assert lora["paper_gpu_gb"] == pytest.approx(2.63) and "Paper (GB)" in out["out_tex"].read_text()
    assert out["out_png"].read_bytes()[:4] == b"\x89PNG" and out["out_pdf"].read_bytes()[:4] == b"%PDF"
    first = out["out_pdf"].read_bytes(), out["out_png"].read_bytes()
    rtable.write_resource_study(**kwargs)
    assert (out["out_pdf"].read_bytes(), out["out_png"].read_bytes()) == first  # byte-reproducible


# --------------------------------------------------------------------------- workflow


def _job_inputs(result, rule: str) -> list[str]:
    """The inputs of the first `rule` job a dry run lists."""
    lines = (result.stdout + result.stderr).splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == f"rule {rule}:")
    line = next(line for line in lines[start:] if line.strip().startswith("input:"))
    return [s.strip() for s in line.split("input:", 1)[1].split(",")]


def test_the_demo_dag_has_the_study_and_a_bad_key_stops_it(demo_config, tmp_path):
    demo_config["reference"] = str(REFERENCE)  # the configs name it relative to the repository
    # SmolLM2 (a Llama: no bias terms, known from its GGUF header) with BitFit among the methods:
    # planned like the others; its probe reports BitFit as not applicable.
    study = demo_config["resource_study"]
    study["models"] = [*study["models"], "smollm2"]
    assert "bitfit" in study["methods"]
    result = run_snakemake(tmp_path / "ok", "all", "-n", config=demo_config)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = planned_jobs(result)
    assert jobs["resource_probe"] == len(study["models"]) * len(study["methods"]) and jobs["resource_table"] == 1
    # The paper's numbers are an input of the table (editing them redraws it), not of a probe.
    assert str(REFERENCE) in _job_inputs(result, "resource_table")
    assert str(REFERENCE) not in _job_inputs(result, "resource_probe")
    study["methods"].append("dora")
    result = run_snakemake(tmp_path / "bad", "all", "-n", config=demo_config)
    assert result.returncode != 0
    assert (f"resource_study.methods[{len(study['methods']) - 1}]" in result.stderr
            and "unknown method 'dora'" in result.stderr)
    del demo_config["resource_study"]
    result = run_snakemake(tmp_path / "none", "all", "-n", config=demo_config)
    assert result.returncode == 0 and "resource_probe" not in planned_jobs(result)
