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

Our own greedy loop (`greedy_batch`) does what `generate` does for greedy search, plus one
thing it does not: a row that has stopped leaves the batch and the KV cache at once, so the
remaining steps compute only the rows still running (in a batch whose rows stop at very
different lengths, most of the work). It is used wherever it computes exactly what
`generate` would (`own_loop_applies`): a model whose forward takes position ids and a cache,
not a prompt-learning peft model (peft adds its virtual tokens inside its own `generate`),
and no generation-config setting that makes `generate` change the logits (a repetition
penalty, forced or suppressed tokens, ...). Elsewhere `generate` decodes.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from ..models import forward_parameters, prompt_learning

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

    def row_done(self, new_tokens: list[int]) -> bool:
        """Whether a row's new tokens hold a stop string."""
        tail = self.tokenizer.decode(new_tokens[-self.window:], skip_special_tokens=True)
        return any(s in tail for s in self.stop_strings)

    def __call__(self, input_ids: torch.Tensor, scores=None, **kwargs) -> torch.Tensor:
        done = [self.row_done(row) for row in input_ids[:, self.prompt_width:].tolist()]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


#: Generation-config settings under which transformers' greedy search changes the logits
#: before its argmax (a logits processor), each with the value that changes nothing.
LOGITS_CHANGING = {"repetition_penalty": 1.0, "encoder_repetition_penalty": 1.0, "no_repeat_ngram_size": 0,
                   "encoder_no_repeat_ngram_size": 0, "bad_words_ids": None, "min_length": 0, "min_new_tokens": None,
                   "forced_bos_token_id": None, "forced_eos_token_id": None, "suppress_tokens": None,
                   "begin_suppress_tokens": None, "sequence_bias": None, "exponential_decay_length_penalty": None,
                   "renormalize_logits": False, "forced_decoder_ids": None}


def own_loop_applies(model) -> str | None:
    """None when `greedy_batch` computes exactly what `generate` would for this model; else
    why not (then `generate` decodes)."""
    if prompt_learning(model):
        return "a prompt-learning peft model adds its virtual tokens in its own generate"
    missing = [p for p in ("position_ids", "past_key_values", "attention_mask") if p not in forward_parameters(model)]
    if missing:
        return f"the model's forward takes no {', '.join(missing)}"
    config = getattr(model, "generation_config", None)
    changing = [k for k, neutral in LOGITS_CHANGING.items() if getattr(config, k, None) not in (None, neutral)]
    if changing:
        return f"its generation config changes the logits ({', '.join(changing)})"
    return None


def greedy_batch(model, ids: torch.Tensor, mask: torch.Tensor, *, max_new_tokens: int, eos: int | None,
                 stop: StopOnText | None = None) -> list[list[int]]:
    """Greedy continuations of one left-padded batch (on the model's device), as `generate`
    computes them: positions counted over each row's real tokens, a KV cache, the argmax of
    the last position's fp32 logits. A row stops at EOS (kept, as `generate` emits it), at a
    stop string or at `max_new_tokens`, and then leaves the batch and the cache."""
    keep_logits = {"logits_to_keep": 1} if "logits_to_keep" in forward_parameters(model) else {}
    rows = list(range(ids.shape[0]))  # the original rows still running, in batch order
    new: list[list[int]] = [[] for _ in rows]
    mask = mask.long()
    position = mask.cumsum(-1) - 1
    position.masked_fill_(mask == 0, 1)
    out = model(input_ids=ids, attention_mask=mask, position_ids=position, use_cache=True, **keep_logits)
    cache, last = out.past_key_values, position[:, -1:]
    for step in range(max_new_tokens):
        token = out.logits[:, -1, :].float().argmax(-1)
        running = []
        for j, t in enumerate(token.tolist()):
            new[rows[j]].append(t)
            if not (t == eos or (stop is not None and stop.row_done(new[rows[j]]))):
                running.append(j)
        if not running or step == max_new_tokens - 1:
            break
        if len(running) < len(rows):  # stopped rows leave the batch and the cache
            index = torch.tensor(running, device=token.device)
            cache.batch_select_indices(index)
            rows, mask, token, last = [rows[j] for j in running], mask[index], token[index], last[index]
        mask = torch.cat([mask, mask.new_ones((len(rows), 1))], dim=1)
        last = last + 1
        out = model(input_ids=token[:, None], attention_mask=mask, position_ids=last, past_key_values=cache,
                    use_cache=True, **keep_logits)
    return new


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
             device: torch.device | str = "cpu", fast=None, pad_token_id: int | None = None,
             own_loop: bool | None = None) -> Generations:
    """Greedy continuations of `prompts` (lists of token ids), batched with left padding.

    `fast` (a lwob.run.fastpath.FastPath) sets the precision, as for one-pass prediction.
    `pad_token_id` defaults to the tokenizer's, else its EOS (decoder tokenizers often lack
    a pad token; padded positions are masked, so which id fills them does not matter).
    `own_loop`: decode with `greedy_batch` (None: wherever `own_loop_applies`; False: with
    transformers' `generate`, as benchmarks and tests compare).
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
    if own_loop is None:
        own_loop = own_loop_applies(model) is None
    with torch.inference_mode(), autocast:
        for start in range(0, n, batch_size):
            batch = order[start:start + batch_size]
            ids, mask = left_padded([list(prompts[i]) for i in batch], pad)
            stop = StopOnText(tokenizer, stop_strings, ids.shape[1]) if stop_strings else None
            if own_loop:
                new = greedy_batch(model, ids.to(device), mask.to(device), max_new_tokens=int(max_new_tokens),
                                   eos=eos, stop=stop)
            else:
                from transformers import StoppingCriteriaList

                criteria = StoppingCriteriaList([_Criterion(stop)]) if stop is not None else None
                out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                                     stopping_criteria=criteria, **kwargs)
                new = out[:, ids.shape[1]:].cpu().tolist()
            for row, i in enumerate(batch):
                seq = list(new[row])
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
