"""Batched greedy generation: what a generating task kind calls to predict.

A kind that generates (tasks.base.TaskKind.predict overridden) hands its prompts here and
gets back, per row, the text up to the first stop string and why generation stopped. Rows
are sorted by length and decoded in batches with left padding (every row's last prompt
token sits in the same column, so one forward step extends them all), with the model's KV
cache (transformers' `generate`: greedy, no sampling, so the result does not depend on the
batch a row lands in beyond floating-point noise, and peft models, prefix tuning included,
go through their own `generate`). Stop strings are matched on the decoded text, not on
token ids, since a byte-level BPE may split or merge them differently in each context; our
own stopping criterion does it (`StopOnText`), because transformers' StopStringCriteria
reads the tokenizer's vocabulary in ways that fail for some tokenizers (word-level ones).

A generation that never emits a stop string (nor EOS) is cut at `max_new_tokens` and
reported as such (`stop_reason` "length"), so scoring can count it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

#: Why a row stopped: a stop string, the end-of-sequence token, or the token budget.
STOP, EOS, LENGTH = "stop", "eos", "length"


@dataclass
class Generations:
    """Per row of the prompts, in their order."""

    texts: list[str]  # decoded new tokens, cut before the first stop string
    raw: list[str]  # decoded new tokens as generated (special tokens dropped)
    token_ids: list[list[int]]  # the new tokens, without padding
    stop_reason: list[str]  # STOP, EOS or LENGTH

    def __len__(self) -> int:
        return len(self.texts)


def cut_at_stop(text: str, stop_strings) -> tuple[str, bool]:
    """(text before the earliest stop string, whether one occurred)."""
    cut = min((i for i in (text.find(s) for s in stop_strings if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


class StopOnText:
    """A stopping criterion for `generate`: a row is done once the text of its new tokens
    holds a stop string. Only a tail of each row is decoded (enough tokens for the longest
    stop string, as every token but a special one decodes to at least one character), so a
    step costs the same however long the generation is."""

    def __init__(self, tokenizer, stop_strings, prompt_width: int):
        self.tokenizer, self.stop_strings, self.prompt_width = tokenizer, list(stop_strings), prompt_width
        self.window = 2 * max(len(s) for s in self.stop_strings) + 8

    def __call__(self, input_ids: torch.Tensor, scores=None, **kwargs) -> torch.Tensor:
        new = input_ids[:, self.prompt_width:].tolist()
        done = [any(s in self.tokenizer.decode(row[-self.window:], skip_special_tokens=True)
                    for s in self.stop_strings) for row in new]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def left_padded(rows: list, pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), both (len(rows), longest), padding on the left."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), int(pad_token_id), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if len(r):
            ids[i, width - len(r):] = torch.as_tensor(r, dtype=torch.long)
            mask[i, width - len(r):] = 1
    return ids, mask


def generate(model, prompts: list, *, tokenizer, max_new_tokens: int, stop_strings=(), batch_size: int = 16,
             device: torch.device | str = "cpu", fast=None, pad_token_id: int | None = None) -> Generations:
    """Greedy continuations of `prompts` (lists of token ids), batched with left padding.

    `fast` (a lwob.run.fastpath.FastPath) sets the precision, as for one-pass prediction.
    `pad_token_id` defaults to the tokenizer's, else its EOS (decoder tokenizers often lack
    a pad token; padded positions are masked, so which id fills them does not matter).
    """
    device = torch.device(device)
    stop_strings = [s for s in (stop_strings or ()) if s]
    eos = tokenizer.eos_token_id
    pad = pad_token_id if pad_token_id is not None else (tokenizer.pad_token_id if tokenizer.pad_token_id is not None
                                                         else eos)
    if pad is None:
        raise ValueError("generation needs a pad or EOS token id: the tokenizer has neither")
    n = len(prompts)
    texts, raw, tokens, reasons = [""] * n, [""] * n, [[] for _ in range(n)], [LENGTH] * n
    order = sorted(range(n), key=lambda i: len(prompts[i]), reverse=True)  # little padding per batch
    was_training = model.training
    model.eval()
    kwargs = {"max_new_tokens": int(max_new_tokens), "do_sample": False, "num_beams": 1, "pad_token_id": int(pad),
              "eos_token_id": eos, "use_cache": True}
    autocast = fast.autocast(device) if fast is not None else contextlib.nullcontext()
    with torch.inference_mode(), autocast:
        for start in range(0, n, batch_size):
            batch = order[start:start + batch_size]
            ids, mask = left_padded([list(prompts[i]) for i in batch], pad)
            criteria = None
            if stop_strings:
                from transformers import StoppingCriteriaList

                criteria = StoppingCriteriaList([_Criterion(StopOnText(tokenizer, stop_strings, ids.shape[1]))])
            out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), stopping_criteria=criteria,
                                 **kwargs)
            new = out[:, ids.shape[1]:].cpu()
            for row, i in enumerate(batch):
                seq = new[row].tolist()
                reason = LENGTH
                if eos is not None and eos in seq:  # what follows EOS is padding
                    seq = seq[: seq.index(eos)]
                    reason = EOS
                while seq and seq[-1] == pad and reason == LENGTH and pad != eos:
                    seq.pop()  # rows that stopped on a stop string are padded to the batch's length
                text = tokenizer.decode(seq, skip_special_tokens=True)
                cut, stopped = cut_at_stop(text, stop_strings)
                tokens[i], raw[i], texts[i] = seq, text, cut
                reasons[i] = STOP if stopped else reason
    if was_training:
        model.train()
    return Generations(texts=texts, raw=raw, token_ids=tokens, stop_reason=reasons)


def _Criterion(check: StopOnText):
    """`check` as a transformers StoppingCriteria (imported lazily: planning code imports
    nothing of transformers)."""
    from transformers import StoppingCriteria

    class Criterion(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return check(input_ids, scores, **kwargs)

    return Criterion()
