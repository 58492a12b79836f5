"""What the demo generators share: the generator interface and its registry, the labelled
(classification-style) driver with adversarial perturbations, and small text helpers.

A generator is a class registered with ``@register("name")`` in its own module of this
package. Its ``stream`` number is part of every random stream it draws from: it is fixed
for good (changing it changes every generated row).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from lwob.errors import ConfigError
from lwob.registry import Registry

#: the version recorded as the revision of a generated dataset (manifest.json)
GENERATOR_VERSION = "demo-2"
PERTURBATIONS = ("typo", "synonym", "distractor")
#: spec keys (and defaults) of the labelled generators
DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "n_train": 400,
    "n_validation": 100,
    "n_test": 200,
    "perturbations": list(PERTURBATIONS),
    "label_noise": 0.05,
}
_STREAMS = {"train": 1, "validation": 2, "test": 3, "adv": 4, "noise": 5}
#: splits of a labelled generator
SPLIT_NAMES = ("train", "validation", "test", "adv")


class DemoGenerator:
    """One generator: ``resolve`` checks a spec and fills its defaults (ConfigError naming the
    key), ``generate`` turns a resolved spec into its splits."""

    name: ClassVar[str] = ""
    #: part of every random stream of this generator (fixed: see the module docstring)
    stream: ClassVar[int] = -1
    #: revision recorded in the dataset's manifest; bump it when the rows change
    version: ClassVar[str] = GENERATOR_VERSION

    @classmethod
    def resolve(cls, spec: dict) -> dict:
        raise NotImplementedError

    @classmethod
    def generate(cls, s: dict) -> dict[str, pd.DataFrame]:
        raise NotImplementedError

    @classmethod
    def rng(cls, seed: int, stream: int) -> np.random.Generator:
        return np.random.default_rng([seed, stream, cls.stream])


def _check_generator(cls: type) -> None:
    if not isinstance(getattr(cls, "stream", None), int) or cls.stream < 0:
        raise RuntimeError(f"demo generator {cls.__name__}: set a fixed non-negative `stream`")
    taken = {g.stream: n for n, g in REGISTRY.items() if g is not cls}
    if cls.stream in taken:
        raise RuntimeError(f"demo generator {cls.__name__}: stream {cls.stream} is taken by {taken[cls.stream]!r}")


REGISTRY = Registry("demo generator", check=_check_generator)
register, known = REGISTRY.register, REGISTRY.known


# --------------------------------------------------------------------------- checks


def _check_counts(out: dict) -> None:
    for k in ("seed", "n_train", "n_validation", "n_test"):
        v = out[k]
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ConfigError(f"{k}: expected a non-negative integer, got {v!r}")
        out[k] = int(v)
    if out["n_train"] < 2:
        raise ConfigError(f"n_train: at least 2 examples needed, got {out['n_train']}")



def resolve_labelled(spec: dict, gen: str, defaults: dict) -> dict:
    """A labelled generator's spec with ``defaults`` filled in; ConfigError on a bad value."""
    if spec.get("adversaries") is not None:
        raise ConfigError(f"adversaries: only the qa generator takes adversaries (generator {gen!r} "
                          f"uses perturbations)")
    for k in ("variants", "sentences"):
        if spec.get(k) is not None:
            raise ConfigError(f"{k}: only the qa generator takes {k} (generator {gen!r})")
    out = {"generator": gen}
    for k, default in defaults.items():
        v = spec.get(k, default)
        if v is None:
            v = default
        out[k] = v
    _check_counts(out)
    p = out["perturbations"]
    if isinstance(p, str) or not isinstance(p, (list, tuple)) or not p:
        raise ConfigError(f"perturbations: expected a non-empty list from {list(PERTURBATIONS)}, got {p!r}")
    for x in p:
        if x not in PERTURBATIONS:
            raise ConfigError(f"perturbations: unknown perturbation {x!r} (known: {', '.join(PERTURBATIONS)})")
    out["perturbations"] = list(p)
    ln = out["label_noise"]
    if isinstance(ln, bool) or not isinstance(ln, (int, float)) or not 0 <= ln < 0.5:
        raise ConfigError(f"label_noise: expected a number in [0, 0.5), got {ln!r}")
    out["label_noise"] = float(ln)
    return out


# --------------------------------------------------------------------------- helpers

def _pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


_KEYBOARD = {
    "a": "qsz", "b": "vnh", "c": "xvd", "d": "sfe", "e": "wrd", "f": "dgr", "g": "fht", "h": "gjy",
    "i": "uok", "j": "hku", "k": "jli", "l": "kop", "m": "nj", "n": "bmh", "o": "ipl", "p": "ol",
    "q": "wa", "r": "etf", "s": "adw", "t": "ryg", "u": "yij", "v": "cbf", "w": "qes", "x": "zcs",
    "y": "tuh", "z": "xa",
}


def _typo(rng: np.random.Generator, word: str, avoid: set[str]) -> str:
    """A misspelling of ``word`` (first letter kept) that is not a word in ``avoid``."""
    if len(word) < 3:
        return word
    lower = word.lower()
    for _ in range(20):
        kind = int(rng.integers(4))
        chars = list(word)
        i = int(rng.integers(1, len(word)))  # keep the first letter (readable for humans)
        if kind == 0 and i < len(word) - 1 and chars[i] != chars[i + 1]:
            chars[i], chars[i + 1] = chars[i + 1], chars[i]
        elif kind == 1 and len(word) > 3:
            del chars[i]
        elif kind == 2:
            chars.insert(i, chars[i])
        elif kind == 3 and chars[i].lower() in _KEYBOARD:
            chars[i] = _pick(rng, _KEYBOARD[chars[i].lower()])
        else:
            continue
        new = "".join(chars)
        if new.lower() != lower and new.lower() not in avoid:
            return new
    return word[0] + word[2] + word[1] + word[3:]


def _flip_noise(rng: np.random.Generator, labels: list[int], frac: float) -> list[int]:
    n = len(labels)
    k = int(round(frac * n))
    out = list(labels)
    for i in sorted(rng.choice(n, size=k, replace=False).tolist()) if k else []:
        out[i] = 1 - out[i]
    return out


def _balanced_labels(rng: np.random.Generator, n: int) -> list[int]:
    labels = [i % 2 for i in range(n)]
    return [labels[i] for i in rng.permutation(n).tolist()]




def _strip_stop(text: str) -> str:
    return text[:-2] if text.endswith(" .") else text


def _art(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


# --------------------------------------------------------------------------- labelled generators


class LabelledGenerator(DemoGenerator):
    """Text classification (or regression) with a perturbed copy of the test split.

    Splits ``train``, ``validation``, ``test`` (``columns`` + ``label`` + ``idx``) and ``adv``
    (one perturbed variant of every test example, same ``idx`` and label, plus a
    ``perturbation`` column). A subclass gives ``columns``, ``example`` and ``perturb``;
    ``labels`` and ``noise`` default to balanced binary labels and flipped train labels.
    Validation and test examples never repeat a train example.
    """

    columns: ClassVar[tuple[str, ...]] = ()
    defaults: ClassVar[dict[str, Any]] = DEFAULTS
    label_dtype: ClassVar[str] = "int64"

    @classmethod
    def resolve(cls, spec: dict) -> dict:
        return resolve_labelled(spec, cls.name, cls.defaults)

    @classmethod
    def labels(cls, rng: np.random.Generator, n: int) -> list:
        return _balanced_labels(rng, n)

    @classmethod
    def noise(cls, rng: np.random.Generator, labels: list, frac: float) -> list:
        return _flip_noise(rng, labels, frac)

    @classmethod
    def example(cls, rng: np.random.Generator, label) -> tuple:
        """One example (a tuple of the ``columns`` texts) with label ``label``."""
        raise NotImplementedError

    @classmethod
    def perturb(cls, rng: np.random.Generator, row: tuple, label, kind: str) -> tuple | None:
        """``row`` after the label-preserving perturbation ``kind`` (None: does not apply).
        ``distractor`` must always apply (it is the fallback)."""
        raise NotImplementedError

    @classmethod
    def _rows(cls, rng, labels: list, seen: set) -> list[tuple]:
        rows = []
        for label in labels:
            for _ in range(1000):
                ex = cls.example(rng, label)
                if ex not in seen:
                    break
            seen.add(ex)
            rows.append(ex)
        return rows

    @classmethod
    def generate(cls, s: dict) -> dict[str, pd.DataFrame]:
        seed = s["seed"]
        columns = list(cls.columns)

        def rng(stream: str) -> np.random.Generator:
            return cls.rng(seed, _STREAMS[stream])

        seen: set = set()
        out: dict[str, pd.DataFrame] = {}
        test_rows: list[tuple] = []
        test_labels: list = []
        for split in ("train", "validation", "test"):
            r = rng(split)
            labels = cls.labels(r, s[f"n_{split}"])
            rows = cls._rows(r, labels, seen)
            if split == "train":
                labels = cls.noise(rng("noise"), labels, s["label_noise"])
            if split == "test":
                test_rows, test_labels = rows, labels
            out[split] = cls.frame(columns, rows, labels)

        r = rng("adv")
        adv_rows, kinds = [], []
        perts = s["perturbations"]
        for row, label in zip(test_rows, test_labels):
            order = [perts[j] for j in r.permutation(len(perts)).tolist()]
            new, used = None, None
            for p in order:
                res = cls.perturb(r, row, label, p)
                new = None if res is None or tuple(res) == tuple(row) else tuple(res)
                if new is not None:
                    used = p
                    break
            if new is None:  # no listed perturbation applies: fall back to a distractor
                used = "distractor"
                new = tuple(cls.perturb(r, row, label, used))
            adv_rows.append(new)
            kinds.append(used)
        adv = cls.frame(columns, adv_rows, test_labels)
        adv.insert(len(columns), "perturbation", pd.Series(kinds, dtype="str"))
        out["adv"] = adv
        return out

    @classmethod
    def frame(cls, columns: list[str], rows: list[tuple], labels: list) -> pd.DataFrame:
        df = pd.DataFrame({c: pd.Series([r[j] for r in rows], dtype="str") for j, c in enumerate(columns)})
        df["label"] = pd.Series(labels, dtype=cls.label_dtype)
        df["idx"] = pd.Series(np.arange(len(rows)), dtype="int64")
        return df


# --------------------------------------------------------------------------- shared driver

#: spec keys (and defaults) of the generation-task generators (meaning, sql, arithmetic)
GENERATION_DEFAULTS: dict[str, Any] = {"seed": 0, "n_train": 160, "n_validation": 24, "n_test": 48}
#: splits of a generation-task generator
GENERATION_SPLITS = ("train", "validation", "test")
_SPLIT_STREAMS = {"train": 1, "validation": 2, "test": 3}
#: spec keys of other demo generators, rejected by the generation-task ones
_NOT_TAKEN = ("perturbations", "label_noise", "adversaries", "variants", "sentences")


class GenerationGenerator(DemoGenerator):
    """A text-to-text task: splits ``train``, ``validation`` and ``test`` of ``columns`` (str)
    plus ``idx`` (int64, 0..n-1), no adversarial split. A subclass gives ``columns`` and
    ``example`` (one row, a tuple of strings); ``key`` says which part of a row must not
    repeat across (and within) splits."""

    columns: ClassVar[tuple[str, ...]] = ()
    defaults: ClassVar[dict[str, Any]] = GENERATION_DEFAULTS

    @classmethod
    def resolve(cls, spec: dict) -> dict:
        for k in _NOT_TAKEN:
            if spec.get(k) is not None:
                raise ConfigError(f"{k}: not used by the {cls.name} generator (it has no adversarial split; "
                                  f"it takes {', '.join(cls.defaults)})")
        out: dict[str, Any] = {"generator": cls.name}
        for k, default in cls.defaults.items():
            v = spec.get(k, default)
            out[k] = default if v is None else v
        _check_counts(out)
        return out

    @classmethod
    def example(cls, rng: np.random.Generator) -> tuple[str, ...]:
        raise NotImplementedError

    @classmethod
    def key(cls, row: tuple[str, ...]):
        return row

    @classmethod
    def generate(cls, s: dict) -> dict[str, pd.DataFrame]:
        seen: set = set()
        out: dict[str, pd.DataFrame] = {}
        for split in GENERATION_SPLITS:
            rng = cls.rng(s["seed"], _SPLIT_STREAMS[split])
            rows = []
            for _ in range(s[f"n_{split}"]):
                for _ in range(1000):
                    row = cls.example(rng)
                    if cls.key(row) not in seen:
                        break
                else:  # pragma: no cover - the example spaces are far larger than any demo
                    raise ConfigError(f"n_{split}: the {cls.name} generator ran out of distinct examples")
                seen.add(cls.key(row))
                rows.append(row)
            out[split] = cls.frame(rows)
        return out

    @classmethod
    def frame(cls, rows: list[tuple[str, ...]]) -> pd.DataFrame:
        df = pd.DataFrame({c: pd.Series([r[j] for r in rows], dtype="str") for j, c in enumerate(cls.columns)})
        df["idx"] = pd.Series(np.arange(len(rows)), dtype="int64")
        return df
