"""Generator ``similarity``: STS-B-like sentence pairs (``sentence1``, ``sentence2``) with a
similarity score ``label`` (float) from 0 to 5. Both sentences fill the same five slots
(who, how, did what, to what, where: "the young farmer slowly painted the old fence near the
lake ."), in the same order; the score is the number of slots the two share word for word
(scores are drawn evenly from 0..5, then the pair is built to have it), so the model can
read it off by comparing the sentences slot by slot. A shared slot is always said the same
way (no synonyms: a synonym would read as a changed slot) and a changed one never shares a
content word with the other sentence's value. ``label_noise`` replaces that share of the
train scores with random ones (default 0: STS-B's scores are averages of five annotators).

Perturbations of the ``adv`` split (score-preserving):

* ``typo``: typos in the nouns of ``sentence2``;
* ``synonym``: nouns of ``sentence2`` replaced by rarer synonyms never used outside ``adv``;
* ``distractor``: the same short clause appended to both sentences.
"""

from __future__ import annotations

import numpy as np

from ._base import DEFAULTS, LabelledGenerator, _pick, _strip_stop, _typo, register

_SLOTS = [
    ["the young farmer", "the old sailor", "a tall woman", "the little boy", "my neighbour",
     "a tired doctor", "the new teacher", "an angry driver"],
    ["slowly", "quickly", "carefully", "happily", "quietly", "proudly"],
    ["painted", "cleaned", "repaired", "climbed", "watched", "pushed", "carried", "photographed"],
    ["the red fence", "a wooden boat", "the small house", "an old bicycle", "the garden wall",
     "a stone bridge", "the blue door", "a broken chair"],
    ["near the lake", "in the park", "behind the school", "on the hill", "by the road", "at the farm"],
]
# held out: never used outside the adv split
_RARE = {"farmer": "agriculturist", "sailor": "seafarer", "woman": "lady", "boy": "lad",
         "neighbour": "neighbor", "doctor": "medic", "teacher": "tutor", "driver": "motorist",
         "fence": "palisade", "boat": "skiff", "house": "cottage", "bicycle": "cycle", "wall": "rampart",
         "bridge": "footbridge", "door": "portal", "chair": "stool"}
_TAILS = ["that afternoon .", "before the rain .", "as usual .", "for an hour ."]


def _pair(rng: np.random.Generator, score: float) -> tuple[str, str]:
    shared = set(rng.permutation(5)[: int(round(score))].tolist())
    a, b = [], []
    for k, values in enumerate(_SLOTS):
        x = _pick(rng, values)
        a.append(x)
        if k in shared:
            b.append(x)
        else:
            b.append(_pick(rng, [v for v in values if v != x]))
    return " ".join(a) + " .", " ".join(b) + " ."


def _perturb(rng: np.random.Generator, row: tuple, kind: str):
    s1, s2 = row
    words = s2.split(" ")
    pos = [j for j, w in enumerate(words) if w in _RARE]
    if kind == "typo":
        if not pos:
            return None
        for j in pos:
            words[j] = _typo(rng, words[j], set(_RARE))
        return s1, " ".join(words)
    if kind == "synonym":
        if not pos:
            return None
        for j in pos:
            words[j] = _RARE[words[j]]
        return s1, " ".join(words)
    if kind == "distractor":
        tail = _pick(rng, _TAILS)
        return f"{_strip_stop(s1)} {tail}", f"{_strip_stop(s2)} {tail}"
    raise ValueError(kind)


@register("similarity")
class Similarity(LabelledGenerator):
    stream = 5
    columns = ("sentence1", "sentence2")
    defaults = {**DEFAULTS, "label_noise": 0.0}
    label_dtype = "float64"

    @classmethod
    def labels(cls, rng, n):
        scores = [float(i % 6) for i in range(n)]
        return [scores[i] for i in rng.permutation(n).tolist()]

    @classmethod
    def noise(cls, rng, labels, frac):
        out = list(labels)
        k = int(round(frac * len(out)))
        for i in sorted(rng.choice(len(out), size=k, replace=False).tolist()) if k else []:
            out[i] = float(rng.integers(6))
        return out

    @classmethod
    def example(cls, rng, label):
        return _pair(rng, label)

    @classmethod
    def perturb(cls, rng, row, label, kind):
        return _perturb(rng, row, kind)
