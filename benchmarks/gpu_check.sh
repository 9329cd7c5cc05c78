#!/usr/bin/env bash
# The GPU checks of issue 9 as one prepared command, for a lent GPU machine (Python 3.12,
# torch with CUDA, no network, no medmnist/fire/termcolor): the CUDA tests, the side-by-side
# speed table at PathMNIST's real size (89,996 / 10,004 images at 64x64, 10 epochs, with the
# seed-style pipeline timed in the same run, and --compile), and peak memory at 64 and 224 px
# on files of the real size. Outputs go to $OUT (the device tool brings them back):
#   RESULTS.md   benchmarks/RESULTS.md with the cuda sections filled in: copy it over
#   tests.log, speed.log, memory.log, env.txt
#
# Usage
#   bash benchmarks/gpu_check.sh --fetch-wheels   # here, once, with network: wheels to .whl/
#   bash benchmarks/gpu_check.sh [all|tests|speed|memory]   # on the GPU machine
# With this workplace's device tool (.whl is git-ignored, so it must be carried):
#   run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=590)
# Estimated (not yet run on a GPU): tests ~1.5 min, speed ~3.5 min, memory ~2 min on one
# H100; each part has its own time limit (150 + 280 + 150 s), and a part that ran out of
# time can be rerun alone, e.g. command="bash benchmarks/gpu_check.sh memory".
set -uo pipefail
cd "$(dirname "$0")/.."
WHEELS=(medmnist==3.0.2 fire==0.7.1 termcolor==3.3.0)  # The ones the GPU image lacks.

if [[ "${1:-}" == "--fetch-wheels" ]]; then
    # Pure-Python wheels for CPython 3.12; --no-deps: the image has every other dependency.
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >>.git/info/exclude
    exec python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux2014_x86_64 -d .whl "${WHEELS[@]}"
fi

part="${1:-all}"
OUT="${OUT:-$PWD/gpu-out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if ! python3 -c "import medmnist" 2>/dev/null; then
    ls .whl/*.whl >/dev/null 2>&1 || { echo "no wheels in .whl/: run --fetch-wheels here first"; exit 2; }
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 2
    export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}"
python3 -c "import torch; assert torch.cuda.is_available(), 'torch sees no CUDA GPU'" || exit 2
{ nvidia-smi; python3 -c "import torch, sys; print(sys.version); print('torch', torch.__version__, torch.cuda.get_device_name())"; nproc; free -g; } >"$OUT/env.txt" 2>&1
[[ -f "$OUT/RESULTS.md" ]] || cp benchmarks/RESULTS.md "$OUT/RESULTS.md"
status=0

if [[ "$part" == all || "$part" == tests ]]; then
    timeout 150 python3 -m pytest -m cuda tests/test_cuda.py -q -p no:cacheprovider -rs 2>&1 | tee "$OUT/tests.log" || status=1
fi
if [[ "$part" == all || "$part" == speed ]]; then
    timeout 280 python3 benchmarks/run.py --device cuda --train 89996 --val 10004 --size 64 \
        --epochs 10 --repeats 1 --step-batches 100 --compile --out "$OUT/RESULTS.md" 2>&1 | tee "$OUT/speed.log" || status=1
fi
if [[ "$part" == all || "$part" == memory ]]; then
    # 224 px on 20,000 images (3 GB): the full 13.5 GB file takes minutes to write and
    # convert; the CPU section of RESULTS.md has the full size.
    timeout 150 python3 benchmarks/memory.py --device cuda --sizes 64 224 --n-train 89996 20000 \
        --data-dir /tmp --out "$OUT/RESULTS.md" 2>&1 | tee "$OUT/memory.log" || status=1
fi
exit $status
