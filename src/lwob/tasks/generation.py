"""Text generation with a causal LM (the paper's Table 1: ViGGO, SQL generation, GSM8K).

Config (``tasks.<name>``, kind ``generation``)::

    template: "Sentence: {ref}\\nMeaning representation:"   # the prompt, with named fields
    completion: mr                  # the field the model learns to write after the prompt
    completion_prefix: " "          # text between prompt and completion (default one space)
    stop: ["\\n"]                   # decoding stops at the first of these (and at EOS)
    max_new_tokens: 64              # generation budget; a row that reaches it is counted
    max_length: 256                 # tokens of prompt + completion in training (prompt kept
                                    # from the right at prediction: the end sits next to the answer)
    scorer: viggo                   # lwob.tasks.scorers: exact_match, viggo, sql, gsm8k, ...
    scorer_options: {}              # the scorer's settings (e.g. gsm8k answer: flexible)

Training rows are prompt + prefix + completion + EOS, tokenized as two pieces (so the prompt's
tokens in training are exactly those the model is given at prediction) with the loss on the
completion and EOS only (labels -100 over the prompt). Rows longer than ``max_length`` lose
the end of their completion (counted in the part's metadata). Prediction is batched greedy
decoding with a KV cache and left padding (lwob.run.generation); the scorer turns the decoded
completions and the references into metrics, and each example's prompt, generation,
reference and score parts are kept in the predictions file. The template is recorded with
every tokenized part (``scoring``), so each run records the exact prompt it was trained and
evaluated with.
"""

from __future__ import annotations

import string

from ..errors import ConfigError, DataError
from .base import IGNORE_INDEX, TaskKind, int_lists, register


def _scorers():
    from . import scorers  # the scorer registry (its modules import nothing heavy)

    return scorers


def template_fields(template: str) -> list[str]:
    """The named fields of a str.format template ('{ref}' -> ['ref']); positional or
    attribute/index fields are not allowed (a data row only has named columns)."""
    fields = []
    for _text, name, _spec, _conv in string.Formatter().parse(template):
        if name is None:
            continue
        if not name or not name.isidentifier():
            raise ValueError(f"field {{{name}}} is not a column name")
        fields.append(name)
    return list(dict.fromkeys(fields))


def _scorer_settings(settings: dict | None) -> tuple[type, dict]:
    settings = settings or {}
    return _scorers().get(settings.get("scorer", "exact_match")), dict(settings.get("scorer_options") or {})


@register("generation")
class Generation(TaskKind):
    auto_model = "AutoModelForCausalLM"
    peft_task_type = "CAUSAL_LM"
    head_names = ()  # the model's own LM head: trained or not as the method decides
    targets = ("labels",)
    target_level = "token"
    needs_tokenizer = True
    required_keys = ("template", "completion", "max_new_tokens", "scorer")
    scoring_keys = ("template", "completion", "completion_prefix", "stop", "max_new_tokens", "scorer",
                    "scorer_options")

    @classmethod
    def metrics(cls, settings):
        scorer, options = _scorer_settings(settings)
        headline = scorer.headline(options)
        return [headline, *(m for m in scorer.metrics if m != headline)]

    @classmethod
    def metric_names(cls, settings):
        return _scorer_settings(settings)[0].metric_display

    @classmethod
    def check_task(cls, name, task):
        super().check_task(name, task)
        key = f"config key 'tasks.{name}"
        if not isinstance(task["template"], str) or not task["template"].strip():
            raise ConfigError(f"{key}.template': expected the prompt text with named fields, got {task['template']!r}")
        try:
            template_fields(task["template"])
        except ValueError as e:
            raise ConfigError(f"{key}.template': {e} (fields are written {{column}})") from None
        if not isinstance(task["completion"], str) or not task["completion"]:
            raise ConfigError(f"{key}.completion': expected the name of the column the model writes, "
                              f"got {task['completion']!r}")
        prefix = task.get("completion_prefix", " ")
        if not isinstance(prefix, str):
            raise ConfigError(f"{key}.completion_prefix': expected a string, got {prefix!r}")
        stop = task.get("stop", [])
        if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
            raise ConfigError(f"{key}.stop': expected a list of non-empty strings, got {stop!r}")
        budget = task["max_new_tokens"]
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            raise ConfigError(f"{key}.max_new_tokens': expected an integer >= 1, got {budget!r}")
        scorers = _scorers()
        scorer_name = task["scorer"]
        if not isinstance(scorer_name, str) or scorer_name not in scorers.known():
            raise ConfigError(f"{key}.scorer': unknown scorer {scorer_name!r} (known: {', '.join(scorers.known())})")
        options = task.get("scorer_options") or {}
        if not isinstance(options, dict):
            raise ConfigError(f"{key}.scorer_options': expected a mapping, got {options!r}")
        scorers.get(scorer_name).check_options(name, options)

    @classmethod
    def positions_needed(cls, task: dict) -> int:
        """Positions a row can take: the longest prompt plus the generation budget (checked
        against the model's at config time, lwob.plan.config)."""
        return int(task["max_length"]) + int(task["max_new_tokens"])

    @classmethod
    def columns_needed(cls, task: dict) -> dict[str, str]:
        scorer, options = _scorer_settings(task)
        needed = {c: "template" for c in template_fields(task["template"])}
        needed.setdefault(task["completion"], "completion")
        for c in scorer.context_columns_for(options):
            needed.setdefault(c, "scorer_options")
        return needed

    @classmethod
    def check_frame(cls, df, task, where, task_name):
        needed = cls.columns_needed(task)
        missing = [c for c in needed if c not in df.columns]
        if missing:
            raise DataError(f"{where}: no column(s) {missing} that tasks.{task_name}.{needed[missing[0]]} names "
                            f"(columns: {list(df.columns)}); rename with the dataset's 'columns' map")
        for c in needed:
            if df[c].isna().any():
                raise DataError(f"{where}: {int(df[c].isna().sum())} missing value(s) in column {c!r}")

    @classmethod
    def prompts(cls, df, task) -> list[str]:
        template = task["template"]
        fields = template_fields(template)
        return [template.format(**{f: str(v) for f, v in zip(fields, values)})
                for values in zip(*(df[f].tolist() for f in fields))] if fields else [template] * len(df)

    @classmethod
    def encode(cls, tokenizer, df, task, *, train):
        import numpy as np
        import pyarrow as pa

        max_length = int(task["max_length"])
        prompts = cls.prompts(df, task)
        prompt_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
        completions = df[task["completion"]].astype(str).tolist()
        cols = {"row": pa.array(np.arange(len(df), dtype=np.int64)),
                "idx": pa.array(df["idx"].to_numpy(dtype=np.int64))}
        if train:
            prefix = task.get("completion_prefix", " ")
            completion_ids = tokenizer([prefix + c for c in completions], add_special_tokens=False)["input_ids"]
            eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
            ids, labels = [], []
            for p, c in zip(prompt_ids, completion_ids):
                p = p[-(max_length - 1):]  # at least one completion token survives
                row = (p + c + eos)[:max_length]
                ids.append(row)
                labels.append(([IGNORE_INDEX] * len(p) + c + eos)[:max_length])
            cols["input_ids"] = int_lists(ids)
            cols["labels"] = int_lists(labels, dtype="int64")
            return pa.table(cols), None
        cols["input_ids"] = int_lists([p[-max_length:] for p in prompt_ids])
        scorer, options = _scorer_settings(task)
        examples = {"row": cols["row"], "idx": cols["idx"], "prompt": pa.array(prompts, type=pa.string()),
                    "reference": pa.array(completions, type=pa.string()),
                    "prompt_truncated": pa.array([len(p) > max_length for p in prompt_ids])}
        for c in scorer.context_columns_for(options):
            examples[c] = pa.array(df[c].astype(str).tolist(), type=pa.string())
        return pa.table(cols), pa.table(examples)

    @classmethod
    def predict(cls, model, part, *, batch_size, device, fast=None, scoring=None, tokenizer=None):
        from ..run.generation import generate

        scoring = scoring or {}
        prompts = part.table.column("input_ids").to_pylist()
        return {"generations": generate(model, prompts, tokenizer=tokenizer,
                                        max_new_tokens=int(scoring["max_new_tokens"]),
                                        stop_strings=scoring.get("stop") or (), batch_size=batch_size,
                                        device=device, fast=fast)}

    @classmethod
    def score(cls, outputs, features, examples, eval_set=None):
        import numpy as np

        scorer, options = _scorer_settings(eval_set)
        gens = outputs["generations"]
        if examples is None:
            raise DataError("a generation part has no examples file (prompts and references): tokenize it again")
        references = examples.column("reference").to_pylist()
        predictions = [t.strip() for t in gens.texts]
        context = {c: examples.column(c).to_pylist() for c in scorer.context_columns_for(options)}
        metrics, parts = scorer.score(predictions, references, context, options)
        cut = [r == "length" for r in gens.stop_reason]
        metrics = {**metrics, "n": len(references), "cut_at_max_new_tokens": int(sum(cut))}
        frame = parts.reset_index(drop=True)
        front = {"idx": features.column("idx").to_numpy().astype(np.int64),
                 "prompt": examples.column("prompt").to_pylist(), "generation": predictions,
                 "reference": references, "stop_reason": gens.stop_reason,
                 "new_tokens": [len(t) for t in gens.token_ids]}
        for i, (name, values) in enumerate(front.items()):
            frame.insert(i, name, values)
        frame["correct"] = frame.pop("correct").astype(np.float64)
        return metrics, frame
