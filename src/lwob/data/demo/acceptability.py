"""Generator ``acceptability``: CoLA-like single sentences (column ``sentence``), labels
1 acceptable / 0 unacceptable (CoLA's convention). An acceptable sentence follows one of a
few English clause templates (subject, verb, object, optional adjective, adverb, place, a
relative or a subordinate clause); an unacceptable one is built the same way and then
broken by word order: two adjacent words swapped, the determiner put after its noun, the
verb moved to the end or to the front. The vocabulary is the
same in both classes, so only the order tells them apart.

Perturbations of the ``adv`` split (label-preserving: word order untouched):

* ``typo``: character-level typos in the nouns and adjectives;
* ``synonym``: nouns and adjectives replaced by rarer synonyms never used outside ``adv``;
* ``distractor``: a grammatical clause appended after a comma ("..., as everyone knew .").
"""

from __future__ import annotations

import numpy as np

from ._base import LabelledGenerator, _pick, _strip_stop, _typo, register

_DET = ["the", "a", "every", "this", "that", "my", "our"]
_NOUNS = ["teacher", "farmer", "child", "doctor", "painter", "student", "baker", "pilot", "singer",
          "neighbour", "lawyer", "driver", "nurse", "writer", "gardener", "sailor"]
_THINGS = ["letter", "song", "house", "garden", "story", "picture", "bridge", "window", "recipe",
           "boat", "lamp", "road", "bottle", "jacket", "basket", "clock"]
_ADJ = ["old", "young", "quiet", "tall", "clever", "happy", "tired", "kind", "busy", "brave",
        "small", "green", "heavy", "bright", "simple", "famous"]
# past tense of transitive verbs
_VERBS = ["painted", "wrote", "found", "built", "cleaned", "opened", "sold", "carried", "fixed",
          "described", "visited", "watched", "noticed", "moved", "bought", "borrowed"]
_ADV = ["quickly", "slowly", "carefully", "happily", "quietly", "suddenly", "gladly", "finally"]
_PLACES = ["in the morning", "near the river", "after dinner", "at the market", "in the village",
           "before noon", "on sunday", "by the station"]
_SUB = ["because it was late", "while it was raining", "although nobody asked", "when the bell rang",
        "after the storm", "before the guests arrived"]
# held out: never used outside the adv split
_SYN = {
    "teacher": "instructor", "farmer": "grower", "child": "youngster", "doctor": "physician",
    "painter": "artist", "student": "pupil", "baker": "confectioner", "pilot": "aviator",
    "singer": "vocalist", "neighbour": "resident", "lawyer": "attorney", "driver": "chauffeur",
    "nurse": "caregiver", "writer": "novelist", "gardener": "groundskeeper", "sailor": "mariner",
    "letter": "missive", "song": "ballad", "house": "dwelling", "garden": "orchard", "story": "tale",
    "picture": "portrait", "bridge": "viaduct", "window": "casement", "recipe": "formula",
    "boat": "vessel", "lamp": "lantern", "road": "avenue", "bottle": "flask", "jacket": "blazer",
    "basket": "hamper", "clock": "timepiece",
    "old": "elderly", "young": "youthful", "quiet": "hushed", "tall": "towering", "clever": "astute",
    "happy": "cheerful", "tired": "weary", "kind": "gentle", "busy": "bustling", "brave": "valiant",
    "small": "tiny", "green": "verdant", "heavy": "weighty", "bright": "radiant", "simple": "plain",
    "famous": "renowned",
}
_CONTENT = set(_NOUNS) | set(_THINGS) | set(_ADJ)
_TAILS = [", as everyone knew .", ", or so the story goes .", ", which surprised nobody .",
          ", said the old man .", ", and then it was over ."]


def _np(rng, nouns, adj: bool) -> list[str]:
    words = [_pick(rng, _DET)]
    if adj:
        words.append(_pick(rng, _ADJ))
    return words + [_pick(rng, nouns)]


def _clause(rng) -> tuple[list[str], int, int]:
    """Words of an acceptable sentence (without the final "."), the index of the verb and
    the index where the object noun phrase starts."""
    subj = _np(rng, _NOUNS, rng.random() < 0.5)
    obj = _np(rng, _THINGS, rng.random() < 0.5)
    words = list(subj)
    if rng.random() < 0.3:
        words.append(_pick(rng, _ADV))
    verb = len(words)
    words.append(_pick(rng, _VERBS))
    start = len(words)
    words += obj
    t = rng.random()
    if t < 0.3:
        words += _pick(rng, _PLACES).split()
    elif t < 0.5:
        words += _pick(rng, _SUB).split()
    return words, verb, start


def _sentence(rng: np.random.Generator, label: int) -> str:
    words, verb, start = _clause(rng)
    if label == 0:
        k = int(rng.integers(4))
        if k == 0:  # two adjacent words swapped (not two equal words)
            j = int(rng.integers(len(words) - 1))
            words[j], words[j + 1] = words[j + 1], words[j]
        elif k == 1:  # determiner after its noun: "teacher the"
            noun = start + (2 if words[start + 1] in _ADJ else 1)
            det = words.pop(start)
            words.insert(noun, det)
        elif k == 2:  # verb moved to the end
            v = words.pop(verb)
            words.append(v)
        else:  # verb first: "wrote the teacher the letter"
            words.insert(0, words.pop(verb))
    return " ".join(words) + " ."


def _perturb(rng: np.random.Generator, sentence: str, kind: str) -> str | None:
    words = sentence.split(" ")
    pos = [j for j, w in enumerate(words) if w in _CONTENT]
    if kind == "typo":
        if not pos:
            return None
        for j in pos[:2]:
            words[j] = _typo(rng, words[j], _CONTENT)
        return " ".join(words)
    if kind == "synonym":
        if not pos:
            return None
        for j in pos:
            words[j] = _SYN[words[j]]
        return " ".join(words)
    if kind == "distractor":
        return _strip_stop(sentence) + " " + _pick(rng, _TAILS)
    raise ValueError(kind)


@register("acceptability")
class Acceptability(LabelledGenerator):
    stream = 3
    columns = ("sentence",)

    @classmethod
    def example(cls, rng, label):
        return (_sentence(rng, label),)

    @classmethod
    def perturb(cls, rng, row, label, kind):
        res = _perturb(rng, row[0], kind)
        return None if res is None else (res,)
