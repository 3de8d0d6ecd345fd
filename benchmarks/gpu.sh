#!/usr/bin/env bash
# GPU evidence in one call: speed and 100-epoch CIFAR-10 accuracy.
#
#   benchmarks/gpu.sh --prepare   here: wheels into .whl/, CIFAR-10 into .data/
#   benchmarks/gpu.sh             on the device machine, from the repository
#                                 root, everything written under $OUT
#   benchmarks/gpu.sh --dry-run   on a CPU: the same phases at tiny sizes on
#                                 made-up CIFAR-shaped archives, tensorflow
#                                 hidden as on the device image (a minute or two)
#   benchmarks/gpu.sh --cifar10 [--set KEY=VALUE]...
#                                 phase 2 alone, with changes to the recipe of
#                                 benchmarks/cifar10.yaml (about 4.5 minutes on
#                                 an H200): a second call in the same lease
#                                 (BENCHMARKS.md names the recipes to try)
#
# Phases, in order, each under its own time limit, each writing its JSON to
# $OUT as soon as it ends (a phase that fails or runs out of time leaves the
# others running):
#   1. throughput-jax   benchmarks/throughput.py: full step vs floor, jax
#   2. cifar10-jax      benchmarks/cifar10.py: 100 epochs, kNN and linear
#   3. throughput-torch benchmarks/throughput.py on torch, full step only: the
#                       traced step of contrastive.torch_step compiled by
#                       inductor (--jit true), its compilation in the
#                       first epoch, and one step of the compiled graph
#                       checked against the uncompiled one
#   4. overhead-torch   benchmarks/overhead.py at full size: Keras' eager step
#                       on torch (with contrastive.torch_speed) against the
#                       plain torch module, eager and compiled
# $OUT/log.txt holds everything printed; $OUT/summary.txt the table printed last.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

usage="usage: benchmarks/gpu.sh [--prepare | [--dry-run] [--cifar10 [--set KEY=VALUE]...]]"
mode=device
only=""
sets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) mode=dry ;;
        --prepare) mode=prepare ;;
        --cifar10) only=cifar10 ;;
        --set)
            [ $# -ge 2 ] || { echo "$usage: --set needs KEY=VALUE" >&2; exit 2; }
            sets+=(--set "$2")
            shift ;;
        *) echo "$usage: unexpected $1" >&2; exit 2 ;;
    esac
    shift
done
if [ ${#sets[@]} -gt 0 ] && [ "$only" != cifar10 ]; then
    echo "$usage: --set changes the recipe of --cifar10 only" >&2
    exit 2
fi

if [ "$mode" = prepare ]; then
    # The device image has jax (CUDA), torch, torchvision and Pillow; keras and
    # its two missing needs travel as cp312 wheels. Both folders are ignored
    # by git and named in the device call's `carry`.
    set -e
    source=${CIFAR10_DIR:-../shared/datasets/cifar10}
    mkdir -p .whl .data/cifar10
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
        "keras==${KERAS_VERSION:-3.15.1}" namex optree
    cp "$source/cifar10-train.tar.gz" "$source/cifar10-test.tar.gz" .data/cifar10/
    du -sh .whl .data
    echo "carry: [\".whl\", \".data\"]; command: bash benchmarks/gpu.sh"
    exit 0
fi

python=${PYTHON:-python3}
if [ "$mode" = dry ]; then
    OUT=${OUT:-$(mktemp -d -t gpu-dry-XXXXXX)}
    work=$(mktemp -d -t gpu-dry-work-XXXXXX)
    trap 'rm -rf "$work"' EXIT
    # Hide tensorflow, as the device image has none: anything that needs it fails here too.
    mkdir -p "$work/no-tensorflow/tensorflow"
    echo 'raise ImportError("tensorflow is not on the device image (gpu.sh --dry-run hides it)")' \
        > "$work/no-tensorflow/tensorflow/__init__.py"
    export PYTHONPATH="$work/no-tensorflow:$root${PYTHONPATH:+:$PYTHONPATH}"
    data="$work/cifar10"
    "$python" benchmarks/fake_cifar10.py "$data" --per-class 12 --test-per-class 4
else
    : "${OUT:?set OUT to the folder the results go to}"
    work=/tmp/contrastive-gpu
    mkdir -p "$work"
    if ls .whl/*.whl >/dev/null 2>&1; then
        "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target "$work/site" .whl/*.whl || { echo "wheel install failed" >&2; exit 1; }
        export PYTHONPATH="$work/site:$root${PYTHONPATH:+:$PYTHONPATH}"
    else
        export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
    fi
    data=${CIFAR10_DIR:-.data/cifar10}
fi
mkdir -p "$OUT"
export CONTRASTIVE_CACHE_DIR="$work/cache" PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=3
log="$OUT/log.txt"
: > "$log"

if [ "$mode" = dry ]; then
    tput=(--set encoder.name=small_cnn --set encoder.widths=[8,16] --batch-size 8 --steps 2
          --set train.precision=float32)
    cifar=(--set encoder.name=small_cnn --set encoder.widths=[8,16] --set train.epochs=2
           --set schedule.warmup=1 --set train.batch_size=32 --set train.precision=float32
           --set eval.linear.epochs=2 --set eval.knn.k=5 --set output.checkpoint_every=1)
    ttput=("${tput[@]}" --no-floor --jit true)
    over=(--steps 2 --no-jit)
    limits=(300 300 300 300)
else
    tput=(--batch-size 512 --steps 50)
    cifar=(--set output.checkpoint_every=25)
    ttput=(--batch-size 512 --steps 20 --no-floor --jit true)
    over=(--batch-size 512 --size 32 --precision mixed_bfloat16 --steps 20 --compile --no-jit)
    limits=(90 290 150 60)
fi

{
    echo "== gpu.sh $mode${only:+ $only ${sets[*]:-}}, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(git rev-parse --short HEAD 2>/dev/null || echo no-git)"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv 2>/dev/null \
        || echo "nvidia-smi: none"
    KERAS_BACKEND=jax "$python" - <<'EOF'
import importlib, platform
print("python", platform.python_version())
for name in ("keras", "jax", "jaxlib", "torch", "numpy"):
    try:
        print(name, importlib.import_module(name).__version__)
    except Exception as exc:  # noqa: BLE001
        print(name, "unavailable:", type(exc).__name__, exc)
EOF
} 2>&1 | tee -a "$log"

failed=()
phase() {  # phase NAME LIMIT_SECONDS BACKEND COMMAND...
    local name=$1 limit=$2 backend=$3
    shift 3
    local start=$(date +%s)
    echo "== $name (KERAS_BACKEND=$backend, limit ${limit}s): $*" | tee -a "$log"
    KERAS_BACKEND=$backend timeout -k 10 "$limit" "$@" 2>&1 | tee -a "$log"
    local code=${PIPESTATUS[0]}
    echo "== $name: exit $code after $(( $(date +%s) - start ))s" | tee -a "$log"
    [ "$code" = 0 ] || failed+=("$name:$code")
}

if [ -z "$only" ]; then
    phase throughput-jax "${limits[0]}" jax "$python" benchmarks/throughput.py "${tput[@]}" \
        --output "$OUT/throughput-jax.json"
fi
rm -rf "$work/cifar10-run"
phase cifar10-jax "${limits[1]}" jax "$python" benchmarks/cifar10.py --data "$data" \
    --set train.verbose=2 "${cifar[@]}" ${sets[@]+"${sets[@]}"} --out "$work/cifar10-run" \
    --output "$OUT/cifar10-jax.json"
cp "$work/cifar10-run/run/metrics.csv" "$OUT/cifar10-metrics.csv" 2>/dev/null
if [ -z "$only" ]; then
    phase throughput-torch "${limits[2]}" torch "$python" benchmarks/throughput.py "${ttput[@]}" \
        --output "$OUT/throughput-torch.json"
    phase overhead-torch "${limits[3]}" torch "$python" benchmarks/overhead.py "${over[@]}" \
        --output "$OUT/overhead-torch.json"
fi

"$python" benchmarks/gpu_summary.py "$OUT" ${only:+--only "$only"} | tee "$OUT/summary.txt"
if [ ${#failed[@]} -gt 0 ]; then
    echo "failed phases: ${failed[*]}" | tee -a "$OUT/summary.txt"
    exit 1
fi
