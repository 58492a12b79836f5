"""gsm8k: GSM8K answer accuracy, extracted as lm-evaluation-harness's gsm8k task does.

The reference is GSM8K's answer text: the reasoning, then ``#### 72``. From a completion:

- strict: the number after ``#### `` (lm-eval's ``strict-match``: ``#### (\\-?[0-9\\.\\,]+)``,
  first match); a completion without one is a format error (``format_errors``);
- flexible: that same ``#### N`` if present, else the last number in the text (lm-eval's
  ``flexible-extract`` regex ``(-?[$0-9.,]{2,})|(-?[0-9]+)``, last match; matches without a
  digit, e.g. an ellipsis "...", are skipped).

The reference's answer is its ``#### N`` (the last number if it has none; counted in
``reference_format_errors``). Numbers are compared by value (decimal, exactly): ``$`` signs,
a trailing period and surrounding whitespace are dropped, and commas are thousands separators
only (``1,000`` == ``1000``; ``7,2`` is not a number and matches nothing), so ``72`` ==
``72.0`` == ``72.00`` == ``$72`` == ``72.``. An answer that is not a number (after that
clean-up) matches only the same text.

Option ``answer: flexible|strict`` (default flexible, as the paper's figures) picks the
headline; both accuracies are always reported.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from .base import Scorer, check_lengths, choice, frame, mean, register

STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")
FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
_NUMBER = re.compile(r"-?(?:\d+|\d{1,3}(?:,\d{3})+)?(?:\.\d+)?")
ANSWERS = ("strict", "flexible")


def extract_strict(text: str) -> str | None:
    m = STRICT.search(str(text))
    return m.group(1) if m else None


def extract_flexible(text: str) -> str | None:
    strict = extract_strict(text)
    if strict is not None:
        return strict
    found = [a or b for a, b in FLEXIBLE.findall(str(text))]
    found = [f for f in found if any(c.isdigit() for c in f)]
    return found[-1] if found else None


def number(answer: str | None) -> Decimal | None:
    """The value of an extracted answer, None when it is not a number."""
    if answer is None:
        return None
    s = answer.strip().replace("$", "")
    if s.endswith("."):
        s = s[:-1]
    if not s or not any(c.isdigit() for c in s) or not _NUMBER.fullmatch(s):
        return None
    try:
        return Decimal(s.replace(",", ""))
    except InvalidOperation:
        return None


def same_answer(answer: str | None, reference: str | None) -> bool:
    if answer is None or reference is None:
        return False
    a, r = number(answer), number(reference)
    if a is not None and r is not None:
        return a == r
    return answer.strip() == reference.strip()


@register("gsm8k")
class GSM8K(Scorer):
    metrics = ("flexible_accuracy", "strict_accuracy")
    option_keys = ("answer",)
    metric_display = {"flexible_accuracy": "accuracy (flexible extraction)",
                      "strict_accuracy": "accuracy (strict extraction)"}

    @classmethod
    def check_options(cls, task_name, options):
        super().check_options(task_name, options)
        choice(task_name, options, "answer", ANSWERS, "flexible")

    @classmethod
    def headline(cls, options):
        return f"{choice(None, options or {}, 'answer', ANSWERS, 'flexible')}_accuracy"

    @classmethod
    def score(cls, predictions, references, context, options):
        check_lengths(predictions, references, context, ())
        headline = cls.headline(options)
        cols: dict[str, list] = {k: [] for k in ("answer_strict", "answer_flexible", "reference_answer",
                                                  "strict_correct", "flexible_correct", "format_error")}
        reference_errors = 0
        for prediction, reference in zip(predictions, references):
            ref = extract_strict(reference)
            if ref is None:
                reference_errors += 1
                ref = extract_flexible(reference)
            strict, flexible = extract_strict(prediction), extract_flexible(prediction)
            cols["answer_strict"].append(strict)
            cols["answer_flexible"].append(flexible)
            cols["reference_answer"].append(ref)
            cols["strict_correct"].append(float(same_answer(strict, ref)))
            cols["flexible_correct"].append(float(same_answer(flexible, ref)))
            cols["format_error"].append(strict is None)
        metrics = {"flexible_accuracy": mean(cols["flexible_correct"]),
                   "strict_accuracy": mean(cols["strict_correct"]),
                   "n": len(predictions), "format_errors": int(sum(cols["format_error"])),
                   "reference_format_errors": reference_errors}
        correct = cols["flexible_correct"] if headline == "flexible_accuracy" else cols["strict_correct"]
        return metrics, frame(cols, correct)
