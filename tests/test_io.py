"""lwob.io: strict JSON out, and one clear error for a damaged output read back in."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from lwob.errors import DataError
from lwob.io import read_json, sha256_file, verify_sha256, write_json


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, np.float64("nan")])
def test_write_json_refuses_non_finite_numbers_naming_the_key(tmp_path, bad):
    path = tmp_path / "train.json"
    with pytest.raises(ValueError, match=r"train\.json.*epochs\.1\.train_loss is (nan|inf|-inf)"):
        write_json(path, {"epochs": [{"train_loss": 0.5}, {"train_loss": bad}]})
    assert not path.exists()  # nothing half-written either


def test_write_json_output_is_strict_json(tmp_path):
    write_json(tmp_path / "a.json", {"x": 1.5, "undefined": None, "n": np.int64(3)})
    text = (tmp_path / "a.json").read_text()
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard constant {c}")) == \
        {"x": 1.5, "undefined": None, "n": 3}


def test_read_json_of_a_truncated_file_names_it_and_how_to_rebuild(tmp_path):
    path = tmp_path / "results" / "runs" / "train.json"
    write_json(path, {"seed": 0, "epochs": [1, 2, 3]})
    path.write_bytes(path.read_bytes()[:15])
    with pytest.raises(DataError, match=rf"{path}: not valid JSON .*delete {path} and rerun: snakemake {path}"):
        read_json(path)
    # the rebuild advice may name the rule output that rewrites the file
    with pytest.raises(DataError, match=r"delete meta\.json and rerun: snakemake meta\.json"):
        read_json(path, output="meta.json")


def test_verify_sha256(tmp_path):
    path = tmp_path / "weights.safetensors"
    path.write_bytes(b"0123456789" * 100)
    recorded = sha256_file(path)
    verify_sha256(path, recorded)  # intact: no error
    verify_sha256(path, None)  # nothing recorded (an older record): nothing to check
    path.write_bytes(path.read_bytes()[:500])  # truncated
    with pytest.raises(DataError, match=rf"{path}: sha256 \w+\.\.\. differs from the recorded "
                                        rf"{recorded[:12]}\.\.\..*delete run/train\.json and rerun: "
                                        rf"snakemake run/train\.json"):
        verify_sha256(path, recorded, output="run/train.json")
    path.unlink()
    with pytest.raises(DataError, match=r"file not found.*snakemake"):
        verify_sha256(path, recorded)
