"""Generator ``sentiment``: SST-2-like single sentences (column ``sentence``), labels
0 negative / 1 positive, built from templates with plain, negated and contrastive
("x , but y") constructions.

Perturbations of the ``adv`` split (label-preserving):

* ``typo``: character-level typos (swap, drop, repeat, keyboard neighbour) in the sentiment words;
* ``synonym``: the sentiment words replaced by rarer synonyms from a held-out list never used
  in train/validation/test;
* ``distractor``: an appended phrase in a neutral frame that carries the opposite sentiment word.
"""

from __future__ import annotations

import numpy as np

from ._base import LabelledGenerator, _pick, _strip_stop, _typo, register

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




@register("sentiment")
class Sentiment(LabelledGenerator):
    stream = 0
    columns = ("sentence",)

    @classmethod
    def example(cls, rng, label):
        return (_sentiment_sentence(rng, label),)

    @classmethod
    def perturb(cls, rng, row, label, kind):
        res = _sentiment_adv(rng, row[0], label, kind)
        return None if res is None else (res,)
