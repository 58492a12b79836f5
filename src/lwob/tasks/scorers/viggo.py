"""viggo: ViGGO meaning representations (Juraska et al., 2019), e.g.

    inform(name[Tomb Raider], rating[good], genres[action-adventure, shooter])

An MR is a function type and attribute[value] slots: ``fn(attr[value], attr[value], ...)``,
where a value may be a comma-separated list (``genres[action-adventure, shooter]``) and may be
empty (``request_attribute(player_perspective[])``). Both sides are parsed into the function
type and a set of (attribute, value item) pairs, one pair per item of a list value: names and
items are compared with whitespace collapsed and case folded, and neither attribute order nor
list order counts (an empty value is the one item ""). The metrics:

- ``exact_match``: same function type and the same set of pairs (what Table 1 shows);
- ``function_accuracy``: same function type;
- ``slot_precision`` / ``slot_recall`` / ``slot_f1``: micro-averaged over every
  (attribute, item) pair of the eval set (the per-example columns are each example's own
  figures; an example with no pairs on either side has precision and recall 1);
- ``parse_errors``: predictions that are not of that shape (e.g. cut off before the closing
  parenthesis, a slot without brackets, a trailing comma). Such a prediction scores 0 on
  everything; its reference's pairs still count in the recall denominator.

A reference that does not parse (the datasets have none; counted in
``reference_parse_errors``) is compared as text (whitespace and case normalised) for exact
match, scores that same 0/1 on the other parts, and is left out of the micro slot counts.
"""

from __future__ import annotations

import re

from .base import Scorer, check_lengths, frame, mean, normalize_space, register

#: ViGGO's dialogue act (function) types
FUNCTIONS = ("inform", "confirm", "give_opinion", "recommend", "request", "request_attribute",
             "request_explanation", "suggest", "verify_attribute")

_MR = re.compile(r"\s*([A-Za-z_]\w*)\s*\((.*)\)\s*", re.S)
_SLOT = re.compile(r"\s*([A-Za-z_][\w ]*?)\s*\[([^\[\]]*)\]\s*")


def parse_mr(text: str) -> tuple[str, frozenset] | None:
    """(function type, frozenset of (attribute, value item) pairs), or None when ``text`` is
    not of the shape ``fn(attr[value], ...)``."""
    m = _MR.fullmatch(str(text))
    if m is None:
        return None
    function, inner = m.group(1).lower(), m.group(2)
    slots: set[tuple[str, str]] = set()
    if not inner.strip():
        return function, frozenset()
    pos = 0
    while True:
        s = _SLOT.match(inner, pos)
        if s is None:
            return None
        attribute = normalize_space(s.group(1)).lower()
        items = [normalize_space(x).lower() for x in s.group(2).split(",")]
        for item in [x for x in items if x] or [""]:
            slots.add((attribute, item))
        pos = s.end()
        if pos == len(inner):
            return function, frozenset(slots)
        if inner[pos] != ",":
            return None
        pos += 1


def _ratio(hits: int, total: int, other_total: int) -> float:
    """hits / total; with nothing to divide by, 1 when the other side is empty too, else 0."""
    return hits / total if total else float(other_total == 0)


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


@register("viggo")
class Viggo(Scorer):
    metrics = ("exact_match", "function_accuracy", "slot_precision", "slot_recall", "slot_f1")
    metric_display = {"exact_match": "exact match", "function_accuracy": "function type accuracy",
                      "slot_precision": "slot precision", "slot_recall": "slot recall", "slot_f1": "slot F1"}

    @classmethod
    def score(cls, predictions, references, context, options):
        check_lengths(predictions, references, context, ())
        cols: dict[str, list] = {k: [] for k in (
            "exact_match", "function_correct", "slot_precision", "slot_recall", "slot_f1", "parsed",
            "reference_parsed", "slots_matched", "slots_predicted", "slots_reference")}
        matched = predicted = gold = 0
        parse_errors = reference_errors = 0
        for prediction, reference in zip(predictions, references):
            pred, ref = parse_mr(prediction), parse_mr(reference)
            parse_errors += pred is None
            reference_errors += ref is None
            if ref is None:
                hit = float(normalize_space(prediction).lower() == normalize_space(reference).lower())
                row = dict(exact_match=hit, function_correct=hit, slot_precision=hit, slot_recall=hit,
                           slot_f1=hit, slots_matched=0, slots_predicted=0, slots_reference=0)
            elif pred is None:
                row = dict(exact_match=0.0, function_correct=0.0, slot_precision=0.0, slot_recall=0.0,
                           slot_f1=0.0, slots_matched=0, slots_predicted=0, slots_reference=len(ref[1]))
            else:
                tp = len(pred[1] & ref[1])
                p = _ratio(tp, len(pred[1]), len(ref[1]))
                r = _ratio(tp, len(ref[1]), len(pred[1]))
                row = dict(exact_match=float(pred == ref), function_correct=float(pred[0] == ref[0]),
                           slot_precision=p, slot_recall=r, slot_f1=_f1(p, r), slots_matched=tp,
                           slots_predicted=len(pred[1]), slots_reference=len(ref[1]))
            row.update(parsed=pred is not None, reference_parsed=ref is not None)
            matched += row["slots_matched"]
            predicted += row["slots_predicted"]
            gold += row["slots_reference"]
            for k, v in row.items():
                cols[k].append(v)
        n = len(predictions)
        precision = _ratio(matched, predicted, gold) if n else None
        recall = _ratio(matched, gold, predicted) if n else None
        metrics = {"exact_match": mean(cols["exact_match"]), "function_accuracy": mean(cols["function_correct"]),
                   "slot_precision": precision, "slot_recall": recall,
                   "slot_f1": _f1(precision, recall) if n else None,
                   "n": n, "parse_errors": parse_errors, "reference_parse_errors": reference_errors}
        return metrics, frame(cols, cols["exact_match"])
