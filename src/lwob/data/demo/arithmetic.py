"""Generator ``arithmetic``: GSM8K-like grade-school word problems (Table 1's GSM8k task).

Spec: ``{source: demo, generator: arithmetic, seed: 0, n_train: 160, n_validation: 24, n_test: 48}``.
Splits ``train``, ``validation``, ``test`` with GSM8K's columns ``question`` (str), ``answer``
(str) and ``idx`` (0..n-1); validation and test never repeat a train question (nor each
other's).

A ``question`` is a one-step (60%) or two-step (40%) word problem (ten templates: groups,
giving away, adding up, sharing, hourly production, change from a bill, rows plus extras, two
purchases, pages left, daily pay) with every number written in digits. The ``answer`` is
GSM8K's: one line of reasoning per step, each step's arithmetic written out with GSM8K's
calculator annotation (``3*12 = <<3*12=36>>36``, as GSM8K's ``48/2 = <<48/2=24>>24``), then
``#### <number>`` on the last line, e.g.::

    Tom has 3*12 = <<3*12=36>>36 apples.
    #### 36

Every operand of an annotation is a number of the question or the result of an earlier
step, every number of the question is used, and the final answer is the last step's result,
so the answer can be recomputed from the question. Results are whole numbers, positive, and
written plainly (``#### 2000``, no thousands separator, as GSM8K); the hourly-production
template gives results of 1000 or more. Numbers are kept small: the SmolLM2 tokenizer spends
one token per digit, and a two-step answer repeats each intermediate result four times.
"""

from __future__ import annotations

import numpy as np

from ._base import GenerationGenerator, _pick, register

_PEOPLE = {"Tom": "he", "Mia": "she", "Sam": "he", "Lena": "she", "Omar": "he", "Ava": "she", "Ben": "he",
           "Nora": "she", "Raj": "he", "Zoe": "she", "Leo": "he", "Ines": "she", "Kofi": "he", "Ella": "she"}
_THINGS = ["apples", "pencils", "stickers", "marbles", "cookies", "cards", "shells", "balloons", "eggs", "books"]
_CONTAINERS = ["boxes", "bags", "jars", "packs", "baskets"]
_PRODUCTS = [("factory", "toys"), ("bakery", "rolls"), ("printer", "pages"), ("farm", "eggs"),
             ("machine", "bottles")]
_SHOP = ["pen", "notebook", "mug", "ball", "kite", "hat", "lamp", "plant"]
_TREES = ["trees", "flowers", "bushes", "roses"]
_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a // b}


def _calc(a: int, op: str, b: int) -> tuple[str, int]:
    """GSM8K's written step ``a*b = <<a*b=c>>c`` and its result ``c``."""
    c = _OPS[op](a, b)
    assert c >= 0 and (op != "/" or a % b == 0)
    return f"{a}{op}{b} = <<{a}{op}{b}={c}>>{c}", c


def _answer(lines: list[str], result: int) -> str:
    return "\n".join(lines + [f"#### {result}"])


def _person(rng: np.random.Generator) -> tuple[str, str]:
    """A name and its pronoun."""
    name = _pick(rng, list(_PEOPLE))
    return name, _PEOPLE[name]


def _groups(rng):
    name, he = _person(rng)
    a, b = int(rng.integers(2, 10)), int(rng.integers(3, 25))
    things, box = _pick(rng, _THINGS), _pick(rng, _CONTAINERS)
    step, c = _calc(a, "*", b)
    return (f"{name} has {a} {box} with {b} {things} in each. How many {things} does {he} have?",
            _answer([f"{name} has {step} {things}."], c))


def _give(rng):
    name, he = _person(rng)
    friend = _pick(rng, [p for p in _PEOPLE if p != name])
    a = int(rng.integers(20, 100))
    b = int(rng.integers(5, a - 4))
    things = _pick(rng, _THINGS)
    step, c = _calc(a, "-", b)
    return (f"{name} had {a} {things}. {he.capitalize()} gave {b} of them to {friend}. "
            f"How many {things} does {name} have left?",
            _answer([f"{name} has {step} {things} left."], c))


def _add(rng):
    name, he = _person(rng)
    a, b = int(rng.integers(10, 90)), int(rng.integers(10, 90))
    things = _pick(rng, _THINGS)
    step, c = _calc(a, "+", b)
    return (f"{name} collected {a} {things} on Monday and {b} on Tuesday. How many {things} did {he} collect in all?",
            _answer([f"{name} collected {step} {things}."], c))


def _share(rng):
    name, _ = _person(rng)
    b, c0 = int(rng.integers(2, 9)), int(rng.integers(3, 16))
    a = b * c0
    things = _pick(rng, _THINGS)
    step, c = _calc(a, "/", b)
    return (f"{name} shares {a} {things} equally among {b} friends. How many {things} does each friend get?",
            _answer([f"Each friend gets {step} {things}."], c))


def _hourly(rng):
    place, goods = _pick(rng, _PRODUCTS)
    a = _pick(rng, [120, 125, 150, 200, 250, 300, 400, 500])
    b = int(rng.integers(3, 13))
    step, c = _calc(a, "*", b)
    return (f"A {place} makes {a} {goods} every hour. How many {goods} does it make in {b} hours?",
            _answer([f"It makes {step} {goods}."], c))


def _change(rng):
    name, he = _person(rng)
    item = _pick(rng, _SHOP)
    a, p = int(rng.integers(2, 7)), int(rng.integers(2, 9))
    m = next(x for x in (10, 20, 50) if x > a * p)
    s1, x = _calc(a, "*", p)
    s2, y = _calc(m, "-", x)
    return (f"{name} buys {a} {item}s at ${p} each and pays with a ${m} bill. How much change does {he} get?",
            _answer([f"The {item}s cost {s1} dollars.", f"So {he} gets {s2} dollars back."], y))


def _rows(rng):
    name, he = _person(rng)
    plants = _pick(rng, _TREES)
    a, b, c0 = int(rng.integers(2, 7)), int(rng.integers(3, 10)), int(rng.integers(2, 20))
    s1, x = _calc(a, "*", b)
    s2, y = _calc(x, "+", c0)
    return (f"{name} plants {a} rows of {b} {plants} and then {c0} more {plants}. "
            f"How many {plants} does {he} plant in all?",
            _answer([f"The rows have {s1} {plants}.", f"In all {s2} {plants}."], y))


def _purchases(rng):
    one, two = (_SHOP[j] for j in rng.choice(len(_SHOP), size=2, replace=False).tolist())
    a, p, q = int(rng.integers(2, 6)), int(rng.integers(2, 13)), int(rng.integers(3, 30))
    s1, x = _calc(a, "*", p)
    s2, y = _calc(x, "+", q)
    return (f"A {one} costs ${p} and a {two} costs ${q}. How much do {a} {one}s and one {two} cost?",
            _answer([f"The {one}s cost {s1} dollars.", f"In total {s2} dollars."], y))


def _pages(rng):
    name, he = _person(rng)
    a, b = int(rng.integers(5, 16)), int(rng.integers(2, 7))
    total = a * b + int(rng.integers(5, 40))
    s1, x = _calc(a, "*", b)
    s2, y = _calc(total, "-", x)
    return (f"A book has {total} pages. {name} reads {a} pages a day for {b} days. How many pages are left?",
            _answer([f"{he.capitalize()} reads {s1} pages.", f"So {s2} pages are left."], y))


def _pay(rng):
    name, he = _person(rng)
    a, b, w = int(rng.integers(5, 13)), int(rng.integers(3, 9)), int(rng.integers(2, 6))
    s1, x = _calc(a, "*", b)
    s2, y = _calc(x, "*", w)
    return (f"{name} earns ${a} an hour and works {b} hours a day. How much does {he} earn in {w} days?",
            _answer([f"{he.capitalize()} earns {s1} dollars a day.", f"So {s2} dollars in all."], y))


_TEMPLATES = (_groups, _give, _add, _share, _hourly, _change, _rows, _purchases, _pages, _pay)
# one-step problems 60%, two-step 40% (a two-step answer is about twice as long)
_WEIGHTS = np.array([0.12] * 5 + [0.08] * 5)


@register("arithmetic")
class Arithmetic(GenerationGenerator):
    stream = 8
    columns = ("question", "answer")

    @classmethod
    def example(cls, rng):
        return _TEMPLATES[int(rng.choice(len(_TEMPLATES), p=_WEIGHTS / _WEIGHTS.sum()))](rng)

    @classmethod
    def key(cls, row):
        return row[0]
