"""Deterministic offline demo data: small text-classification tasks with adversarial variants.

Spec (``datasets.<name>`` with ``source: demo``)::

    {source: demo, generator: sentiment | entailment, seed: 0, n_train: 400 (entailment: 500),
     n_validation: 100, n_test: 200, perturbations: [typo, synonym, distractor],
     label_noise: 0.05}

* ``sentiment``: single sentences (column ``sentence``), SST-2-like, labels 0 negative /
  1 positive, built from templates with plain, negated and contrastive ("x , but y")
  constructions.
* ``entailment``: sentence pairs (``sentence1``, ``sentence2``), RTE-like, labels
  0 entailment / 1 not_entailment; premises state one or two subject-verb-object facts,
  hypotheses restate, generalise (hypernym, "someone", passive) or negate, change an
  entity / the object / the verb, or swap the roles of two facts.

Splits ``train``, ``validation``, ``test`` and ``adv``: one perturbed variant of every test
example (same ``idx`` and label, plus a ``perturbation`` column) made by one of the listed
label-preserving perturbations:

* ``typo``: character-level typos (swap, drop, repeat, keyboard neighbour) in the words that
  carry the label (sentiment words; verbs/objects/names of the hypothesis);
* ``synonym``: substitution with rarer synonyms from a held-out list never used in
  train/validation/test;
* ``distractor``: an appended phrase in a neutral frame that carries the opposite sentiment
  word (sentiment); for entailment a negated statement about an unrelated entity appended
  to the premise, or a negated tautology conjoined to the hypothesis ("..., and false is
  not true").

Only ``label_noise`` (a fraction of train labels flipped, default 0.05) and the harder
templates keep the clean task from being trivially solvable. Pure Python + numpy
``random.Generator``: the same spec gives the same rows (and byte-identical Parquet files).
Validation and test sentences never repeat a train sentence.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from lwob.errors import ConfigError

GENERATOR_VERSION = "demo-1"
GENERATORS = ("sentiment", "entailment")
PERTURBATIONS = ("typo", "synonym", "distractor")
DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "n_train": 400,
    "n_validation": 100,
    "n_test": 200,
    "perturbations": list(PERTURBATIONS),
    "label_noise": 0.05,
}
_STREAMS = {"train": 1, "validation": 2, "test": 3, "adv": 4, "noise": 5}


def resolve_spec(spec: dict) -> dict:
    """The spec with defaults filled in; ConfigError on a bad value."""
    gen = spec.get("generator")
    if gen not in GENERATORS:
        raise ConfigError(f"generator: unknown demo generator {gen!r} (known: {', '.join(GENERATORS)})")
    out = {"generator": gen}
    for k, default in DEFAULTS.items():
        if k == "n_train" and gen == "entailment":
            default = 500  # sentence pairs need more examples to be learnt in a few epochs
        v = spec.get(k, default)
        if v is None:
            v = default
        out[k] = v
    for k in ("seed", "n_train", "n_validation", "n_test"):
        v = out[k]
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ConfigError(f"{k}: expected a non-negative integer, got {v!r}")
        out[k] = int(v)
    if out["n_train"] < 2:
        raise ConfigError(f"n_train: at least 2 examples needed, got {out['n_train']}")
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


# --------------------------------------------------------------------------- sentiment

_POS = ["good", "great", "wonderful", "excellent", "brilliant", "delightful", "charming", "moving",
        "funny", "beautiful", "enjoyable", "superb", "fantastic", "clever", "touching", "lovely"]
_NEG = ["bad", "awful", "terrible", "boring", "dull", "horrible", "weak", "poor", "tedious",
        "clumsy", "messy", "bland", "annoying", "painful", "lifeless", "silly"]
# held out: never used outside the adv split
_SYN = {
    "good": ["commendable", "decent"], "great": ["magnificent", "splendid"],
    "wonderful": ["marvelous", "sublime"], "excellent": ["exemplary", "stellar"],
    "brilliant": ["dazzling", "masterful"], "delightful": ["enchanting", "pleasurable"],
    "charming": ["endearing", "winsome"], "moving": ["poignant", "stirring"],
    "funny": ["hilarious", "witty"], "beautiful": ["exquisite", "gorgeous"],
    "enjoyable": ["entertaining", "engrossing"], "superb": ["outstanding", "impeccable"],
    "fantastic": ["terrific", "phenomenal"], "clever": ["ingenious", "inventive"],
    "touching": ["heartfelt", "tender"], "lovely": ["adorable", "graceful"],
    "bad": ["subpar", "inferior"], "awful": ["atrocious", "abysmal"],
    "terrible": ["dreadful", "appalling"], "boring": ["monotonous", "soporific"],
    "dull": ["insipid", "lackluster"], "horrible": ["ghastly", "hideous"],
    "weak": ["feeble", "flimsy"], "poor": ["shoddy", "mediocre"], "tedious": ["plodding", "wearisome"],
    "clumsy": ["inept", "bungling"], "messy": ["chaotic", "sloppy"], "bland": ["vapid", "flavorless"],
    "annoying": ["grating", "irksome"], "painful": ["excruciating", "agonizing"],
    "lifeless": ["listless", "inert"], "silly": ["asinine", "inane"],
}
_NOUNS = ["movie", "film", "plot", "acting", "soundtrack", "script", "cast", "ending", "story",
          "dialogue", "pacing", "camera work", "lead actor", "humor", "score", "direction",
          "opening scene", "finale", "screenplay", "editing"]
_INTENS = ["", "", "", "really ", "quite ", "truly ", "very ", "rather ", "so ", "pretty "]
_PEOPLE = ["my friend", "my sister", "the critic", "my father", "the reviewer", "my roommate", "everyone"]
_NEGATORS = ["not", "never", "hardly", "not at all"]
# {s}: the sentence without its final " ."
_DISTRACT_SENT = [
    "{s} . ( the popcorn was {opp} . )",
    "{s} . the weather outside was {opp} .",
    "{s} , said my friend , whose day had been {opp} .",
    "{s} , unlike the {opp} trailer .",
    "despite the {opp} weather , {s} .",
    "on a {opp} evening with a friend : {s} .",
    "my {opp} neighbour came along too , and {s} .",
]


def _adj(rng, pol: int) -> str:
    return _pick(rng, _POS if pol == 1 else _NEG)


def _two_nouns(rng) -> tuple[str, str]:
    a = _pick(rng, _NOUNS)
    b = _pick(rng, _NOUNS)
    while b == a:
        b = _pick(rng, _NOUNS)
    return a, b


def _sentiment_sentence(rng: np.random.Generator, label: int) -> str:
    t = int(rng.choice(12, p=[0.11, 0.09, 0.08, 0.08, 0.12, 0.1, 0.08, 0.08, 0.08, 0.06, 0.06, 0.06]))
    n1, n2 = _two_nouns(rng)
    i = _pick(rng, _INTENS)
    lab, opp = (lambda: _adj(rng, label)), (lambda: _adj(rng, 1 - label))
    if t == 0:
        return f"the {n1} was {i}{lab()} ."
    if t == 1:
        return f"{_pick(rng, _PEOPLE)} thought the {n1} was {i}{lab()} ."
    if t == 2:
        return f"a {lab()} {n1} and a {i}{lab()} {n2} ."
    if t == 3:
        return f"what a {lab()} {n1} , and the {n2} was {lab()} too ."
    if t == 4:
        neg = _pick(rng, _NEGATORS)
        if neg == "not at all":
            return f"the {n1} was not {opp()} at all ."
        return f"the {n1} was {neg} {i}{opp()} ."
    if t == 5:
        adj = opp()
        return _pick(rng, [f"i would not call the {n1} {adj} .", f"nothing about the {n1} was {adj} .",
                           f"it is hard to say the {n1} was {adj} .", f"no one found the {n1} {adj} ."])
    if t == 6:
        return f"the {n1} was {opp()} , but the {n2} was {i}{lab()} ."
    if t == 7:
        return f"although the {n1} was {opp()} , the {n2} was {i}{lab()} ."
    if t == 8:
        return f"the {n1} was not {opp()} , it was {i}{lab()} ."
    # rarer, harder constructions
    if t == 9:
        return f"the {n2} was {i}{lab()} , even if the {n1} was {opp()} ."
    if t == 10:
        return f"i expected the {n1} to be {opp()} , but it was {lab()} ."
    return f"it is not true that the {n1} was not {lab()} ."


def _sentiment_words(sentence: str) -> list[int]:
    vocab = set(_POS) | set(_NEG)
    return [j for j, w in enumerate(sentence.split(" ")) if w in vocab]


def _sentiment_adv(rng: np.random.Generator, sentence: str, label: int, kind: str) -> str | None:
    words = sentence.split(" ")
    pos = _sentiment_words(sentence)
    if kind == "typo":
        avoid = set(_POS) | set(_NEG)
        for j in pos:
            words[j] = _typo(rng, words[j], avoid)
        return " ".join(words)
    if kind == "synonym":
        for j in pos:
            words[j] = _pick(rng, _SYN[words[j]])
        return " ".join(words)
    if kind == "distractor":
        frame = _pick(rng, _DISTRACT_SENT)
        return frame.format(s=_strip_stop(sentence), opp=_adj(rng, 1 - label))
    raise ValueError(kind)


# --------------------------------------------------------------------------- entailment

_NAMES = ["maria", "john", "ahmed", "li", "sofia", "peter", "anna", "david", "fatima", "carlos",
          "emma", "ravi", "yuki", "olga", "tom", "nadia"]
# category -> objects; hypernym phrase
_OBJECTS = {
    "fruit": ["apple", "banana", "orange", "pear", "mango"],
    "vehicle": ["car", "bicycle", "truck", "motorcycle", "van"],
    "instrument": ["guitar", "piano", "violin", "trumpet", "drum"],
    "animal": ["dog", "cat", "horse", "rabbit", "parrot"],
    "book": ["novel", "cookbook", "dictionary", "textbook", "atlas"],
    "piece of furniture": ["chair", "table", "sofa", "desk", "bookshelf"],
}
_HYPER = {o: c for c, objs in _OBJECTS.items() for o in objs}
_ALL_OBJECTS = [o for objs in _OBJECTS.values() for o in objs]
# past, base
_VERBS = [("bought", "buy"), ("found", "find"), ("lost", "lose"), ("carried", "carry"),
          ("saw", "see"), ("described", "describe"), ("repaired", "repair"), ("cleaned", "clean"),
          ("chose", "choose"), ("painted", "paint"), ("sold", "sell"), ("borrowed", "borrow")]
_VERB_SYN = {
    "bought": [("purchased", "purchase"), ("acquired", "acquire")],
    "found": [("discovered", "discover"), ("located", "locate")],
    "lost": [("misplaced", "misplace"), ("mislaid", "mislay")],
    "carried": [("transported", "transport"), ("hauled", "haul")],
    "saw": [("observed", "observe"), ("spotted", "spot"), ("glimpsed", "glimpse")],
    "described": [("portrayed", "portray"), ("depicted", "depict")],
    "repaired": [("mended", "mend"), ("restored", "restore")],
    "cleaned": [("scrubbed", "scrub"), ("polished", "polish")],
    "chose": [("selected", "select"), ("picked", "pick")],
    "painted": [("illustrated", "illustrate")],
    "sold": [("auctioned", "auction"), ("peddled", "peddle")],
    "borrowed": [("rented", "rent")],
}
_OBJ_SYN = {"car": "automobile", "bicycle": "bike", "dog": "hound", "sofa": "couch",
            "novel": "paperback", "truck": "lorry", "rabbit": "bunny", "desk": "bureau",
            "motorcycle": "motorbike", "dictionary": "lexicon"}
_PLACES = ["in the park", "at the market", "on monday", "yesterday", "near the station",
           "last week", "in the city", "at the school", "after lunch", "in the morning"]
# {p}: the premise without its final " ."
_DISTRACT_ENT = [
    "{p} , and the sky was not green .",
    "{p} , and {d} did not {base} anything .",
    "{p} . nobody else was there .",
    "{p} . it was not raining .",
    "{p} , and no one saw {d} .",
    "{p} . {d} never visited the {o} shop .",
]


# {h}: the hypothesis without its final " ."; a conjoined tautology keeps the label
_DISTRACT_HYP = [
    "{h} , and false is not true .",
    "{h} , and a circle is not a square .",
    "{h} , and no cat is a dog .",
    "{h} , and monday never follows friday .",
]


def _strip_stop(text: str) -> str:
    return text[:-2] if text.endswith(" .") else text


def _art(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _entailment_pair(rng: np.random.Generator, label: int) -> tuple[str, str]:
    a = _pick(rng, _NAMES)
    b = _pick(rng, _NAMES)
    while b == a:
        b = _pick(rng, _NAMES)
    c = _pick(rng, _NAMES)
    while c in (a, b):
        c = _pick(rng, _NAMES)
    v1, v2 = _pick(rng, _VERBS), _pick(rng, _VERBS)
    while v2 == v1:
        v2 = _pick(rng, _VERBS)
    o1, o2 = _pick(rng, _ALL_OBJECTS), _pick(rng, _ALL_OBJECTS)
    while o2 == o1:
        o2 = _pick(rng, _ALL_OBJECTS)
    place = _pick(rng, _PLACES)
    two = bool(rng.random() < 0.2)
    passive = (not two) and bool(rng.random() < 0.2)
    if two:
        premise = f"{a} {v1[0]} {_art(o1)} {place} , and {b} {v2[0]} {_art(o2)} ."
    elif passive:
        premise = f"{_art(o1)} was {v1[0]} by {a} {place} ."
    else:
        premise = f"{a} {v1[0]} {_art(o1)} {place} ."
    if label == 0:
        kinds = ["restate", "hyper", "someone", "passive"] + (["second", "second"] if two else [])
        k = _pick(rng, kinds)
        if k == "restate":
            h = f"{a} {v1[0]} {_art(o1)} ."
        elif k == "hyper":
            h = f"{a} {v1[0]} {_art(_HYPER[o1])} ."
        elif k == "someone":
            h = f"someone {v1[0]} {_art(o1)} {place} ."
        elif k == "passive":
            h = f"{_art(o1)} was {v1[0]} by {a} ."
        else:
            h = f"{b} {v2[0]} {_art(o2)} ."
    else:
        kinds = ["negate", "entity", "entity", "object", "object", "verb"] + (["swap", "cross"] if two else [])
        k = _pick(rng, kinds)
        if k == "negate":
            h = f"{a} did not {v1[1]} {_art(o1)} ."
        elif k == "entity":
            h = f"{c} {v1[0]} {_art(o1)} ."
        elif k == "object":
            other = _pick(rng, [o for o in _ALL_OBJECTS if o not in (o1, o2)])
            h = f"{a} {v1[0]} {_art(other)} ."
        elif k == "verb":
            other = _pick(rng, [v for v in _VERBS if v not in (v1, v2)])
            h = f"{a} {other[0]} {_art(o1)} ."
        elif k == "swap":
            h = f"{b} {v1[0]} {_art(o1)} ."
        else:  # cross: a did b's action
            h = f"{a} {v2[0]} {_art(o2)} ."
    return premise, h


def _entailment_adv(rng: np.random.Generator, premise: str, hyp: str, label: int, kind: str):
    if kind == "typo":
        key = set(_NAMES) | set(_ALL_OBJECTS) | {v[0] for v in _VERBS} | {v[1] for v in _VERBS}
        avoid = key | set(_HYPER.values())
        words = hyp.split(" ")
        cand = [j for j, w in enumerate(words) if w in key and len(w) >= 3]
        if not cand:
            return None
        for j in cand:  # every key word of the hypothesis (names, verb, object)
            words[j] = _typo(rng, words[j], avoid)
        return premise, " ".join(words)
    if kind == "synonym":
        # only the hypothesis gets the rare words: the model must match them to the premise
        hw = hyp.split(" ")
        past = {v[0]: v for v in _VERBS}
        base = {v[1]: v for v in _VERBS}
        mapping: dict[str, str] = {}
        for w in hw:
            if w in mapping:
                continue
            if w in past:
                mapping[w] = _pick(rng, _VERB_SYN[w])[0]
            elif w in base:
                mapping[w] = _pick(rng, _VERB_SYN[base[w][0]])[1]
            elif w in _OBJ_SYN:
                mapping[w] = _OBJ_SYN[w]
        if not mapping:
            return None
        toks = " ".join(mapping.get(w, w) for w in hw).split(" ")
        for j in range(len(toks) - 1):  # fix articles ("a automobile")
            if toks[j] in ("a", "an"):
                toks[j] = "an" if toks[j + 1][0] in "aeiou" else "a"
        return premise, " ".join(toks)
    if kind == "distractor":
        words = set(premise.split(" ")) | set(hyp.split(" "))
        d = _pick(rng, [n for n in _NAMES if n not in words])
        if rng.random() < 0.5:
            return premise, _pick(rng, _DISTRACT_HYP).format(h=_strip_stop(hyp))
        frame = _pick(rng, _DISTRACT_ENT)
        base = _pick(rng, _VERBS)[1]
        return frame.format(p=_strip_stop(premise), d=d, base=base, o=_pick(rng, _ALL_OBJECTS)), hyp
    raise ValueError(kind)


# --------------------------------------------------------------------------- generation

def _generate_rows(kind: str, rng, labels: list[int], seen: set) -> list[tuple]:
    rows = []
    for label in labels:
        for _ in range(1000):
            if kind == "sentiment":
                ex = (_sentiment_sentence(rng, label),)
            else:
                ex = _entailment_pair(rng, label)
            if ex not in seen:
                break
        seen.add(ex)
        rows.append(ex)
    return rows


def generate(spec: dict) -> dict[str, pd.DataFrame]:
    """Generate ``train``, ``validation``, ``test`` and ``adv`` DataFrames for a demo spec."""
    s = resolve_spec(spec)
    kind, seed = s["generator"], s["seed"]
    columns = ["sentence"] if kind == "sentiment" else ["sentence1", "sentence2"]

    def rng(stream: str) -> np.random.Generator:
        return np.random.default_rng([seed, _STREAMS[stream], GENERATORS.index(kind)])

    seen: set = set()
    out: dict[str, pd.DataFrame] = {}
    test_rows: list[tuple] = []
    test_labels: list[int] = []
    for split in ("train", "validation", "test"):
        r = rng(split)
        labels = _balanced_labels(r, s[f"n_{split}"])
        rows = _generate_rows(kind, r, labels, seen)
        if split == "train":
            labels = _flip_noise(rng("noise"), labels, s["label_noise"])
        if split == "test":
            test_rows, test_labels = rows, labels
        out[split] = _frame(columns, rows, labels)

    r = rng("adv")
    adv_rows, kinds = [], []
    perts = s["perturbations"]
    for row, label in zip(test_rows, test_labels):
        order = [perts[j] for j in r.permutation(len(perts)).tolist()]
        new, used = None, None
        for p in order:
            if kind == "sentiment":
                res = _sentiment_adv(r, row[0], label, p)
                new = None if res is None or res == row[0] else (res,)
            else:
                res = _entailment_adv(r, row[0], row[1], label, p)
                new = None if res is None or tuple(res) == tuple(row) else tuple(res)
            if new is not None:
                used = p
                break
        if new is None:  # no listed perturbation applies: fall back to a distractor
            used = "distractor"
            new = ((_sentiment_adv(r, row[0], label, used),) if kind == "sentiment"
                   else tuple(_entailment_adv(r, row[0], row[1], label, used)))
        adv_rows.append(new)
        kinds.append(used)
    adv = _frame(columns, adv_rows, test_labels)
    adv.insert(len(columns), "perturbation", pd.Series(kinds, dtype="str"))
    out["adv"] = adv
    return out


def _frame(columns: list[str], rows: list[tuple], labels: list[int]) -> pd.DataFrame:
    df = pd.DataFrame({c: pd.Series([r[j] for r in rows], dtype="str") for j, c in enumerate(columns)})
    df["label"] = pd.Series(labels, dtype="int64")
    df["idx"] = pd.Series(np.arange(len(rows)), dtype="int64")
    return df


SPLIT_NAMES = ("train", "validation", "test", "adv")
