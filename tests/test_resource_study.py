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
    study = {"models": ["minilm"], "methods": ["fft", "lora", "top12"], "tasks": {"minilm": "demo-sst2"}, **SMALL}
    out = {k: tmp_path / "out" / name for k, name in [("out_tex", "r.tex"), ("out_csv", "r.csv"),
                                                        ("out_training_csv", "t.csv"), ("out_pdf", "r.pdf"),
                                                        ("out_png", "r.png")]}
    kwargs = dict(probes=paths, records=[tmp_path / "run" / "train.json"],
                  tokenized={"minilm/demo-sst2": tokenized / "meta.json"}, study=study, models={}, methods={},
                  tasks={}, template_path=TEMPLATE, **out)
    frame = rtable.write_resource_study(**kwargs)
    lora = frame.set_index("method").loc["lora"]
    assert lora["train_runs"] == 1 and lora["trainable"] == record["params"]["trainable"]
    assert lora["train_tokens_per_s"] > lora["train_samples_per_s"] > 0
    assert lora["probe_epoch_s_est"] == pytest.approx(48 / probes["lora"]["samples_per_s"])
    assert out["out_png"].read_bytes()[:4] == b"\x89PNG" and out["out_pdf"].read_bytes()[:4] == b"%PDF"
    first = out["out_pdf"].read_bytes(), out["out_png"].read_bytes()
    rtable.write_resource_study(**kwargs)
    assert (out["out_pdf"].read_bytes(), out["out_png"].read_bytes()) == first  # byte-reproducible


# --------------------------------------------------------------------------- workflow


def test_the_demo_dag_has_the_study_and_a_bad_key_stops_it(demo_config, tmp_path):
    demo_config["reference"] = None  # a path relative to the repository, not to tmp_path
    result = run_snakemake(tmp_path / "ok", "all", "-n", config=demo_config)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = planned_jobs(result)
    study = demo_config["resource_study"]
    assert jobs["resource_probe"] == len(study["models"]) * len(study["methods"]) and jobs["resource_table"] == 1
    demo_config["resource_study"]["methods"].append("dora")
    result = run_snakemake(tmp_path / "bad", "all", "-n", config=demo_config)
    assert result.returncode != 0
    assert "resource_study.methods[8]" in result.stderr and "unknown method 'dora'" in result.stderr
    del demo_config["resource_study"]
    result = run_snakemake(tmp_path / "none", "all", "-n", config=demo_config)
    assert result.returncode == 0 and "resource_probe" not in planned_jobs(result)
