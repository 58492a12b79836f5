"""Config validation: every bad input stops with one message naming the key or file."""

from __future__ import annotations

import pytest

from lwob import config as cfg
from lwob.errors import ConfigError

from conftest import REPO

SCHEMA = REPO / "config" / "schemas" / "config.schema.yaml"


def validate(config):
    return cfg.validate(config, SCHEMA, base_dir=REPO)


def test_shipped_configs_are_valid(demo_config, paper_config):
    validate(demo_config)
    validate(paper_config)


def test_paper_config_plans_the_full_study(paper_config):
    runs = cfg.runs(validate(paper_config))
    # Tables 3, 4 and 5; Tables 9 and 10 (top-k, k = 24 only on the 24-layer RoBERTa-large) on
    # GLUE and SQuAD; the GLUE budget study's LoRA ranks 16 and 32.
    assert len(runs) == (2 * 6 * 5 + 2 * 8 + 5 + (4 + 5) * 6 + 2 * 2 * 5) * 5
    assert {r.seed for r in runs} == {0, 42, 421, 520, 1228}
    assert {r.method for r in runs} == {"fft", "lora", "lora-r16", "lora-r32", "adalora", "prefix", "ia3", "bitfit",
                                        "top1", "top3", "top6", "top12", "top24"}
    assert not [r for r in runs if r.method == "top24" and r.model == "roberta-base"]
    assert {r.model for r in runs if r.task == "squad-1k"} == {"opt-13b"}


def test_absent_optional_sets_are_skipped_and_flagged(paper_config):
    """The user-supplied adversarial SQuAD files are not in the checkout: their eval sets are
    skipped (no download, no tokenisation) and reported with the reason."""
    c = validate(paper_config)
    assert list(cfg.available_eval_sets(c, "squad", REPO)) == ["origin"]
    skipped = cfg.skipped_eval_sets(c, REPO)
    assert set(skipped["squad"]) == {"addsent", "addany", "addanyextend", "addansctx", "addnegans"}
    assert "adversarial_squad/addany.json" in skipped["squad"]["addany"]
    assert "sst2" not in skipped


def test_present_optional_set_is_used(demo_config, tmp_path):
    import json

    f = tmp_path / "aa.json"
    f.write_text(json.dumps({"data": [{"title": "t", "paragraphs": [{"context": "A b.", "qas": [
        {"id": "x", "question": "q?", "answers": [{"text": "A", "answer_start": 0}]}]}]}]}))
    demo_config["datasets"]["demo_qa_addansctx"]["files"]["test"] = str(f)
    c = validate(demo_config)
    assert "addansctx" in cfg.available_eval_sets(c, "demo-squad", REPO)
    assert "addansctx" not in cfg.skipped_eval_sets(c, REPO).get("demo-squad", {})


def test_optional_dataset_cannot_train(demo_config):
    demo_config["tasks"]["demo-squad"]["train"] = {"dataset": "demo_qa_addnegans", "split": "test"}
    with pytest.raises(ConfigError, match=r"tasks\.demo-squad\.train\.dataset.*optional"):
        validate(demo_config)


def test_study_seeds_override(demo_config):
    c = validate(demo_config)
    assert {r.seed for r in cfg.runs(c) if r.task == "demo-squad"} == {0, 42}
    assert {r.seed for r in cfg.runs(c) if r.task == "demo-rte"} == {0, 42, 421}  # the top-level seeds


@pytest.mark.parametrize("key, value, match", [
    ("stride", 40, r"tasks\.demo-squad\.stride"),
    ("max_answer_length", 0, r"tasks\.demo-squad\.max_answer_length"),
    ("kind", "ranking", r"tasks\.demo-squad\.kind"),
])
def test_qa_task_errors(demo_config, key, value, match):
    demo_config["tasks"]["demo-squad"][key] = value
    with pytest.raises(ConfigError, match=match):
        validate(demo_config)


def test_qa_original_id_must_be_a_regex(demo_config):
    demo_config["tasks"]["demo-squad"]["eval_sets"]["addsent"]["original_id"] = "(["
    with pytest.raises(ConfigError, match=r"eval_sets\.addsent\.original_id"):
        validate(demo_config)


def test_classification_needs_its_keys(demo_config):
    del demo_config["tasks"]["demo-rte"]["num_labels"]
    with pytest.raises(ConfigError, match="num_labels"):
        validate(demo_config)


def test_prefix_must_fit_the_qa_window(paper_config):
    paper_config["tasks"]["squad"]["max_length"] = 500  # + 20 virtual tokens > 512 positions
    with pytest.raises(ConfigError, match=r"methods\.prefix.*tasks\.squad\.max_length.*roberta"):
        validate(paper_config)


def test_hyperparameters_resolve_in_order(paper_config):
    c = validate(paper_config)
    hp = cfg.hyperparameters(c, "roberta-large", "rte", "lora")
    assert hp["batch_size"] == 32  # model
    assert hp["epochs"] == 20  # task
    assert hp["lr"] == 5e-4  # method
    assert hp["weight_decay"] == 0.0  # default
    assert cfg.hyperparameters(c, "roberta-base", "sst2", "fft")["batch_size"] == 64


def test_learning_rate_written_without_dot_is_a_number(demo_config):
    demo_config["methods"]["lora"]["training"]["lr"] = "5e-4"
    assert validate(demo_config)["methods"]["lora"]["training"]["lr"] == 5e-4


def test_non_numeric_learning_rate(demo_config):
    demo_config["methods"]["lora"]["training"]["lr"] = "fast"
    with pytest.raises(ConfigError, match=r"methods\.lora\.training\.lr"):
        validate(demo_config)


def test_unknown_method_type(demo_config):
    demo_config["methods"]["lora"]["type"] = "lorax"
    with pytest.raises(ConfigError, match=r"methods\.lora\.type.*lorax"):
        validate(demo_config)


def test_unknown_method_option(demo_config):
    demo_config["methods"]["lora"]["options"]["rank"] = 4
    with pytest.raises(ConfigError, match=r"methods\.lora\.options.*rank"):
        validate(demo_config)


def test_missing_dataset_file(demo_config):
    demo_config["datasets"]["demo_sentiment"] = {"source": "local", "files": {"train": "nowhere/train.tsv"}}
    with pytest.raises(ConfigError, match=r"demo_sentiment.*nowhere/train\.tsv"):
        validate(demo_config)


def test_prefix_that_cannot_fit_the_positions(demo_config):
    demo_config["methods"]["prefix"]["options"]["num_virtual_tokens"] = 500
    with pytest.raises(ConfigError, match=r"prefix.*max_length"):
        validate(demo_config)


def test_study_naming_unknown_task(demo_config):
    demo_config["studies"]["table3"]["tasks"].append("cola")
    with pytest.raises(ConfigError, match=r"studies\.table3\.tasks\[2\].*cola"):
        validate(demo_config)


def test_task_naming_unknown_dataset(demo_config):
    demo_config["tasks"]["demo-rte"]["eval_sets"]["adv"]["dataset"] = "advglue_rte"
    with pytest.raises(ConfigError, match=r"tasks\.demo-rte\.eval_sets\.adv\.dataset.*advglue_rte"):
        validate(demo_config)


def test_typo_in_top_level_key(demo_config):
    demo_config["seed"] = [1]
    with pytest.raises(ConfigError, match="seed"):
        validate(demo_config)


def test_code_version_changes_with_source(tmp_path):
    a = cfg.code_version("config")
    assert len(a) == 16 and a == cfg.code_version("config")
    assert a != cfg.code_version("io")


def test_placement_environment_overrides(monkeypatch, paper_config):
    monkeypatch.setenv("LWOB_SLURM_ACCOUNT", "proj42")
    p = cfg.placement(paper_config)
    assert p["account"] == "proj42" and p["gpu_partition"] == "gpu"


def test_slurm_resources_name_only_what_is_set(monkeypatch, paper_config):
    monkeypatch.setenv("LWOB_SLURM_QOS", "long")
    assert cfg.slurm_resources(paper_config, "gpu") == {"slurm_partition": "gpu", "qos": "long"}
    assert cfg.slurm_resources(paper_config, "cpu") == {"qos": "long"}
