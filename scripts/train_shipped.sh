#!/usr/bin/env bash
# Train the four shipped Gaussian-residual models at once on one GPU and export each to
# $MODELS_DIR/NAME.pt (+ NAME.json, NAME_loss.csv). Reruns resume from $RUNS_DIR/NAME.
#
#   scripts/train_shipped.sh                                   # 6000 steps each -> assets/models
#   STEPS=20 BATCH=8 DEVICE=cpu MODELS_DIR=/tmp/m scripts/train_shipped.sh   # rehearsal
#   ONLY="glyphs_haar" STEPS=9000 scripts/train_shipped.sh     # one model, longer
#
# The recipe is scripts/train_cpu.sh's (32x32, data prior, auto noised-end target, exact
# Gaussian of rank 64 + U-Net residual, ELBO-weighted loss, 25 % random known masks, cosine
# learning rate, EMA) with the default U-Net (channels 64: 1.8 M parameters, about 7 MB in
# float32) and batch 128 instead of the CPU's small one. scripts/gpu_session.sh picks STEPS
# from a measured rate so that training fits its time; run alone, 6000 steps is the default.
# The steps of the runs that made the old plain networks (3 at once on one H200) were bound by
# Python/CUDA launch overhead at ~21 steps/s each; the residual's Gaussian part adds one batched
# QR of (D + 64) x 64 per example per step, whose GPU cost is measured by the calibration.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python}
STEPS=${STEPS:-6000}
BATCH=${BATCH:-128}
DEVICE=${DEVICE:-cuda}
RUNS=${RUNS_DIR:-runs/shipped}
MODELS=${MODELS_DIR:-assets/models}
EVERY=$(( STEPS < 500 ? STEPS : 500 ))
mkdir -p "$RUNS" "$MODELS"

common=(--size 32 --steps "$STEPS" --batch "$BATCH" --lr 5e-4 --lr-schedule cosine
        --warmup 200 --ema-decay 0.999 --log-every 50 --ckpt-every "$EVERY" --seed 0
        --gamma-noise auto --gaussian-rank 64 --loss-weight elbo --p-known 0.25
        --device "$DEVICE")
# shellcheck source=scripts/shipped_models.sh
source scripts/shipped_models.sh  # ARGS and names

echo "training ${#names[@]} models, $STEPS steps at batch $BATCH on $DEVICE -> $MODELS"
start=$SECONDS
declare -A pids
for name in "${names[@]}"; do
  # shellcheck disable=SC2086
  "$PYTHON" -m rgdiff_core.train ${ARGS[$name]} "${common[@]}" --out "$RUNS/$name" \
    --export "$MODELS/$name.pt" >>"$RUNS/$name.log" 2>&1 &
  pids[$name]=$!
done
status=0
for name in "${names[@]}"; do
  if wait "${pids[$name]}"; then echo "ok      $name: $(tail -n 1 "$RUNS/$name.log")"
  else status=1; echo "FAILED  $name: see $RUNS/$name.log"; tail -n 5 "$RUNS/$name.log"; fi
done
echo "wall time $(( SECONDS - start )) s"
exit $status
