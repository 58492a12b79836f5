"""A model larger than one GPU at evaluation (training.eval_devices), and base models in fp32.

The evaluate job of a run with eval_devices N asks SLURM for N times the model's GPUs
(test_dag checks the dry run for LLaMA2-70B) and loads the model's layers straight onto those
GPUs in one process (lwob.models.spread_placement: transformers' device map "balanced" over
their free memory). This machine has no GPU: what runs here is the setting's resolution and
resources, the errors a user can meet, and the loading path with a device map (the method
built on the placed model, its trained tensors loaded, the same outputs as the model loaded
whole). Placement over real GPUs is left to the GPU check.
"""

from __future__ import annotations

import pytest
import torch

import lwob.run.training as lt
from lwob.errors import ConfigError
from lwob.models import spread_placement
from lwob.plan import config as cfg

from test_generation_kind import build_tiny_llama

GENERATION = {"kind": "generation", "max_length": 32}
#: Every top-level module of the tiny Llama on the CPU: a device map as transformers takes it.
ON_CPU = {"model.embed_tokens": "cpu", "model.layers.0": "cpu", "model.layers.1": "cpu", "model.norm": "cpu",
          "model.rotary_emb": "cpu", "lm_head": "cpu"}


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    return build_tiny_llama(tmp_path_factory.mktemp("eval-devices") / "tiny-llama")


def test_a_half_precision_checkpoint_loads_in_fp32(tmp_path):
    """The hub's LLaMA2 and OPT are stored in fp16; transformers 5 would keep that dtype and
    train every weight and AdamW moment in fp16."""
    from transformers import AutoModelForCausalLM

    from lwob import tasks
    from lwob.models import load_for_task

    folder = build_tiny_llama(tmp_path / "fp16")
    AutoModelForCausalLM.from_pretrained(str(folder)).half().save_pretrained(folder)
    assert AutoModelForCausalLM.from_pretrained(str(folder)).dtype == torch.float16  # what the library does alone
    model = load_for_task(folder, tasks.get("generation"), GENERATION)
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_eval_devices_is_an_evaluation_setting_that_multiplies_the_gpus(paper_config):
    run = ("llama2-70b", "gsm8k", "lora-llama")
    assert "eval_devices" not in cfg.training_settings(paper_config, *run)  # editing it retrains nothing
    assert cfg.evaluation_settings(paper_config, *run)["eval_devices"] == 4
    one = cfg.run_resources(paper_config, "llama2-70b")
    assert cfg.evaluation_resources(paper_config, *run)["gpus"] == 4 * one["gpus"]
    assert cfg.evaluation_resources(paper_config, "llama2-7b", "gsm8k", "lora-llama")["gpus"] == one["gpus"]
    assert cfg.train_resources(paper_config, *run)["gpus"] == 8 * one["gpus"]  # training: its processes, not this


def test_a_bad_eval_devices_is_one_line_naming_the_key(paper_config):
    from conftest import REPO

    paper_config["models"]["llama2-70b"]["training"]["eval_devices"] = 0
    with pytest.raises(ConfigError, match=r"eval_devices"):
        cfg.validate(paper_config, REPO / "config" / "schemas" / "config.schema.yaml", base_dir=".")
    with pytest.raises(ConfigError, match=r"training.eval_devices: expected a positive integer"):
        lt.resolve_hyperparameters({"eval_devices": 0})


def test_spreading_needs_as_many_gpus_as_asked(monkeypatch):
    assert spread_placement(1, torch.device("cpu")) is None
    with pytest.raises(ConfigError, match=r"training.eval_devices is 2: .*needs GPUs.*runs on cpu"):
        spread_placement(2, torch.device("cpu"))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ConfigError, match=r"training.eval_devices is 4 but this job sees 2 GPU\(s\)"):
        spread_placement(4, torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i: (70 * 2**30 + i, 80 * 2**30))
    placement = spread_placement(2, torch.device("cuda"))
    # layers balanced over exactly the job's GPUs, within their free memory: none on the CPU or disk
    assert placement == {"device_map": "balanced", "max_memory": {0: 70 * 2**30, 1: 70 * 2**30 + 1}}


@pytest.mark.parametrize("method,options", [("lora", {"r": 4, "alpha": 8}), ("fft", {})])
def test_a_placed_model_takes_its_method_and_trained_tensors(tiny_llama, tmp_path, method, options):
    """Loaded with a device map (here all on the CPU): the method builds on it, the run's
    trained tensors load into it, and it computes what the model loaded whole computes."""
    from lwob import methods

    def build(placement):
        model, *_ = lt.build_run_model(model_dir=tiny_llama, meta=GENERATION, method_type=method,
                                       method_options=options, seed=3, total_steps=10, placement=placement)
        return model

    trained = build(None)
    with torch.no_grad():
        for p in trained.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))  # as if trained
    methods.save_trained(trained, tmp_path / "weights.safetensors")
    whole, placed = build(None), build({"device_map": ON_CPU})
    for model in (whole, placed):
        methods.load_trained(model, tmp_path / "weights.safetensors")
        model.eval()
    ids = torch.tensor([[4, 5, 6, 7, 8]])
    with torch.no_grad():
        expected = trained.eval()(input_ids=ids).logits
        torch.testing.assert_close(whole(input_ids=ids).logits, expected)
        torch.testing.assert_close(placed(input_ids=ids).logits, expected)


def test_evaluation_refuses_a_spread_that_left_layers_off_the_gpus(tiny_llama, tmp_path, monkeypatch):
    """A model too large for the GPUs asked for: transformers would place the rest on the CPU
    (slow beyond use); the evaluation stops with one line and writes nothing."""
    import lwob.run.evaluation as ev

    offloaded = {**ON_CPU, "model.layers.1": "disk"}
    monkeypatch.setattr(ev, "spread_placement", lambda devices, device: {"device_map": offloaded,
                                                                           "offload_folder": str(tmp_path / "off")})
    out = tmp_path / "eval.json"
    with pytest.raises(ConfigError, match=r"training.eval_devices is 2: the model does not fit .* placed on cpu, disk\)"):
        ev.evaluate_run(model_dir=tiny_llama, tokenized_dir=_tokenized(tmp_path), run_dir=None, method_type="vanilla",
                        method_options={}, eval_parts=[], out_json=out, out_predictions=tmp_path / "p.parquet",
                        settings={"eval_devices": 2, "device": "cpu", "precision": "fp32"},
                        run_id={"model": "tiny", "task": "copy", "method": "vanilla", "seed": 0})
    assert not out.exists()


def _tokenized(tmp_path):
    from lwob.io import write_json

    folder = tmp_path / "tok"
    folder.mkdir()
    write_json(folder / "meta.json", {**GENERATION, "pad_token_id": 0, "parts": {}})
    return folder
