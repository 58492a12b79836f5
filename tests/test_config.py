"""Config validation: every bad input stops with one message naming the key or file."""

from __future__ import annotations

import pytest

from lwob.plan import config as cfg
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
    # GLUE and SQuAD; the GLUE budget study's LoRA ranks 16 and 32; Table 1 (3 LLaMA2 sizes x 4
    # methods x 3 generation tasks, HiFT not on 70B).
    assert len(runs) == (2 * 6 * 5 + 2 * 8 + 5 + (4 + 5) * 6 + 2 * 2 * 5 + 3 * 4 * 3 - 3) * 5
    assert {r.seed for r in runs} == {0, 42, 421, 520, 1228}
    assert {r.method for r in runs} == {"fft", "lora", "lora-r16", "lora-r32", "adalora", "prefix", "ia3", "bitfit",
                                        "top1", "top3", "top6", "top12", "top24", "vanilla", "lora-llama", "hift"}
    assert not [r for r in runs if r.method == "hift" and r.model == "llama2-70b"]
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


def test_code_hash_of_a_job_script_is_stable_and_differs_between_scripts():
    from lwob.plan import dependencies as deps

    a = deps.code_of("table")
    assert len(a) == 16 and a == deps.code_of("table")
    # (not `aggregate`: both reach the task-kind registry, whose closure includes the training code)
    assert a != deps.code_of("select")


def test_placement_environment_overrides(monkeypatch, paper_config):
    monkeypatch.setenv("LWOB_SLURM_ACCOUNT", "proj42")
    p = cfg.placement(paper_config)
    assert p["account"] == "proj42" and p["gpu_partition"] == "gpu"


def test_slurm_resources_name_only_what_is_set(monkeypatch, paper_config):
    monkeypatch.setenv("LWOB_SLURM_QOS", "long")
    assert cfg.slurm_resources(paper_config, "gpu") == {"slurm_partition": "gpu", "qos": "long"}
    assert cfg.slurm_resources(paper_config, "cpu") == {"qos": "long"}


# --------------------------------------------------------------------------- issue 13: config-time checks


@pytest.mark.parametrize("where, bad, match", [
    ("studies", "../../x", r"config key 'studies': study name '\.\./\.\./x'"),
    ("methods", "..", r"config key 'methods': method name '\.\.'"),
    ("methods", ".", r"config key 'methods': method name '\.'"),
    ("datasets", "a/b", r"config key 'datasets': dataset name 'a/b'"),
    ("models", ".hidden", r"config key 'models': model name '\.hidden'"),
    ("tasks", "two words", r"config key 'tasks': task name 'two words'"),
])
def test_unsafe_names_are_refused(demo_config, where, bad, match):
    """Names become folders: `../../x` would write outside the working directory, `..` would
    make two tasks' runs share one folder."""
    demo_config[where][bad] = next(iter(demo_config[where].values()))
    with pytest.raises(ConfigError, match=match):
        validate(demo_config)


def test_unsafe_eval_set_and_split_names_are_refused(demo_config):
    eval_sets = demo_config["tasks"]["demo-sst2"]["eval_sets"]
    eval_sets["../adv"] = eval_sets.pop("adv")
    with pytest.raises(ConfigError, match=r"tasks\.demo-sst2\.eval_sets': eval set name '\.\./adv'"):
        validate(demo_config)
    eval_sets["adv"] = eval_sets.pop("../adv")
    eval_sets["adv"]["split"] = "../../etc/passwd"
    with pytest.raises(ConfigError, match=r"tasks\.demo-sst2\.eval_sets\.adv\.split': split name"):
        validate(demo_config)


def test_safe_names_with_dots_and_plus_pass(demo_config):
    demo_config["methods"]["lora-r8.v2+b"] = demo_config["methods"]["lora"]
    demo_config["studies"]["table3"]["methods"].append("lora-r8.v2+b")
    assert "lora-r8.v2+b" in {r.method for r in cfg.runs(validate(demo_config))}


@pytest.mark.parametrize("dataset, key, allowed", [
    ("demo_qa_addansctx", "sha265", "sha256"),     # local: a misspelt checksum key
    ("demo_sentiment", "n_trian", "n_train"),      # demo: a misspelt count
])
def test_dataset_entry_with_unknown_key(demo_config, dataset, key, allowed):
    demo_config["datasets"][dataset][key] = {"test": "0" * 64} if key == "sha265" else 12
    with pytest.raises(ConfigError) as err:
        validate(demo_config)
    message = str(err.value)
    source = demo_config["datasets"][dataset]["source"]
    assert f"config key 'datasets.{dataset}.{key}': unknown key in {source} dataset '{dataset}'" in message
    assert f"did you mean '{allowed}'" in message and "allowed: " in message
    assert "is not valid under any of the given schemas" not in message


def test_hub_dataset_with_a_local_key(paper_config):
    paper_config["datasets"]["glue_sst2"]["files"] = {"train": "a.tsv"}
    with pytest.raises(ConfigError, match=r"datasets\.glue_sst2\.files': unknown key in hub dataset 'glue_sst2'"
                                          r".*allowed: columns, label_map, labelled, name, path, revision, source, split_off, splits"):
        validate(paper_config)


def test_schema_dataset_keys_match_the_package():
    """The schema's closed dataset schemas and lwob.data.sources.SOURCE_KEYS list the same keys."""
    from lwob.data import demo, sources

    schema = cfg.load_yaml(SCHEMA)
    for source, keys in sources.SOURCE_KEYS.items():
        assert set(schema["definitions"][f"{source}_dataset"]["properties"]) == set(keys), source
    entry = schema["properties"]["datasets"]["additionalProperties"]
    assert "enum" not in entry["properties"]["source"]  # the names are lwob.data.sources.SOURCES (config.REGISTERED_NAMES)
    assert {branch["if"]["properties"]["source"]["const"] for branch in entry["allOf"]} == set(sources.SOURCE_KEYS)
    assert set(sources.SOURCE_KEYS["demo"]) == {"source", "generator", *demo.DEFAULTS, *demo.QA_DEFAULTS}


@pytest.mark.parametrize("mutate, key", [
    (lambda c: c["methods"]["lora"]["training"].update(lr="inf"), "methods.lora.training.lr"),
    (lambda c: c["methods"]["lora"]["training"].update(lr=float("inf")), "methods.lora.training.lr"),
    (lambda c: c["training"].update(max_grad_norm=float("nan")), "training.max_grad_norm"),
    (lambda c: c["methods"]["lora"]["options"].update(dropout=float("nan")), "methods.lora.options.dropout"),
    (lambda c: c["selection"]["grids"]["lora"].update(lr=[1e-3, "-inf"]), r"selection.grids.lora.lr[1]"),
    (lambda c: c["datasets"]["demo_sentiment"].update(label_noise=float("nan")), "datasets.demo_sentiment.label_noise"),
])
def test_non_finite_numbers_are_refused(demo_config, mutate, key):
    mutate(demo_config)
    with pytest.raises(ConfigError) as err:
        validate(demo_config)
    assert f"config key '{key}'" in str(err.value) and "not a finite number" in str(err.value)


def test_duplicate_yaml_key_names_file_line_and_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seeds: [0]\nmethods:\n  lora:\n    type: lora\n    training: {lr: 1.0e-4}\n"
                    "  fft: {type: fft}\n  lora: {type: lora}\n")
    with pytest.raises(ConfigError, match=rf"{path}, line 7: duplicate key 'lora' \(first given at line 3\)"):
        cfg.load_yaml(path)
    path.write_text("training: {lr: 1.0e-4, epochs: 2, lr: 1.0e-3}\n")  # flow style, same line
    with pytest.raises(ConfigError, match=r"line 1: duplicate key 'lr'"):
        cfg.load_yaml(path)


def test_yaml_merge_keys_may_override(tmp_path):
    """`<<: *anchor` then a key of the anchor is YAML's way to override, not a duplicate."""
    path = tmp_path / "c.yaml"
    path.write_text("base: &b {lr: 1.0e-4, epochs: 2}\nlong:\n  <<: *b\n  epochs: 10\n")
    assert cfg.load_yaml(path)["long"] == {"lr": 1e-4, "epochs": 10}


def test_shipped_config_files_have_no_duplicate_keys():
    cfg.check_config_files(sorted((REPO / "config").glob("*.yaml")))


@pytest.mark.parametrize("mutate, key", [
    (lambda c: c["methods"]["lora"].update(display="LoRA</script><script>alert(1)</script>"), "methods.lora.display"),
    (lambda c: c["studies"]["table3"].update(title="Accuracy <!-- x"), "studies.table3.title"),
    (lambda c: c["models"]["minilm"].update(aliases=["a</SCRIPT>"]), "models.minilm.aliases[0]"),
])
def test_text_that_would_break_out_of_the_reports_script_blocks_is_refused(demo_config, mutate, key):
    """Snakemake's report embeds job params (display names, titles) as JSON in <script> blocks."""
    mutate(demo_config)
    with pytest.raises(ConfigError) as err:
        validate(demo_config)
    assert f"config key '{key}'" in str(err.value) and "script block" in str(err.value)


def test_a_lone_angle_bracket_is_plain_text(demo_config):
    demo_config["methods"]["lora"]["display"] = "LoRA (r<8)"
    validate(demo_config)
