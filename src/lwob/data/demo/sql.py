"""Generator ``sql``: sql-create-context-like text-to-SQL (Table 1's SQL Generation task).

Spec: ``{source: demo, generator: sql, seed: 0, n_train: 160, n_validation: 24, n_test: 48}``.
Splits ``train``, ``validation``, ``test`` with that dataset's columns ``question`` (str),
``context`` (str), ``answer`` (str) and ``idx`` (0..n-1); validation and test never repeat a
train question over the same context (nor each other's).

A ``context`` is sql-create-context's: ``CREATE TABLE`` statements joined with ", ", text
columns ``VARCHAR`` and numbers ``INTEGER``, e.g.
``CREATE TABLE table_name_12 (nationality VARCHAR, player VARCHAR)``. The queried table has
the columns its query uses (as that dataset's WikiSQL part) and sometimes one more, in a
random order; its name is ``table_name_<n>`` (WikiSQL part) or a plain noun (``player``, as
the Spider part); some contexts hold a second, unrelated table first or last. Topics:
players, films, cities, songs, schools and races, each with a key text column, other text
columns and number columns.

The ``answer`` is one SQLite query in the dataset's style (double-quoted string literals,
numbers bare), from five templates:

* select with where: ``SELECT nationality FROM table_name_12 WHERE player = "Ken Hall"``
  (the condition may be on a number column: ``WHERE age = 23``);
* count: ``SELECT COUNT(*) FROM player WHERE age > 31`` (``>``, ``<`` or ``=`` on a text value);
* aggregate with where: ``SELECT MAX(goals) FROM table_name_3 WHERE team = "Rovers"`` (MIN,
  MAX, AVG);
* order by ... limit 1: ``SELECT player FROM table_name_40 ORDER BY goals DESC LIMIT 1``
  (``ORDER BY goals LIMIT 1`` for the lowest), selecting the key or another text column.

Questions name columns by their words ("What is the nationality of the player Ken Hall?",
"How many players have an age greater than 31?", "Which player has the most goals?") and quote
values as the query writes them, so every part of the answer is in the prompt. Every answer
parses with sqlglot (dialect sqlite) and uses only columns of the table it queries.
"""

from __future__ import annotations

import numpy as np

from ._base import GenerationGenerator, _pick, register

_FIRST = ["Ken", "Ana", "Luis", "Mia", "Omar", "Eva", "Ivan", "Nora", "Sam", "Lea", "Tom", "Rita", "Hugo",
          "Jana", "Raj", "Zoe"]
_LAST = ["Hall", "Moreno", "Berg", "Okafor", "Silva", "Novak", "Price", "Lund", "Tanaka", "Diaz", "Walsh",
         "Kerr", "Roth", "Ito"]
_COUNTRIES = ["Canada", "Brazil", "Norway", "Japan", "Kenya", "Spain", "Chile", "Poland", "Ghana", "Italy"]


def _person(rng: np.random.Generator) -> str:
    return f"{_pick(rng, _FIRST)} {_pick(rng, _LAST)}"


def _two_words(first: list[str], second: list[str]):
    return lambda rng: f"{_pick(rng, first)} {_pick(rng, second)}"


def _one_of(pool: list[str]):
    return lambda rng: _pick(rng, pool)


def _between(lo: int, hi: int):
    def draw(rng: np.random.Generator) -> int:
        return int(rng.integers(lo, hi + 1))

    draw.number = True  # a number column (INTEGER)
    return draw


# topic -> (row noun, its plural, Spider-style table name, key column, {column: value drawer})
# a text column draws a str, a number column (``_between``) an int
_TOPICS = {
    "player": ("player", "players", "player", "player", {
        "player": _person, "nationality": _one_of(_COUNTRIES),
        "team": _one_of(["Rovers", "Falcons", "Hornets", "United", "Wolves", "Pirates", "Comets"]),
        "position": _one_of(["Guard", "Forward", "Center", "Goalkeeper", "Defender"]),
        "age": _between(18, 39), "goals": _between(0, 60)}),
    "film": ("film", "films", "film", "title", {
        "title": _two_words(["Blue", "Last", "Silent", "Golden", "Broken", "Paper", "Winter", "Red"],
                            ["Harbor", "Orchard", "Road", "Garden", "Letter", "River", "Crown", "Mile"]),
        "director": _person, "genre": _one_of(["drama", "comedy", "horror", "western", "musical"]),
        "country": _one_of(_COUNTRIES), "year": _between(1960, 2023), "runtime": _between(80, 180)}),
    "city": ("city", "cities", "city", "city", {
        "city": _one_of(["Brenholm", "Castavel", "Dunmoor", "Elsvik", "Galdera", "Hollin", "Jorvale",
                         "Kesterby", "Lunmark", "Norvale", "Quarrow", "Saltmere", "Tervin", "Yselle"]),
        "country": _one_of(_COUNTRIES), "mayor": _person,
        "population": _between(1200, 98000), "area": _between(12, 640)}),
    "song": ("song", "songs", "song", "song", {
        "song": _two_words(["Paper", "Summer", "Neon", "Quiet", "Wild", "Lonely", "Electric", "Late"],
                           ["Hearts", "Lights", "Rain", "Streets", "Dreams", "Waves", "Nights", "Fire"]),
        "artist": _person, "album": _two_words(["Night", "First", "Open", "Glass"], ["Drive", "Sky", "Door", "Tales"]),
        "year": _between(1970, 2023), "rank": _between(1, 100)}),
    "school": ("school", "schools", "school", "school", {
        "school": _two_words(["Oak", "Lake", "River", "Hill", "Pine", "North", "West", "Maple"],
                             ["Academy", "High", "College", "Prep"]),
        "location": _one_of(["Brenholm", "Dunmoor", "Elsvik", "Hollin", "Norvale", "Tervin", "Yselle"]),
        "mascot": _one_of(["Eagles", "Tigers", "Bears", "Hawks", "Lions", "Owls"]),
        "enrollment": _between(150, 2900), "year_founded": _between(1850, 2005)}),
    "race": ("race", "races", "race", "race", {
        "race": _two_words(["Spring", "Harbor", "Valley", "Coastal", "Desert", "Autumn"], ["Cup", "Classic", "Trophy"]),
        "winner": _person, "circuit": _one_of(["Lakeside", "Hillcrest", "Redmoor", "Stonebridge", "Sandpoint"]),
        "laps": _between(20, 80), "round": _between(1, 20)}),
}


#: topic -> its text columns, its number columns
_NUMBER = {t: [c for c, draw in _TOPICS[t][4].items() if getattr(draw, "number", False)] for t in _TOPICS}
_TEXT = {t: [c for c in _TOPICS[t][4] if c not in _NUMBER[t]] for t in _TOPICS}


def _words(column: str) -> str:
    return column.replace("_", " ")


def _an(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _literal(value) -> str:
    return str(value) if isinstance(value, int) else f'"{value}"'


def _query(rng: np.random.Generator, topic: str, table: str) -> tuple[str, str, list[str]]:
    """(question, answer, columns used) over ``table``."""
    row, rows, _, key, drawers = _TOPICS[topic]
    text, numbers = _TEXT[topic], _NUMBER[topic]
    kind = int(rng.choice(5, p=[0.3, 0.15, 0.15, 0.2, 0.2]))
    if kind == 0:  # select a column where a text column has a value
        cond = _pick(rng, text)
        target = _pick(rng, [c for c in text + numbers if c != cond])
        value = drawers[cond](rng)
        answer = f"SELECT {target} FROM {table} WHERE {cond} = {_literal(value)}"
        if cond == key:
            q = _pick(rng, [f"What is the {_words(target)} of the {row} {value}?",
                            f"Name the {_words(target)} for the {row} {value}."])
        elif target == key:
            q = _pick(rng, [f"Which {row} has {_an(_words(cond))} of {value}?",
                            f"Name the {row} whose {_words(cond)} is {value}."])
        else:
            q = f"What is the {_words(target)} of the {row} whose {_words(cond)} is {value}?"
        return q, answer, [target, cond]
    if kind == 1:  # select a text column where a number column has a value
        cond, target = _pick(rng, numbers), _pick(rng, text)
        value = drawers[cond](rng)
        answer = f"SELECT {target} FROM {table} WHERE {cond} = {value}"
        q = (f"Which {row} has {_an(_words(cond))} of {value}?" if target == key
             else f"What is the {_words(target)} of the {row} with {_an(_words(cond))} of {value}?")
        return q, answer, [target, cond]
    if kind == 2:  # count
        if rng.random() < 0.6:
            cond = _pick(rng, numbers)
            value = drawers[cond](rng)
            op, word = _pick(rng, [(">", "greater than"), ("<", "less than")])
            q = f"How many {rows} have {_an(_words(cond))} {word} {value}?"
        else:
            cond = _pick(rng, [c for c in text if c != key])
            value = drawers[cond](rng)
            op = "="
            q = f"How many {rows} have {_an(_words(cond))} of {value}?"
        return q, f"SELECT COUNT(*) FROM {table} WHERE {cond} {op} {_literal(value)}", [cond]
    if kind == 3:  # min / max / avg of a number column where a text column has a value
        target = _pick(rng, numbers)
        cond = _pick(rng, [c for c in text if c != key])
        value = drawers[cond](rng)
        fn, word = _pick(rng, [("MAX", "highest"), ("MIN", "lowest"), ("AVG", "average")])
        q = f"What is the {word} {_words(target)} of {rows} whose {_words(cond)} is {value}?"
        return q, f"SELECT {fn}({target}) FROM {table} WHERE {cond} = {_literal(value)}", [target, cond]
    # order by a number column, limit 1
    by = _pick(rng, numbers)
    target = key if rng.random() < 0.6 else _pick(rng, [c for c in text if c != key])
    desc = rng.random() < 0.5
    word = "highest" if desc else "lowest"
    q = (f"Which {row} has the {word} {_words(by)}?" if target == key
         else f"What is the {_words(target)} of the {row} with the {word} {_words(by)}?")
    order = f"ORDER BY {by} DESC LIMIT 1" if desc else f"ORDER BY {by} LIMIT 1"
    return q, f"SELECT {target} FROM {table} {order}", [target, by]


def _create(topic: str, table: str, columns: list[str]) -> str:
    cols = ", ".join(f"{c} {'VARCHAR' if c in _TEXT[topic] else 'INTEGER'}" for c in columns)
    return f"CREATE TABLE {table} ({cols})"


def _table_name(rng: np.random.Generator, topic: str, taken: str | None = None) -> str:
    for _ in range(100):
        name = f"table_name_{int(rng.integers(1, 100))}" if rng.random() < 0.7 else _TOPICS[topic][2]
        if name != taken:
            return name
    raise RuntimeError("no table name")  # pragma: no cover


def _example(rng: np.random.Generator) -> tuple[str, str, str]:
    topic = _pick(rng, list(_TOPICS))
    table = _table_name(rng, topic)
    question, answer, used = _query(rng, topic, table)
    columns = list(dict.fromkeys(used))
    if rng.random() < 0.35:  # one column the query does not use
        columns.append(_pick(rng, [c for c in _TOPICS[topic][4] if c not in columns]))
    columns = [columns[j] for j in rng.permutation(len(columns)).tolist()]
    tables = [_create(topic, table, columns)]
    if rng.random() < 0.15:  # an unrelated second table, first or last
        other = _pick(rng, [t for t in _TOPICS if t != topic])
        cols = list(_TOPICS[other][4])
        extra = _create(other, _table_name(rng, other, taken=table), [_pick(rng, cols)])
        tables.insert(int(rng.integers(2)), extra)
    return question, ", ".join(tables), answer


@register("sql")
class SQL(GenerationGenerator):
    stream = 7
    columns = ("question", "context", "answer")

    @classmethod
    def example(cls, rng):
        return _example(rng)

    @classmethod
    def key(cls, row):
        return row[0], row[1]
