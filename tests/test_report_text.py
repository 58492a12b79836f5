"""The HTML report's text (reports/workflow.rst, reports/captions/*.rst): config strings are
inserted as text, never as reStructuredText markup.

Snakemake renders each with a plain `jinja2.Environment(trim_blocks=True, lstrip_blocks=True)`
and docutils' `publish_parts(..., writer_name="html")`, whose defaults allow raw HTML and file
inclusion; the tests render them the same way (lwob.report.escaping registers the filters, as the
Snakefile does).
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import jinja2
import pytest
from docutils import nodes
from docutils.core import publish_doctree, publish_parts

from conftest import REPO, load_config
from lwob.report.escaping import one_line, register_report_helpers, rst_escape, rst_literal

REPORT_TEXTS = [REPO / "reports" / "workflow.rst", *sorted((REPO / "reports" / "captions").glob("*.rst"))]

# A display name that is a raw-HTML block, a file inclusion and inline markup at once.
EVIL = ("Evil\n\n.. raw:: html\n\n   <script>alert('lwob')</script>\n\n.. include:: /etc/hostname\n\n"
        "`x`_ **b** :math:`1` |sub| [#]_ \\ end\u2028- item")


def _render(path, snakemake) -> str:
    """The reStructuredText Snakemake would hand to docutils for `path`."""
    register_report_helpers()
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(path.read_text()).render(snakemake=snakemake, categories={}, files=[])


def _assert_inert(rst: str, what: str) -> str:
    doctree = publish_doctree(rst, settings_overrides={"report_level": 5})
    raw = list(doctree.findall(nodes.raw))
    assert not raw, f"{what}: a raw node reached the document: {raw}"
    assert not list(doctree.findall(nodes.reference)), f"{what}: a config string became a link"
    html = publish_parts(rst, writer="html", settings_overrides={"report_level": 5})["body"]
    assert "<script" not in html, f"{what}: live <script> in the HTML"
    return html


def _evil_config() -> dict:
    config = load_config("demo.yaml")
    for section in ("models", "methods", "tasks"):
        for spec in config[section].values():
            spec["display"] = EVIL
    config["methods"]["fft"]["options"] = {"note": EVIL}
    return config


def _evil_snakemake(config: dict) -> SimpleNamespace:
    study = {**config["studies"]["table3"], "title": EVIL, "omitted": {EVIL: {EVIL: EVIL}},
             "paper_table": EVIL, "batch_size": EVIL, "seq_len": EVIL, "steps": EVIL, "warmup_steps": EVIL,
             "models": [EVIL], "tasks": {EVIL: EVIL}}
    params = SimpleNamespace(study=study, skipped={EVIL: {EVIL: EVIL}}, note=EVIL,
                             increments={"model": EVIL, "task": EVIL, "seed": EVIL, "module": EVIL,
                                         "module_by_method": {EVIL: EVIL}})
    return SimpleNamespace(config=config, params=params, wildcards=SimpleNamespace(study=EVIL))


def test_every_inserted_value_goes_through_an_rst_filter():
    """A `{{ ... }}` without `| rst` (or `| rst_literal`) last would insert markup."""
    unfiltered = []
    for path in REPORT_TEXTS:
        for expr in re.findall(r"\{\{(.*?)\}\}", path.read_text(), flags=re.S):
            if not re.search(r"\|\s*(rst|rst_literal)\s*$", expr.strip()):
                unfiltered.append(f"{path.name}: {{{{{expr}}}}}")
    assert not unfiltered, "\n".join(unfiltered)


@pytest.mark.parametrize("path", REPORT_TEXTS, ids=lambda p: p.name)
def test_config_strings_render_as_text(path):
    config = _evil_config()
    html = _assert_inert(_render(path, _evil_snakemake(config)), path.name)
    if "{{" in path.read_text():
        assert "&lt;script&gt;alert" in html or "Evil" in html or path.name == "selection.rst"


def test_workflow_description_shows_the_display_name_as_written():
    config = load_config("demo.yaml")
    config["methods"]["lora"]["display"] = "LoRA_r8 *(rank 8)*"
    html = _assert_inert(_render(REPO / "reports" / "workflow.rst", SimpleNamespace(config=config)), "workflow.rst")
    assert "<strong>LoRA_r8 *(rank 8)*</strong>" in html
    assert '<tt class="docutils literal">lora</tt>' in html  # names keep their code style


@pytest.mark.parametrize("name", ["config.yaml", "demo.yaml"])
def test_workflow_description_is_clean_rst(name):
    """No docutils warning (each task its own bullet: a block tag at a line end eats the newline)."""
    config = load_config(name)
    rst = _render(REPO / "reports" / "workflow.rst", SimpleNamespace(config=config))
    html = publish_parts(rst, writer="html", settings_overrides={"halt_level": 2})["body"]
    for task in config["tasks"].values():
        assert f"<li><strong>{task.get('display')}</strong>: train" in html


@pytest.mark.parametrize("text", [EVIL, "a_ b*c `d` e|f| [1]_ :x:`y` \\z", "- bullet", "1. one", "#. two",
                                  ".. note:: x", "::", "x__", "http://example.org/x", "  padded  ",
                                  "tab\there", "end\\", "*", "**", "`", "|"])
def test_rst_escape_round_trips(text):
    """Escaped text renders as exactly that text (on one line), whatever markup it holds."""
    doctree = publish_doctree("Before " + rst_escape(text) + " after.", settings_overrides={"report_level": 5})
    assert doctree.astext() == f"Before {one_line(text)} after.".replace("  ", " ")
    literal = publish_doctree("Before " + rst_literal(text) + " after.", settings_overrides={"report_level": 5})
    assert [n.astext() for n in literal.findall(nodes.literal)] == [one_line(text)]


def test_workflow_description_lists_the_failed_jobs(tmp_path, monkeypatch):
    """The report's text lists the failure records of the working directory, as text."""
    from lwob.report import failures

    monkeypatch.chdir(tmp_path)
    config = load_config("demo.yaml")
    text = _assert_inert(_render(REPO / "reports" / "workflow.rst", SimpleNamespace(config=config)), "no failure")
    assert "failed in the last run" not in text
    log = tmp_path / "logs/train.log"
    log.parent.mkdir()
    log.write_text("Traceback\nRuntimeError: <script>alert(1)</script> `x`_ |y|\n")
    job = failures.JobOutcome("train", {"model": "minilm", "task": "demo-sst2", "method": "lora", "seed": "0"},
                              ["logs/train.log"], [])
    failures.record_failures([job], [])
    html = _assert_inert(_render(REPO / "reports" / "workflow.rst", SimpleNamespace(config=config)), "a failure")
    assert "1 job(s) failed in the last run" in html
    assert "RuntimeError: &lt;script&gt;alert(1)&lt;/script&gt; `x`_ |y|" in html
    text = publish_doctree(_render(REPO / "reports" / "workflow.rst", SimpleNamespace(config=config))).astext()
    assert "train minilm/demo-sst2/lora/0: RuntimeError" in text and "(log: logs/train.log)" in text
