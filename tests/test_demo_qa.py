"""lwob.data.demo, generator ``qa``: deterministic SQuAD-like extractive QA with adversaries."""

from __future__ import annotations

import collections
import re
import string

import numpy as np
import pytest

from lwob.data import demo
from lwob.data.demo import qa as demo_qa
from lwob.data.sources import check_spec, materialize
from lwob.errors import ConfigError

ALL = {"generator": "qa", "seed": 5, "n_train": 120, "n_validation": 30, "n_test": 60,
       "adversaries": list(demo.ADVERSARIES)}


@pytest.fixture(scope="module")
def data():
    return demo.generate(ALL)


def _distractor(orig_context: str, context: str) -> str:
    assert context.startswith(orig_context + " ")
    return context[len(orig_context) + 1:]


def test_qa_deterministic_bytes(tmp_path):
    spec = {"source": "demo", "generator": "qa", "seed": 3, "n_train": 40, "n_validation": 10, "n_test": 12}
    a = materialize("d", spec, tmp_path / "a")
    b = materialize("d", dict(spec), tmp_path / "b")
    assert a["files"] == b["files"]
    assert set(a["files"]) == {"train", "validation", "test", "addsent", "addany"}
    c = materialize("d", {**spec, "seed": 4}, tmp_path / "c")
    assert c["files"]["train"]["sha256"] != a["files"]["train"]["sha256"]
    assert a["revision"] == demo.GENERATOR_VERSION


def test_qa_same_spec_same_frames(data):
    again = demo.generate(dict(ALL))
    assert set(again) == set(data)
    for split, df in data.items():
        assert df.equals(again[split]), split


def test_qa_defaults_and_sizes():
    s = demo.resolve_spec({"generator": "qa"})
    assert s == {"generator": "qa", "seed": 0, "n_train": 400, "n_validation": 64, "n_test": 160,
                 "adversaries": ["addsent", "addany"], "variants": 2, "sentences": [3, 5]}
    d = demo.generate({"generator": "qa", "n_train": 50, "n_validation": 7, "n_test": 9})
    assert list(d) == ["train", "validation", "test", "addsent", "addany"]
    assert [len(d[s]) for s in ("train", "validation", "test")] == [50, 7, 9]
    assert len(d["addsent"]) == 9 * (1 + 2)
    assert len(d["addany"]) == 9 * (1 + 2)
    one = demo.generate({"generator": "qa", "n_train": 50, "n_validation": 7, "n_test": 9, "variants": 1})
    assert len(one["addsent"]) == len(one["addany"]) == 9 * 2
    assert one["test"].equals(d["test"])  # the number of variants does not change the clean splits


@pytest.mark.parametrize("bad", [0, 6, True, "2"])
def test_qa_variants_checked(bad):
    with pytest.raises(ConfigError, match="variants"):
        demo.resolve_spec({"generator": "qa", "variants": bad})


def test_qa_layout_and_dtypes(data):
    assert list(data) == ["train", "validation", "test", *demo.ADVERSARIES]
    for split, df in data.items():
        assert list(df.columns) == list(demo.QA_COLUMNS), split
        assert "label" not in df.columns
        assert df["idx"].dtype == np.int64
        assert df["idx"].tolist() == list(range(len(df)))
        for col in ("id", "title", "context", "question"):
            assert all(isinstance(x, str) and x for x in df[col]), (split, col)
        for texts, starts in zip(df["answer_text"], df["answer_start"]):
            assert isinstance(texts, list) and isinstance(starts, list)
            assert 1 <= len(texts) == len(starts) <= 3
            assert all(isinstance(t, str) and t for t in texts)
            assert all(isinstance(s, int) and not isinstance(s, bool) for s in starts)


def test_qa_answer_spans_valid(data):
    for split, df in data.items():
        for r in df.itertuples():
            for t, s in zip(r.answer_text, r.answer_start):
                assert r.context[s:s + len(t)] == t, (split, r.id, t, s)
            assert r.answer_text[0] not in r.question, (split, r.id)


def test_qa_contexts(data):
    train = set(data["train"]["context"])
    for split in ("validation", "test"):
        assert not train & set(data[split]["context"]), split
    assert not set(data["validation"]["context"]) & set(data["test"]["context"])
    for split in ("train", "validation", "test"):
        for c in data[split]["context"]:
            assert 3 <= c.count(". ") + 1 <= 5
            assert 40 <= len(c.split()) <= 70
    # several relation types, and questions worded unlike their fact sentence
    qs = demo.generate({"generator": "qa", "seed": 0})["train"]["question"]
    starts = collections.Counter(q.split()[0] for q in qs)
    assert {"Who", "When", "Where", "Which", "How", "In", "What"} <= set(starts)
    assert sum("relocate" in q or "established" in q or "birthplace" in q or "headquartered" in q
               for q in qs) >= 10


def test_qa_ids_and_grouping(data):
    ids = [i for s in ("train", "validation", "test") for i in data[s]["id"]]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"dq\d{6}", i) for i in ids)
    test = data["test"].set_index("id")
    for adv in demo.ADVERSARIES:
        df = data[adv]
        originals = df[~df["id"].str.contains("-")]
        # the original test questions, unchanged, in order
        cols = ["id", "title", "context", "question", "answer_text", "answer_start"]
        assert originals[cols].reset_index(drop=True).equals(data["test"][cols])
        variants = df[df["id"].str.contains("-")]
        assert len(variants) == len(test) * (1 if adv == "addonesent" else 2)
        current = None
        for r in df.itertuples():
            if "-" not in r.id:
                current = r.id
                continue
            orig_id, _, suffix = r.id.partition("-")
            assert orig_id == current  # a variant follows its original
            assert re.fullmatch(rf"{adv}\d+", suffix)
            o = test.loc[orig_id]
            d = _distractor(o["context"], r.context)
            assert d.endswith(".") and ". " not in d.rstrip(".")  # one sentence
            assert (r.title, r.question, r.answer_text, r.answer_start) == (
                o["title"], o["question"], o["answer_text"], o["answer_start"])


def test_distractor_never_contains_gold():
    for seed in (0, 1):
        d = demo.generate({"generator": "qa", "seed": seed, "adversaries": list(demo.ADVERSARIES)})
        test = d["test"].set_index("id")
        for adv in demo.ADVERSARIES:
            for r in d[adv][d[adv]["id"].str.contains("-")].itertuples():
                dis = _distractor(test.loc[r.id.split("-")[0], "context"], r.context).lower()
                assert not any(g.lower() in dis for g in r.answer_text), (r.id, dis, r.answer_text)


def _content(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower())) - {"the", "a", "of", "in", "was", "did", "is"}


def test_addsent_resembles_question_but_swaps_entities(data):
    test = data["test"].set_index("id")
    df = data["addsent"]
    for r in df[df["id"].str.contains("-")].itertuples():
        o = test.loc[r.id.split("-")[0]]
        d = _distractor(o["context"], r.context)
        assert re.fullmatch(r"[A-Z0-9].*[a-z0-9]\.", d)  # a sentence
        assert d not in o["context"]
        # the question's words, but not the question's (full) entities
        wh = {"what", "which", "who", "when", "where", "how"}
        assert _content(d) & (_content(r.question) - wh), (r.question, d)
        names = re.findall(r"[A-Z][a-z]+ [A-Z][a-z]+", r.question)
        assert not any(n in d for n in names), (r.question, d)
    # addonesent picks one of the addsent candidates of the same question
    sent = set(df["context"])
    one = data["addonesent"]
    assert set(one[one["id"].str.contains("-")]["context"]) <= sent


def test_addany_is_a_word_salad_with_a_fake_answer(data):
    test = data["test"].set_index("id")
    df = data["addany"]
    for r in df[df["id"].str.contains("-")].itertuples():
        d = _distractor(test.loc[r.id.split("-")[0], "context"], r.context)
        assert d.endswith(" .") and 6 <= len(d.split()) <= 30
        assert _content(d) & _content(r.question)


def test_adversaries_independent():
    base = {"generator": "qa", "seed": 2, "n_train": 20, "n_validation": 5, "n_test": 15}
    both = demo.generate({**base, "adversaries": ["addsent", "addany"]})
    one = demo.generate({**base, "adversaries": ["addany"]})
    assert list(one) == ["train", "validation", "test", "addany"]
    assert one["addany"].equals(both["addany"]) and one["test"].equals(both["test"])
    only = demo.generate({**base, "adversaries": ["addonesent"]})
    assert list(only) == ["train", "validation", "test", "addonesent"]
    assert set(only["addonesent"]["context"]) <= set(both["addsent"]["context"])


@pytest.mark.parametrize("bad, key", [
    ({"n_train": -1}, "n_train"), ({"n_train": 1}, "n_train"), ({"n_test": 2.5}, "n_test"),
    ({"n_validation": True}, "n_validation"), ({"seed": "x"}, "seed"),
    ({"adversaries": ["addsome"]}, "adversaries"), ({"adversaries": []}, "adversaries"),
    ({"adversaries": "addsent"}, "adversaries"), ({"adversaries": ["addsent", "addsent"]}, "adversaries"),
    ({"perturbations": ["typo"]}, "perturbations"), ({"label_noise": 0.1}, "label_noise"),
])
def test_qa_bad_spec(bad, key):
    spec = {"generator": "qa", **bad}
    with pytest.raises(ConfigError, match=rf"^{key}:"):
        demo.resolve_spec(spec)
    with pytest.raises(ConfigError, match=rf"datasets\.d.*{key}"):
        check_spec("d", {"source": "demo", **spec})


def test_classification_rejects_adversaries():
    with pytest.raises(ConfigError, match=r"^adversaries:"):
        demo.resolve_spec({"generator": "sentiment", "adversaries": ["addsent"]})


# --------------------------------------------------------------------------- lexical baseline

_STOP = set("a an the of in on at to by for from with as is are was were be been did does do has have "
            "had what which who whom when where how many much it its this that and or since".split())
_LEAD = re.compile(r"\d[\d,]*\d|\d|[A-Z][a-z]+(?: [A-Z][a-z]+)*")


def _stem(w: str) -> str:
    for suf in ("ing", "ed", "es", "s", "e"):
        if w.endswith(suf) and len(w) > len(suf) + 2:
            return w[:-len(suf)]
    return w


def _words(text: str) -> set[str]:
    return {_stem(w) for w in re.findall(r"[a-z0-9]+", text.lower().replace("'s", "")) if w not in _STOP}


def _etype(span: str) -> str | None:
    ws = span.split()
    if re.fullmatch(r"1\d{3}|20\d{2}", span):
        return "year"
    if re.fullmatch(r"\d[\d,]*", span):
        return "number"
    if len(ws) == 2 and ws[0] in demo_qa._FIRST and ws[1] in demo_qa._SURNAMES:
        return "person"
    if len(ws) == 1 and ws[0] in demo_qa._TOWNS:
        return "town"
    if len(ws) == 1 and ws[0] in demo_qa._RIVERS:
        return "river"
    for kinds, t in ((demo_qa._ORG_TYPES, "org"), (demo_qa._PRIZE_KINDS, "prize"), (demo_qa._EVENT_KINDS, "event")):
        if len(ws) == 2 and ws[1] in kinds:
            return t
    return None


def _baseline(context: str, question: str, typ: str | None) -> str:
    """The sentence with the most question-word overlap (stemmed words, as a share of the
    sentence's and question's words together: Jaccard; ties: the earlier sentence), then its
    first entity of the answer's type that is not in the question."""
    sents = re.split(r"(?<=\.)\s+", context)
    q = _words(question)
    best = max(range(len(sents)), key=lambda i: (len(_words(sents[i]) & q) / len(_words(sents[i]) | q), -i))
    for m in _LEAD.finditer(sents[best]):
        ws = m.group(0).split()
        while ws and _etype(" ".join(ws)) is None:
            ws = ws[1:]
        span = " ".join(ws)
        if ws and _etype(span) == typ and span not in question:
            return span
    return ""


def _norm(s: str) -> list[str]:
    s = "".join(c for c in s.lower() if c not in string.punctuation)
    return [w for w in s.split() if w not in ("a", "an", "the")]


def _f1(pred: str, gold: str) -> float:
    p, g = _norm(pred), _norm(gold)
    common = sum((collections.Counter(p) & collections.Counter(g)).values())
    if not common:
        return 0.0
    return 2 * common / (len(p) + len(g))


def _scores(df) -> tuple[float, float]:
    em = f1 = 0.0
    for r in df.itertuples():
        pred = _baseline(r.context, r.question, _etype(r.answer_text[0]))
        em += max(_norm(pred) == _norm(g) for g in r.answer_text)
        f1 += max(_f1(pred, g) for g in r.answer_text)
    return em / len(df), f1 / len(df)


@pytest.mark.slow
def test_addsent_fools_a_lexical_overlap_baseline():
    """The adversary bites: a lexical-overlap baseline that does fine on the originals drops
    on the AddSent variants (whose distractor echoes the question's words)."""
    res = {}
    for seed in (0, 1, 2):
        d = demo.generate({"generator": "qa", "seed": seed, "adversaries": ["addsent"]})
        adv = d["addsent"]
        res[seed] = (_scores(d["test"]), _scores(adv[adv["id"].str.contains("-")]))
    print({s: tuple(tuple(round(x, 3) for x in v) for v in r) for s, r in res.items()})
    origin_f1 = np.mean([r[0][1] for r in res.values()])
    addsent_f1 = np.mean([r[1][1] for r in res.values()])
    assert origin_f1 >= 0.4
    assert addsent_f1 <= origin_f1 - 0.25
    assert all(r[1][1] < r[0][1] - 0.15 for r in res.values())
