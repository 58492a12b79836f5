"""Generator ``meaning``: ViGGO-like text -> meaning representation (Table 1's ViGGO task, which
reverses ViGGO's data-to-text direction).

Spec: ``{source: demo, generator: meaning, seed: 0, n_train: 160, n_validation: 24, n_test: 48}``.
Splits ``train``, ``validation``, ``test`` with ViGGO's columns ``mr`` (str), ``ref`` (str) and
``idx`` (0..n-1); validation and test never repeat a train ``ref`` (nor each other's).

An ``mr`` is ViGGO's ``fn(attr[value], ...)``, e.g.
``inform(name[Moon Forge], release_year[2014], genres[puzzle, strategy])``, with seven of
ViGGO's function types (inform, confirm, give_opinion, recommend, request_attribute, suggest,
verify_attribute), its attributes and its value spellings (``esrb[T (for Teen)]``,
``player_perspective[bird view]``, ``genres[driving/racing]``, yes/no flags, an empty value in
``request_attribute(genres[])``); list values are comma-separated. The attributes are written
in ViGGO's canonical order (name, exp_release_date, release_year, developer, esrb, rating,
genres, player_perspective, platforms, available_on_steam, has_linux_release,
has_mac_release), whatever order the sentence says them in.

A ``ref`` is one short sentence (about 10-25 words) that realises every slot: each function
type has two or three sentence frames (a statement for inform, "I think ..." for give_opinion,
"Have you tried ...?" for recommend, ...) and the slots outside the frame's fixed places are
said as modifiers in a random order, so the attribute order of the sentence varies and has to
be mapped to the canonical one (the ``viggo`` scorer ignores the order anyway). A few values
are said in other words than the MR writes them ("rated M" for ``esrb[M (for Mature)]``,
"racing" for ``driving/racing``, "great" for ``rating[excellent]``, "top-down" for
``bird view``), so an untuned model does not get them by copying. Game names and studios are
invented.

The ``_base.GenerationGenerator`` driver (shared with ``sql`` and ``arithmetic``) draws each
split from its own random stream and skips examples already drawn for an earlier split.
"""

from __future__ import annotations

import numpy as np

from ._base import GenerationGenerator, _pick, register


def _join(items: list[str], word: str = "and") -> str:
    if len(items) <= 2:
        return f" {word} ".join(items)
    return ", ".join(items[:-1]) + f", {word} " + items[-1]


# --------------------------------------------------------------------------- ViGGO vocabulary

#: ViGGO's function types used here
FUNCTIONS = ("inform", "confirm", "give_opinion", "recommend", "request_attribute", "suggest",
             "verify_attribute")
#: ViGGO's attributes in their canonical MR order
ATTRIBUTES = ("name", "exp_release_date", "release_year", "developer", "esrb", "rating", "genres",
              "player_perspective", "platforms", "available_on_steam", "has_linux_release",
              "has_mac_release", "specifier")

_NAMES = ["Moon Forge", "Star Drift", "Iron Tide", "Pixel Quest", "Dune Runner", "Frost Keep",
          "Rune Valley", "Neon Rally", "Sky Harbor", "Ember Road", "Glass Tower", "Hollow Crown",
          "Storm Lane", "Coral Maze", "Velvet Sun", "Dust Garden", "Night Orchard", "Copper Wing",
          "Silent Reef", "Ash Kingdom", "Lantern Bay", "Brick Giant", "Thorn Castle", "Echo Planet"]
_DEVELOPERS = ["Redfox", "Owlwork", "Bluepine", "Stonegate", "Kitebird", "Lumen Labs", "Paper Moth",
               "Grey Otter"]
# MR value -> how a sentence says it
_GENRES = {"action": "action", "adventure": "adventure", "puzzle": "puzzle", "role-playing": "role-playing",
           "shooter": "shooter", "strategy": "strategy", "platformer": "platformer",
           "simulation": "simulation", "sport": "sports", "driving/racing": "racing",
           "fighting": "fighting", "action-adventure": "action-adventure"}
_PERSPECTIVES = {"first person": "first person", "third person": "third person", "side view": "side view",
                 "bird view": "top-down"}
_PLATFORMS = ["PC", "PlayStation", "Xbox", "Nintendo Switch"]
_ESRB = {"E (for Everyone)": "E", "E 10+ (for Everyone 10 and Older)": "E 10+", "T (for Teen)": "T",
         "M (for Mature)": "M"}
_RATINGS = {"poor": "bad", "average": "average", "good": "good", "excellent": "great"}
_MONTHS = ["January", "March", "April", "June", "August", "September", "October", "November"]
# yes/no flags -> (said when yes, said when no)
_FLAGS = {"available_on_steam": ("available on Steam", "not available on Steam"),
          "has_linux_release": ("with a Linux version", "with no Linux version"),
          "has_mac_release": ("with a Mac version", "with no Mac version")}
# request_attribute: the attribute asked for -> questions
_ASK = {"genres": ["What kind of games do you like?", "Which game genres do you enjoy most?"],
        "player_perspective": ["Which perspective do you prefer in games?",
                               "Do you like games with a particular camera view?"],
        "platforms": ["What platform do you usually play on?", "Which gaming platform do you use most?"],
        "developer": ["Do you have a favorite game studio?", "Which game developer do you like most?"],
        "esrb": ["What ESRB rating do your games usually have?"],
        "release_year": ["Do you prefer older or newer games?"],
        "available_on_steam": ["Do you buy your games on Steam?"]}

# said before a request_attribute question (ViGGO's questions come in many wordings)
_OPENERS = ["", "By the way, ", "Just curious, ", "Tell me, ", "So, ", "I wonder, "]


def _mr(fn: str, slots: dict[str, str]) -> str:
    return f"{fn}(" + ", ".join(f"{a}[{slots[a]}]" for a in ATTRIBUTES if a in slots) + ")"


def _sample(rng: np.random.Generator, seq, k: int) -> list:
    return [seq[j] for j in sorted(rng.choice(len(seq), size=k, replace=False).tolist())]


def _listed(rng: np.random.Generator, pool, most: int = 2) -> list[str]:
    """1..most items of ``pool`` in a random order (the MR keeps that order)."""
    k = 1 if rng.random() < 0.6 else most
    return [pool[j] for j in rng.choice(len(pool), size=k, replace=False).tolist()]


def _value(rng: np.random.Generator, attr: str) -> list[str] | str:
    if attr == "name":
        return _pick(rng, _NAMES)
    if attr == "developer":
        return _pick(rng, _DEVELOPERS)
    if attr == "release_year":
        return str(int(rng.integers(1996, 2024)))
    if attr == "exp_release_date":
        return f"{_pick(rng, _MONTHS)} {int(rng.integers(2025, 2028))}"
    if attr == "esrb":
        return _pick(rng, list(_ESRB))
    if attr == "rating":
        return _pick(rng, list(_RATINGS))
    if attr == "genres":
        return _listed(rng, list(_GENRES))
    if attr == "player_perspective":
        return _pick(rng, list(_PERSPECTIVES))
    if attr == "platforms":
        return _listed(rng, _PLATFORMS)
    if attr in _FLAGS:
        return _pick(rng, ["yes", "no"])
    raise ValueError(attr)  # pragma: no cover


def _genres(v: list[str]) -> str:
    return _join([_GENRES[g] for g in v])


def _article(phrase: str) -> str:
    return ("an " if phrase[0].lower() in "aeiou" else "a ") + phrase


def _post(attr: str, v) -> str:
    """A post-modifier of a game ("from 2014", "by Redfox", "for PC and Xbox", ...)."""
    if attr == "release_year":
        return f"from {v}"
    if attr == "exp_release_date":
        return f"coming out in {v}"
    if attr == "developer":
        return f"by {v}"
    if attr == "platforms":
        return f"for {_join(v)}"
    if attr == "esrb":
        return f"rated {_ESRB[v]}"
    if attr in _FLAGS:
        return _FLAGS[attr][0 if v == "yes" else 1]
    raise ValueError(attr)  # pragma: no cover


def _noun(vals: dict, with_rating: bool = True) -> str:
    """"a great top-down racing game": the rating, perspective and genres that are slots."""
    words = []
    if with_rating and "rating" in vals:
        words.append(_RATINGS[vals["rating"]])
    if "player_perspective" in vals:
        words.append(_PERSPECTIVES[vals["player_perspective"]])
    if "genres" in vals:
        words.append(_genres(vals["genres"]))
    return _article(" ".join(words + ["game"]))


def _bare(noun: str) -> str:
    """The noun phrase without its article."""
    return noun.split(" ", 1)[1]


def _posts(rng: np.random.Generator, vals: dict, attrs) -> list[str]:
    order = [a for a in attrs if a in vals]
    return [_post(a, vals[a]) for a in (order[j] for j in rng.permutation(len(order)).tolist())]


def _tail(posts: list[str]) -> str:
    return "".join((" " if j == 0 else ", ") + p for j, p in enumerate(posts))


_POST_ATTRS = ("release_year", "exp_release_date", "developer", "platforms", "esrb", "available_on_steam",
               "has_linux_release", "has_mac_release")


def _inform(rng: np.random.Generator) -> tuple[dict, str]:
    extra = ["release_year", "developer", "esrb", "rating", "genres", "player_perspective", "platforms",
             "available_on_steam", "has_linux_release", "has_mac_release"]
    attrs = _sample(rng, extra, int(rng.integers(2, 4)))
    if "release_year" in attrs and rng.random() < 0.2:
        attrs[attrs.index("release_year")] = "exp_release_date"
    vals = {a: _value(rng, a) for a in ["name", *attrs]}
    name = vals["name"]
    posts = _posts(rng, vals, _POST_ATTRS)
    frame = int(rng.integers(3))
    if frame == 1 and posts:  # one modifier in front: "From 2014, Moon Forge is ..."
        first = posts.pop(0)
        return vals, f"{first[0].upper()}{first[1:]}, {name} is {_noun(vals)}{_tail(posts)}."
    if frame == 2 and "rating" in vals:  # the rating as the predicate: "... is a great game"
        noun = _noun(vals, with_rating=False)
        return vals, f"{noun[0].upper()}{noun[1:]}{_tail(posts)}, {name} is {_RATINGS[vals['rating']]}."
    return vals, f"{name} is {_noun(vals)}{_tail(posts)}."


def _confirm(rng: np.random.Generator) -> tuple[dict, str]:
    attrs = _sample(rng, ["release_year", "developer", "platforms"], int(rng.integers(1, 3)))
    vals = {a: _value(rng, a) for a in ["name", *attrs]}
    posts = _posts(rng, vals, _POST_ATTRS)
    if rng.random() < 0.5:
        return vals, f"Oh, do you mean {vals['name']}, the game{_tail(posts)}?"
    return vals, f"Are you talking about the game{_tail(posts)}, {vals['name']}?"


def _give_opinion(rng: np.random.Generator) -> tuple[dict, str]:
    attrs = ["rating"] + _sample(rng, ["genres", "player_perspective", "platforms", "release_year"],
                                 int(rng.integers(0, 2)))
    vals = {a: _value(rng, a) for a in ["name", *attrs]}
    name, rating = vals["name"], _RATINGS[vals["rating"]]
    posts = _posts(rng, vals, _POST_ATTRS)
    frame = int(rng.integers(3))
    if frame == 0:
        return vals, f"I think {name} is {_noun(vals)}{_tail(posts)}."
    noun = _noun(vals, with_rating=False)
    if frame == 1 and noun != "a game":
        return vals, f"In my opinion, {name}, {noun}{_tail(posts)}, is really {rating}."
    return vals, f"If you ask me, {name}{_tail(posts)} is {rating}."


def _recommend(rng: np.random.Generator) -> tuple[dict, str]:
    attrs = _sample(rng, ["genres", "player_perspective", "platforms", "has_mac_release", "has_linux_release",
                          "available_on_steam"], int(rng.integers(1, 3)))
    vals = {a: _value(rng, a) for a in ["name", *attrs]}
    for a in _FLAGS:  # a recommendation names what the game has
        if a in vals:
            vals[a] = "yes"
    name = vals["name"]
    posts = _posts(rng, vals, _POST_ATTRS)
    noun = _noun(vals)
    if rng.random() < 0.5:
        return vals, f"Have you tried {name}? It is {noun}{_tail(posts)}."
    return vals, f"If you like {_bare(noun)}s{_tail(posts)}, you should try {name}."


def _request_attribute(rng: np.random.Generator) -> tuple[dict, str]:
    attr = _pick(rng, list(_ASK))
    question = _pick(rng, _ASK[attr])
    opener = _pick(rng, _OPENERS)
    return {attr: ""}, f"{opener}{question[0].lower()}{question[1:]}" if opener else question


def _suggest(rng: np.random.Generator) -> tuple[dict, str]:
    attrs = ["genres"] + _sample(rng, ["player_perspective", "platforms"], int(rng.integers(0, 2)))
    vals = {a: _value(rng, a) for a in ["name", *attrs]}
    name = vals["name"]
    kind = _bare(_noun(vals))  # "top-down racing game"
    on = f" on {_join(vals['platforms'])}" if "platforms" in vals else ""
    if rng.random() < 0.5:
        return vals, f"Do you also like playing {kind}s{on}, like {name}?"
    return vals, f"Since you liked {name}, do you enjoy other {kind}s{on}?"


def _verify_attribute(rng: np.random.Generator) -> tuple[dict, str]:
    attrs = ["rating"] + _sample(rng, ["genres", "platforms", "release_year", "player_perspective"], 1)
    vals = {a: _value(rng, a) for a in ["name", *attrs]}
    name, rating = vals["name"], _RATINGS[vals["rating"]]
    posts = _posts(rng, vals, _POST_ATTRS)
    noun = _noun(vals, with_rating=False)
    if rng.random() < 0.5:
        return vals, f"You said {name}, {noun}{_tail(posts)}, was {rating}. Is that right?"
    return vals, f"So you found {name}, the {_bare(noun)}{_tail(posts)}, {rating}?"


_FUNCTIONS = {"inform": _inform, "confirm": _confirm, "give_opinion": _give_opinion, "recommend": _recommend,
              "request_attribute": _request_attribute, "suggest": _suggest, "verify_attribute": _verify_attribute}
# ViGGO is mostly inform
_WEIGHTS = np.array([4, 1, 2, 1.5, 1, 1.5, 1.5])


def _slot_text(v) -> str:
    return ", ".join(v) if isinstance(v, list) else str(v)


@register("meaning")
class Meaning(GenerationGenerator):
    stream = 6
    columns = ("mr", "ref")

    @classmethod
    def example(cls, rng):
        fn = FUNCTIONS[int(rng.choice(len(FUNCTIONS), p=_WEIGHTS / _WEIGHTS.sum()))]
        vals, ref = _FUNCTIONS[fn](rng)
        return _mr(fn, {a: _slot_text(v) for a, v in vals.items()}), ref

    @classmethod
    def key(cls, row):
        return row[1]
