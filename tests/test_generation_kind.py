"""The task-kind interface is open to kinds that generate: one module plus config.

A generating kind is defined here, in a plugin file the test writes (nothing in the package
knows it): it encodes prompt + completion with per-token labels masked to the completion,
predicts by batched greedy generation (lwob.run.generation) with a stop string and a token
budget, and scores exact match. A tiny Llama-style causal LM (built from a LlamaConfig, with
a word-level tokenizer trained offline) is a `source: local` model, and the real DAG runs
train -> evaluate -> aggregate -> table on it, for FFT and LoRA on the model's own LM head.
"""

from __future__ import annotations

import json
import random
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from conftest import run_snakemake

PLUGIN = textwrap.dedent('''
    """Test plugin: copy a digit string ("copy 3 1 4 =" -> "3 1 4 ;"), scored by exact match."""
    from lwob.errors import DataError
    from lwob.tasks import TaskKind, register
    from lwob.tasks.base import IGNORE_INDEX, int_lists


    @register("copy_digits")
    class CopyDigits(TaskKind):
        auto_model = "AutoModelForCausalLM"
        peft_task_type = "CAUSAL_LM"
        head_names = ()  # the LM head is the model's own
        targets = ("labels",)
        target_level = "token"
        needs_tokenizer = True
        primary_metric = "accuracy"
        scoring_keys = ("max_new_tokens", "stop")
        required_keys = ("text_fields", "max_new_tokens", "stop")

        @classmethod
        def check_frame(cls, df, task, where, task_name):
            missing = [c for c in [*task["text_fields"], "idx"] if c not in df.columns]
            if missing:
                raise DataError(f"{where}: missing column(s) {missing}")

        @classmethod
        def encode(cls, tokenizer, df, task, *, train):
            import numpy as np
            import pyarrow as pa

            prompt_field, answer_field = task["text_fields"]
            prompts = tokenizer(df[prompt_field].astype(str).tolist(), add_special_tokens=False)["input_ids"]
            cols = {"row": pa.array(np.arange(len(df), dtype=np.int64)),
                    "idx": pa.array(df["idx"].to_numpy(dtype=np.int64))}
            if train:
                stop = task["stop"][0]
                completions = tokenizer([f"{a} {stop}" for a in df[answer_field].astype(str)],
                                        add_special_tokens=False)["input_ids"]
                cols["input_ids"] = int_lists([p + c for p, c in zip(prompts, completions)])
                cols["labels"] = int_lists([[IGNORE_INDEX] * len(p) + c for p, c in zip(prompts, completions)],
                                           dtype="int64")
            else:
                cols["input_ids"] = int_lists(prompts)
                cols["reference"] = pa.array(df[answer_field].astype(str).tolist())
            return pa.table(cols), None

        @classmethod
        def predict(cls, model, part, *, batch_size, device, fast=None, scoring=None, tokenizer=None):
            from lwob.run.generation import generate

            prompts = part.table.column("input_ids").to_pylist()
            return {"generations": generate(model, prompts, tokenizer=tokenizer,
                                            max_new_tokens=scoring["max_new_tokens"], stop_strings=scoring["stop"],
                                            batch_size=batch_size, device=device, fast=fast)}

        @classmethod
        def score(cls, outputs, features, examples, eval_set=None):
            import numpy as np
            import pandas as pd

            gens = outputs["generations"]
            predictions = [" ".join(t.split()) for t in gens.texts]
            references = features.column("reference").to_pylist()
            correct = np.array([float(p == r) for p, r in zip(predictions, references)])
            n = len(references)
            metrics = {"accuracy": float(correct.mean()) if n else None, "n": n,
                       "cut_at_budget": sum(r == "length" for r in gens.stop_reason)}
            frame = pd.DataFrame({"idx": features.column("idx").to_numpy().astype(np.int64),
                                  "prediction": predictions, "raw": gens.raw, "reference": references,
                                  "stop_reason": gens.stop_reason,
                                  "new_tokens": [len(t) for t in gens.token_ids], "correct": correct})
            return metrics, frame
''')

WORDS = ["<pad>", "<unk>", "<s>", "</s>", "copy", "=", ";", *"0123456789"]
MAX_NEW_TOKENS = 5  # 3 digits + ";" fit; a model that never writes ";" is cut after 5


def build_tiny_llama(directory: Path) -> Path:
    """A 2-layer Llama (hidden 64) with random weights and a word-level tokenizer, offline."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>",
                                        bos_token="<s>", eos_token="</s>")
    tokenizer.model_input_names = ["input_ids", "attention_mask"]
    config = LlamaConfig(vocab_size=len(WORDS), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         pad_token_id=0, bos_token_id=2, eos_token_id=3, tie_word_embeddings=True)
    torch.manual_seed(0)
    directory.mkdir(parents=True, exist_ok=True)
    LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def write_copy_data(folder: Path) -> None:
    """CSV splits: prompt, answer, and a dummy label (the local loader wants one per row)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(5)
    for split, n in {"train": 192, "validation": 16, "test": 24, "adv": 16}.items():
        rows = []
        for _ in range(n):
            digits = " ".join(rng.choice("0123456789") for _ in range(3))
            rows.append({"prompt": f"copy {digits} =", "answer": digits, "label": 0})
        pd.DataFrame(rows).to_csv(folder / f"{split}.csv", index=False)


def gen_config() -> dict:
    res = {"gpus": 0, "cpus": 1, "mem_mb": 2000, "runtime_min": 10}
    return {
        "seeds": [0],
        "plugins": ["plugins/copy_kind.py"],
        "datasets": {"copy": {"source": "local", "files": {
            s: f"data/external/copy/{s}.csv" for s in ("train", "validation", "test", "adv")}}},
        "models": {"tiny-llama": {"source": "local", "path": "models/tiny-llama", "display": "Tiny Llama",
                                  "resources": res}},
        "methods": {"vanilla": {"type": "vanilla", "display": "Vanilla"},
                    "fft": {"type": "fft", "display": "FFT", "training": {"lr": 5.0e-3}},
                    "lora": {"type": "lora", "display": "LoRA",
                             "options": {"r": 8, "alpha": 16, "dropout": 0.0,
                                         "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj",
                                                            "gate_proj", "up_proj", "down_proj"]},
                             "training": {"lr": 1.0e-2}}},
        "tasks": {"copy": {
            "kind": "copy_digits", "display": "Copy", "text_fields": ["prompt", "answer"], "max_length": 16,
            "max_new_tokens": MAX_NEW_TOKENS, "stop": [";"],
            "train": {"dataset": "copy", "split": "train"},
            "validation": {"dataset": "copy", "split": "validation"},
            "eval_sets": {"origin": {"dataset": "copy", "split": "test", "kind": "origin"},
                          "adv": {"dataset": "copy", "split": "adv", "kind": "adv"}},
        },
            # The same copying through the package's own generation kind (a prompt template,
            # the completion field, EOS-terminated training targets, a registered scorer).
            "copy-gen": {
                "kind": "generation", "display": "Copy (generation)", "template": "{prompt}", "completion": "answer",
                "max_new_tokens": MAX_NEW_TOKENS, "max_length": 16, "scorer": "exact_match",
                "train": {"dataset": "copy", "split": "train"},
                "validation": {"dataset": "copy", "split": "validation"},
                "eval_sets": {"test": {"dataset": "copy", "split": "test", "kind": "origin", "paper_column": "viggo"}},
            }},
        "training": {"epochs": 20, "batch_size": 16, "eval_batch_size": 32, "lr": 3.0e-3, "warmup_ratio": 0.05,
                     "weight_decay": 0.0, "optimizer": "adamw", "max_grad_norm": 1.0, "lr_scheduler": "linear",
                     "device": "cpu", "group_by_length": False, "precision": "fp32"},
        "resources": {"default": res},
        "execution": {"warm_worker": False},
        "studies": {"gen": {"title": "Exact match on copying digits", "layout": "robustness_table",
                            "models": ["tiny-llama"], "methods": ["fft", "lora"], "tasks": ["copy"]},
                    "gen1": {"title": "Copying digits, untuned and fine-tuned", "layout": "generation_table",
                             "figure": "generation", "models": ["tiny-llama"], "methods": ["vanilla", "fft", "lora"],
                             "tasks": ["copy-gen"]}},
    }


@pytest.fixture(scope="module")
def workflow_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("gen")
    (work / "plugins").mkdir()
    (work / "plugins" / "copy_kind.py").write_text(PLUGIN)
    write_copy_data(work / "data" / "external" / "copy")
    build_tiny_llama(work / "models" / "tiny-llama")
    result = run_snakemake(work, "all", config=gen_config(), profile="profiles/local", timeout=900)
    assert result.returncode == 0, (result.stdout[-3000:] + result.stderr[-5000:])
    return work


def test_generating_kind_runs_through_the_real_dag(workflow_run):
    work = workflow_run
    metrics = pd.read_csv(work / "results" / "metrics.csv")
    for method in ("fft", "lora"):
        record = json.loads((work / "results" / "eval" / "tiny-llama" / "copy" / method / "seed0.json").read_text())
        preds = pd.read_parquet(work / "results" / "eval" / "tiny-llama" / "copy" / method / "seed0.predictions.parquet")
        for eval_set in ("origin", "adv"):
            p = preds[preds["eval_set"] == eval_set]
            assert len(p) == record["metrics"][eval_set]["n"] > 0
            # The scores are what the predictions give: exact match of prediction and reference.
            em = float((p["prediction"] == p["reference"]).mean())
            assert record["metrics"][eval_set]["accuracy"] == pytest.approx(em)
            assert p["correct"].tolist() == [float(a == b) for a, b in zip(p["prediction"], p["reference"])]
            row = metrics[(metrics["method"] == method) & (metrics["eval_set"] == eval_set)
                          & (metrics["metric"] == "accuracy")]
            assert row["value"].tolist() == pytest.approx([em])
            # Generation stops at the stop string: it is cut off, and never seen past it.
            stopped = p[p["stop_reason"] == "stop"]
            assert all(";" in raw for raw in stopped["raw"])
            assert not any(";" in pred for pred in p["prediction"])
            assert all(pred == " ".join(raw.split(";")[0].split()) for pred, raw in zip(p["prediction"], p["raw"]))
            cut = p[p["stop_reason"] == "length"]
            assert (cut["new_tokens"] == MAX_NEW_TOKENS).all() and not any(";" in r for r in cut["raw"])
            assert record["metrics"][eval_set]["cut_at_budget"] == len(cut)
        train = json.loads((work / "results" / "runs" / "tiny-llama" / "copy" / method / "seed0" / "train.json").read_text())
        assert train["task_kind"] == "copy_digits" and train["params"]["head"] == 0
    # Training taught the copy (the loss is on completion tokens only): most generations stop
    # at ";" and FFT copies most test prompts exactly.
    fft = pd.read_parquet(work / "results" / "eval" / "tiny-llama" / "copy" / "fft" / "seed0.predictions.parquet")
    assert (fft["stop_reason"] == "stop").mean() >= 0.8
    assert fft["correct"].mean() >= 0.5
    table = (work / "results" / "tables" / "gen.tex").read_text()
    assert "FFT" in table and "LoRA" in table


def test_editing_the_plugin_reruns_its_jobs(workflow_run):
    """code_of counts the plugin's file: after the run nothing is to be done, and an edit of
    the plugin reruns the jobs that load the task registry (train and evaluate among them)."""
    work = workflow_run
    clean = run_snakemake(work, "results/tables/gen.tex", "-n", config=gen_config(), profile="profiles/local")
    assert clean.returncode == 0, clean.stderr[-3000:]
    assert "Nothing to be done" in clean.stdout + clean.stderr
    plugin = work / "plugins" / "copy_kind.py"
    original = plugin.read_text()
    try:
        plugin.write_text(original + "\n# an edit\n")
        result = run_snakemake(work, "results/tables/gen.tex", "-n", config=gen_config(), profile="profiles/local")
        assert result.returncode == 0, result.stderr[-3000:]
        text = result.stdout + result.stderr
        assert "rule train:" in text and "rule evaluate:" in text
    finally:
        plugin.write_text(original)


def test_generation_kind_vanilla_and_table1_layout(workflow_run):
    """The package's generation kind trains on completion tokens and scores with its scorer;
    vanilla has no train job, 0 trainable parameters and its own rows; the Table 1 layout,
    figure and per-example generations come out."""
    work = workflow_run
    runs = work / "results" / "runs" / "tiny-llama" / "copy-gen"
    assert not (runs / "vanilla").exists() and (runs / "fft" / "seed0" / "train.json").is_file()
    evals = work / "results" / "eval" / "tiny-llama" / "copy-gen"
    vanilla = json.loads((evals / "vanilla" / "seed0.json").read_text())
    assert vanilla["untrained"]["params"]["trainable"] == 0 and vanilla["untrained"]["trained"] is False
    fft = pd.read_parquet(evals / "fft" / "seed0.predictions.parquet")
    assert {"prompt", "generation", "reference", "stop_reason", "exact_match", "correct"} <= set(fft.columns)
    assert fft["correct"].tolist() == [float(" ".join(g.split()) == " ".join(r.split()))
                                       for g, r in zip(fft["generation"], fft["reference"])]
    record = json.loads((evals / "fft" / "seed0.json").read_text())["metrics"]["test"]
    assert record["exact_match"] == pytest.approx(fft["correct"].mean())
    # Trained to end the completion with EOS: FFT learns to copy and to stop.
    assert (fft["stop_reason"] == "eos").mean() >= 0.8 and fft["correct"].mean() >= 0.5
    runs_csv = pd.read_csv(work / "results" / "runs.csv")
    row = runs_csv[(runs_csv.task == "copy-gen") & (runs_csv.method == "vanilla")]
    assert len(row) == 1 and row["trainable_params"].iloc[0] == 0 and not row["trained"].iloc[0]
    table = pd.read_csv(work / "results" / "tables" / "gen1.csv")
    assert list(dict.fromkeys(table["method"])) == ["vanilla", "fft", "lora"]
    assert set(table["column"]) == {"copy-gen", "average"}
    cell = table[(table.method == "fft") & (table.column == "copy-gen")]
    assert cell["mean"].iloc[0] == pytest.approx(100 * record["exact_match"])
    tex = (work / "results" / "tables" / "gen1.tex").read_text()
    assert "(Vanilla)" in tex and "AVG" in tex
    assert (work / "results" / "figures" / "gen1.png").stat().st_size > 1000
    shown = pd.read_csv(work / "results" / "generations" / "gen1.csv")
    assert set(shown["method"]) == {"vanilla", "fft", "lora"} and shown["generation"].notna().any()
    assert "<table>" in (work / "results" / "generations" / "gen1.html").read_text()


# --------------------------------------------------------------------------- without the DAG


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("llama") / "tiny-llama")


@pytest.fixture(scope="module")
def copy_kind(tmp_path_factory):
    """The plugin's kind, registered in this process as a job would (lwob.plugins)."""
    from lwob import plugins, tasks

    path = tmp_path_factory.mktemp("plugin") / "copy_kind.py"
    path.write_text(PLUGIN)
    plugins.load(plugins.resolve([str(path)]))
    return tasks.get("copy_digits")


def test_batched_generation_equals_one_by_one_and_stops(tiny_llama):
    """Left-padded batches give each row what it gets alone; a stop string cuts the text,
    a generation without one is cut at the budget and says so."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    from lwob.run.generation import LENGTH, STOP, cut_at_stop, generate

    tok = AutoTokenizer.from_pretrained(str(tiny_llama))
    model = LlamaForCausalLM.from_pretrained(str(tiny_llama))
    prompts = [tok(p, add_special_tokens=False)["input_ids"] for p in
               ("copy 1 =", "copy 3 1 4 1 5 9 =", "copy 2 7 =", "copy 9 9 9 9 =")]
    batched = generate(model, prompts, tokenizer=tok, max_new_tokens=6, batch_size=4)
    alone = [generate(model, [p], tokenizer=tok, max_new_tokens=6, batch_size=1) for p in prompts]
    assert batched.token_ids == [a.token_ids[0] for a in alone]
    assert batched.stop_reason == [LENGTH] * 4 and all(len(t) == 6 for t in batched.token_ids)
    # Stop at the first new word the model wrote (it is random): the text ends just before it.
    first = batched.raw[0].split()[0]
    stopped = generate(model, prompts[:1], tokenizer=tok, max_new_tokens=6, stop_strings=[first])
    assert stopped.stop_reason == [STOP] and stopped.texts[0].strip() == ""
    assert len(stopped.token_ids[0]) < 6 or first in stopped.raw[0]
    assert cut_at_stop("1 2 ; 3 ;", [";"]) == ("1 2 ", True) and cut_at_stop("1 2", [";"]) == ("1 2", False)


def test_own_greedy_loop_drops_stopped_rows_and_equals_generate(tiny_llama):
    """Our loop (rows leave the batch and the KV cache once stopped) writes, token for token,
    what transformers' generate writes for each prompt alone and for the batch, with rows that
    stop on EOS, on a stop string and at the budget; where it does not apply, generate decodes."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    import lwob.run.generation as gen

    tok = AutoTokenizer.from_pretrained(str(tiny_llama))
    model = LlamaForCausalLM.from_pretrained(str(tiny_llama)).eval()
    torch.manual_seed(1)
    with torch.no_grad():  # larger random weights: varied words, and EOS at different steps
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.2)
    prompts = [tok(p, add_special_tokens=False)["input_ids"] for p in
               ("copy 1 =", "copy 3 1 4 1 5 9 =", "copy 2 7 =", "copy 9 9 9 9 =", "copy 0 =", "copy 5 5 6 =")]
    assert gen.own_loop_applies(model) is None
    free = gen.generate(model, prompts, tokenizer=tok, max_new_tokens=10, batch_size=6).token_ids
    # As EOS, the word whose first appearance varies most over the rows: rows stop at different steps.
    eos = max(range(4, len(WORDS)), key=lambda t: len({row.index(t) if t in row else -1 for row in free}))
    tok.eos_token = WORDS[eos]
    rows_per_step = []
    hook = model.model.embed_tokens.register_forward_pre_hook(lambda m, a: rows_per_step.append(a[0].shape[0]))
    ours = gen.generate(model, prompts, tokenizer=tok, max_new_tokens=10, batch_size=6)
    hook.remove()
    assert min(rows_per_step) < 6 and rows_per_step == sorted(rows_per_step, reverse=True)  # stopped rows left
    assert set(ours.stop_reason) >= {gen.EOS}
    with torch.inference_mode():
        for p, got in zip(prompts, ours.token_ids):
            x = torch.tensor([p])
            alone = model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=10, do_sample=False,
                                   eos_token_id=eos, pad_token_id=0)[0, len(p):].tolist()
            expected = alone[: alone.index(eos)] if eos in alone else alone
            while eos not in alone and expected and expected[-1] == 0:
                expected.pop()  # generated pad ids at a cut row's end go, as generate's padding does
            assert got == expected
    # A stop string as well, against generate on the same batches (the loop switched off).
    stops = [tok.convert_ids_to_tokens(ours.token_ids[1][0])]
    ours = gen.generate(model, prompts, tokenizer=tok, max_new_tokens=10, batch_size=4, stop_strings=stops)
    theirs = gen.generate(model, prompts, tokenizer=tok, max_new_tokens=10, batch_size=4, stop_strings=stops,
                          own_loop=False)
    assert ours == theirs and gen.STOP in ours.stop_reason
    model.generation_config.repetition_penalty = 1.3
    assert "repetition_penalty" in gen.own_loop_applies(model)


def test_prompt_learning_models_decode_with_their_own_generate(tiny_llama):
    from lwob.run.generation import own_loop_applies
    from lwob.run.training import build_run_model

    model, *_ = build_run_model(model_dir=tiny_llama, meta={"kind": "generation", "max_length": 16},
                                method_type="prefix", method_options={"num_virtual_tokens": 2}, seed=0, total_steps=1)
    assert "prompt-learning" in own_loop_applies(model)
    lora, *_ = build_run_model(model_dir=tiny_llama, meta={"kind": "generation", "max_length": 16},
                               method_type="lora", method_options={"r": 4}, seed=0, total_steps=1)
    assert own_loop_applies(lora) is None


@pytest.mark.parametrize("method, options", [
    ("fft", {}), ("lora", {"r": 4}), ("adalora", {"init_r": 4, "target_r": 2}), ("ia3", {}),
    ("prefix", {"num_virtual_tokens": 4}), ("topk", {"k": 1}),
])
def test_methods_train_a_causal_lm_through_its_own_head(method, options, tiny_llama, copy_kind):
    """Each method builds on a Llama-style causal LM with the kind's CAUSAL_LM task type, takes
    a step on per-token labels, counts exactly what trains and hands it all to the optimizer."""
    import torch

    from lwob.run.training import build_run_model, make_optimizer, resolve_hyperparameters

    meta = {"kind": "copy_digits", "max_length": 16}
    model, cls, _, ctx, base_total = build_run_model(model_dir=tiny_llama, meta=meta, method_type=method,
                                                     method_options=options, seed=0, total_steps=10)
    counts = cls.parameter_counts(model, base_total)
    trainable = {id(p): p for p in model.parameters() if p.requires_grad}
    assert counts["trainable"] == sum(p.numel() for p in trainable.values()) > 0
    assert counts["head"] == 0
    optimizer = make_optimizer(model, resolve_hyperparameters({"weight_decay": 0.01}), torch.device("cpu"),
                               method=cls)
    grouped = [p for g in optimizer.param_groups for p in g["params"]]
    assert len(grouped) == len(trainable) and {id(p) for p in grouped} == set(trainable)
    batch = copy_kind.synthetic_batch(batch_size=2, length=8, vocab_size=len(WORDS),
                                      generator=torch.Generator().manual_seed(0), meta=meta)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    model(**batch).loss.backward()
    optimizer.step()
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters() if p.requires_grad)


def test_bitfit_on_a_model_without_biases_fails_at_config_time(tiny_llama, copy_kind):
    from lwob import methods
    from lwob.errors import ConfigError
    from lwob.models import model_info_from_dir

    info = model_info_from_dir(tiny_llama)
    assert info["bias_terms"] is False
    ctx = methods.MethodContext(model_type=info["model_type"], task_kind="copy_digits", bias_terms=info["bias_terms"])
    with pytest.raises(ConfigError, match="bitfit: model type 'llama' has no bias terms"):
        methods.get("bitfit").check(methods.parse_options("bitfit", {}), ctx)
