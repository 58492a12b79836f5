"""Preemption: a training job killed with SIGTERM saves a checkpoint and exits; the rerun
resumes and ends bitwise identical to an uninterrupted run (CPU)."""

from __future__ import annotations

import os
import signal

import pytest
from safetensors.torch import load_file

from lwob.run import checkpoint, training

from training_data import _train


def _sigterm_at(monkeypatch, at_step: int, signum: int = signal.SIGTERM):
    """Deliver a real SIGTERM (or `signum`) to this process when the loop asks for the lr of `at_step`."""
    real = training.lr_factor
    sent = []

    def lr_factor(step, total, warmup, kind):
        if step == at_step and not sent:
            sent.append(step)
            os.kill(os.getpid(), signum)
        return real(step, total, warmup, kind)

    monkeypatch.setattr(training, "lr_factor", lr_factor)
    return sent


@pytest.mark.parametrize("method, options, at_step", [
    ("fft", {}, 5),                     # mid-epoch 1
    ("lora", None, 8),                  # mid-epoch 2 (6 steps per epoch; after the epoch-1 validation)
    ("adalora", {"init_r": 6, "target_r": 2, "tinit": 2, "tfinal": 4, "deltaT": 1}, 9),  # allocator state
])
def test_sigterm_saves_and_rerun_resumes_bitwise(tokenized, tmp_path, monkeypatch, method, options, at_step):
    full = _train(tokenized, tmp_path / "full", method=method, options=options)

    sent = _sigterm_at(monkeypatch, at_step)
    with pytest.raises(checkpoint.Preempted) as stop:
        _train(tokenized, tmp_path / "cut", method=method, options=options)
    assert sent == [at_step] and stop.value.code == checkpoint.PREEMPTED_EXIT
    ckpt = tmp_path / "cut" / checkpoint.FILENAME
    assert ckpt.is_file() and not (tmp_path / "cut" / "train.json").exists()
    assert signal.getsignal(signal.SIGTERM) is not None  # handlers restored after the block
    monkeypatch.undo()

    resumed = _train(tokenized, tmp_path / "cut", method=method, options=options)
    assert resumed["resumed"] and not full["resumed"]
    # saved after the optimizer step that was under way when the signal came (steps count from 1)
    assert resumed["resumed_from"] == {"step": at_step + 1, "reason": "sigterm"}
    assert not ckpt.exists()  # removed once the outputs are written
    assert resumed["epochs"] == full["epochs"]  # exact floats: validation scores, train loss
    wa, wb = load_file(tmp_path / "full" / "weights.safetensors"), load_file(tmp_path / "cut" / "weights.safetensors")
    assert wa.keys() == wb.keys() and all(bool((wa[k] == wb[k]).all()) for k in wa)


def test_checkpoint_of_another_run_is_not_used(tokenized, tmp_path, monkeypatch):
    _sigterm_at(monkeypatch, 3)
    with pytest.raises(checkpoint.Preempted):
        _train(tokenized, tmp_path / "run", method="lora")
    monkeypatch.undo()
    # Same folder, other settings (a config change): the stale checkpoint is dropped.
    other = _train(tokenized, tmp_path / "run", method="lora", hp={"lr": 5e-4})
    assert not other["resumed"]
    fresh = _train(tokenized, tmp_path / "fresh", method="lora", hp={"lr": 5e-4})
    assert other["epochs"] == fresh["epochs"]


def test_periodic_checkpoint_does_not_change_results(tokenized, tmp_path, monkeypatch):
    saved = []
    real_save = checkpoint.save
    monkeypatch.setattr(checkpoint, "save", lambda path, state: (saved.append(state["step"]), real_save(path, state)))
    monkeypatch.setattr(checkpoint.Preemption, "periodic_due", lambda self: True)
    with_ckpt = _train(tokenized, tmp_path / "a", method="lora")
    monkeypatch.undo()
    plain = _train(tokenized, tmp_path / "b", method="lora")
    assert saved == list(range(1, len(saved) + 1)) and len(saved) > 1
    assert with_ckpt["epochs"] == plain["epochs"]
    assert not (tmp_path / "a" / checkpoint.FILENAME).exists()


def test_ctrl_c_saves_like_sigterm_and_exits_nonzero(tokenized, tmp_path, monkeypatch):
    """SIGINT (Ctrl-C) keeps the training done so far: checkpoint, exit 130, bitwise resume."""
    full = _train(tokenized, tmp_path / "full", method="lora")
    handler_before = signal.getsignal(signal.SIGINT)  # SIG_IGN where the suite runs in the background
    sent = _sigterm_at(monkeypatch, 4, signal.SIGINT)
    with pytest.raises(checkpoint.Preempted) as stop:
        _train(tokenized, tmp_path / "cut", method="lora")
    assert sent == [4] and stop.value.code == checkpoint.INTERRUPTED_EXIT == 130
    assert (tmp_path / "cut" / checkpoint.FILENAME).is_file()
    assert signal.getsignal(signal.SIGINT) is handler_before  # restored
    monkeypatch.undo()
    resumed = _train(tokenized, tmp_path / "cut", method="lora")
    assert resumed["resumed_from"] == {"step": 5, "reason": "sigint"}
    assert resumed["epochs"] == full["epochs"]
    wa, wb = load_file(tmp_path / "full" / "weights.safetensors"), load_file(tmp_path / "cut" / "weights.safetensors")
    assert all(bool((wa[k] == wb[k]).all()) for k in wa)


def test_second_ctrl_c_stops_at_once():
    with checkpoint.Preemption() as preemption:
        os.kill(os.getpid(), signal.SIGINT)
        assert preemption.requested and preemption.reason == "sigint"
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)


class _RunsCodeWhenUnpickled:
    ran: list = []

    def __reduce__(self):
        return (_RunsCodeWhenUnpickled.ran.append, ("code ran",))


def test_checkpoint_is_loaded_as_data_only(tmp_path, capsys):
    """weights_only: a checkpoint holding a pickled object is refused, never executed."""
    import torch

    path = tmp_path / checkpoint.FILENAME
    torch.save({"fingerprint": "fp", "payload": _RunsCodeWhenUnpickled()}, path)
    assert checkpoint.load(path, "fp") is None
    assert _RunsCodeWhenUnpickled.ran == [] and not path.exists()
    assert "unreadable" in capsys.readouterr().out
    # what training saves (tensors, numbers, strings, plain containers, RNG states) loads
    state = {"fingerprint": "fp", "rng": checkpoint.rng_state(), "generator": torch.Generator().get_state(),
             "epochs": [{"epoch": 1, "val_score": 0.5}], "batches": [torch.arange(3)], "best": None}
    checkpoint.save(path, state)
    loaded = checkpoint.load(path, "fp")
    assert loaded["epochs"] == state["epochs"] and torch.equal(loaded["rng"]["torch"], state["rng"]["torch"])
