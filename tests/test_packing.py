"""Packed supervised fine-tuning batches (training.packing): several examples a row, attention
kept within each example, and the same loss as the examples padded one a row.

On a tiny Llama (2 layers, a word-level tokenizer built offline: test_generation_kind's
build_tiny_llama): the packed batch's loss and gradients equal the unpacked ones to fp32
tolerance (with and without logits only where a label counts, plain and under LoRA), rows
never exceed the pack length, an epoch's packed batches hold every example exactly once,
the same seed gives the same batches, the setting goes through config validation, and a run
with packing trains the same weights as one without (and records how it batched).
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

import lwob.run.training as lt
from lwob.errors import ConfigError
from lwob.plan import config as cfg
from lwob.tasks.base import IGNORE_INDEX

from conftest import REPO
from test_generation_kind import WORDS, build_tiny_llama

SCHEMA = REPO / "config" / "schemas" / "config.schema.yaml"
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("packing") / "tiny-llama")


def synthetic_part(n: int, seed: int = 0, vocab: int = len(WORDS)) -> lt.Part:
    """n examples of 3 to 24 tokens (ids 4.. of the tiny vocabulary), labels IGNORE_INDEX over
    a prompt of 1 to 8 tokens, as the generation kind writes them."""
    rng = random.Random(seed)
    ids, labels = [], []
    for _ in range(n):
        length = rng.randint(3, 24)
        row = [rng.randrange(4, vocab) for _ in range(length)]
        prompt = rng.randint(1, min(8, length - 1))
        ids.append(np.asarray(row, dtype=np.int64))
        labels.append(np.asarray([IGNORE_INDEX] * prompt + row[prompt:], dtype=np.int64))
    input_ids, lengths = lt._pad_matrix(ids, 0)
    return lt.Part(name="train", table=None, input_ids=input_ids, lengths=lengths, token_type_ids=None,
                   targets={"labels": lt._pad_matrix(labels, IGNORE_INDEX)[0]}, pad_token_id=0)


def load_model(directory: Path):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(directory))
    model.train()
    return model


def loss_and_grads(model, batch: dict, targets: dict) -> tuple[float, dict]:
    model.zero_grad(set_to_none=True)
    loss = model(**batch, **targets).loss
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return float(loss.detach()), grads


def segments(batch: dict) -> list[list[int]]:
    """The examples in a packed batch: runs of tokens whose position ids count up from 0
    (a row's padded tail is a run too; its tokens are the pad id)."""
    out = []
    for ids, pos in zip(batch["input_ids"].tolist(), batch["position_ids"].tolist()):
        for token, p in zip(ids, pos):
            if p == 0:
                out.append([])
            out[-1].append(token)
    return out


# --------------------------------------------------------------------------- exactness


@pytest.mark.parametrize("logits_to_keep", [True, False])
def test_packed_loss_and_gradients_equal_the_unpacked_ones(tiny_llama, logits_to_keep):
    """Token-weighted mean over the batch, as the padded batch: same loss, same gradients."""
    part = synthetic_part(12, seed=1)
    model = load_model(tiny_llama)
    index = torch.arange(12)
    ref_loss, ref_grads = loss_and_grads(model, lt.collate(part, index, CPU), lt.collate_targets(part, index, CPU))
    packing = lt.Packing(pack_length=48, logits_to_keep=logits_to_keep)
    batch, targets = lt.collate_packed(part, index, CPU, packing)
    assert len(batch["input_ids"]) < 12  # several examples share rows
    assert ("logits_to_keep" in batch) == logits_to_keep
    loss, grads = loss_and_grads(model, batch, targets)
    assert loss == pytest.approx(ref_loss, rel=1e-5, abs=1e-6)
    assert grads.keys() == ref_grads.keys()
    for name, g in grads.items():
        torch.testing.assert_close(g, ref_grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_padded_batches_compute_logits_only_where_a_label_counts(tiny_llama):
    """Unpacked batches too: the logits of the positions whose label counts, and the loss and
    gradients of the full logits; a prompt-learning model and a kind without per-token
    targets keep the full logits."""
    from lwob import tasks

    part = synthetic_part(12, seed=4)
    model = load_model(tiny_llama)
    index = torch.arange(12)
    batch = lt.collate(part, index, CPU)
    full = lt.collate_targets(part, index, CPU)
    kept = lt.collate_targets(part, index, CPU, loss_logits_only=True)
    assert set(kept) == {"labels", "logits_to_keep", "shift_labels"} and kept["logits_to_keep"].dtype == torch.bool
    counted = int((full["labels"][:, 1:] != IGNORE_INDEX).sum())
    assert int(kept["logits_to_keep"].sum()) == len(kept["shift_labels"]) == counted < full["labels"].numel()
    with torch.no_grad():
        assert model(**batch, **kept).logits.shape == (counted, model.config.vocab_size)
    ref_loss, ref_grads = loss_and_grads(model, batch, full)
    loss, grads = loss_and_grads(model, batch, kept)
    assert loss == pytest.approx(ref_loss, rel=1e-5, abs=1e-6)
    assert grads.keys() == ref_grads.keys()
    for name, g in grads.items():
        torch.testing.assert_close(g, ref_grads[name], rtol=1e-4, atol=1e-6, msg=name)
    generation, classification = tasks.get("generation"), tasks.get("classification")
    assert lt.loss_logits_only(generation, model) and not lt.loss_logits_only(classification, model)
    from peft import PrefixTuningConfig, get_peft_model

    prefix = get_peft_model(load_model(tiny_llama), PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=2))
    assert not lt.loss_logits_only(generation, prefix)


def test_packed_loss_is_the_token_weighted_mean_of_the_examples(tiny_llama):
    """Each example's summed loss, unpacked and alone, over all examples' counted tokens."""
    part = synthetic_part(9, seed=2)
    model = load_model(tiny_llama)
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(9):
            one = torch.tensor([i])
            mean = float(model(**lt.collate(part, one, CPU), **lt.collate_targets(part, one, CPU)).loss)
            n = int((part.targets["labels"][i, 1:] != IGNORE_INDEX).sum())  # the shift drops the first label
            total, count = total + mean * n, count + n
        batch, targets = lt.collate_packed(part, torch.arange(9), CPU, lt.Packing(pack_length=60))
        packed = float(model(**batch, **targets).loss)
    assert packed == pytest.approx(total / count, rel=1e-5)


def test_attention_stays_within_each_example(tiny_llama):
    """Changing one example's tokens leaves the logits of the examples packed beside it as
    they were (no token attends across an example boundary)."""
    part = synthetic_part(6, seed=3)
    model = load_model(tiny_llama)
    model.eval()
    packing = lt.Packing(pack_length=200, logits_to_keep=False)  # one row: all six side by side
    index = torch.arange(6)
    batch, _ = lt.collate_packed(part, index, CPU, packing)
    assert len(batch["input_ids"]) == 1
    other = copy.deepcopy(part)
    longest = int(torch.argmax(part.lengths))
    n = int(part.lengths[longest])
    other.input_ids[longest, :n] = (other.input_ids[longest, :n] + 1 - 4) % (len(WORDS) - 4) + 4
    changed, _ = lt.collate_packed(other, index, CPU, packing)
    with torch.no_grad():
        a, b = model(**batch).logits[0], model(**changed).logits[0]
    moved = batch["input_ids"][0] != changed["input_ids"][0]
    assert moved.sum() == n  # the changed example is one contiguous run ...
    assert not torch.allclose(a[moved], b[moved])
    torch.testing.assert_close(a[~moved], b[~moved], rtol=0, atol=1e-6)  # ... and nothing else moved


def test_packed_loss_equals_unpacked_under_lora(tiny_llama):
    """A PEFT-wrapped model passes the packed inputs through (LoRA: the run's adapters)."""
    from peft import LoraConfig, get_peft_model

    part = synthetic_part(10, seed=4)
    model = get_peft_model(load_model(tiny_llama), LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                              init_lora_weights=False, task_type="CAUSAL_LM"))
    index = torch.arange(10)
    ref, ref_grads = loss_and_grads(model, lt.collate(part, index, CPU), lt.collate_targets(part, index, CPU))
    loss, grads = loss_and_grads(model, *lt.collate_packed(part, index, CPU, lt.Packing(pack_length=48)))
    assert loss == pytest.approx(ref, rel=1e-5)
    for name, g in grads.items():
        torch.testing.assert_close(g, ref_grads[name], rtol=1e-4, atol=1e-6, msg=name)


# --------------------------------------------------------------------------- rows and batches


@pytest.mark.parametrize("pack_length", [24, 31, 48, 100, 1000])
def test_rows_hold_each_example_once_and_never_exceed_the_pack_length(pack_length):
    rng = random.Random(pack_length)
    for _ in range(50):
        lengths = [rng.randint(1, 24) for _ in range(rng.randint(1, 40))]
        rows = lt.pack_rows(lengths, pack_length)
        assert sorted(k for row in rows for k in row) == list(range(len(lengths)))
        assert all(row for row in rows)
        width = max(sum(lengths[k] for k in row) for row in rows)
        assert width <= pack_length
        assert len(rows) * width <= len(lengths) * max(lengths)  # never more positions than padding
        assert rows == lt.pack_rows(list(lengths), pack_length)  # a function of the batch alone


def test_an_example_longer_than_the_pack_length_is_an_error():
    with pytest.raises(ConfigError, match="pack_length"):
        lt.pack_rows([5, 30, 7], 16)


def test_an_epoch_of_packed_batches_holds_every_example_once_and_the_seed_fixes_it():
    part = synthetic_part(53, seed=5)
    packing = lt.Packing(pack_length=40)

    def epoch(seed: int) -> list[tuple[dict, dict]]:
        generator = torch.Generator().manual_seed(seed)
        return [lt.collate_packed(part, index, CPU, packing) for index in lt.train_batches(part, 8, generator, False)]

    first = epoch(0)
    seen = []
    for batch, targets in first:
        assert batch["input_ids"].shape[1] <= 40
        assert batch["input_ids"].shape == targets["labels"].shape == batch["position_ids"].shape
        for row in segments(batch):
            if row and all(t == part.pad_token_id for t in row):
                continue  # a row's padded tail
            seen.append(tuple(row))
    examples = [tuple(part.input_ids[i, : int(part.lengths[i])].tolist()) for i in range(len(part))]
    assert sorted(seen) == sorted(examples)
    assert sum(int((t["labels"] != IGNORE_INDEX).sum()) for _, t in first) == int(
        (part.targets["labels"][:, 1:] != IGNORE_INDEX).sum())  # every counted label, none twice
    again = epoch(0)
    for (b1, t1), (b2, t2) in zip(first, again, strict=True):
        for key in ("input_ids", "position_ids", "logits_to_keep"):
            assert torch.equal(b1[key], b2[key])
        assert torch.equal(t1["labels"], t2["labels"]) and torch.equal(t1["shift_labels"], t2["shift_labels"])
    other = epoch(1)
    assert any(b1["input_ids"].shape != b2["input_ids"].shape or not torch.equal(b1["input_ids"], b2["input_ids"])
               for (b1, _), (b2, _) in zip(first, other))


# --------------------------------------------------------------------------- settings


def test_packing_goes_through_config_validation(demo_config):
    config = copy.deepcopy(demo_config)
    for task in ("demo-viggo", "demo-sql", "demo-gsm8k"):  # a task-level setting, per task
        config["tasks"][task]["training"] = {**config["tasks"][task].get("training", {}),
                                             "packing": True, "pack_length": 160}
    validated = cfg.validate(config, SCHEMA, base_dir=REPO)
    for task in ("demo-viggo", "demo-sql", "demo-gsm8k"):
        hp = lt.resolve_hyperparameters(cfg.training_settings(validated, "smollm2", task, "fft"))
        assert hp["packing"] is True and hp["pack_length"] == 160
    assert not lt.resolve_hyperparameters(cfg.training_settings(validated, "minilm", "demo-sst2", "fft"))["packing"]
    config = copy.deepcopy(demo_config)
    config["tasks"]["demo-gsm8k"]["training"] = {"packing": True, "pack_length": 224}
    validated = cfg.validate(config, SCHEMA, base_dir=REPO)
    assert cfg.training_settings(validated, "smollm2", "demo-gsm8k", "fft")["pack_length"] == 224
    for bad in ({"packing": "yes"}, {"pack_length": 0}, {"pack_length": "long"}):
        broken = copy.deepcopy(demo_config)
        broken["training"].update(bad)
        with pytest.raises(ConfigError, match=next(iter(bad))):
            cfg.validate(broken, SCHEMA, base_dir=REPO)
        with pytest.raises(ConfigError, match=next(iter(bad))):
            lt.resolve_hyperparameters(bad)
    defaults = lt.resolve_hyperparameters({})
    assert defaults["packing"] is False and defaults["pack_length"] is None


# --------------------------------------------------------------------------- a run


def write_generation_task(work: Path, model_dir: Path) -> Path:
    """A generation task on copying digit strings of 1 to 6 digits (lengths vary), tokenized
    for the tiny Llama by the package's own data stage."""
    import pandas as pd

    from lwob.data.sources import materialize
    from lwob.data.tokenize import prepare_task

    folder = work / "copy"
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(11)
    for split, n in {"train": 40, "validation": 8}.items():
        rows = []
        for _ in range(n):
            digits = " ".join(rng.choice("0123456789") for _ in range(rng.randint(1, 6)))
            rows.append({"prompt": f"copy {digits} =", "answer": digits, "label": 0})
        pd.DataFrame(rows).to_csv(folder / f"{split}.csv", index=False)
    spec = {"source": "local", "files": {s: str(folder / f"{s}.csv") for s in ("train", "validation")}}
    materialize("copy", spec, work / "raw" / "copy")
    task = {"kind": "generation", "template": "{prompt}", "completion": "answer", "max_new_tokens": 7,
            "max_length": 16, "scorer": "exact_match", "train": {"dataset": "copy", "split": "train"},
            "validation": {"dataset": "copy", "split": "validation"}}
    out = work / "tokenized"
    prepare_task("copy-gen", task, {"copy": work / "raw" / "copy"}, model_dir, "tiny-llama", out)
    return out


def train(model_dir: Path, tok: Path, out: Path, method: str = "fft", **hp) -> dict:
    hyper = {"epochs": 2, "batch_size": 8, "eval_batch_size": 16, "lr": 3e-3, "warmup_ratio": 0.1,
             "device": "cpu", "precision": "fp32", **hp}
    return lt.train_run(model_dir=model_dir, tokenized_dir=tok, method_type=method, method_options={},
                        hyperparameters=hyper, seed=0, out_dir=out, run_id={"model": "tiny", "task": "copy-gen",
                                                                            "method": method, "seed": 0})


def test_a_packed_run_trains_the_weights_of_an_unpacked_one(tiny_llama, tmp_path):
    from safetensors.torch import load_file

    tok = write_generation_task(tmp_path, tiny_llama)
    plain = train(tiny_llama, tok, tmp_path / "plain")
    packed = train(tiny_llama, tok, tmp_path / "packed", packing=True, pack_length=40)
    assert plain["batching"] == {"mode": "random", "loss_logits_only": True,  # tiny Llama takes logits_to_keep
                                 "last_layer_first_position_only": False}
    assert packed["batching"]["mode"] == "packed" and packed["batching"]["pack_length"] == 40
    assert packed["batching"]["check"]["equal"] and packed["batching"]["check"]["rows"] < 8
    assert packed["train_tokens_per_s"] > 0 and packed["total_steps"] == plain["total_steps"]
    for a, b in zip(plain["epochs"], packed["epochs"], strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
    w_plain, w_packed = load_file(tmp_path / "plain" / "weights.safetensors"), load_file(
        tmp_path / "packed" / "weights.safetensors")
    assert w_plain.keys() == w_packed.keys()
    for name in w_plain:
        torch.testing.assert_close(w_packed[name], w_plain[name], rtol=1e-3, atol=1e-4, msg=name)
    again = train(tiny_llama, tok, tmp_path / "again", packing=True, pack_length=40)
    assert again["weights_sha256"] == packed["weights_sha256"]  # reproducible
    json.dumps(packed["batching"])  # the record stays JSON


def test_where_packing_does_not_apply_batches_are_length_grouped(tiny_llama, tmp_path):
    """Prefix tuning prepends virtual tokens and a cache to every forward pass: not packed."""
    tok = write_generation_task(tmp_path, tiny_llama)
    rec = train(tiny_llama, tok, tmp_path / "prefix", method="prefix", epochs=1, packing=True)
    assert rec["batching"]["mode"] == "length-grouped"
    assert "prompt-learning" in rec["batching"]["packing_not_applied"]
