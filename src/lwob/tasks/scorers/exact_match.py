"""exact_match: the completion equals the reference once both are stripped and every run of
whitespace is one space (case, punctuation and everything else count)."""

from __future__ import annotations

from .base import Scorer, check_lengths, frame, mean, normalize_space, register


@register("exact_match")
class ExactMatch(Scorer):
    metrics = ("exact_match",)
    metric_display = {"exact_match": "exact match"}

    @classmethod
    def score(cls, predictions, references, context, options):
        check_lengths(predictions, references, context, ())
        hits = [float(normalize_space(p) == normalize_space(r)) for p, r in zip(predictions, references)]
        return ({"exact_match": mean(hits), "n": len(hits)},
                frame({"exact_match": [bool(h) for h in hits]}, hits))
