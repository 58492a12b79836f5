"""Planning the DAG stays cheap: what the workflow computes from the config is computed once
and never imports torch, with the same results as computing it afresh.

Timings themselves: benchmarks/bench_dag.py (too noisy on a shared machine for a test).
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys

import pytest

from lwob.plan import config as cfg
from lwob.errors import ConfigError

from conftest import REPO

SCHEMA = REPO / "config" / "schemas" / "config.schema.yaml"


def validate(config):
    return cfg.validate(config, SCHEMA, base_dir=REPO)


@pytest.mark.parametrize("name", ["paper_config", "demo_config"])
def test_precomputed_arguments_give_the_same_results(name, request):
    """rules/common.smk passes runs/studies computed once; the helpers then answer as if
    they had computed them themselves."""
    c = validate(request.getfixturevalue(name))
    studies = cfg.enabled_studies(c)
    runs = cfg.runs(c, studies=studies)
    assert runs == cfg.runs(c)
    assert studies == {k: {**v, "omitted": cfg.omitted_methods(c, v)} for k, v in c["studies"].items()
                       if v.get("enabled", True)}
    assert cfg.selected_triples(c, run_list=runs) == cfg.selected_triples(c)
    assert cfg.figure1_runs(c, run_list=runs) == cfg.figure1_runs(c)
    assert cfg.skipped_eval_sets(c, REPO, run_list=runs) == cfg.skipped_eval_sets(c, REPO)
    assert cfg.used_datasets(c, run_list=runs) == cfg.used_datasets(c)
    triples = cfg.selected_triples(c)
    assert cfg.grid_runs(c, triples=triples) == cfg.grid_runs(c)


def test_a_config_change_in_the_same_process_is_seen(demo_config):
    """Nothing is cached across calls: a changed config gives its own runs and studies."""
    c = validate(demo_config)
    before = cfg.runs(c)
    first = next(iter(c["studies"]))
    c["studies"][first]["enabled"] = False
    assert first not in cfg.enabled_studies(c) and cfg.runs(c) != before
    c["studies"][first]["enabled"] = True
    assert cfg.runs(c) == before
    c["studies"][first]["seeds"] = [7777]
    assert {r.seed for r in cfg.runs(c)} >= {7777}


@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_planning_refuses_exactly_the_runs_training_would_refuse(demo_config, parallel):
    """Validating the config (what `snakemake -n` does first) applies the multi-process rule to
    every run: with two processes under FSDP, each method that cannot be sharded is refused
    at planning time, naming one of its runs, and every other method (and DDP) plans; the
    method classes say what training itself refuses (tests/test_distributed.py runs it)."""
    from lwob import methods as registry

    refused = []
    for method in demo_config["methods"]:
        c = copy.deepcopy(demo_config)
        training = c["methods"][method].setdefault("training", {})
        training.update(processes=2, parallel=parallel)
        try:
            validate(c)
        except ConfigError as e:
            cls = registry.get(c["methods"][method]["type"])
            assert f"/{method}" in str(e) and ("FSDP" in str(e) or not cls.multi_process), str(e)
            refused.append(method)
    types = {m: registry.get(demo_config["methods"][m]["type"]) for m in demo_config["methods"]}
    one_process = [m for m, cls in types.items() if not cls.multi_process]  # HiFT, whatever the strategy
    cannot_shard = [m for m, cls in types.items() if not cls.shardable]
    assert "adalora" in cannot_shard and "hift" in one_process  # both refusals are exercised
    in_runs = {r.method for r in cfg.runs(validate(copy.deepcopy(demo_config)))}  # checked per run
    expected = [m for m in demo_config["methods"]
                if m in in_runs and (m in one_process or (parallel == "fsdp" and m in cannot_shard))]
    assert refused == expected, (parallel, refused)


def test_planning_the_paper_dag_never_imports_torch():
    """Importing torch takes seconds; `snakemake -n all` only reads the config."""
    probe = ("import atexit, sys\n"
             "atexit.register(lambda: print('TORCH-IMPORTED' if 'torch' in sys.modules else 'NO-TORCH'))\n"
             "sys.argv = ['snakemake', '-n', 'all', '--quiet']\n"
             "from snakemake.cli import main\n"
             "main()\n")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "NO-TORCH" in result.stdout, result.stdout[-2000:]
