"""pdflatex and headless Chromium for the publication checks (tests/test_publication.py, the
demo's publication tests in tests/test_demo_e2e.py, the resource table's in
tests/test_resource_study.py): finding or installing the tools, compiling a generated table in a
standalone wrapper, opening a report headless and reading what it lists. Helpers, not tests;
the session fixture `publication_tools` (tests/conftest.py) uses install_publication_tools().
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

INSTALL = REPO / "tools" / "publish" / "install.sh"
TEMPLATE = REPO / "reports" / "templates" / "robustness_table.tex.j2"
CHROMIUM_NAMES = ("chromium", "chromium-headless-shell", "chromium-browser", "google-chrome")
#: Packages the table template needs (see its header comment): booktabs rules, graphicx \resizebox.
TABLE_PACKAGES = ("booktabs", "graphicx", "longtable")  # longtable: the side-by-side tables


# --------------------------------------------------------------------------- tools


@dataclass
class PublicationTools:
    pdflatex: str
    chromium: str


_TOOLS: PublicationTools | str | None = None  # the tools, or why they are unavailable


def _find_tools() -> PublicationTools | None:
    pdflatex = shutil.which("pdflatex")
    chromium = next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)
    if not pdflatex or not chromium or not shutil.which("kpsewhich"):
        return None
    found = subprocess.run(["kpsewhich", "booktabs.sty"], capture_output=True, text=True)
    return PublicationTools(pdflatex, chromium) if found.returncode == 0 and found.stdout.strip() else None


def install_publication_tools() -> PublicationTools | str:
    """pdflatex (with booktabs) and chromium: as found, else installed with
    tools/publish/install.sh. Returns the tools, or a string saying why they are not there
    (the `publication_tools` fixture fails with it: an install that fails is never a skip).
    Cached for the session (the tests of several modules share it)."""
    global _TOOLS
    if _TOOLS is not None:
        return _TOOLS
    tools = _find_tools()
    if tools is None:
        if os.name != "posix" or os.geteuid() != 0:
            _TOOLS = "pdflatex/booktabs/chromium missing; installing them needs root (apt-get install)"
        elif not shutil.which("apt-get") or not shutil.which("dpkg-query"):
            _TOOLS = "pdflatex/booktabs/chromium missing; installing them needs apt-get (Debian or Ubuntu)"
        else:
            done = subprocess.run([str(INSTALL)], capture_output=True, text=True, timeout=1200)
            tools = _find_tools()
            if done.returncode != 0 or tools is None:
                _TOOLS = (f"could not install TeX Live and chromium with apt-get (no package mirror?): "
                          f"{(done.stdout + done.stderr)[-1500:]}")
    if tools is not None:
        _TOOLS = tools
    return _TOOLS


# --------------------------------------------------------------------------- LaTeX


def latex_document(table_tex: str, packages=TABLE_PACKAGES) -> str:
    """A standalone document around a generated table (article class, the packages the
    table template needs, no page numbers), for compiling a table on its own. Characters
    missing from the fonts are logged (\\tracinglostchars), so that a check can see them."""
    uses = "".join(f"\\usepackage{{{p}}}\n" for p in packages)
    return ("\\documentclass{article}\n\\usepackage[utf8]{inputenc}\n" + uses + "\\pagestyle{empty}\n"
            "\\tracinglostchars=2\n\\begin{document}\n" + table_tex.rstrip("\n") + "\n\\end{document}\n")


@dataclass
class Compiled:
    returncode: int
    pdf: Path
    log: str
    errors: list = field(default_factory=list)
    warnings: list = field(default_factory=list)  # overfull/underfull boxes, other LaTeX warnings

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.pdf.is_file() and self.pdf.stat().st_size > 0 and not self.errors


_ERROR_RE = re.compile(r"^(! .*|.*LaTeX Error.*|Missing character: .*)$", re.M)
_WARNING_RE = re.compile(r"^((?:Overfull|Underfull) \\[hv]box.*|.*Warning: (?!Label\(s\) may have changed).*)$", re.M)


def compile_table(table_tex: str, workdir: Path, name: str, pdflatex: str = "pdflatex") -> Compiled:
    """Compile `table_tex` in the standalone wrapper with pdflatex (nonstop, halting at the
    first error, no shell escape) in `workdir`; collect the log's errors and warnings."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / f"{name}.tex").write_text(latex_document(table_tex), encoding="utf-8")
    done = subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape",
                           f"{name}.tex"], cwd=workdir, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    log_path = workdir / f"{name}.log"
    log = log_path.read_text(errors="replace") if log_path.exists() else done.stdout + done.stderr
    return Compiled(done.returncode, workdir / f"{name}.pdf", log, _ERROR_RE.findall(log), _WARNING_RE.findall(log))


def assert_compiles(result: Compiled, what: str) -> None:
    assert result.ok, f"{what}: pdflatex exit {result.returncode}, errors {result.errors}\n{result.log[-3000:]}"
    if result.warnings:  # reported, not failed: overfull boxes are a matter of taste
        print(f"{what}: {len(result.warnings)} LaTeX warning(s): {result.warnings[:5]}")


# --------------------------------------------------------------------------- Chromium


#: Console messages that mean something went wrong (Chromium logs every console level as INFO).
CONSOLE_ERROR_RE = re.compile(r"Uncaught|error|failed|net::ERR_", re.I)
_CONSOLE_RE = re.compile(r":CONSOLE[:(]\d+\)?\] (.*)$", re.M)


def open_in_chromium(html: Path, workdir: Path, chromium: str = "chromium") -> tuple[str, list[str]]:
    """Open `html` in headless Chromium with no network (every host name unresolvable, so a
    report that loads anything from outside logs a failure), let its scripts run, and return
    (the DOM after the scripts ran, the console messages)."""
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [chromium, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--disable-extensions",
           "--disable-dev-shm-usage", f"--user-data-dir={workdir / 'profile'}",
           "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=15000",
           "--enable-logging=stderr", "--v=0", "--dump-dom", Path(html).resolve().as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"chromium exit {done.returncode}: {done.stderr[-3000:]}"
    return done.stdout, _CONSOLE_RE.findall(done.stderr)


def console_errors(console: list[str]) -> list[str]:
    return [m for m in console if CONSOLE_ERROR_RE.search(m)]


def _script_var(dom: str, name: str) -> dict:
    """The JSON object a report script assigns to `var <name> = {...};` ({} when absent)."""
    m = re.search(rf"var {re.escape(name)} = (\{{.*?\}});\s*</script>", dom, flags=re.S)
    return json.loads(m.group(1)) if m else {}


_EXTERNAL_RE = re.compile(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=[\"']?(?:https?:)?//[^\"'>\s]+", re.I)


def report_listing(dom: str) -> dict:
    """What a rendered Snakemake report offers, from the DOM after its scripts ran:
    rendered (the app replaced the loading screen with content), nav (the rendered text),
    categories ({category: {subcategory: [paths]}}, what the navigation lists), results (the
    embedded result paths) and external (resources it would load from elsewhere)."""
    body = re.sub(r"<(script|style)\b.*?</\1>", "", dom, flags=re.S | re.I)
    app = body.split('<div id="app">', 1)[1] if '<div id="app">' in body else ""
    text = [t.strip() for t in re.sub(r"<[^>]+>", "\n", app).splitlines() if t.strip()]
    loading_hidden = bool(re.search(r'id="loading-screen" style="[^"]*display:\s*none', dom))
    return {"rendered": loading_hidden and len(text) > 10, "nav": text,
            "categories": _script_var(dom, "categories"), "results": list(_script_var(dom, "results")),
            "external": _EXTERNAL_RE.findall(dom)}


def listed_paths(listing: dict) -> set[str]:
    return {p for sub in listing["categories"].values() for paths in sub.values() for p in paths}
