"""Generator ``qa``: SQuAD-like extractive QA with adversarial splits.

Spec: ``{source: demo, generator: qa, seed: 0, n_train: 400, n_validation: 64, n_test: 160,
adversaries: [addsent, addany], variants: 2, sentences: [3, 5]}`` (adversaries known:
addsent, addany, addonesent).

Every split has the normalised QA layout ``id`` (str),
``title`` (str), ``context`` (str), ``question`` (str), ``answer_text`` (list of 1-3 gold
answers: the entity, and e.g. with its article, "in" + year, number + noun, or the surname),
``answer_start`` (their character offsets: ``context[s:s + len(t)] == t``) and ``idx`` (0..n-1);
no ``label``. A context (3-5 sentences, 40-70 words) is about one fictional person, organisation
or town (its ``title``) and states one fact per sentence (birth, move, marriage, founding,
books, prize, death; founder, seat, staff, director, award; river, founding, population,
festival, mayor), so facts of the same answer type (several years, towns, people) sit side by
side; later sentences refer to the topic by surname or pronoun. Questions ask for one slot of
one fact, mostly paraphrased (synonyms, reordering: "relocate" for "moved", "birthplace",
"headquartered"); 1-2 questions per context. Ids ``dq000000``, ... run on across ``train``,
``validation`` and ``test``; validation and test contexts never repeat a train context.

Adversarial splits, one per listed adversary and named after it, hold like Jia and Liang's
(2017) release the original test questions and, after each, its variants (id
``<original id>-<adversary><k>``; context = original context + " " + one distractor sentence;
same question, answers and offsets):

* ``addsent`` (``variants`` per question, default 2): the question rewritten as a statement in its own words, every
  entity in it swapped for a nearby one (one part of a two-part name changed, a close year,
  another town) and the answer slot filled with a fake answer of the same type;
* ``addany`` (``variants`` per question): an ungrammatical shuffle of question words and common words
  around a fake answer of the answer's type;
* ``addonesent`` (1 per question): one of the ``addsent`` candidates picked at random.

A distractor never contains a gold answer (case-insensitive); its fake answer and the name
parts, years and towns swapped in are new to the context. Each split and each adversary draws
from its own random stream, so listing more adversaries does not change the others.
"""

from __future__ import annotations

import string
from typing import Any

import numpy as np
import pandas as pd

from lwob.errors import ConfigError

from ._base import DemoGenerator, _art, _check_counts, _pick, register

#: adversaries of the qa generator; each gives a split of the same name
ADVERSARIES = ("addsent", "addany", "addonesent")
QA_DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "n_train": 400,
    "n_validation": 64,
    "n_test": 160,
    "adversaries": ["addsent", "addany"],
    "variants": 2,  # adversarial variants per test question (addsent, addany; addonesent has one)
    "sentences": [3, 5],  # sentences per context (min, max)
}
#: column order of a qa split (the normalised extractive-QA layout)
QA_COLUMNS = ("id", "title", "context", "question", "answer_text", "answer_start", "idx")


def _resolve_qa_spec(spec: dict) -> dict:
    for k in ("perturbations", "label_noise"):
        if spec.get(k) is not None:
            raise ConfigError(f"{k}: not used by the qa generator (its adversarial splits are set by "
                              f"adversaries: {list(ADVERSARIES)})")
    out: dict[str, Any] = {"generator": "qa"}
    for k, default in QA_DEFAULTS.items():
        v = spec.get(k, default)
        out[k] = default if v is None else v
    _check_counts(out)
    a = out["adversaries"]
    if isinstance(a, str) or not isinstance(a, (list, tuple)) or not a:
        raise ConfigError(f"adversaries: expected a non-empty list from {list(ADVERSARIES)}, got {a!r}")
    for x in a:
        if x not in ADVERSARIES:
            raise ConfigError(f"adversaries: unknown adversary {x!r} (known: {', '.join(ADVERSARIES)})")
    if len(set(a)) != len(a):
        raise ConfigError(f"adversaries: listed twice in {list(a)!r}")
    out["adversaries"] = list(a)
    v = out["variants"]
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= v <= 5:
        raise ConfigError(f"variants: expected an integer from 1 to 5, got {v!r}")
    out["variants"] = int(v)
    sn = out["sentences"]
    if (not isinstance(sn, (list, tuple)) or len(sn) != 2 or any(isinstance(x, bool) or not isinstance(x, int) for x in sn)
            or not 2 <= sn[0] <= sn[1] <= 5):
        raise ConfigError(f"sentences: expected [min, max] with 2 <= min <= max <= 5, got {sn!r}")
    out["sentences"] = [int(sn[0]), int(sn[1])]
    return out




# --------------------------------------------------------------------------- extractive QA
#
# A context is about one topic entity (a person, an organisation or a town) and states 3-5
# facts about it, one sentence each; a question asks for one slot of one fact, mostly in
# other words than the fact sentence (synonyms, reordering, a noun phrase for a verb).
# Every question template comes with a declarative rewrite in the question's own words:
# AddSent fills it with perturbed entities and a fake answer.

_FEMALE = ["Ana", "Elena", "Ines", "Mirela", "Lena", "Sana", "Yara", "Ilse", "Farah", "Keiko",
           "Nadia", "Selma", "Vera", "Greta", "Lucia", "Marta", "Oona", "Petra", "Rosa", "Tilde"]
_MALE = ["Boris", "Tomas", "Kofi", "Oskar", "Pavel", "Hugo", "Nils", "Dario", "Jonas", "Matteo",
         "Rui", "Teo", "Aurel", "Emil", "Anders", "Bruno", "Casimir", "Idris", "Leon", "Viktor"]
_FIRST = _FEMALE + _MALE
_SURNAMES = ["Korvel", "Drassin", "Maslin", "Orrick", "Tavener", "Hadrow", "Quillan", "Brandvik",
             "Castell", "Delorme", "Ekwall", "Fenwick", "Garrow", "Haldane", "Ivanek", "Jaskar",
             "Kellam", "Lindqvist", "Morrow", "Norling", "Osterby", "Pellam", "Radnor", "Sorrel",
             "Thorne", "Ulvang", "Varga", "Wenlock", "Yarrow", "Zeller"]
_TOWNS = ["Brenholm", "Castavel", "Dunmoor", "Elsvik", "Farrowgate", "Galdera", "Hollin", "Istrava",
          "Jorvale", "Kesterby", "Lunmark", "Marrowick", "Norvale", "Ostenburg", "Pellingford",
          "Quarrow", "Rastova", "Saltmere", "Tervin", "Ulmstad", "Varnholt", "Westerly", "Yselle",
          "Zandor", "Ambrin", "Belcourt", "Corran", "Drummel", "Eastwick", "Fennick"]
_RIVERS = ["Vessa", "Orla", "Sellan", "Ivra", "Kessel", "Tauber", "Lenna", "Arrow", "Brisk",
           "Culver", "Dorne", "Ember", "Mossa", "Tiver"]
_ORG_STEMS = ["Velmar", "Ostrand", "Calder", "Bramwell", "Harlow", "Ingram", "Kestrel", "Lowell",
              "Merrin", "Northgate", "Pemberly", "Rowan", "Stanmore", "Tolland", "Wexford", "Ashby",
              "Brightwater", "Cresswell", "Dunley", "Everett"]
# organisation type -> the people it counts
_ORG_TYPES = {"Institute": "researchers", "Society": "members", "Academy": "students",
              "Company": "employees", "Observatory": "astronomers", "Library": "librarians",
              "Orchestra": "musicians", "Guild": "craftsmen", "Hospital": "doctors"}
_PRIZE_STEMS = ["Orrin", "Halvard", "Selwyn", "Aldous", "Briar", "Corvin", "Delphine", "Evander",
                "Galen", "Isolde", "Lysander", "Merrick"]
_PRIZE_KINDS = ["Prize", "Medal", "Award"]
_EVENT_STEMS = ["Lantern", "Harvest", "Winter", "Amber", "Salt", "Copper", "Kite", "Glass",
                "Candle", "Thistle", "Juniper", "Saffron"]
_EVENT_KINDS = ["Festival", "Fair", "Regatta", "Carnival", "Games"]
_JOBS = ["painter", "engineer", "botanist", "architect", "composer", "chemist", "teacher",
         "surveyor", "cartographer", "physician", "poet", "historian", "astronomer", "merchant",
         "sculptor", "lawyer"]
_BOOK_TOPICS = ["birds", "bridges", "old maps", "river trade", "folk music", "glassmaking",
                "local history", "mountain plants", "shipbuilding", "the night sky"]
_SEASONS = ["spring", "summer", "autumn", "winter"]
_SIZES = ["small", "quiet", "busy", "old", "hilly"]
# slot -> entity type; slots not listed (job, mem, T, season, ...) are plain words
_SLOT_TYPES = {"P": "person", "S": "person", "F": "person", "L": "person", "M": "person",
               "C": "town", "C1": "town", "C2": "town", "C3": "town",
               "Y1": "year", "Y2": "year", "Y3": "year", "Y4": "year", "Y5": "year",
               "N": "number", "O": "org", "Z": "prize", "E": "event", "V": "river"}

# fact -> sentence templates; a context's first sentence names its topic in full, later ones
# use {Ref}/{ref} (a surname, a pronoun, "the institute", "the town", ...)
_FACTS = {
    # person topic
    "born": ["{P} was born in {C1} in {Y1}.",
             "{P} was born in {Y1} in the town of {C1}, the {child} of {ajob0}.",
             "{P}, {ajob}, was born in {C1} in {Y1}.",
             "Born in {C1} in {Y1}, {P} grew up in a family of {job0}s."],
    "moved": ["In {Y2}, {ref} moved to {C2}, where {pron} worked as {ajob} for many years.",
              "{Ref} moved to {C2} in {Y2} to work as {ajob}.",
              "{Ref} relocated to {C2} in {Y2}."],
    "married": ["{Ref} married {S}, {ajob2} from a large family.",
                "{Pos} {spouse} was the {job2} {S}."],
    "founded": ["{Ref} founded the {O} in {Y3}.",
                "In {Y3}, {ref} established the {O}.",
                "{Ref} set up the {O} in {Y3} with money from {pos} family."],
    "books": ["{Ref} wrote {N} books about {T}.",
              "Over the years {ref} published {N} books on {T}.",
              "{Pos} {N} books on {T} are still read today."],
    "prize": ["{Ref} won the {Z} in {Y4}.",
              "In {Y4}, {ref} received the {Z} for {pos} work.",
              "{Ref} was awarded the {Z} in {Y4}."],
    "died": ["{Ref} died in {C3} in {Y5}.",
             "{Ref} passed away in {Y5} in {C3}.",
             "{Ref} spent {pos} last years in {C3}, where {pron} died in {Y5}."],
    # organisation topic
    "org_founded": ["The {O} was founded by {F} in {Y1}.",
                    "The {O} was established in {Y1} by {F}, {ajob} with wealthy friends.",
                    "{F}, {ajob}, founded the {O} in {Y1}."],
    "hq": ["{Ref} is based in {C}.",
           "{Pos} headquarters are in {C}, near the old harbour.",
           "Today {ref} has its main office in {C}."],
    "staff": ["{Ref} has {N} {mem}.",
              "Today {ref} counts {N} {mem}.",
              "{N} {mem} are part of {ref} today."],
    "leader": ["Since {Y2}, {ref} has been led by {L}.",
               "{L} has directed {ref} since {Y2}.",
               "The current director, {L}, took office in {Y2}."],
    "gives": ["Every year {ref} awards the {Z}.",
              "{Ref} also gives out the {Z} each {season}."],
    # town topic
    "river": ["{Ref} lies on the river {V}.",
              "{Ref} is a {size} town on the river {V}.",
              "The river {V} flows through {ref}."],
    "town_founded": ["{Ref} was founded in {Y1} by {F}.",
                     "{F}, {ajob}, founded {ref} in {Y1}."],
    "population": ["{Ref} has a population of {N}.",
                   "About {N} people live in {ref} today.",
                   "{Ref} has {N} inhabitants."],
    "hosts": ["Each {season}, {C} hosts the {E}.",
              "The {E} is held in {C} every {season}.",
              "Every {season} {C} welcomes visitors to the {E}."],
    "mayor": ["The current mayor of {ref}, {M}, was elected in {Y2}.",
              "{M} was elected mayor of {ref} in {Y2}.",
              "Since {Y2}, {ref} has been governed by mayor {M}."],
}
# topic -> (facts that can open a context, the other facts in their order in a context)
_TOPICS = {
    "person": (["born"], ["moved", "married", "founded", "books", "prize", "died"]),
    "org": (["org_founded"], ["hq", "staff", "leader", "gives"]),
    "town": (["river", "town_founded"], ["river", "town_founded", "population", "hosts", "mayor"]),
}
# (fact, asked slot) -> [(question, the question as a statement with the answer at {A})]
_QUESTIONS = {
    ("born", "Y1"): [("When was {P} born?", "{P} was born in {A}."),
                     ("In what year was {P} born?", "{P} was born in the year {A}."),
                     ("What is the birth year of {P}?", "The birth year of {P} is {A}."),
                     ("{P} was born in which year?", "{P} was born in the year {A}.")],
    ("born", "C1"): [("Where was {P} born?", "{P} was born in {A}."),
                     ("In which town was {P} born?", "{P} was born in the town of {A}."),
                     ("What is the birthplace of {P}?", "The birthplace of {P} is {A}."),
                     ("Which city was {P} born in?", "{P} was born in the city of {A}.")],
    ("moved", "C2"): [("Where did {P} move in {Y2}?", "In {Y2}, {P} moved to {A}."),
                      ("To which city did {P} relocate in {Y2}?", "{P} relocated to the city of {A} in {Y2}."),
                      ("Which city did {P} move to?", "{P} moved to the city of {A}."),
                      ("Where did {P} go to live in {Y2}?", "{P} went to live in {A} in {Y2}.")],
    ("moved", "Y2"): [("When did {P} move to {C2}?", "{P} moved to {C2} in {A}."),
                      ("In what year did {P} relocate to {C2}?", "{P} relocated to {C2} in the year {A}."),
                      ("When did {P} settle in {C2}?", "{P} settled in {C2} in {A}.")],
    ("married", "S"): [("Whom did {P} marry?", "{P} married {A}."),
                       ("Who was {P}'s spouse?", "{P}'s spouse was {A}."),
                       ("Who was {P} married to?", "{P} was married to {A}."),
                       ("Which {job2} did {P} marry?", "{P} married the {job2} {A}.")],
    ("founded", "O"): [("What did {P} found in {Y3}?", "In {Y3}, {P} founded the {A}."),
                       ("Which organisation did {P} establish?", "{P} established the {A}."),
                       ("What was set up by {P} in {Y3}?", "The {A} was set up by {P} in {Y3}.")],
    ("founded", "Y3"): [("When did {P} found the {O}?", "{P} founded the {O} in {A}."),
                        ("In what year did {P} establish the {O}?", "{P} established the {O} in the year {A}."),
                        ("When was the {O} set up by {P}?", "The {O} was set up by {P} in {A}.")],
    ("books", "N"): [("How many books did {P} write?", "{P} wrote {A} books."),
                     ("How many books on {T} did {P} publish?", "{P} published {A} books on {T}."),
                     ("What number of books did {P} author?", "{P} authored {A} books.")],
    ("prize", "Z"): [("Which prize did {P} win in {Y4}?", "In {Y4}, {P} won the {A}."),
                     ("What award did {P} receive?", "{P} received the {A}."),
                     ("What honour was given to {P} in {Y4}?", "In {Y4}, the {A} was given to {P} as an honour.")],
    ("prize", "Y4"): [("When did {P} win the {Z}?", "{P} won the {Z} in {A}."),
                      ("In what year was {P} awarded the {Z}?", "{P} was awarded the {Z} in the year {A}.")],
    ("died", "C3"): [("Where did {P} die?", "{P} died in {A}."),
                     ("In which city did {P} pass away?", "{P} passed away in the city of {A}."),
                     ("Where did {P} spend the last years of life?", "{P} spent the last years of life in {A}.")],
    ("died", "Y5"): [("When did {P} die?", "{P} died in {A}."),
                     ("In what year did {P} pass away?", "{P} passed away in the year {A}."),
                     ("What year did {P} die in?", "{P} died in the year {A}.")],
    ("org_founded", "F"): [("Who founded the {O}?", "{A} founded the {O}."),
                           ("Who established the {O}?", "{A} established the {O}."),
                           ("By whom was the {O} set up?", "The {O} was set up by {A}."),
                           ("Who was the founder of the {O}?", "The founder of the {O} was {A}.")],
    ("org_founded", "Y1"): [("When was the {O} founded?", "The {O} was founded in {A}."),
                            ("In what year was the {O} established?", "The {O} was established in the year {A}."),
                            ("When was the {O} set up?", "The {O} was set up in {A}.")],
    ("hq", "C"): [("Where is the {O} based?", "The {O} is based in {A}."),
                  ("In which city is the {O} headquartered?", "The {O} is headquartered in the city of {A}."),
                  ("Where are the headquarters of the {O}?", "The headquarters of the {O} are in {A}.")],
    ("staff", "N"): [("How many {mem} does the {O} have?", "The {O} has {A} {mem}."),
                     ("What is the number of {mem} at the {O}?", "The number of {mem} at the {O} is {A}."),
                     ("How many {mem} belong to the {O}?", "{A} {mem} belong to the {O}.")],
    ("leader", "L"): [("Who leads the {O}?", "The {O} is led by {A}."),
                      ("Who has headed the {O} since {Y2}?", "{A} has headed the {O} since {Y2}."),
                      ("Who is the director of the {O}?", "The director of the {O} is {A}.")],
    ("leader", "Y2"): [("Since when has {L} led the {O}?", "{L} has led the {O} since {A}."),
                       ("In what year did {L} become director of the {O}?",
                        "{L} became director of the {O} in the year {A}.")],
    ("gives", "Z"): [("Which prize does the {O} award?", "The {O} awards the {A}."),
                     ("What award is given out by the {O}?", "The {A} is given out by the {O}."),
                     ("What prize does the {O} hand out every year?", "Every year the {O} hands out the {A}.")],
    ("river", "V"): [("On which river does {C} lie?", "{C} lies on the river {A}."),
                     ("Which river flows through {C}?", "The river {A} flows through {C}."),
                     ("What river runs through {C}?", "The river {A} runs through {C}.")],
    ("town_founded", "F"): [("Who founded {C}?", "{A} founded {C}."),
                            ("By whom was {C} established?", "{C} was established by {A}."),
                            ("Who was the founder of {C}?", "The founder of {C} was {A}.")],
    ("town_founded", "Y1"): [("When was {C} founded?", "{C} was founded in {A}."),
                             ("In what year was {C} established?", "{C} was established in the year {A}.")],
    ("population", "N"): [("What is the population of {C}?", "The population of {C} is {A}."),
                          ("How many people live in {C}?", "{A} people live in {C}."),
                          ("How many inhabitants does {C} have?", "{C} has {A} inhabitants.")],
    ("hosts", "C"): [("Which city hosts the {E}?", "The city of {A} hosts the {E}."),
                     ("Where is the {E} held?", "The {E} is held in {A}."),
                     ("In which town does the {E} take place?", "The {E} takes place in the town of {A}.")],
    ("hosts", "E"): [("Which event does {C} host every {season}?", "{C} hosts the {A} every {season}."),
                     ("What takes place in {C} every {season}?", "The {A} takes place in {C} every {season}."),
                     ("What is held in {C} each {season}?", "The {A} is held in {C} each {season}.")],
    ("mayor", "M"): [("Who is the mayor of {C}?", "The mayor of {C} is {A}."),
                     ("Who governs {C} as mayor?", "{A} governs {C} as mayor."),
                     ("Who was elected mayor of {C} in {Y2}?", "{A} was elected mayor of {C} in {Y2}.")],
    ("mayor", "Y2"): [("When was {M} elected mayor?", "{M} was elected mayor in {A}."),
                      ("In what year did {M} become mayor of {C}?", "{M} became mayor of {C} in the year {A}.")],
}
_ASKABLE = {fact: [slot for (f, slot) in _QUESTIONS if f == fact] for fact in _FACTS}
# AddAny: common English words mixed with the question's words
_COMMON = ["the", "of", "and", "in", "was", "a", "to", "for", "with", "on", "that", "by", "from",
           "as", "at", "it", "also", "new", "first", "after", "year", "city", "people", "one",
           "its", "their", "not", "more", "when", "which", "who", "many", "time", "two", "old"]
_QA_STREAMS = {"train": 1, "validation": 2, "test": 3, "addsent": 11, "addany": 12, "addonesent": 13}
_QA_WORDS = (40, 70)  # context length in words (default 3-5 sentences)
_QA_SENTENCES = (3, 5)


def _qa_words(sentences: tuple[int, int]) -> tuple[int, int]:
    """Accepted context length in words for a range of sentences per context."""
    if tuple(sentences) == _QA_SENTENCES:
        return _QA_WORDS
    return 8 * sentences[0], 16 * sentences[1]
_FMT = string.Formatter()


def _render(template: str, vals: dict) -> tuple[str, dict[str, int]]:
    """``template`` filled from ``vals`` and the character offset of each slot (first use)."""
    out: list[str] = []
    offsets: dict[str, int] = {}
    pos = 0
    for lit, field, _spec, _conv in _FMT.parse(template):
        out.append(lit)
        pos += len(lit)
        if field is not None:
            v = vals[field]
            offsets.setdefault(field, pos)
            out.append(v)
            pos += len(v)
    return "".join(out), offsets


def _toks(text: str) -> set[str]:
    return {w.strip(".,?").lower() for w in text.replace("'s", "").split()} - {""}


def _fmt_number(n: int) -> str:
    return f"{n:,}"


def _entity(rng: np.random.Generator, typ: str, avoid: set[str], *, near: str | None = None) -> str:
    """A random entity of type ``typ`` none of whose name words is in ``avoid`` (lower case)."""
    for _ in range(200):
        if typ == "person":
            v = f"{_pick(rng, _FIRST)} {_pick(rng, _SURNAMES)}"
        elif typ == "town":
            v = _pick(rng, _TOWNS)
        elif typ == "river":
            v = _pick(rng, _RIVERS)
        elif typ == "org":
            v = f"{_pick(rng, _ORG_STEMS)} {_pick(rng, sorted(_ORG_TYPES))}"
        elif typ == "prize":
            v = f"{_pick(rng, _PRIZE_STEMS)} {_pick(rng, _PRIZE_KINDS)}"
        elif typ == "event":
            v = f"{_pick(rng, _EVENT_STEMS)} {_pick(rng, _EVENT_KINDS)}"
        elif typ == "year":
            base = int(near) if near else 1850
            v = str(base + int(rng.integers(-25, 26)))
        elif typ == "number":
            base = int(near.replace(",", "")) if near else 100
            n = int(base * float(rng.uniform(0.4, 2.5)))
            if base >= 2000:
                n = max(100, round(n, -2))
            v = _fmt_number(max(2, n))
        else:
            raise ValueError(typ)
        name_words = v.split() if typ not in ("org", "prize", "event") else v.split()[:1]
        if typ in ("year", "number"):
            name_words = [v]
        if not any(w.lower() in avoid for w in name_words):
            return v
    raise RuntimeError(f"no fresh {typ} entity")  # pragma: no cover - lexicons are large enough


def _perturb(rng: np.random.Generator, typ: str, value: str, avoid: set[str]) -> str:
    """A nearby but different entity: one part of a two-part name changed, or a fresh one."""
    parts = value.split()
    for _ in range(200):
        if typ == "person":
            if rng.random() < 0.5:
                v = f"{_pick(rng, _FIRST)} {parts[1]}"
            else:
                v = f"{parts[0]} {_pick(rng, _SURNAMES)}"
            new = [w for w in v.split() if w not in parts]
        elif typ in ("org", "prize", "event"):
            stems, kinds = {"org": (_ORG_STEMS, sorted(_ORG_TYPES)), "prize": (_PRIZE_STEMS, _PRIZE_KINDS),
                            "event": (_EVENT_STEMS, _EVENT_KINDS)}[typ]
            if rng.random() < 0.5:
                v = f"{_pick(rng, stems)} {parts[1]}"
                new = v.split()[:1]
            else:
                v = f"{parts[0]} {_pick(rng, kinds)}"
                new = []
        elif typ == "year":
            v = str(int(value) + int(_pick(rng, [-1, 1])) * int(rng.integers(1, 16)))
            new = [v]
        else:
            v = _entity(rng, typ, avoid, near=value)
            new = v.split()
        if v != value and not any(w.lower() in avoid for w in new):
            return v
    raise RuntimeError(f"cannot perturb {value!r}")  # pragma: no cover


def _answers(typ: str, context: str, start: int, text: str) -> tuple[list[str], list[int]]:
    """Gold answers: the entity itself plus up to two other acceptable spans around it."""
    texts, starts = [text], [start]
    before, after = context[:start], context[start + len(text):]
    if typ == "person":
        first = text.split()[0]
        texts.append(text[len(first) + 1:])
        starts.append(start + len(first) + 1)
    elif typ in ("org", "prize", "event"):
        if before.lower().endswith("the "):
            texts.append(before[-4:] + text)
            starts.append(start - 4)
    elif typ == "town":
        for pre in ("the town of ", "the city of "):
            if before.endswith(pre):
                texts.append(pre + text)
                starts.append(start - len(pre))
    elif typ == "river":
        if before.endswith("the river "):
            texts += ["river " + text, "the river " + text]
            starts += [start - 6, start - 10]
    elif typ == "year":
        if before.endswith("in "):
            texts.append("in " + text)
            starts.append(start - 3)
    elif typ == "number":
        word = after.split(" ", 2)[1] if after.startswith(" ") and len(after.split(" ")) > 1 else ""
        word = word.rstrip(".,")
        if word.isalpha():
            texts.append(f"{text} {word}")
            starts.append(start)
    return texts[:3], starts[:3]


def _qa_world(rng: np.random.Generator, topic: str) -> tuple[dict[str, str], set[str]]:
    """The slot values of one context (every entity distinct) and their name words."""
    used: set[str] = set()

    def new(typ: str, near: str | None = None) -> str:
        v = _entity(rng, typ, used, near=near)
        used.update(w.lower() for w in (v.split() if typ not in ("org", "prize", "event") else v.split()[:1]))
        if typ in ("year", "number"):
            used.add(v.lower())
        return v

    w: dict[str, str] = {"job": _pick(rng, _JOBS), "job0": _pick(rng, _JOBS), "job2": _pick(rng, _JOBS),
                         "season": _pick(rng, _SEASONS), "size": _pick(rng, _SIZES),
                         "T": _pick(rng, _BOOK_TOPICS)}
    for k in ("job", "job0", "job2"):
        w["a" + k] = _art(w[k])
    if topic == "person":
        w["P"] = new("person")
        female = w["P"].split()[0] in _FEMALE
        w["S"] = new("person")
        w["spouse"] = "wife" if w["S"].split()[0] in _FEMALE else "husband"
        w["child"] = "daughter" if female else "son"
        w["pron"] = "she" if female else "he"
        for k in ("C1", "C2", "C3"):
            w[k] = new("town")
        y = int(rng.integers(1720, 1901))
        w["Y1"] = str(y)
        w["Y2"] = str(y + int(rng.integers(18, 29)))
        w["Y3"] = str(y + int(rng.integers(29, 41)))
        w["Y4"] = str(y + int(rng.integers(41, 56)))
        w["Y5"] = str(y + int(rng.integers(58, 91)))
        w["O"] = new("org")
        w["Z"] = new("prize")
        w["N"] = str(int(rng.integers(3, 49)))
        w["title"] = w["P"]
    elif topic == "org":
        w["O"] = new("org")
        otype = w["O"].split()[1]
        w["otype"] = otype.lower()
        w["mem"] = _ORG_TYPES[otype]
        w["F"] = new("person")
        w["L"] = new("person")
        w["C"] = new("town")
        w["Z"] = new("prize")
        y = int(rng.integers(1750, 1951))
        w["Y1"] = str(y)
        w["Y2"] = str(int(rng.integers(max(y + 30, 1975), 2024)))
        w["N"] = _fmt_number(int(rng.integers(40, 4800)))
        w["title"] = w["O"]
    else:
        w["C"] = new("town")
        w["V"] = new("river")
        w["F"] = new("person")
        w["M"] = new("person")
        w["E"] = new("event")
        w["Y1"] = str(int(rng.integers(1150, 1801)))
        w["Y2"] = str(int(rng.integers(2001, 2024)))
        w["N"] = _fmt_number(int(rng.integers(20, 6000)) * 100)
        w["title"] = w["C"]
    for k in ("Y1", "Y2", "Y3", "Y4", "Y5", "N"):
        if k in w:
            used.add(w[k].lower())
    return w, used


def _refs(rng: np.random.Generator, topic: str, w: dict[str, str]) -> dict[str, str]:
    """How a later sentence refers to the topic."""
    if topic == "person":
        if rng.random() < 0.35:
            pron = w["pron"]
            pos = "her" if pron == "she" else "his"
            return {"Ref": pron.capitalize(), "ref": pron, "Pos": pos.capitalize(), "pos": pos}
        last = w["P"].split()[1]
        pos = "her" if w["pron"] == "she" else "his"
        return {"Ref": last, "ref": last, "Pos": f"{last}'s", "pos": pos}
    if topic == "org":
        if rng.random() < 0.5:
            return {"Ref": "It", "ref": "it", "Pos": "Its", "pos": "its"}
        t = w["otype"]
        return {"Ref": f"The {t}", "ref": f"the {t}", "Pos": f"The {t}'s", "pos": f"the {t}'s"}
    if rng.random() < 0.5:
        return {"Ref": w["C"], "ref": w["C"]}
    return {"Ref": "The town", "ref": "the town"}


def _qa_context(rng: np.random.Generator, topic: str, sentences: tuple[int, int] = _QA_SENTENCES):
    """(world, avoid words, title, context, {fact: (sentence start, slot offsets)})."""
    w, used = _qa_world(rng, topic)
    openers, others = _TOPICS[topic]
    first = _pick(rng, openers)
    rest = [f for f in others if f != first]
    if tuple(sentences) == _QA_SENTENCES:
        k = min(len(rest), int(rng.choice([2, 3, 4], p=[0.2, 0.4, 0.4])))
    else:  # facts after the opener: uniform over the configured range
        k = min(len(rest), int(rng.integers(sentences[0] - 1, sentences[1])))
    chosen = sorted(rng.choice(len(rest), size=k, replace=False).tolist())
    facts = [first] + [rest[j] for j in chosen]
    sentences, where, pos = [], {}, 0
    for j, fact in enumerate(facts):
        vals = dict(w)
        if j == 0:  # the first sentence names the topic in full
            vals.update({"Ref": w["title"] if topic != "org" else f"The {w['O']}",
                         "ref": w["title"] if topic != "org" else f"the {w['O']}"})
        else:
            vals.update(_refs(rng, topic, w))
        text, offs = _render(_pick(rng, _FACTS[fact]), vals)
        sentences.append(text)
        where[fact] = (pos, offs)
        pos += len(text) + 1
    return w, used, w["title"], " ".join(sentences), where


def _qa_examples(rng: np.random.Generator, n: int, seen: set[str],
                 sentences: tuple[int, int] = _QA_SENTENCES) -> list[dict]:
    """``n`` questions over fresh contexts (1 or 2 questions per context)."""
    rows: list[dict] = []
    while len(rows) < n:
        for _ in range(1000):
            topic = _pick(rng, ["person", "person", "org", "town"])
            w, used, title, context, where = _qa_context(rng, topic, sentences)
            lo, hi = _qa_words(sentences)
            if context not in seen and lo <= len(context.split()) <= hi:
                break
        seen.add(context)
        asks = [(fact, slot) for fact in where for slot in _ASKABLE[fact] if slot in where[fact][1]]
        m = min(n - len(rows), len(asks), 1 if rng.random() < 0.6 else 2)
        for j in sorted(rng.choice(len(asks), size=m, replace=False).tolist()):
            fact, slot = asks[j]
            q_tpl, decl = _pick(rng, _QUESTIONS[(fact, slot)])
            question, _ = _render(q_tpl, w)
            sent_start, offs = where[fact]
            typ = _SLOT_TYPES[slot]
            texts, starts = _answers(typ, context, sent_start + offs[slot], w[slot])
            rows.append({"title": title, "context": context, "question": question,
                         "answer_text": texts, "answer_start": starts,
                         # kept for the adversaries, not written out
                         "_world": w, "_avoid": used, "_slot": slot, "_decl": decl})
    return rows


def _has_gold(text: str, golds: list[str]) -> bool:
    low = text.lower()
    return any(g.lower() in low for g in golds)


def _addsent(rng: np.random.Generator, row: dict, k: int) -> list[str]:
    """``k`` AddSent-like distractors: the question as a statement, every entity of the question
    swapped for a nearby one (one name part changed, a close year, another town) and the answer
    slot filled with a fake answer of the same type."""
    w, slot, decl = row["_world"], row["_slot"], row["_decl"]
    golds = row["answer_text"]
    avoid = set(row["_avoid"]) | {g.lower() for g in golds}
    fields = [f for _, f, _, _ in _FMT.parse(decl) if f is not None]
    out: list[str] = []
    for _ in range(50 * k):
        if len(out) == k:
            break
        vals = dict(w)
        taken = set(avoid)  # the new words of this distractor are distinct too
        for f in fields:
            if f != "A" and f in _SLOT_TYPES:
                vals[f] = _perturb(rng, _SLOT_TYPES[f], w[f], taken)
                taken |= _toks(vals[f])
        vals["A"] = _entity(rng, _SLOT_TYPES[slot], taken, near=w[slot])
        text, _ = _render(decl, vals)
        if text not in out and text not in row["context"] and not _has_gold(text, golds):
            out.append(text)
    return out


def _addany(rng: np.random.Generator, row: dict, k: int) -> list[str]:
    """``k`` AddAny-like distractors: a shuffled, ungrammatical mix of question words and common
    words with a fake answer of the answer's type somewhere in it."""
    w, slot, golds = row["_world"], row["_slot"], row["answer_text"]
    avoid = set(row["_avoid"]) | {g.lower() for g in golds}
    qwords = [t.strip("?,.") for t in row["question"].split()]
    out: list[str] = []
    for _ in range(50 * k):
        if len(out) == k:
            break
        nq = max(1, int(round(len(qwords) * float(rng.uniform(0.5, 0.9)))))
        words = [qwords[j] for j in rng.choice(len(qwords), size=nq, replace=False).tolist()]
        words += [_pick(rng, _COMMON) for _ in range(int(rng.integers(4, 8)))]
        words = [words[j] for j in rng.permutation(len(words)).tolist()]
        words.insert(int(rng.integers(len(words) + 1)), _entity(rng, _SLOT_TYPES[slot], avoid, near=w[slot]))
        text = " ".join(words) + " ."
        if text not in out and not _has_gold(text, golds):
            out.append(text)
    return out


def _qa_frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame({
        "id": pd.Series([r["id"] for r in rows], dtype="str"),
        "title": pd.Series([r["title"] for r in rows], dtype="str"),
        "context": pd.Series([r["context"] for r in rows], dtype="str"),
        "question": pd.Series([r["question"] for r in rows], dtype="str"),
        "answer_text": pd.Series([list(r["answer_text"]) for r in rows], dtype="object"),
        "answer_start": pd.Series([[int(x) for x in r["answer_start"]] for r in rows], dtype="object"),
    })
    df["idx"] = pd.Series(np.arange(len(rows)), dtype="int64")
    return df


def _generate_qa(s: dict) -> dict[str, pd.DataFrame]:
    seed = s["seed"]

    def rng(stream: str) -> np.random.Generator:
        return QA.rng(seed, _QA_STREAMS[stream])

    seen: set[str] = set()
    out: dict[str, pd.DataFrame] = {}
    splits: dict[str, list[dict]] = {}
    next_id = 0
    for split in ("train", "validation", "test"):
        rows = _qa_examples(rng(split), s[f"n_{split}"], seen, tuple(s["sentences"]))
        for r in rows:
            r["id"] = f"dq{next_id:06d}"
            next_id += 1
        splits[split] = rows
        out[split] = _qa_frame(rows)

    test = splits["test"]
    advs = s["adversaries"]
    cand: dict[str, list[list[str]]] = {}
    if "addsent" in advs or "addonesent" in advs:
        r = rng("addsent")
        cand["addsent"] = [_addsent(r, row, s["variants"]) for row in test]
    if "addany" in advs:
        r = rng("addany")
        cand["addany"] = [_addany(r, row, s["variants"]) for row in test]
    if "addonesent" in advs:
        r = rng("addonesent")
        cand["addonesent"] = [[_pick(r, c)] if c else [] for c in cand["addsent"]]
    for adv in advs:
        rows = []
        for row, distractors in zip(test, cand[adv]):
            rows.append(row)
            for k, d in enumerate(distractors):
                rows.append({**row, "id": f"{row['id']}-{adv}{k}", "context": f"{row['context']} {d}"})
        out[adv] = _qa_frame(rows)
    return out


@register("qa")
class QA(DemoGenerator):
    stream = 2

    @classmethod
    def resolve(cls, spec: dict) -> dict:
        return _resolve_qa_spec(spec)

    @classmethod
    def generate(cls, s: dict) -> dict[str, pd.DataFrame]:
        return _generate_qa(s)
