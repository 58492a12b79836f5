"""lwob.data.demo: the generation-task generators (meaning, sql, arithmetic) for Table 1's demo."""

from __future__ import annotations

import operator
import re

import pandas as pd
import pytest

from lwob.data import demo
from lwob.data.sources import check_spec, materialize
from lwob.errors import ConfigError
from lwob.tasks.scorers.viggo import FUNCTIONS as VIGGO_FUNCTIONS
from lwob.tasks.scorers.viggo import parse_mr

COLUMNS = {"meaning": ["mr", "ref"], "sql": ["question", "context", "answer"], "arithmetic": ["question", "answer"]}
GENERATORS = list(COLUMNS)
SPLITS = ("train", "validation", "test")


@pytest.fixture(scope="module")
def data():
    return {g: demo.generate({"generator": g, "seed": 0}) for g in GENERATORS}


# --------------------------------------------------------------------------- shared contract


def test_registered_with_their_own_streams():
    assert set(GENERATORS) <= set(demo.known())
    streams = [demo.REGISTRY[g].stream for g in demo.known()]
    assert len(streams) == len(set(streams))


@pytest.mark.parametrize("gen", GENERATORS)
def test_defaults_shapes_and_dtypes(data, gen):
    spec = demo.resolve_spec({"generator": gen})
    assert spec == {"generator": gen, "seed": 0, "n_train": 160, "n_validation": 24, "n_test": 48}
    d = data[gen]
    assert tuple(d) == SPLITS
    assert [len(d[s]) for s in SPLITS] == [160, 24, 48]
    for df in d.values():
        assert list(df.columns) == [*COLUMNS[gen], "idx"]
        assert df["idx"].dtype == "int64" and df["idx"].tolist() == list(range(len(df)))
        for c in COLUMNS[gen]:
            assert pd.api.types.is_string_dtype(df[c])
            assert all(isinstance(v, str) and v.strip() == v and v for v in df[c])
    small = demo.generate({"generator": gen, "seed": 5, "n_train": 7, "n_validation": 0, "n_test": 3})
    assert [len(small[s]) for s in SPLITS] == [7, 0, 3]
    assert list(small["validation"].columns) == [*COLUMNS[gen], "idx"]
    assert demo.version({"generator": gen}) == demo.GENERATOR_VERSION


@pytest.mark.parametrize("gen", GENERATORS)
def test_deterministic(tmp_path, gen):
    spec = {"generator": gen, "seed": 3, "n_train": 40, "n_validation": 8, "n_test": 12}
    a, b = demo.generate(spec), demo.generate(dict(spec))
    for s in SPLITS:
        pd.testing.assert_frame_equal(a[s], b[s])
    c = demo.generate({**spec, "seed": 4})
    assert not a["train"].equals(c["train"])
    # byte-identical Parquet files
    m1 = materialize("d", {"source": "demo", **spec}, tmp_path / "a")
    m2 = materialize("d", {"source": "demo", **spec}, tmp_path / "b")
    assert m1["files"] == m2["files"] and set(m1["files"]) == set(SPLITS)
    assert m1["revision"] == demo.GENERATOR_VERSION
    # a split's rows do not depend on the sizes of later splits
    longer = demo.generate({**spec, "n_test": 30})
    pd.testing.assert_frame_equal(longer["validation"], a["validation"])
    pd.testing.assert_frame_equal(longer["test"].head(12), a["test"])


@pytest.mark.parametrize("gen", GENERATORS)
def test_no_repeats_across_splits(data, gen):
    key = {"meaning": ["ref"], "sql": ["question", "context"], "arithmetic": ["question"]}[gen]
    seen: set = set()
    for s in SPLITS:
        rows = [tuple(r) for r in data[gen][s][key].to_numpy().tolist()]
        assert len(set(rows)) == len(rows), s
        assert not seen & set(rows), s
        seen |= set(rows)


@pytest.mark.parametrize("gen", GENERATORS)
@pytest.mark.parametrize("bad, key", [
    ({"n_train": -1}, "n_train"), ({"n_train": 1}, "n_train"), ({"n_test": "x"}, "n_test"),
    ({"n_validation": 2.5}, "n_validation"), ({"seed": True}, "seed"),
    ({"perturbations": ["typo"]}, "perturbations"), ({"label_noise": 0.1}, "label_noise"),
    ({"adversaries": ["addsent"]}, "adversaries"), ({"variants": 2}, "variants"), ({"sentences": [2, 3]}, "sentences"),
])
def test_bad_spec_names_the_key(gen, bad, key):
    with pytest.raises(ConfigError, match=rf"^{key}:"):
        demo.resolve_spec({"generator": gen, **bad})
    with pytest.raises(ConfigError, match=rf"datasets\.d.*{key}"):
        check_spec("d", {"source": "demo", "generator": gen, **bad})


# --------------------------------------------------------------------------- meaning

_MR = re.compile(r"([a-z_]+)\((.*)\)")
_SLOT = re.compile(r"([a-z_]+)\[([^\[\]]*)\]")
ATTRIBUTES = ("name", "exp_release_date", "release_year", "developer", "esrb", "rating", "genres",
              "player_perspective", "platforms", "available_on_steam", "has_linux_release", "has_mac_release",
              "specifier")


def _slots(mr: str) -> tuple[str, list[tuple[str, str]]]:
    m = _MR.fullmatch(mr)
    assert m, mr
    inner, slots, pos = m.group(2), [], 0
    while pos < len(inner):
        s = _SLOT.match(inner, pos)
        assert s, mr
        slots.append((s.group(1), s.group(2)))
        pos = s.end()
        if pos < len(inner):
            assert inner[pos:pos + 2] == ", ", mr
            pos += 2
    return m.group(1), slots


def test_meaning_representations(data):
    functions = set()
    for s in SPLITS:
        for mr, ref in data["meaning"][s][["mr", "ref"]].itertuples(index=False):
            fn, slots = _slots(mr)
            functions.add(fn)
            assert fn in VIGGO_FUNCTIONS, mr
            attrs = [a for a, _ in slots]
            assert attrs and set(attrs) <= set(ATTRIBUTES), mr
            assert attrs == sorted(attrs, key=ATTRIBUTES.index), mr  # ViGGO's canonical order, no repeats
            assert parse_mr(mr) is not None, mr  # the scorer reads it
            values = dict(slots)
            if fn == "request_attribute":
                assert len(slots) == 1 and values[attrs[0]] == "", mr
            else:
                assert all(values.values()), mr
                assert "name" in values, mr
            for a in ("name", "developer", "release_year", "exp_release_date"):
                if values.get(a):
                    assert values[a] in ref, (mr, ref)  # said word for word
            for platform in values.get("platforms", "").split(", "):
                assert platform in ref, (mr, ref)
            assert len(ref.split()) <= 30 and ref[-1] in ".?", ref
    assert functions >= {"inform", "confirm", "give_opinion", "recommend", "request_attribute", "suggest",
                         "verify_attribute"}


def test_meaning_slot_order_varies(data):
    """The sentence says the slots in more than one order relative to the MR."""
    orders = set()
    for mr, ref in data["meaning"]["train"][["mr", "ref"]].itertuples(index=False):
        _, slots = _slots(mr)
        said = [(ref.find(v), a) for a, v in slots if a in ("name", "developer", "release_year") and v in ref]
        if len(said) >= 2:
            orders.add(tuple(a for _, a in sorted(said)))
    assert ("name", "release_year") in {o[:2] for o in orders} and any(o[0] != "name" for o in orders)


# --------------------------------------------------------------------------- sql

_CREATE = re.compile(r"CREATE TABLE (\w+) \(([^()]*)\)")


def _tables(context: str) -> dict[str, dict[str, str]]:
    found = _CREATE.findall(context)
    assert ", ".join(f"CREATE TABLE {t} ({c})" for t, c in found) == context, context
    out = {}
    for table, cols in found:
        pairs = [c.split(" ") for c in cols.split(", ")]
        assert all(len(p) == 2 and p[1] in ("VARCHAR", "INTEGER") for p in pairs), context
        out[table] = dict(pairs)
    assert len(out) == len(found)
    return out


def test_sql_answers_parse_and_use_their_table(data):
    import sqlglot
    from sqlglot import exp

    shapes = set()
    for s in SPLITS:
        for question, context, answer in data["sql"][s][["question", "context", "answer"]].itertuples(index=False):
            tables = _tables(context)
            statements = sqlglot.parse(answer, read="sqlite")
            assert len(statements) == 1 and isinstance(statements[0], exp.Select), answer
            tree = statements[0]
            froms = [t.name for t in tree.find_all(exp.Table)]
            assert len(froms) == 1 and froms[0] in tables, (answer, context)
            columns = tables[froms[0]]
            used = []
            for col in tree.find_all(exp.Column):
                parent = col.parent
                if col.this.quoted and isinstance(parent, exp.Binary) and parent.expression is col:
                    literal = col.name  # a double-quoted string value, WikiSQL style
                    assert literal in question, (question, answer)
                    assert columns[parent.this.name] == "VARCHAR", answer
                    continue
                assert col.name in columns, (answer, context)
                used.append(col.name)
            assert used, answer
            numbers = set(re.findall(r"\d+", question))
            for literal in tree.find_all(exp.Literal):
                assert literal.is_int, answer
                if isinstance(literal.parent, exp.Limit):
                    assert literal.this == "1", answer
                else:
                    assert literal.this in numbers, (question, answer)
                    assert columns[literal.parent.this.name] == "INTEGER", answer
            for agg in tree.find_all(exp.Max, exp.Min, exp.Avg):
                assert columns[agg.this.name] == "INTEGER", answer
            for order in tree.find_all(exp.Ordered):
                assert columns[order.this.name] == "INTEGER", answer
            shapes.add(next(iter(k for k in ("ORDER BY", "COUNT(*)", "MAX(", "MIN(", "AVG(", "WHERE") if k in answer)))
    assert shapes == {"ORDER BY", "COUNT(*)", "MAX(", "MIN(", "AVG(", "WHERE"}


def test_sql_scorer_reads_the_answers(data):
    from lwob.tasks.scorers.sql import parse_query

    assert all(parse_query(a) is not None for s in SPLITS for a in data["sql"][s]["answer"])


# --------------------------------------------------------------------------- arithmetic

_ANNOTATION = re.compile(r"(\d+)([-+*/])(\d+) = <<(\d+)([-+*/])(\d+)=(\d+)>>(\d+)")
_OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}


def _recompute(question: str, answer: str) -> int:
    """The final result, replaying the answer's steps from the question's numbers: every operand
    is a number of the question or an earlier result, and every number of the question is used."""
    given = [int(x) for x in re.findall(r"\d+", question)]
    known, used, result = set(given), set(), None
    lines = answer.split("\n")
    assert re.fullmatch(r"#### \d+", lines[-1]), answer
    for line in lines[:-1]:
        steps = _ANNOTATION.findall(line)
        assert len(steps) == 1, line
        a, op, b, a2, op2, b2, c, shown = steps[0]
        assert (a, op, b) == (a2, op2, b2) and c == shown, line
        a, b, c = int(a), int(b), int(c)
        assert a in known and b in known, (question, line)
        value = _OPS[op](a, b)
        assert value == c and c >= 0, line
        used |= {a, b}
        known.add(c)
        result = c
    assert set(given) <= used, (question, answer)
    return result


def test_arithmetic_answers_recompute(data):
    results, steps = [], set()
    for s in SPLITS:
        for question, answer in data["arithmetic"][s][["question", "answer"]].itertuples(index=False):
            final = int(answer.rsplit("#### ", 1)[1])
            assert answer.endswith(f"\n#### {final}") and "," not in answer.rsplit("\n", 1)[1]
            assert _recompute(question, answer) == final, (question, answer)
            assert question.endswith("?") and "\n" not in question and "\n\n" not in answer
            results.append(final)
            steps.add(answer.count("<<"))
    assert steps == {1, 2}
    assert max(results) >= 1000 and min(results) > 0


def test_arithmetic_extracted_by_the_scorer(data):
    from lwob.tasks.scorers.gsm8k import extract_flexible, extract_strict, number

    for answer in data["arithmetic"]["test"]["answer"]:
        final = answer.rsplit("#### ", 1)[1]
        assert extract_strict(answer) == final == extract_flexible(answer)
        assert number(final) == int(final)


def test_recompute_catches_a_wrong_answer():
    q = "Tom has 3 boxes with 12 apples in each. How many apples does he have?"
    assert _recompute(q, "Tom has 3*12 = <<3*12=36>>36 apples.\n#### 36") == 36
    with pytest.raises(AssertionError):
        _recompute(q, "Tom has 3*12 = <<3*12=35>>35 apples.\n#### 35")
    with pytest.raises(AssertionError):
        _recompute(q, "Tom has 3*13 = <<3*13=39>>39 apples.\n#### 39")
