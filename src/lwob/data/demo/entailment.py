"""Generator ``entailment``: RTE-like sentence pairs (``sentence1``, ``sentence2``), labels
0 entailment / 1 not_entailment. Premises state one or two subject-verb-object facts;
hypotheses restate, generalise (hypernym, "someone", passive) or negate, change an entity /
the object / the verb, or swap the roles of two facts. Default ``n_train`` 500 (sentence
pairs need more examples to be learnt in a few epochs).

Perturbations of the ``adv`` split (label-preserving):

* ``typo``: typos in every key word of the hypothesis (names, verb, object);
* ``synonym``: verbs and objects of the hypothesis replaced by rarer synonyms never used
  outside the ``adv`` split;
* ``distractor``: a negated statement about an unrelated entity appended to the premise, or a
  negated tautology conjoined to the hypothesis ("..., and false is not true").
"""

from __future__ import annotations

import numpy as np

from ._base import DEFAULTS, LabelledGenerator, _art, _pick, _strip_stop, _typo, register

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




@register("entailment")
class Entailment(LabelledGenerator):
    stream = 1
    columns = ("sentence1", "sentence2")
    defaults = {**DEFAULTS, "n_train": 500}

    @classmethod
    def example(cls, rng, label):
        return _entailment_pair(rng, label)

    @classmethod
    def perturb(cls, rng, row, label, kind):
        res = _entailment_adv(rng, row[0], row[1], label, kind)
        return None if res is None else tuple(res)
