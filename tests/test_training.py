"""Training loop: determinism, best-epoch weights, record contents, AdaLoRA schedule hook."""

from __future__ import annotations

import json

import pytest

from training_data import HP, MINILM, RUN_ID, _train


def test_train_run_is_bitwise_deterministic_on_cpu(tokenized, tmp_path):
    from safetensors.torch import load_file

    a = _train(tokenized, tmp_path / "a")
    b = _train(tokenized, tmp_path / "b")
    for rec in (a, b):
        assert [e["epoch"] for e in rec["epochs"]] == [1, 2]
    assert a["epochs"] == b["epochs"]  # exact floats: val score/metrics and train loss
    assert a["best_epoch"] == b["best_epoch"]
    wa, wb = load_file(tmp_path / "a" / "weights.safetensors"), load_file(tmp_path / "b" / "weights.safetensors")
    assert wa.keys() == wb.keys() and len(wa) > 0
    assert all(bool((wa[k] == wb[k]).all()) for k in wa)
    c = _train(tokenized, tmp_path / "c", seed=4)
    wc = load_file(tmp_path / "c" / "weights.safetensors")
    assert any(not bool((wa[k] == wc[k]).all()) for k in wa)


def test_train_record_contents(tokenized, tmp_path):
    rec = _train(tokenized, tmp_path / "r", hp={"epochs": 3})
    on_disk = json.loads((tmp_path / "r" / "train.json").read_text())
    assert on_disk["best_epoch"] == rec["best_epoch"]
    for key in ("model", "task", "method", "seed", "method_type", "method_options", "hyperparameters", "params",
                "epochs", "best_epoch", "val_metric", "best_val_score", "task_kind", "train_rows",
                "train_examples", "validation_examples", "wall_time_s", "train_samples_per_s",
                "peak_host_mem_mb", "peak_gpu_mem_mb", "device", "provenance"):
        assert key in on_disk, key
    hp = on_disk["hyperparameters"]
    assert hp["max_grad_norm"] == 1.0 and hp["optimizer"] == "adamw" and hp["lr_scheduler"] == "linear"
    assert on_disk["method_options"] == {"r": 4, "alpha": 8.0, "dropout": 0.1, "target_modules": None}
    assert on_disk["peak_gpu_mem_mb"] is None and on_disk["device"] == "cpu"
    assert on_disk["total_steps"] == 3 * 6
    assert on_disk["task_kind"] == "classification" and on_disk["val_metric"] == "accuracy"
    assert on_disk["train_rows"] == on_disk["train_examples"] == 48 and on_disk["validation_examples"] == 24
    for e in on_disk["epochs"]:
        assert set(e) == {"epoch", "val_score", "val_metrics", "train_loss"}
        assert e["val_metrics"] == {"accuracy": e["val_score"], "n": 24}
    accs = [e["val_score"] for e in on_disk["epochs"]]
    best = max(accs)
    assert on_disk["best_val_score"] == best and on_disk["best_epoch"] == accs.index(best) + 1  # ties: earliest
    assert on_disk["provenance"]["model"] == {"path": str(MINILM)}
    assert on_disk["provenance"]["packages"]["torch"]
    parts = on_disk["provenance"]["data"]["tokenized_parts"]
    assert set(parts) >= {"train", "validation"} and all(len(h) == 64 for h in parts.values())
    assert on_disk["params"]["head"] == 384 * 2 + 2


def test_best_epoch_weights_are_saved(tokenized, tmp_path):
    """The saved weights give the recorded best validation accuracy."""
    import torch

    from lwob import methods, tasks
    from lwob.io import read_json
    from lwob.run.training import build_run_model, load_part, score_part

    rec = _train(tokenized, tmp_path / "w", method="bitfit", options={}, hp={"epochs": 3, "lr": 5e-3})
    meta = read_json(tokenized / "meta.json")
    model, *_ = build_run_model(model_dir=MINILM, meta=meta, method_type="bitfit", method_options={}, seed=3,
                                total_steps=rec["total_steps"])
    methods.load_trained(model, tmp_path / "w" / "weights.safetensors")
    val = load_part(tokenized, "validation", meta["pad_token_id"])
    scores, predictions = score_part(tasks.get("classification"), model, val, 7, torch.device("cpu"))
    assert scores["accuracy"] == rec["best_val_score"]
    assert scores == rec["epochs"][rec["best_epoch"] - 1]["val_metrics"]
    assert len(predictions) == 24 and predictions["correct"].mean() == scores["accuracy"]


def test_adalora_short_run_calls_update_and_allocate(tokenized, tmp_path, monkeypatch):
    from peft.tuners.adalora import AdaLoraModel

    calls = []
    orig = AdaLoraModel.update_and_allocate

    def spy(self, global_step):
        calls.append(global_step)
        return orig(self, global_step)

    monkeypatch.setattr(AdaLoraModel, "update_and_allocate", spy)
    rec = _train(tokenized, tmp_path / "ada", method="adalora", options={"init_r": 6, "target_r": 2, "deltaT": 1},
                 hp={"epochs": 2})
    total = rec["total_steps"]
    assert calls == list(range(1, total + 1))
    eff = rec["method_notes"]["adalora_effective"]
    assert eff["total_step"] == total and eff["tinit"] < total - eff["tfinal"]
    assert "scaled" in rec["method_notes"]["adalora_schedule"]


def test_unknown_hyperparameter_is_a_config_error(tokenized, tmp_path):
    from lwob.errors import ConfigError

    with pytest.raises(ConfigError, match="bogus"):
        _train(tokenized, tmp_path / "x", hp={"bogus": 1})


def test_length_grouped_batches_cover_every_row_once():
    import torch

    from lwob.run.training import Part, train_batches

    lengths = torch.randint(1, 50, (203,))
    part = Part("p", None, torch.zeros(203, 50, dtype=torch.long), lengths, None, {})
    for grouped in (False, True):
        g = torch.Generator().manual_seed(0)
        batches = train_batches(part, 16, g, grouped)
        assert sorted(torch.cat(batches).tolist()) == list(range(203))
        assert all(len(b) <= 16 for b in batches)


def test_collate_pads_to_batch_longest():
    import torch

    from lwob.run.training import _pad_matrix, Part, collate
    import numpy as np

    ids, lengths = _pad_matrix([np.array([5, 6, 7]), np.array([5]), np.array([5, 6, 7, 8, 9])], pad=0)
    part = Part("p", None, ids, lengths, None, {"labels": torch.tensor([0, 1, 0])})
    b = collate(part, torch.tensor([0, 1]), torch.device("cpu"))
    assert b["input_ids"].tolist() == [[5, 6, 7], [5, 0, 0]]
    assert b["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert set(b) == {"input_ids", "attention_mask"}  # targets are not inputs


def test_lr_schedule_linear_with_warmup():
    from lwob.run.training import lr_factor

    assert [lr_factor(s, 10, 2, "linear") for s in range(10)] == [0.0, 0.5, 1.0, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8,
                                                                   2 / 8, 1 / 8]


def test_non_finite_loss_fails_naming_run_and_step(tokenized, tmp_path):
    """lr inf: the warm-up's first lr is inf * 0 = NaN, so step 1's update makes every weight
    NaN and step 2's loss is NaN. The run fails there; nothing claims success."""
    from lwob.errors import ConfigError

    out = tmp_path / "diverged"
    with pytest.raises(ConfigError, match=r"run minilm/demo-sst2/lora/seed3 .*NaN or infinite at optimizer step 2 "
                                          r"\(epoch 1\).*training\.lr \(now inf\)"):
        _train(tokenized, out, hp={"lr": float("inf")})
    assert not (out / "train.json").exists() and not (out / "weights.safetensors").exists()


def test_record_holds_the_weights_hash(tokenized, tmp_path):
    from lwob.io import sha256_file

    rec = _train(tokenized, tmp_path / "h", hp={"epochs": 1})
    assert rec["weights_sha256"] == sha256_file(tmp_path / "h" / "weights.safetensors")


def test_damaged_tokenized_part_is_named_with_how_to_rebuild(tokenized, tmp_path):
    import shutil

    from lwob.errors import DataError

    tok = tmp_path / "tok"
    shutil.copytree(tokenized, tok)
    part = tok / "train.parquet"
    part.write_bytes(part.read_bytes()[:-40])  # a truncated copy
    with pytest.raises(DataError, match=rf"{part}: sha256 .* differs .*delete {tok / 'meta.json'} and rerun: "
                                        rf"snakemake {tok / 'meta.json'}"):
        _train(tok, tmp_path / "run", hp={"epochs": 1})


def test_diverged_grid_cell_is_recorded_without_a_score(tokenized, tmp_path):
    """A learning-rate grid may reach a rate that diverges: that cell's result, not a failure.
    It records no validation score, so the selection skips it, and no trained weights."""
    from safetensors.torch import load_file

    from lwob.io import read_json
    from lwob.analysis.selection import choose
    from lwob.run.training import train_run

    out = tmp_path / "cell"
    rec = train_run(model_dir=MINILM, tokenized_dir=tokenized, method_type="lora",
                    method_options={"r": 4, "alpha": 8, "dropout": 0.1}, hyperparameters={**HP, "lr": 1e30},
                    seed=3, out_dir=out, run_id={**RUN_ID, "method": "lora", "cell": "lr-1e30"}, threads=1)
    assert read_json(out / "train.json") == json.loads(json.dumps(rec))
    assert rec["diverged"] == {"step": 3, "epoch": 1}  # step 2 moves the weights by about 5e29
    assert rec["best_val_score"] is None and rec["best_epoch"] is None and rec["epochs"] == []
    assert load_file(out / "weights.safetensors") == {}
    choice = choose({"lr-1e30": {"lr": 1e30}, "lr-1e-3": {"lr": 1e-3}},
                    {"lr-1e30": [rec["best_val_score"]], "lr-1e-3": [0.5]})
    assert choice["chosen"] == "lr-1e-3"
