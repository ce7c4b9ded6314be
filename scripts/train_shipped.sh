#!/usr/bin/env bash
# Train the three shipped network checkpoints, in parallel on one GPU, and export each to
# assets/models/NAME.pt (+ NAME.json, NAME_loss.csv). Reruns resume from runs/shipped/NAME.
#
#   scripts/train_shipped.sh                                  # the shipped models (one GPU)
#   STEPS_SCALE=0.01 scripts/train_shipped.sh                 # smoke run (models -> runs/, not assets/)
#   GAMMA_NOISE=10 BASE_STEPS=20000 scripts/train_shipped.sh  # noisier end (less signal at t = 1)
#   PYTHON=python3 RUNS_DIR=/tmp/r MODELS_DIR=/tmp/m scripts/train_shipped.sh
#
# Models (all 32x32, data prior, default UNetConfig: 1.79 M parameters with the gamma MLP,
# 7.2 MB in float32; softness family log-uniform on [0.1, 10] + 20 % at 1 + 10 % at inf):
#   shapes_haar          shapes, wavelet basis (haar, all 5 levels), scale order (coarse first)
#   digits_dct           digits, DCT basis, variance order
#   digits_pixel_column  digits, pixel basis, column order (left to right)
#
# Time estimate (STEPS = 4500 steps at batch 128 per model, all three at once):
# - CPU (2 threads, bench/bench_train.py): 1.2 steps/s at batch 64 with the default model; the
#   usual 50-100x for a small convnet on a GPU predicts ~60-120 steps/s for one run.
# - Measured on one H200 (torch 2.11, bf16 autocast): one run alone does 20 steps/s at batch 64,
#   and each of three parallel runs does 21 steps/s at batch 128 (600-step calibration run: 43 s
#   wall for all three, ~10 s of it start-up, data and export). The step is bound by Python/CUDA
#   launch overhead, not by the GPU, so the three runs hardly slow each other and batch 128
#   costs no more per step than 64.
# - So 4500 steps take ~215 s of training + ~15 s start-up and warm-up: about 4 minutes on an
#   H200 (an H100 should be about the same, the GPU being mostly idle).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python}
SCALE=${STEPS_SCALE:-1}
STEPS=$("$PYTHON" -c "import sys; print(max(1, round(float(sys.argv[1]) * float(sys.argv[2]))))" \
        "${BASE_STEPS:-4500}" "$SCALE")
BATCH=${BATCH:-128}
RUNS=${RUNS_DIR:-runs/shipped}
if [ "$SCALE" = "1" ]; then MODELS=${MODELS_DIR:-assets/models}; else MODELS=${MODELS_DIR:-$RUNS/models}; fi
EVERY=$(( STEPS < 500 ? STEPS : 500 ))
mkdir -p "$RUNS" "$MODELS"

common=(--size 32 --steps "$STEPS" --batch "$BATCH" --lr 3e-4 --log-every "$EVERY"
        --ckpt-every 1000 --seed 0 --gamma-noise "${GAMMA_NOISE:-3}")
run() {  # NAME, then the run's own arguments
  local name=$1; shift
  "$PYTHON" -m rgdiff_core.train "$@" "${common[@]}" --out "$RUNS/$name" \
    --export "$MODELS/$name.pt" >"$RUNS/$name.log" 2>&1
}

echo "training 3 models, $STEPS steps at batch $BATCH each -> $MODELS (logs in $RUNS/*.log)"
start=$SECONDS
run shapes_haar --dataset shapes --basis wavelet --wavelet haar --order scale & p1=$!
run digits_dct --dataset digits --basis dct --order variance & p2=$!
run digits_pixel_column --dataset digits --basis pixel --order column & p3=$!
status=0
for pair in "shapes_haar:$p1" "digits_dct:$p2" "digits_pixel_column:$p3"; do
  if wait "${pair#*:}"; then echo "ok      ${pair%%:*}: $(tail -n 1 "$RUNS/${pair%%:*}.log")"
  else status=1; echo "FAILED  ${pair%%:*}: see $RUNS/${pair%%:*}.log"; tail -n 5 "$RUNS/${pair%%:*}.log"; fi
done
echo "wall time $(( SECONDS - start )) s"
exit $status
