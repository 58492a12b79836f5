"""Config errors as a user meets them: `snakemake -n` stops with one "Configuration error:"
line naming the file, line or key, no traceback, and nothing written."""

from __future__ import annotations

import os
import subprocess
import sys

import yaml

from conftest import REPO, run_snakemake


def _dry_run(workdir, config_path):
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
         "-n", "all", "--configfile", str(config_path)],
        cwd=workdir.parent, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=300,
    )


def _one_configuration_error(result) -> str:
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("Configuration error:")]
    assert len(lines) == 1, result.stderr[-3000:]
    return lines[0]


def test_duplicate_key_in_the_configfile_stops_the_dry_run(tmp_path):
    """Snakemake loads --configfile itself and keeps the last of two keys: the workflow
    re-reads the file and refuses it, naming file, line and key."""
    text = (REPO / "config" / "demo.yaml").read_text()
    assert text.count("\nseeds: [0, 42, 421]\n") == 1
    path = tmp_path / "dup.yaml"
    path.write_text(text.replace("\nseeds: [0, 42, 421]\n", "\nseeds: [0, 42, 421]\nseeds: [0]\n"))
    line = _one_configuration_error(_dry_run(tmp_path / "work", path))
    first = text.split("\nseeds:")[0].count("\n") + 2
    assert f"{path}, line {first + 1}: duplicate key 'seeds' (first given at line {first})" in line


def test_study_named_outside_the_working_directory_is_refused(tmp_path, demo_config):
    """Before the fix, this plans results/tables/../../escaped.tex: a table outside the
    working directory (a dry run, so that the old code would not train the demo)."""
    demo_config["studies"]["../../escaped"] = demo_config["studies"].pop("table3")
    workdir = tmp_path / "deep" / "work"
    result = run_snakemake(workdir, "all", "-n", config=demo_config, profile=None, timeout=300)
    line = _one_configuration_error(result)
    assert "config key 'studies': study name '../../escaped' is not allowed" in line
    assert not {"results", "data", "logs"} & {p.name for p in workdir.iterdir()}


def test_unknown_dataset_key_is_one_readable_line(tmp_path, demo_config):
    demo_config["datasets"]["demo_sentiment"]["n_trian"] = 50
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(demo_config, sort_keys=False))
    result = _dry_run(tmp_path / "work", path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert ("config key 'datasets.demo_sentiment.n_trian': unknown key in demo dataset 'demo_sentiment' "
            "(did you mean 'n_train'?)") in result.stderr
