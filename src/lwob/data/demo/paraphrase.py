"""Generator ``paraphrase``: MRPC-like sentence pairs (``sentence1``, ``sentence2``), labels
1 paraphrase / 0 not a paraphrase. ``sentence1`` states who did what to which thing, where
and when; ``sentence2`` says it again in one of four word orders (as is, the day moved to
the front, the passive voice, the place moved to the front), half of the time with a
synonym of the verb (``_VERBS``). A non-paraphrase is written the same ways but changes one
key fact: the person, the thing, or the action is negated ("never"). Both classes share
most of their words, as in MRPC, and the label follows one lexical rule (what makes it
learnable in a few hundred examples): 1 iff ``sentence2`` names the same person and thing
as ``sentence1``, with the same verb or its listed synonym, and no "never". Place and day
never change, and nothing but the verb is said with a synonym (a changed verb or a synonym
of the thing would be a second, competing cue). No label noise by default.

Perturbations of the ``adv`` split (label-preserving):

* ``typo``: typos in the names and things of ``sentence2``;
* ``synonym``: the things of ``sentence2`` replaced by rarer synonyms never used outside ``adv``;
* ``distractor``: a sentence about the weather appended to both sentences.
"""

from __future__ import annotations

import numpy as np

from ._base import DEFAULTS, LabelledGenerator, _pick, _strip_stop, _typo, register

_NAMES = ["the mayor", "the coach", "the chef", "the minister", "the captain", "the director",
          "the judge", "the professor", "the manager", "the reporter", "the engineer", "the nurse"]
# (past, participle, synonyms in the same form: (past, participle))
_VERBS = [
    ("bought", "bought", [("purchased", "purchased")]),
    ("sold", "sold", [("auctioned off", "auctioned off")]),
    ("repaired", "repaired", [("fixed", "fixed"), ("mended", "mended")]),
    ("found", "found", [("discovered", "discovered")]),
    ("signed", "signed", [("approved", "approved")]),
    ("opened", "opened", [("unveiled", "unveiled")]),
    ("delivered", "delivered", [("handed over", "handed over")]),
    ("inspected", "inspected", [("examined", "examined"), ("checked", "checked")]),
    ("lost", "lost", [("misplaced", "misplaced")]),
    ("painted", "painted", [("decorated", "decorated")]),
]
# thing -> a synonym (not used in the rows: only kept out of the typos)
_THINGS = {"car": "vehicle", "contract": "agreement", "boat": "ship", "report": "document",
           "painting": "picture", "bridge": "overpass", "shop": "store", "house": "home",
           "statue": "sculpture", "truck": "lorry", "budget": "spending plan", "school": "academy"}
# held out: never used outside the adv split
_RARE = {"car": "automobile", "contract": "covenant", "boat": "vessel", "report": "dossier",
         "painting": "canvas", "bridge": "viaduct", "shop": "boutique", "house": "residence",
         "statue": "effigy", "truck": "hauler", "budget": "expenditure plan", "school": "institute",
         "vehicle": "automobile", "agreement": "covenant", "ship": "vessel", "document": "dossier",
         "picture": "canvas", "overpass": "viaduct", "store": "boutique", "home": "residence",
         "sculpture": "effigy", "lorry": "hauler", "spending plan": "expenditure plan", "academy": "institute"}
_PLACES = ["in the city", "near the harbour", "at the station", "in the old town", "by the river",
           "at the airport", "in the north", "outside the hall"]
_DAYS = ["on monday", "on tuesday", "on wednesday", "on thursday", "on friday", "last week",
         "yesterday", "this morning"]
_WEATHER = ["it was raining .", "the sky was grey .", "it was a warm day .", "the wind was strong ."]


def _other(rng, seq, avoid):
    return _pick(rng, [x for x in seq if x != avoid])


def _pair(rng: np.random.Generator, label: int) -> tuple[str, str]:
    who, (past, part, syns), thing = _pick(rng, _NAMES), _pick(rng, _VERBS), _pick(rng, list(_THINGS))
    place, day = _pick(rng, _PLACES), _pick(rng, _DAYS)
    s1 = f"{who} {past} the {thing} {place} {day} ."
    who2, thing2, neg = who, thing, ""
    if label == 0:
        k = int(rng.integers(3))
        if k == 0:
            who2 = _other(rng, _NAMES, who)
        elif k == 1:
            thing2 = _other(rng, list(_THINGS), thing)
        else:
            neg = "never "
    v_past, v_part = (past, part) if rng.random() < 0.5 else _pick(rng, syns)
    form = int(rng.integers(4))
    if form == 0:
        s2 = f"{who2} {neg}{v_past} the {thing2} {place} {day} ."
    elif form == 1:
        s2 = f"{day} , {who2} {neg}{v_past} the {thing2} {place} ."
    elif form == 2:
        s2 = f"the {thing2} was {neg}{v_part} by {who2} {place} {day} ."
    else:
        s2 = f"{place} , the {thing2} was {neg}{v_part} by {who2} {day} ."
    return s1, s2


def _perturb(rng: np.random.Generator, row: tuple, kind: str):
    s1, s2 = row
    if kind == "typo":
        words = s2.split(" ")
        keys = {w for t in _THINGS for w in (t, *_THINGS[t].split())} | {n.split()[1] for n in _NAMES}
        pos = [j for j, w in enumerate(words) if w in keys]
        if not pos:
            return None
        for j in pos:
            words[j] = _typo(rng, words[j], keys)
        return s1, " ".join(words)
    if kind == "synonym":
        for t in sorted(_RARE, key=len, reverse=True):
            if f"the {t} " in s2:
                return s1, s2.replace(f"the {t} ", f"the {_RARE[t]} ", 1)
        return None
    if kind == "distractor":
        w = _pick(rng, _WEATHER)
        return f"{_strip_stop(s1)} . {w}", f"{_strip_stop(s2)} . {w}"
    raise ValueError(kind)


@register("paraphrase")
class Paraphrase(LabelledGenerator):
    stream = 4
    columns = ("sentence1", "sentence2")
    defaults = {**DEFAULTS, "label_noise": 0.0}

    @classmethod
    def example(cls, rng, label):
        return _pair(rng, label)

    @classmethod
    def perturb(cls, rng, row, label, kind):
        return _perturb(rng, row, kind)
