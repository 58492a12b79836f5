"""The warm worker runs a job exactly as a fresh process would, and reports failures."""

from __future__ import annotations

import pytest
from safetensors.torch import load_file

from lwob.plan import warm
from training_data import HP, MINILM, RUN_ID, _train, write_tokenized


@pytest.fixture(scope="module")
def tokenized(tmp_path_factory):
    return write_tokenized(tmp_path_factory.mktemp("tokw") / "minilm" / "t", {"train": 32, "validation": 16, "origin": 16})


@pytest.fixture
def private_socket(tmp_path, monkeypatch):
    # A server of its own per test, so tests never share one with a running workflow.
    monkeypatch.setattr(warm, "socket_path", lambda: tmp_path / "w.sock")
    yield tmp_path / "w.sock"


def test_warm_training_equals_cold_training(tokenized, tmp_path, private_socket):
    cold = _train(tokenized, tmp_path / "cold", method="bitfit", options={})
    kwargs = dict(model_dir=MINILM, tokenized_dir=tokenized, method_type="bitfit", method_options={},
                  hyperparameters=HP, seed=3, out_dir=tmp_path / "warm",
                  run_id={**RUN_ID, "method": "bitfit"}, threads=1,
                  provenance_extra={"model": {"path": str(MINILM)}})
    log = tmp_path / "warm.log"
    warm.call("lwob.run.training:train_run", kwargs, log)
    import json

    record = json.loads((tmp_path / "warm" / "train.json").read_text())
    assert record["epochs"] == cold["epochs"]
    a, b = load_file(tmp_path / "cold" / "weights.safetensors"), load_file(tmp_path / "warm" / "weights.safetensors")
    assert a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)
    # A second job reuses the same server (no second start).
    warm.call("lwob.io:write_json", {"path": tmp_path / "x.json", "obj": {"a": 1}}, log)
    assert (tmp_path / "x.json").exists()
    assert private_socket.exists()


def test_warm_job_failure_is_reported_with_its_message(tmp_path, private_socket):
    log = tmp_path / "fail.log"
    with pytest.raises(warm.JobFailed, match="FileNotFoundError"):
        warm.call("lwob.io:read_json", {"path": tmp_path / "missing.json"}, log)
    assert "Traceback" in log.read_text()
