"""One source of truth: the registries define the names a config accepts (the schema lists
none of them), the method classes define how tables and figures show a method, the results
paths are spelled once (lwob.plan.paths), and the package has no import cycle and plans
without torch."""

from __future__ import annotations

import ast
import copy
import dataclasses
import json
import pkgutil
import subprocess
import sys

import pytest

from lwob.errors import ConfigError
from lwob.plan import config as cfg
from lwob.plan import dependencies as deps

from conftest import REPO

SCHEMA = REPO / "config" / "schemas" / "config.schema.yaml"


def validate(config):
    return cfg.validate(config, SCHEMA, base_dir=REPO)


# --------------------------------------------------------------------------- names: registries, not the schema


def _schema_nodes(schema: dict, node: dict, parts: list[str]):
    """The schema nodes that validate the config values at the dotted path `parts`
    ('*': every entry of a mapping), following $ref and conditional branches."""
    if "$ref" in node:
        target = schema
        for key in node["$ref"].lstrip("#/").split("/"):
            target = target[key]
        yield from _schema_nodes(schema, target, parts)
    for branch in [*(node.get("allOf") or []), *(node.get("anyOf") or [])]:
        yield from _schema_nodes(schema, branch, parts)
    for key in ("then", "else"):
        if isinstance(node.get(key), dict):
            yield from _schema_nodes(schema, node[key], parts)
    if not parts:
        yield node
        return
    head, rest = parts[0], parts[1:]
    if head == "*":
        if isinstance(node.get("additionalProperties"), dict):
            yield from _schema_nodes(schema, node["additionalProperties"], rest)
    elif head in (node.get("properties") or {}):
        yield from _schema_nodes(schema, node["properties"][head], rest)


@pytest.mark.parametrize("path", list(cfg.REGISTERED_NAMES))
def test_schema_lists_no_registered_name(path):
    """Each registry-backed key is in the schema (as a string) without a list of names: the
    registry is the one list."""
    schema = cfg.load_yaml(SCHEMA)
    nodes = [n for n in _schema_nodes(schema, schema, path.split(".")) if n.get("type") or n.get("enum")]
    assert nodes, f"{path} is not in the schema"
    for node in nodes:
        assert "enum" not in node, f"{path}: the schema lists {node['enum']}; the names are {cfg.REGISTERED_NAMES[path]}'s"
        assert node.get("type") == "string", path


def test_the_registries_behind_the_names():
    from lwob import methods, tasks
    from lwob.analysis.increments import FIGURE1_LAYOUTS
    from lwob.data.formats import ALL_FORMATS
    from lwob.data.sources import SOURCES
    from lwob.report.figures import FIGURES
    from lwob.report.tables import LAYOUTS

    assert cfg.registered_names("method type") == methods.known()
    assert cfg.registered_names("task kind") == tasks.known()
    assert cfg.registered_names("table layout") == LAYOUTS.known() == ["generation_table", "qa_robustness_table", "robustness_table"]
    assert cfg.registered_names("figure kind") == FIGURES.known() == ["budget", "generation", "robustness"]
    assert cfg.registered_names("Figure 1 layout") == FIGURE1_LAYOUTS.known() == ["faceted", "overlay"]
    assert cfg.registered_names("dataset source") == sorted(SOURCES)
    assert cfg.registered_names("file format") == sorted(ALL_FORMATS)
    assert set(cfg.REGISTERED_NAMES.values()) <= set(cfg._registries())


#: One config key per registry-backed path, in the demo config: (key path, registry).
DEMO_KEYS = {
    "methods.*.type": ["methods", "lora", "type"],
    "tasks.*.kind": ["tasks", "demo-sst2", "kind"],
    "tasks.*.eval_sets.*.kind": ["tasks", "demo-sst2", "eval_sets", None, "kind"],
    "studies.*.layout": ["studies", "table3", "layout"],
    "studies.*.figure": ["studies", "table3", "figure"],
    "increments.layout": ["increments", "layout"],
    "datasets.*.source": ["datasets", None, "source"],
    "datasets.*.format": None,  # the demo has no local dataset: checked directly below
}


def _set(config: dict, keys: list, value) -> str:
    node, where = config, []
    for key in keys[:-1]:
        key = next(iter(node)) if key is None else key
        node, where = node[key], [*where, key]
    node[keys[-1]] = value
    return ".".join([*where, keys[-1]])


@pytest.mark.parametrize("path", [p for p, keys in DEMO_KEYS.items() if keys])
def test_an_unknown_name_fails_at_config_time_naming_the_key_and_the_known_names(demo_config, path):
    config = copy.deepcopy(demo_config)
    key = _set(config, DEMO_KEYS[path], "no-such-name")
    registry = cfg.REGISTERED_NAMES[path]
    with pytest.raises(ConfigError) as err:
        validate(config)
    message = str(err.value)
    assert message == (f"config key '{key}': unknown {registry} 'no-such-name' "
                       f"(known: {', '.join(cfg.registered_names(registry))})"), message


def test_every_registered_name_is_accepted():
    """check_registered_names takes every registered name at every registry-backed key."""
    for path, registry in cfg.REGISTERED_NAMES.items():
        for name in cfg.registered_names(registry):
            config: dict = {}
            node = config
            for part in path.split(".")[:-1]:
                node = node.setdefault("x" if part == "*" else part, {})
            node[path.split(".")[-1]] = name
            cfg.check_registered_names(config)
    with pytest.raises(ConfigError, match=r"config key 'datasets.x.format': unknown file format 'xlsx' \(known: "):
        cfg.check_registered_names({"datasets": {"x": {"source": "local", "format": "xlsx"}}})


def test_the_demo_config_validates_with_every_figure_and_layout_kind(demo_config):
    config = copy.deepcopy(demo_config)
    for kind in cfg.registered_names("figure kind"):
        config["studies"]["table3"]["figure"] = kind
        validate(copy.deepcopy(config))
    for layout in cfg.registered_names("Figure 1 layout"):
        config["increments"]["layout"] = layout
        validate(copy.deepcopy(config))


@pytest.fixture
def registered():
    """Register test entries; remove them afterwards (registries are process-wide)."""
    added = []

    def add(registry, name, obj):
        registry.register(name)(obj)
        added.append((registry, name))
        return obj

    yield add
    for registry, name in added:
        del registry[name]


def test_a_new_registration_is_accepted_without_touching_the_schema(demo_config, registered):
    from lwob import methods, tasks
    from lwob.analysis.increments import FIGURE1_LAYOUTS
    from lwob.report import tables
    from lwob.report.figures import FIGURES

    schema_before = SCHEMA.read_bytes()

    class Mine(methods.Method):
        display = "Mine"
        color = "#123456"

        @dataclasses.dataclass
        class Options:
            size: int = 1

    class MyKind(tasks.get("classification")):
        pass

    registered(methods.REGISTRY, "my_method", Mine)
    registered(tasks.REGISTRY, "my_kind", MyKind)
    layout = registered(tables.LAYOUTS, "my_layout", lambda study, tasks_, skipped=None: [])
    layout.unit = "Score"
    registered(FIGURES, "my_figure", lambda *a, **k: None)
    registered(FIGURE1_LAYOUTS, "my_figure1", lambda *a: None)

    config = copy.deepcopy(demo_config)
    config["methods"]["mine"] = {"type": "my_method", "options": {"size": 2}}
    config["tasks"]["demo-sst2"]["kind"] = "my_kind"
    config["studies"]["table3"]["layout"] = "my_layout"
    config["studies"]["table3"]["figure"] = "my_figure"
    config["increments"]["layout"] = "my_figure1"
    validate(config)
    assert SCHEMA.read_bytes() == schema_before

    # ... and the new method type shows under its own name and colour everywhere
    from lwob.report.figures import method_color
    from lwob.report.tables import method_display

    assert method_display("mine", config["methods"]) == "Mine"
    assert method_color("mine", config["methods"]) == "#123456"
    config["methods"]["mine"]["display"] = "Mine (config)"
    assert method_display("mine", config["methods"]) == "Mine (config)"  # the config's display wins


# --------------------------------------------------------------------------- display names and colours


def test_display_names_and_colours_come_from_the_method_classes():
    from lwob import methods
    from lwob.report.figures import METHOD_TYPE_COLORS, method_color, type_color
    from lwob.report.tables import method_display

    for name, cls in methods.REGISTRY.items():
        spec = {name: {"type": name}}
        assert method_display(name, spec) == (cls.display or name.upper())
        if cls.color:
            assert type_color(name) == cls.color == METHOD_TYPE_COLORS[name]
            assert method_color(name, spec) == cls.color.lower()
    # the paper's names, unchanged
    assert {n: methods.get(n).display for n in ("fft", "lora", "adalora", "prefix", "ia3", "bitfit")} == {
        "fft": "FFT", "lora": "LoRA", "adalora": "AdaLoRA", "prefix": "Prefix", "ia3": "IA3", "bitfit": "BitFit"}
    assert methods.shown("lora-r16", {"lora-r16": {"type": "lora"}}) == {"type": "lora", "display": "LoRA",
                                                                          "color": "#C44E52"}


def test_no_display_table_keyed_by_method_type_outside_the_method_classes():
    for module in ("report/tables.py", "report/figures.py", "analysis/increments.py"):
        text = (REPO / "src/lwob" / module).read_text()
        for literal in ('"AdaLoRA"', '"BitFit"', '"#C44E52"', '"#4C72B0"'):
            assert literal not in text, f"{module} spells {literal}: it belongs to the method's class"


# --------------------------------------------------------------------------- results paths, once


def test_rules_and_scripts_spell_no_results_path():
    """The rules, their functions and the job scripts take every data and results path from
    lwob.plan.paths."""
    for path in [*sorted((REPO / "rules").glob("*.smk")), *sorted((REPO / "workflow/scripts").glob("*.py"))]:
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            for prefix in ('"results/', "'results/", '"data/raw', '"data/tokenized', '"resources/models'):
                assert prefix not in code, f"{path.relative_to(REPO)}:{lineno}: {line.strip()}"


def test_paths_fill_in_as_the_rules_match():
    from lwob.plan import paths
    from lwob.plan.config import GridRun, Run

    run = Run("m", "t", "lora", 42)
    assert paths.run_file(paths.TRAIN_RECORD, run) == f"results/runs/{run.path}/train.json"
    assert paths.run_file(paths.EVAL_RECORD, run) == f"results/eval/{run.path}.json"
    grid = GridRun(run, "lr0.001")
    record = paths.grid_file(paths.GRID_RECORD, grid)
    assert record == f"results/selection/{grid.path}/train.json"
    assert paths.grid_cell_of(record, "m", "t", "lora", ["lr0.0001", "lr0.001"]) == "lr0.001"
    with pytest.raises(ValueError):
        paths.grid_cell_of(record, "m", "t", "lora", ["lr0.00"])
    assert paths.study_files(paths.TABLE, ["a", "b"], paths.TABLE_EXTS) == [
        "results/tables/a.tex", "results/tables/a.csv", "results/tables/b.tex", "results/tables/b.csv"]


# --------------------------------------------------------------------------- import cycles, torch


def _all_modules() -> list[str]:
    return sorted(".".join(p.relative_to(REPO / "src").with_suffix("").parts).removesuffix(".__init__")
                  for p in (REPO / "src/lwob").rglob("*.py"))


def _import_time_statements(body: list) -> list:
    """The statements that run when a module is imported: not function bodies, nor
    `if TYPE_CHECKING:` blocks."""
    out = []
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            out.extend(_import_time_statements(node.orelse))
            continue
        if isinstance(node, ast.ClassDef):
            out.extend(_import_time_statements(node.body))
            continue
        if isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
            nested = [*getattr(node, "body", []), *getattr(node, "orelse", []), *getattr(node, "finalbody", [])]
            for handler in getattr(node, "handlers", []):
                nested.extend(handler.body)
            out.extend(_import_time_statements(nested))
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.append(node)
    return out


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports when imported (top-level imports, and every
    module of a registry package that loads them with pkgutil); a module importing one of
    its own packages (`from . import x`) is not an edge to that package."""
    graph = {}
    for name in _all_modules():
        tree = ast.parse(deps.module_file(name).read_bytes())
        top = ast.Module(body=_import_time_statements(tree.body), type_ignores=[])
        found = {n for n in deps._imported_names(top, name, deps._is_package(name))
                 if not (name + ".").startswith(n + ".")}
        if deps._is_package(name) and deps._loads_all_submodules(tree):
            found.update(deps._submodules(name))
        graph[name] = found
    return graph


def test_no_import_cycle_among_the_package_modules():
    graph = import_graph()
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    cycles = []

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for module in graph:
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_import_graph_has_the_edges_it_should():
    graph = import_graph()
    assert "lwob.methods.lora" in graph["lwob.methods"]  # registry packages load their modules
    assert "lwob.methods.base" in graph["lwob.methods.lora"]
    assert "lwob.registry" in graph["lwob.methods.base"]


def test_planning_never_imports_torch(demo_config):
    """Importing every lwob.plan module, and validating and planning the demo config, leaves
    torch (and transformers) unimported: every `snakemake` call does this."""
    import lwob.plan

    plan_modules = [f"lwob.plan.{m.name}" for m in pkgutil.iter_modules(lwob.plan.__path__)]
    assert {"lwob.plan.config", "lwob.plan.dependencies", "lwob.plan.paths"} <= set(plan_modules)
    code = (
        "import importlib, json, sys\n"
        f"for m in {plan_modules!r}: importlib.import_module(m)\n"
        "first = sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules)\n"
        "from lwob.plan import config as cfg\n"
        f"c = cfg.validate(json.loads({json.dumps(json.dumps(demo_config))}), {str(SCHEMA)!r}, base_dir={str(REPO)!r})\n"
        "cfg.runs(c)\n"
        "print(json.dumps([first, sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules)]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True,
                         env={**__import__("os").environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1"})
    imported, after_planning = json.loads(out.stdout.strip().splitlines()[-1])
    assert imported == [], f"importing lwob.plan imports {imported}"
    assert after_planning == [], f"validating and planning the demo config imports {after_planning}"
