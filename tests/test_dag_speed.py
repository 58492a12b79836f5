"""Planning the DAG stays cheap: what the workflow computes from the config is computed once
and never imports torch, with the same results as computing it afresh.

Timings themselves: benchmarks/bench_dag.py (too noisy on a shared machine for a test).
"""

from __future__ import annotations

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


def test_config_time_parallel_check_matches_training(paper_config):
    """config.check_parallel (planning, from the config) and lwob.run.distributed.check (at run
    time, from the resolved settings) accept and refuse the same runs, with the same message."""
    pytest.importorskip("torch")
    from lwob import methods as registry
    from lwob.run.distributed import check

    for method in paper_config["methods"]:
        cls = cfg.method_class(paper_config, method)
        for processes in (1, 2, 4):
            for parallel in ("ddp", "fsdp"):
                paper_config["methods"][method]["training"] = {
                    **(paper_config["methods"][method].get("training") or {}),
                    "processes": processes, "parallel": parallel}
                where = f"'training' of run roberta-base/rte/{method}"
                errors = []
                for fn in (lambda: cfg.check_parallel(paper_config, "roberta-base", "rte", method, cls),
                           lambda: check(cls, processes, parallel, where)):
                    try:
                        fn()
                        errors.append(None)
                    except ConfigError as e:
                        errors.append(str(e))
                assert errors[0] == errors[1], (method, processes, parallel)
    assert not registry.get("adalora").shardable  # the refusal above was exercised


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
