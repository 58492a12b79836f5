"""Extractive question answering (SQuAD-style): metric, features, decoding, adversarial scoring.

Pure logic, no I/O and no torch: the tokenizer is passed in and logits arrive as numpy arrays,
so every piece can be tested on hand-made inputs.

* The official SQuAD v1.1 metric (`normalize_answer`, `exact_match`, `f1`), identical to the
  official ``evaluate-v1.1.py`` script except that scores are fractions in [0, 1], not percent.
* `build_features`: the usual Hugging Face sliding window over long contexts (question first,
  context second, ``truncation="only_second"``, overlapping windows of ``stride`` tokens), with
  character offsets of the context tokens and, for training, the token labels of the answer.
  It works for BERT-style tokenizers (null answer at [CLS]) and for the byte-level BPE
  tokenizers of decoder models (GPT-2, OPT), which have no CLS token (null answer at index 0).
* `postprocess`: the n-best span search of HF ``run_qa`` over all windows of an example.
* Adversarial SQuAD (Jia and Liang, 2017): `original_ids` maps an AddSent / AddOneSent question
  id to the id of the SQuAD question it was made from, and `score_set` reports the plain mean
  over the adversarial questions plus the paper's worst-case ("adversarial") score, the
  minimum over each original question and all its adversarial variants, averaged over groups.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

import numpy as np

# --------------------------------------------------------------------------------------------
# Official SQuAD v1.1 metric
# --------------------------------------------------------------------------------------------

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_NON_SPACE = re.compile(r"\S")


def normalize_answer(s: str) -> str:
    """Lower case, drop punctuation, drop the articles a/an/the, collapse white space.

    Same steps, in the same order, as the official SQuAD v1.1 script (punctuation is removed
    before articles, so "the-end" becomes "theend" and keeps its letters).
    """
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCTUATION)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def _check_golds(ground_truths: Sequence[str]) -> None:
    if isinstance(ground_truths, str):
        raise TypeError("ground_truths must be a sequence of answer strings, not one string")
    if len(ground_truths) == 0:
        raise ValueError("ground_truths is empty: a question needs at least one gold answer")


def _exact_match_one(prediction: str, ground_truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(ground_truth))


def _f1_one(prediction: str, ground_truth: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(ground_truth).split()
    common = Counter(pred_tokens) & Counter(gold_tokens)
    num_same = sum(common.values())
    if num_same == 0:  # also covers an empty prediction or gold after normalisation
        return 0.0
    precision = num_same / len(pred_tokens)
    recall = num_same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, ground_truths: Sequence[str]) -> float:
    """1.0 if the normalised prediction equals any normalised gold answer, else 0.0."""
    _check_golds(ground_truths)
    return max(_exact_match_one(prediction, g) for g in ground_truths)


def f1(prediction: str, ground_truths: Sequence[str]) -> float:
    """Token-overlap F1 (bag of normalised tokens), maximised over the gold answers."""
    _check_golds(ground_truths)
    return max(_f1_one(prediction, g) for g in ground_truths)


def per_question(ids: Sequence[str], predictions: Sequence[str],
                 gold_answers: Sequence[Sequence[str]]) -> tuple[list[float], list[float]]:
    """Exact match and F1 of every question, in input order."""
    if not len(ids) == len(predictions) == len(gold_answers):
        raise ValueError(f"ids ({len(ids)}), predictions ({len(predictions)}) and gold_answers "
                         f"({len(gold_answers)}) differ in length")
    ems, f1s = [], []
    for qid, pred, golds in zip(ids, predictions, gold_answers):
        if len(golds) == 0:
            raise ValueError(f"question {qid!r} has no gold answer")
        ems.append(exact_match(pred, golds))
        f1s.append(f1(pred, golds))
    return ems, f1s


# --------------------------------------------------------------------------------------------
# Features: sliding windows over the context
# --------------------------------------------------------------------------------------------

def _first(x):
    """The first element of a per-example answer field given as a list, or the scalar itself.

    Lets callers pass either the first answer (``answer_starts=[12, 40]``) or all of them
    (``answer_starts=[[12, 13], [40]]``, as in SQuAD); None for an example without answers.
    """
    if isinstance(x, (str, int, np.integer)):
        return x
    if x is None or len(x) == 0:
        return None
    return x[0]


def _answer_span(context: str, start, text) -> tuple[int, int] | None:
    """Character span [start, end) of the first gold answer, trimmed of white space."""
    start, text = _first(start), _first(text)
    if start is None or text is None:
        return None
    start = int(start)
    stripped = text.strip()
    if not stripped:
        return None
    # Some SQuAD answers carry a leading or trailing space; without trimming the label would
    # take in the neighbouring token.
    start += len(text) - len(text.lstrip())
    return start, start + len(stripped)


def _non_space_positions(context: str) -> np.ndarray:
    """Sorted character positions of the non-white-space characters of `context`."""
    return np.fromiter((m.start() for m in _NON_SPACE.finditer(context)), dtype=np.int64)


def _trim_leading_space(starts: np.ndarray, ends: np.ndarray, non_space: np.ndarray) -> np.ndarray:
    """Move every token start forward past white space, never beyond the token end."""
    pos = np.searchsorted(non_space, starts)
    first = np.where(pos < non_space.size, non_space[np.minimum(pos, non_space.size - 1)], ends)
    return np.minimum(first, ends)


class QuestionTooLong(ValueError):
    """A question leaves no room for more context than the stride in a window."""

    def __init__(self, example: int, tokens: int, limit: int):
        super().__init__(f"question of example {example} has {tokens} tokens; at most {limit} fit "
                         f"(max_length minus special tokens minus stride, less one)")
        self.example, self.tokens, self.limit = example, tokens, limit


def build_features(tokenizer, questions: Sequence[str], contexts: Sequence[str], *, max_length: int,
                   stride: int, answer_starts: Sequence | None = None,
                   answer_texts: Sequence | None = None) -> dict[str, list]:
    """Tokenise (question, context) pairs into overlapping windows, HF ``run_qa`` style.

    Returns a dict of per-feature lists:

    * ``example``: index of the example (row of `questions`) the feature comes from;
    * ``input_ids`` (and ``token_type_ids`` when the tokenizer produces them);
    * ``offset_start`` / ``offset_end``: for context tokens, the character span of the token in
      its context, with leading white space trimmed (byte-level BPE tokens such as "Ġcat"
      include the preceding space); -1 for question and special tokens;
    * with answers given, ``start_positions`` / ``end_positions``: the token indices of the
      first gold answer when it lies entirely inside the window's context, else the null index
      (position of the CLS token if the feature has one, else 0).

    `answer_starts` / `answer_texts` hold, per example, either the first answer or the list of
    all answers (only the first is labelled); an empty list means no answer (null labels).
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"build_features needs a fast tokenizer with offset mappings; "
                         f"{type(tokenizer).__name__} ({getattr(tokenizer, 'name_or_path', '?')}) is not")
    if len(questions) != len(contexts):
        raise ValueError(f"{len(questions)} questions but {len(contexts)} contexts")
    labelled = answer_starts is not None or answer_texts is not None
    if labelled and (answer_starts is None or answer_texts is None):
        raise ValueError("answer_starts and answer_texts must be given together")
    if labelled and not len(answer_starts) == len(answer_texts) == len(contexts):
        raise ValueError(f"answer_starts ({len(answer_starts)}) and answer_texts ({len(answer_texts)}) "
                         f"must have one entry per example ({len(contexts)})")
    if stride >= max_length:
        raise ValueError(f"stride ({stride}) must be smaller than max_length ({max_length})")
    questions = [q.lstrip() for q in questions]  # leading blanks would only waste window space
    # A window must hold the question, the special tokens and more context tokens than the
    # stride, or the tokenizer cannot advance (it panics in Rust): check it here, by example.
    special = tokenizer.num_special_tokens_to_add(pair=True)
    q_lengths = [len(ids) for ids in tokenizer(questions, add_special_tokens=False)["input_ids"]]
    for i, n in enumerate(q_lengths):
        if max_length - n - special <= stride:
            raise QuestionTooLong(i, n, max_length - special - stride - 1)

    enc = tokenizer(
        questions,
        list(contexts),
        truncation="only_second",
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        padding=False,
    )
    sample_map = enc["overflow_to_sample_mapping"]
    has_types = "token_type_ids" in enc
    cls_id = getattr(tokenizer, "cls_token_id", None)

    out: dict[str, list] = {"example": [], "input_ids": []}
    if has_types:
        out["token_type_ids"] = []
    out["offset_start"], out["offset_end"] = [], []
    if labelled:
        out["start_positions"], out["end_positions"] = [], []

    # Features of one example are consecutive: compute its non-space positions once.
    cached_ex, non_space = -1, np.empty(0, dtype=np.int64)
    for i, ex in enumerate(sample_map):
        ex = int(ex)
        ids = enc["input_ids"][i]
        offsets = np.asarray(enc["offset_mapping"][i], dtype=np.int64).reshape(-1, 2)
        is_ctx = np.array([s == 1 for s in enc.sequence_ids(i)], dtype=bool)

        if ex != cached_ex:
            cached_ex, non_space = ex, _non_space_positions(contexts[ex])
        starts = np.where(is_ctx, _trim_leading_space(offsets[:, 0], offsets[:, 1], non_space), -1)
        ends = np.where(is_ctx, offsets[:, 1], -1)

        out["example"].append(ex)
        out["input_ids"].append(list(ids))
        if has_types:
            out["token_type_ids"].append(list(enc["token_type_ids"][i]))
        out["offset_start"].append(starts.tolist())
        out["offset_end"].append(ends.tolist())

        if labelled:
            null = ids.index(cls_id) if cls_id is not None and cls_id in ids else 0
            s_tok = e_tok = null
            span = _answer_span(contexts[ex], answer_starts[ex], answer_texts[ex])
            ctx_idx = np.flatnonzero(is_ctx)
            if span is not None and ctx_idx.size:
                a_start, a_end = span
                # Inside the window iff the window's context covers [a_start, a_end).
                if starts[ctx_idx[0]] <= a_start and ends[ctx_idx[-1]] >= a_end:
                    # Last context token starting at or before the answer start, first context
                    # token ending at or after the answer end (as HF run_qa).
                    s_tok = int(ctx_idx[np.flatnonzero(starts[ctx_idx] <= a_start)[-1]])
                    e_tok = int(ctx_idx[np.flatnonzero(ends[ctx_idx] >= a_end)[0]])
            out["start_positions"].append(s_tok)
            out["end_positions"].append(e_tok)
    return out


# --------------------------------------------------------------------------------------------
# Post-processing: best span per example over all its windows
# --------------------------------------------------------------------------------------------

def postprocess(features: dict, start_logits: Sequence, end_logits: Sequence, contexts: Sequence[str],
                *, n_best: int = 20, max_answer_length: int = 30) -> list[dict]:
    """Best answer span of every example, searched over all of its features (windows).

    Per feature, the `n_best` highest start and end logits are paired (as HF ``run_qa``);
    a pair is kept when both tokens are context tokens, end >= start and the span has at most
    `max_answer_length` tokens; its score is start_logit + end_logit. The best kept pair over
    all features of the example wins (ties: earlier feature, then higher start logit).

    Logits may be longer than the feature (padding of a batch); the extra positions are ignored.
    Returns per example ``{"text", "score", "start_char"}``; an example with no valid span gets
    ``{"text": "", "score": -inf, "start_char": -1}``.
    """
    examples = features["example"]
    if not len(examples) == len(start_logits) == len(end_logits):
        raise ValueError(f"{len(examples)} features but {len(start_logits)} start and "
                         f"{len(end_logits)} end logit arrays")
    if n_best < 1 or max_answer_length < 1:
        raise ValueError("n_best and max_answer_length must be positive")

    best = [{"text": "", "score": float("-inf"), "start_char": -1} for _ in contexts]
    for i, ex in enumerate(examples):
        o_start = np.asarray(features["offset_start"][i], dtype=np.int64)
        o_end = np.asarray(features["offset_end"][i], dtype=np.int64)
        n = o_start.shape[0]
        sl = np.asarray(start_logits[i], dtype=np.float64).reshape(-1)
        el = np.asarray(end_logits[i], dtype=np.float64).reshape(-1)
        if sl.shape[0] < n or el.shape[0] < n:
            raise ValueError(f"feature {i}: {n} tokens but {sl.shape[0]} start / {el.shape[0]} end logits")
        sl, el = sl[:n], el[:n]

        # n-best indices by descending logit (stable, so ties keep token order).
        k = min(n_best, n)
        s_idx = np.argsort(-sl, kind="stable")[:k]
        e_idx = np.argsort(-el, kind="stable")[:k]
        S, E = s_idx[:, None], e_idx[None, :]
        valid = ((o_start[S] != -1) & (o_end[E] != -1) & (E >= S) & (E - S + 1 <= max_answer_length))
        if not valid.any():
            continue
        scores = np.where(valid, sl[S] + el[E], -np.inf)
        flat = int(np.argmax(scores))  # row-major: higher start logit first among equal scores
        score = float(scores.flat[flat])
        if score > best[ex]["score"]:
            s, e = int(s_idx[flat // k]), int(e_idx[flat % k])
            c0, c1 = int(o_start[s]), int(o_end[e])
            best[ex] = {"text": contexts[ex][c0:c1], "score": score, "start_char": c0}
    return best


# --------------------------------------------------------------------------------------------
# Adversarial SQuAD: grouping and scoring
# --------------------------------------------------------------------------------------------

# SQuAD ids are 24 hex digits; AddSent ids look like "<orig>-high-conf-turk0", AddOneSent
# ids like "<orig>-turk0": the original id is everything before the first hyphen.
DEFAULT_ORIGINAL_ID = r"^([^-]+)"


def original_ids(ids: Sequence[str], pattern: str = DEFAULT_ORIGINAL_ID) -> list[str]:
    """Id of the original SQuAD question of every id: group 1 of `pattern` (group 0 if none)."""
    rx = re.compile(pattern)
    group = 1 if rx.groups else 0
    out = []
    for qid in ids:
        m = rx.match(qid)
        if m is None or m.group(group) is None:
            raise ValueError(f"question id {qid!r} does not match the original-id pattern {pattern!r}")
        out.append(m.group(group))
    return out


def score_set(ids: Sequence[str], predictions: Sequence[str], gold_answers: Sequence[Sequence[str]],
              pattern: str = DEFAULT_ORIGINAL_ID) -> dict:
    """Scores of one eval set, with Jia and Liang's adversarial score when it is adversarial.

    A question is original when its original id (`original_ids`) is its own id, adversarial
    otherwise. Returns fractions in [0, 1]:

    * ``em``, ``f1``, ``n``: mean over the adversarial questions if there are any, else over
      all questions;
    * if there are adversarial questions: ``orig_em``, ``orig_f1``, ``n_orig`` (mean over the
      original questions, only when some are present) and ``adv_em``, ``adv_f1``, ``n_groups``:
      per original id, the worst score over the group (the original, if present, and all its
      variants), averaged over groups. A group whose original is absent is scored on its
      variants alone. With every original present, adv_* <= orig_*.
    """
    if len(ids) == 0:
        raise ValueError("score_set needs at least one question")
    dup = [q for q, c in Counter(ids).items() if c > 1]
    if dup:
        raise ValueError(f"duplicate question ids, e.g. {dup[0]!r}")
    ems, f1s = per_question(ids, predictions, gold_answers)
    origs = original_ids(ids, pattern)
    ems_a, f1s_a = np.asarray(ems), np.asarray(f1s)
    is_adv = np.array([o != q for o, q in zip(origs, ids)], dtype=bool)

    if not is_adv.any():
        return {"em": float(ems_a.mean()), "f1": float(f1s_a.mean()), "n": len(ids)}

    result = {"em": float(ems_a[is_adv].mean()), "f1": float(f1s_a[is_adv].mean()), "n": int(is_adv.sum())}
    if (~is_adv).any():
        result.update(orig_em=float(ems_a[~is_adv].mean()), orig_f1=float(f1s_a[~is_adv].mean()),
                      n_orig=int((~is_adv).sum()))
    worst: dict[str, list[float]] = {}
    for o, em, f in zip(origs, ems, f1s):
        w = worst.setdefault(o, [em, f])
        w[0], w[1] = min(w[0], em), min(w[1], f)
    result.update(adv_em=float(np.mean([w[0] for w in worst.values()])),
                  adv_f1=float(np.mean([w[1] for w in worst.values()])),
                  n_groups=len(worst))
    return result
