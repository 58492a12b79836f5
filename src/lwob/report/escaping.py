"""Config strings made safe for the formats they are inserted into: reStructuredText (the
HTML report's text: reports/workflow.rst and the captions) and LaTeX (the tables).

A display name, a title or a reason comes from the user's config; inserted as it is, it is
markup: a `display` holding `.. raw:: html` puts a live <script> in the HTML report (docutils
allows raw HTML by default), a `}` or a newline breaks or rewrites a LaTeX table. Everything
here is light (no pandas), as the Snakefile imports it to register the report's filters.
"""

from __future__ import annotations

import re

# reStructuredText: a backslash makes any following character plain text, so every ASCII
# punctuation character (all markup is ASCII) is escaped; escaped whitespace would vanish,
# so whitespace is not. Line breaks are what block markup (directives, lists, titles)
# starts from: every kind of line break docutils splits on becomes one space.
_RST_PUNCTUATION = re.compile(r"""([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])""")
_ANY_SPACE = re.compile(r"\s+")


def one_line(text) -> str:
    """`text` as one line: every run of whitespace or control characters becomes one space."""
    text = "".join(ch if ch.isprintable() else " " for ch in str(text))
    return _ANY_SPACE.sub(" ", text).strip()


def rst_escape(text) -> str:
    """Plain text for reStructuredText: renders as `text` (on one line), never as markup."""
    return _RST_PUNCTUATION.sub(r"\\\1", one_line(text))


def rst_literal(text) -> str:
    """`text` in code style: the `:literal:` role, whose content honours backslash escapes
    (an inline ``literal`` does not, so it cannot hold a backquote safely)."""
    escaped = rst_escape(text)
    return f":literal:`{escaped}`" if escaped else ""


#: the jinja2 filters the report's text uses for every value it inserts
REPORT_FILTERS = {"rst": rst_escape, "rst_literal": rst_literal}


def failed_jobs() -> list[dict]:
    """The failure records of the working directory (lwob.report.failures), for the report's text."""
    from .failures import read_failures

    return read_failures()


def register_report_helpers() -> None:
    """Make the `rst` and `rst_literal` filters and the `failed_jobs()` function known to every
    jinja2 environment.

    Snakemake renders workflow.rst and the captions in a plain `jinja2.Environment()` of its
    own, with no hook for filters; a new environment copies `jinja2.defaults.DEFAULT_FILTERS`
    and `DEFAULT_NAMESPACE`, so they go there. Without them a caption fails to render ("No
    filter named 'rst'") rather than inserting a value unescaped.
    """
    import jinja2.defaults

    jinja2.defaults.DEFAULT_FILTERS.update(REPORT_FILTERS)
    jinja2.defaults.DEFAULT_NAMESPACE["failed_jobs"] = failed_jobs


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}
_LATEX_RE = re.compile("|".join(re.escape(k) for k in _LATEX_SPECIAL))
# \label and \ref keys are not typeset but compared as strings: keep a plain set of characters.
_LATEX_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9:._+\-/]+")


def latex_escape(text) -> str:
    """Plain text for LaTeX, on one line (a blank line inside \\caption{} is an error)."""
    return _LATEX_RE.sub(lambda m: _LATEX_SPECIAL[m.group()], one_line(text))


def latex_label(text) -> str:
    """A \\label key: characters outside letters, digits and `:._+-/` become `-`."""
    return _LATEX_LABEL_UNSAFE.sub("-", one_line(text)) or "-"
