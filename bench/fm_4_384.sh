#!/bin/sh
# Reproduce the shipped fashion_mnist-4-384 model and its metrics on a GPU machine (two calls of
# under 10 minutes each on one H200 with 16 cores; docs/results.md, "CSDformer-4-384 on
# Fashion-MNIST"). Run from the repository root; DATA holds the four Fashion-MNIST idx .gz files,
# OUT receives the artifact, the weights (in parts) and the logs.
#
#     DATA=.devdata/fashion-mnist OUT=out sh bench/fm_4_384.sh train    # train 18 epochs, convert
#     DATA=.devdata/fashion-mnist OUT=out sh bench/fm_4_384.sh golden   # int-QANN + SNN D=0..3, 10,000 images
#
# Where csdformer is installed, leave out the shim (bench/device_env.sh). A run stopped by
# --max-seconds continues with: python3 bench/train_on_budget.py x --resume --out runs/fm4 ...
set -eu
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
OUT=${OUT:-out}
mkdir -p "$OUT"
python3 -c "import csdformer.quantize" 2>/dev/null || . bench/device_env.sh
export PYTHONUNBUFFERED=1
case "${1:-}" in
train)
    python3 bench/train_on_budget.py fashion_mnist-4-384 --budget 400 --max-seconds 450 --root "$DATA" \
        --out runs/fm4 --no-golden --export "$OUT" 2>&1 | tee "$OUT/train.log" ;;
golden)
    python3 bench/golden_parallel.py "${ARTIFACT:-runs/fm4/artifact}" --root "$DATA" --procs "$(nproc)" \
        --deadline 400 --json "$OUT/golden.json" 2>&1 | tee "$OUT/golden.log"
    mkdir -p "$OUT/artifact" && cp "${ARTIFACT:-runs/fm4/artifact}"/* "$OUT/artifact/" ;;
*)
    echo "usage: $0 train|golden" >&2; exit 2 ;;
esac
