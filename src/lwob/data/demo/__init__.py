"""Deterministic offline demo data: small generated tasks with adversarial variants.

Spec (``datasets.<name>`` with ``source: demo``)::

    {source: demo, generator: <name>, seed: 0, n_train: ..., n_validation: ..., n_test: ..., ...}

One module per generator, each registering its name (``known()`` lists them): ``sentiment``
(SST-2-like), ``entailment`` (RTE-like), ``qa`` (SQuAD-like, with AddSent/AddAny-like
splits), ``acceptability`` (CoLA-like), ``paraphrase`` (MRPC-like), ``similarity``
(STS-B-like, scores 0-5), and for Table 1's generation tasks (splits ``train``, ``validation``,
``test`` only; defaults 160/24/48) ``meaning`` (ViGGO-like sentence -> meaning representation,
columns ``mr``, ``ref``), ``sql`` (sql-create-context-like, ``question``, ``context``,
``answer``) and ``arithmetic`` (GSM8K-like, ``question``, ``answer`` ending in ``#### N``).
The labelled generators take ``perturbations`` (``typo``,
``synonym``, ``distractor``; an ``adv`` split holds one perturbed copy of every test
example) and ``label_noise`` (share of train labels flipped, default 0.05); ``qa`` takes
``adversaries``, ``variants`` and ``sentences`` (see its module). Pure Python + numpy
``random.Generator``: the same spec gives the same rows (and byte-identical Parquet files).

Adding a generator is adding one module with a ``@register``-ed class (``_base.DemoGenerator``,
or ``_base.LabelledGenerator`` for a classification-style task, or ``_base.GenerationGenerator``
for a text-to-text one) and a stream number of its own.

    resolve_spec(spec) -> spec with defaults     (ConfigError naming the key)
    generate(spec) -> {split: DataFrame}
    version(spec) -> revision recorded in the dataset's manifest
"""

from __future__ import annotations

import importlib
import pkgutil

import pandas as pd

from lwob.errors import ConfigError

from ._base import DEFAULTS, GENERATOR_VERSION, PERTURBATIONS, REGISTRY, SPLIT_NAMES, known  # noqa: F401

for _mod in pkgutil.iter_modules(__path__):
    if not _mod.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod.name}")
del _mod

from .qa import ADVERSARIES, QA_COLUMNS, QA_DEFAULTS  # noqa: E402, F401

GENERATORS = tuple(known())


def _generator(spec: dict):
    gen = spec.get("generator")
    if not isinstance(gen, str) or gen not in REGISTRY:
        raise ConfigError(f"generator: unknown demo generator {gen!r} (known: {', '.join(known())})")
    return REGISTRY[gen]


def resolve_spec(spec: dict) -> dict:
    """The spec with defaults filled in; ConfigError on a bad value."""
    return _generator(spec).resolve(spec)


def generate(spec: dict) -> dict[str, pd.DataFrame]:
    """Generate the splits of a demo spec: ``train``, ``validation``, ``test`` and ``adv``
    (labelled generators), ``train``, ``validation``, ``test`` and one split per adversary (qa),
    or ``train``, ``validation``, ``test`` alone (meaning, sql, arithmetic)."""
    gen = _generator(spec)
    return gen.generate(gen.resolve(spec))


def version(spec: dict) -> str:
    """The generator version a dataset records as its revision."""
    return _generator(spec).version
