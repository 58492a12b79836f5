"""The generation task kind (lwob.tasks.generation) and the Table 1 plumbing around it:
encoding with the loss on the completion only, config-time checks that name the key, the
vanilla method (no train job), studies that leave runs out on purpose, and a GGUF model read
at config time."""

from __future__ import annotations

import copy

import pandas as pd
import pytest

from lwob.errors import ConfigError, DataError
from lwob.plan import config as cfg
from lwob.tasks.base import IGNORE_INDEX
from lwob.tasks.generation import Generation, template_fields

from conftest import REPO
from test_generation_kind import WORDS, build_tiny_llama

SCHEMA = REPO / "config" / "schemas" / "config.schema.yaml"


def validate(config):
    return cfg.validate(config, SCHEMA, base_dir=REPO)


TASK = {"kind": "generation", "template": "copy {prompt} =", "completion": "answer", "max_new_tokens": 5,
        "max_length": 8, "scorer": "exact_match", "stop": [";"]}


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(build_tiny_llama(tmp_path_factory.mktemp("llama") / "tiny")))


def test_training_rows_learn_the_completion_and_eos_only(tokenizer):
    df = pd.DataFrame({"prompt": ["1 2", "3"], "answer": ["1 2", "3"], "idx": [7, 8]})
    features, examples = Generation.encode(tokenizer, df, TASK, train=True)
    assert examples is None
    ids, labels = features.column("input_ids").to_pylist(), features.column("labels").to_pylist()
    w = {t: i for i, t in enumerate(WORDS)}
    # "copy 1 2 =" then " 1 2" then EOS; the prompt's labels are ignored
    assert ids[0] == [w["copy"], w["1"], w["2"], w["="], w["1"], w["2"], w["</s>"]]
    assert labels[0] == [IGNORE_INDEX] * 4 + [w["1"], w["2"], w["</s>"]]
    assert labels[1] == [IGNORE_INDEX] * 3 + [w["3"], w["</s>"]]
    assert features.column("idx").to_pylist() == [7, 8]


def test_long_rows_keep_the_prompt_end_and_lose_the_completion_tail(tokenizer):
    df = pd.DataFrame({"prompt": ["1 2 3 4 5 6 7"], "answer": ["1 2 3 4 5 6 7"], "idx": [0]})  # 9-token prompt
    train, _ = Generation.encode(tokenizer, df, TASK, train=True)
    ids, labels = train.column("input_ids").to_pylist()[0], train.column("labels").to_pylist()[0]
    assert len(ids) == len(labels) == TASK["max_length"]
    assert labels[-1] != IGNORE_INDEX  # at least one completion token survives
    test, examples = Generation.encode(tokenizer, df, TASK, train=False)
    w = {t: i for i, t in enumerate(WORDS)}
    assert test.column("input_ids").to_pylist()[0][-1] == w["="]  # the end of the prompt is kept
    assert examples.column("prompt_truncated").to_pylist() == [True]
    assert examples.column("reference").to_pylist() == ["1 2 3 4 5 6 7"]
    assert examples.column("prompt").to_pylist() == ["copy 1 2 3 4 5 6 7 ="]


def test_template_fields():
    assert template_fields("Q: {question}\nT: {context} {question}") == ["question", "context"]
    with pytest.raises(ValueError):
        template_fields("{0} and {}")


@pytest.mark.parametrize("change, key", [
    ({"scorer": "bleu"}, "tasks.t.scorer"),
    ({"scorer": "gsm8k", "scorer_options": {"answer": "loose"}}, "tasks.t.scorer_options.answer"),
    ({"template": "{0} ="}, "tasks.t.template"),
    ({"max_new_tokens": 0}, "tasks.t.max_new_tokens"),
    ({"stop": [""]}, "tasks.t.stop"),
])
def test_bad_task_settings_name_the_key(change, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        Generation.check_task("t", {**TASK, **change})


def test_a_template_field_the_data_lacks_names_the_key():
    df = pd.DataFrame({"question": ["1"], "answer": ["1"], "idx": [0]})
    with pytest.raises(DataError, match=r"tasks\.t\.template") as e:
        Generation.check_frame(df, TASK, "task 't', part 'train'", "t")
    assert "prompt" in str(e.value) and "\n" not in str(e.value)


def test_demo_table1_validates_and_plans_vanilla_without_training(demo_config):
    config = validate(demo_config)
    runs = cfg.runs(config)
    trained = cfg.trained_runs(config, runs)
    vanilla = [r for r in runs if r.method == "vanilla"]
    assert len(vanilla) == 3 * 2 and not set(vanilla) & set(trained)
    assert {r.model for r in vanilla} == {"smollm2"}
    # its evaluation takes the device and precision the train job would have had
    assert "device" in cfg.evaluation_settings(config, "smollm2", "demo-gsm8k", "vanilla")
    assert "device" not in cfg.evaluation_settings(config, "smollm2", "demo-gsm8k", "fft")
    # the GGUF model's limits come from the file's header before it is converted
    limits = cfg.model_limits("smollm2", config["models"]["smollm2"], REPO / "no-such-dir")
    assert limits["num_layers"] == 30 and limits["model_type"] == "llama" and limits["max_positions"] == 8192


def test_prompt_plus_budget_beyond_the_models_positions_is_a_config_error(demo_config):
    config = copy.deepcopy(demo_config)
    config["models"]["smollm2"]["max_positions"] = 128  # 112 prompt tokens + 48 new ones do not fit
    with pytest.raises(ConfigError, match=r"tasks\.demo-\w+\.max_length.*plus max_new_tokens.*128 positions of model 'smollm2'"):
        validate(config)


def test_vanilla_in_a_selection_grid_is_a_config_error(demo_config):
    config = copy.deepcopy(demo_config)
    config["selection"]["grids"]["vanilla"] = {"lr": [1.0e-4]}
    with pytest.raises(ConfigError, match=r"selection\.grids\.vanilla.*does not train"):
        validate(config)


def test_not_run_leaves_runs_out_and_names_bad_entries(demo_config):
    config = copy.deepcopy(demo_config)
    config["studies"]["table1"]["not_run"] = {"smollm2": {"hift": "not on this machine"}}
    runs = cfg.runs(validate(copy.deepcopy(config)))
    assert not any(r.method == "hift" and r.task == "demo-viggo" for r in runs)
    config["studies"]["table1"]["not_run"] = {"smollm2": {"bitfit": "x"}}
    with pytest.raises(ConfigError, match=r"studies\.table1\.not_run\.smollm2\.bitfit"):
        validate(config)


def test_unknown_scorer_stops_the_whole_config(demo_config):
    config = copy.deepcopy(demo_config)
    config["tasks"]["demo-sql"]["scorer"] = "rouge"
    with pytest.raises(ConfigError, match=r"tasks\.demo-sql\.scorer.*rouge"):
        validate(config)


def test_tables_and_figures_judge_a_generation_task_by_its_scorer(demo_config):
    """What tables and figures see of a task (plan.dependencies.presentation) carries its
    scorer, so GSM8K's column shows the scorer's headline (flexible accuracy), not a default."""
    from lwob.plan import dependencies as deps
    from lwob.tasks.base import task_metric

    config = validate(demo_config)
    shown = deps.presentation(config)["tasks"]
    for name in ("demo-gsm8k", "demo-sql", "demo-viggo", "demo-stsb", "demo-cola"):
        assert task_metric(shown[name]) == task_metric(config["tasks"][name])
    assert task_metric(shown["demo-gsm8k"]) == "flexible_accuracy"
