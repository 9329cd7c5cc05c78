#!/usr/bin/env bash
# The checks only a CUDA GPU can run, as one prepared command, in three parts that each
# write their results as they finish (a part that runs out of time leaves its log, with
# every measurement it finished):
#
#   tests   pytest -m cuda tests/: every test marked `cuda`, in every test file
#   speed   benchmarks/run.py at PathMNIST's real size (89,996 / 10,004 images at 64x64):
#           10 epochs of `fit` against the seed-style reference, timed in the same run on
#           as many epochs as it needs for a stable per-epoch figure (at most 3)
#   memory  benchmarks/memory.py: peak host and GPU memory at 64 px (89,996 images) and
#           224 px (20,000 images: the full 13.5 GB file takes minutes to write)
#
# Usage, from a clone of the repository on a machine with an NVIDIA GPU (Ampere or newer
# for the bf16 rows) and torch built with CUDA:
#   bash benchmarks/gpu_check.sh [--dry-run] [all|tests|speed|memory]
# --dry-run prints each part's command and time limit and runs nothing (any machine).
# Results go to $OUT (default ./gpu-out): env.txt, tests.log, speed.log, memory.log and
# RESULTS.md (benchmarks/RESULTS.md with the cuda sections filled in: copy it over).
#
# Without network on the GPU machine: the package imports numpy, tqdm, matplotlib and
# medmnist (torch is expected there). Fetch their wheels on a machine with network, into
# wheels/ of the clone, with this one command (pure-Python or manylinux wheels for CPython
# 3.12; change --python-version to the GPU machine's Python):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux2014_x86_64 -d wheels/ numpy tqdm matplotlib medmnist contourpy \
#     cycler fonttools kiwisolver packaging pillow pyparsing python-dateutil six
# and the script installs, from wheels/ only, those whose import fails.
#
# Time limits (estimates for one H100, not measured: tests ~1.5 min, speed ~2.5 min,
# memory ~1.5 min), each under 3 minutes and 450 s in all, within 8 minutes with the
# prerequisite check.
set -uo pipefail
cd "$(dirname "$0")/.."

PARTS=(tests speed memory)
declare -A LIMIT=([tests]=150 [speed]=180 [memory]=120)
OUT="${OUT:-$PWD/gpu-out}"
declare -A CMD=(
    [tests]="python3 -m pytest -m cuda tests/ -q -p no:cacheprovider -rs --continue-on-collection-errors"
    [speed]="python3 benchmarks/run.py --device cuda --train 89996 --val 10004 --size 64 --epochs 10 --ref-epochs 3 --repeats 1 --step-batches 100 --out $OUT/RESULTS.md"
    [memory]="python3 benchmarks/memory.py --device cuda --sizes 64 224 --n-train 89996 20000 --data-dir ${TMPDIR:-/tmp} --out $OUT/RESULTS.md"
)

dry=0
part=all
for arg in "$@"; do
    case "$arg" in
        --dry-run) dry=1 ;;
        all | tests | speed | memory) part="$arg" ;;
        *) echo "usage: bash benchmarks/gpu_check.sh [--dry-run] [all|tests|speed|memory]"; exit 2 ;;
    esac
done
selected=("${PARTS[@]}")
[[ "$part" == all ]] || selected=("$part")

if ((dry)); then
    total=0
    for p in "${selected[@]}"; do
        echo "part $p: limit ${LIMIT[$p]} s: PYTHONPATH=. ${CMD[$p]}"
        total=$((total + LIMIT[$p]))
    done
    echo "total limit: $total s"
    exit 0
fi

# Prerequisites, all checked before any part runs; one line names whatever is missing.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
missing=()
if ! command -v python3 >/dev/null; then
    echo "missing: python3"; exit 2
fi
for module in numpy tqdm matplotlib medmnist; do  # What the package imports besides torch.
    python3 -c "import $module" 2>/dev/null && continue
    if ls wheels/*.whl >/dev/null 2>&1; then
        python3 -m pip install -q --no-index --no-deps --find-links wheels/ \
            --target "$OUT/site" "$module" >/dev/null 2>&1
        export PYTHONPATH="$PYTHONPATH:$OUT/site"  # After the machine's own packages.
    fi
    python3 -c "import $module" 2>/dev/null || missing+=("$module (no wheel in wheels/)")
done
python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null \
    || missing+=("torch with a CUDA GPU it can see")
for module in pytest hypothesis; do
    python3 -c "import $module" 2>/dev/null || missing+=("$module")
done
command -v "${CC:-cc}" >/dev/null || command -v gcc >/dev/null \
    || missing+=("a C compiler (cc or gcc, for torch.compile)")
if ((${#missing[@]})); then
    (IFS=,; echo "missing: ${missing[*]}" | sed 's/,/, /g')
    exit 2
fi
# Test-only libraries: a test file that imports one that is absent fails to collect, and
# the other files still run (--continue-on-collection-errors); say which up front.
absent=()
for module in sklearn scipy torchvision skimage torchstain statsmodels PIL; do
    python3 -c "import $module" 2>/dev/null || absent+=("$module")
done
((${#absent[@]})) && echo "note: test files that import ${absent[*]} will not collect"

mkdir -p "$OUT"
[[ -f "$OUT/RESULTS.md" ]] || cp benchmarks/RESULTS.md "$OUT/RESULTS.md"
{
    command -v nvidia-smi >/dev/null && nvidia-smi
    python3 -c "import sys, torch; print(sys.version); print('torch', torch.__version__, \
torch.version.cuda, torch.cuda.get_device_name())"
    nproc
    free -g
} >"$OUT/env.txt" 2>&1

status=0
for p in "${selected[@]}"; do
    echo "== part $p (limit ${LIMIT[$p]} s)"
    start=$SECONDS
    # shellcheck disable=SC2086  # The command is a word list on purpose.
    timeout "${LIMIT[$p]}" ${CMD[$p]} 2>&1 | tee "$OUT/$p.log"
    rc=${PIPESTATUS[0]}
    ((rc == 124)) && echo "part $p ran out of its ${LIMIT[$p]} s; $OUT/$p.log keeps what it measured"
    ((rc == 0)) || status=1
    echo "== part $p: exit $rc after $((SECONDS - start)) s" | tee -a "$OUT/$p.log"
done
exit $status
