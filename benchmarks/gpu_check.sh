#!/usr/bin/env bash
# The GPU check (docs/BENCHMARKS.md, "GPU check"): the CUDA code paths of one training job
# (bf16 autocast, TF32, fused AdamW, peak GPU memory in train.json, evaluation at the recorded
# precision) through the real lwob.run.launch.train and lwob.run.evaluation, then model FLOP
# utilisation of a RoBERTa-base-shaped FFT step and a 1B-parameter Llama-shaped LoRA step
# against the measured bf16 matmul peak (benchmarks/gpu_check.py, benchmarks/bench_flops.py).
#
#   bash benchmarks/gpu_check.sh            on a lent GPU machine (no network): at most 8 minutes
#   bash benchmarks/gpu_check.sh --dry-run  here, on the CPU (or DRY_RUN=1): builds the wheel
#                                           folder and checks the check is complete
#
# The GPU machine's Python has torch, transformers, peft, accelerate, pandas, matplotlib and
# jinja2 (DEVICE_HAS below) and nothing else we can count on. What the package needs beyond
# them travels as wheels in benchmarks/out/wheels (ignored by git: give it to the `run` tool's
# `carry`), built here from the package index by the dry run; on the GPU machine the missing
# ones are installed offline (--no-index) into a scratch folder, never into its Python.
#
# The dry run checks that it is complete: (1) the wheels are there for every distribution the
# package needs beyond DEVICE_HAS (their dependency closure, as installed in .venv); (2) every
# stage runs on tiny sizes on the CPU in an interpreter that sees only DEVICE_HAS's
# distributions, the wheels installed offline, and src/ (as on the GPU machine); (3) the tree
# that travels (git's tracked and untracked-not-ignored files, plus the wheels) is under 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."

DRY=${DRY_RUN:-0}
[[ ${1:-} == --dry-run ]] && DRY=1
WHEELS=${WHEELS:-benchmarks/out/wheels}
OUT=${OUT:-benchmarks/out/gpu_check}
LIMIT_S=${LIMIT_S:-480}            # the check's whole budget on the GPU machine (8 minutes)
MAX_TREE=$((64 * 1024 * 1024))     # what the run tool carries at most
DEVICE_HAS="torch transformers peft accelerate pandas matplotlib jinja2"
# What the training/evaluation path imports beyond DEVICE_HAS (and their dependencies).
NEEDS="pyarrow safetensors psutil pyyaml tokenizers"
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 TOKENIZERS_PARALLELISM=false
export PIP_DISABLE_PIP_VERSION_CHECK=1

# The distributions in NEEDS's dependency closure that DEVICE_HAS's closure lacks, as
# name==version from the interpreter $1 (run with .venv's, where the project is installed).
carried() {
    "$1" - "$DEVICE_HAS" "$NEEDS" <<'EOF'
import importlib.metadata as md, re, sys

def closure(roots):
    seen, todo = {}, list(roots)
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in seen:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        seen[name] = dist.version
        for req in dist.requires or []:
            if "extra ==" not in req:
                todo.append(re.split(r"[ ;<>=!\[~(]", req, maxsplit=1)[0])
    return seen

device = closure(sys.argv[1].split())
for name, version in sorted(closure(sys.argv[2].split()).items()):
    if name not in device:
        print(f"{name}=={version}")
EOF
}

if [[ $DRY == 1 ]]; then
    VENV_PY=${VENV_PY:-.venv/bin/python}
    echo "gpu_check (dry run): CPU, tiny sizes"
    # 1. the wheels, from the package index (pip's own configuration: the local index here)
    mapfile -t CARRY < <(carried "$VENV_PY")
    echo "carried as wheels: ${CARRY[*]:-(none)}"
    mkdir -p "$WHEELS"
    if ((${#CARRY[@]})); then
        # For the GPU machine's Python (WHEEL_PYTHON: 3.11, the project's; set it when that
        # machine's differs and lacks a carried distribution).
        "$VENV_PY" -m pip download -q --no-deps --only-binary=:all: --python-version "${WHEEL_PYTHON:-3.11}" \
            --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
            --platform any -d "$WHEELS" "${CARRY[@]}"
    fi
    # 2. an interpreter that sees only DEVICE_HAS's distributions: symlinks to their files
    "$VENV_PY" - "$DEVICE_HAS" "$SCRATCH/device-site" <<'EOF'
import importlib.metadata as md, os, re, sys
from pathlib import Path

site = Path(sys.argv[2])
site.mkdir(parents=True)
seen, todo = set(), sys.argv[1].split()
while todo:
    name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
    if name in seen:
        continue
    try:
        dist = md.distribution(name)
    except md.PackageNotFoundError:
        continue
    seen.add(name)
    todo += [re.split(r"[ ;<>=!\[~(]", r, maxsplit=1)[0] for r in dist.requires or [] if "extra ==" not in r]
    for f in dist.files or []:
        top = f.parts[0]
        if top.endswith(".pth") or top == ".." or top == "__pycache__":
            continue
        src, dst = Path(dist.locate_file(top)), site / top
        if src.exists() and not dst.exists():
            dst.symlink_to(src)
print(f"device-like site: {len(seen)} distributions")
EOF
    PY=$(realpath "$VENV_PY")
    DEVICE_ARGS=(--tiny --device cpu)
    RUN_ENV=(env PYTHONNOUSERSITE=1 PYTHONPATH="$SCRATCH/extra:$SCRATCH/device-site")
    PY_FLAGS=(-S)   # no site-packages of .venv: only what PYTHONPATH names
else
    PY=${PYTHON:-python3}
    DEVICE_ARGS=(--device cuda)
    RUN_ENV=(env PYTHONPATH="$SCRATCH/extra")
    PY_FLAGS=()
    "$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print('device:', torch.cuda.get_device_name(0))"
fi

# 3. the wheels the interpreter lacks, offline, into a scratch folder
missing=()
for whl in "$WHEELS"/*.whl; do
    [[ -e $whl ]] || continue
    dist=$(basename "$whl" | cut -d- -f1)
    if ! "${RUN_ENV[@]}" "$PY" "${PY_FLAGS[@]}" -c "import importlib.metadata as m, sys; m.distribution(sys.argv[1])" "$dist" 2>/dev/null; then
        missing+=("$whl")
    fi
done
if ((${#missing[@]})); then
    echo "installing offline: ${#missing[@]} wheel(s)"
    if "$PY" -m pip --version >/dev/null 2>&1; then
        "$PY" -m pip install -q --no-index --no-deps --target "$SCRATCH/extra" "${missing[@]}"
    else  # no pip in that Python: a wheel is a zip archive laid out for site-packages
        "$PY" -c "import sys, zipfile; [zipfile.ZipFile(w).extractall(sys.argv[1]) for w in sys.argv[2:]]" \
            "$SCRATCH/extra" "${missing[@]}"
    fi
fi

# 4. the stages
start=$SECONDS
"${RUN_ENV[@]}" timeout -k 10 "$LIMIT_S" "$PY" "${PY_FLAGS[@]}" benchmarks/gpu_check.py "${DEVICE_ARGS[@]}" --out "$OUT"
echo "gpu_check: stages took $((SECONDS - start)) s (limit ${LIMIT_S} s)"

if [[ $DRY == 1 ]]; then
    # 5. the travelling tree: what the run tool copies (tracked + untracked-not-ignored) + the wheels
    tree=$(git ls-files -z -co --exclude-standard | { xargs -0 stat -c %s 2>/dev/null || true; } \
        | awk '{s += $1} END {print s + 0}')  # (files deleted in the work tree: not there, not counted)
    wheels=$(du -sb "$WHEELS" | cut -f1)
    total=$((tree + wheels))
    echo "travelling tree: $((tree / 1024)) KiB + wheels $((wheels / 1024)) KiB = $((total / 1024 / 1024)) MiB (limit 64 MiB)"
    if ((total >= MAX_TREE)); then
        echo "gpu_check: the travelling tree is over 64 MiB" >&2
        exit 1
    fi
    echo "gpu_check (dry run): complete. On a GPU machine: bash benchmarks/gpu_check.sh, carry [\"$WHEELS\"]"
fi
