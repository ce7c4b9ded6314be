#!/usr/bin/env bash
# Everything the trained-denoiser issue needs a GPU for, in one command that fits one device
# call (10 min): retrain the three shipped checkpoints, evaluate them with 1000 samples per
# softness against the exact baselines, and time CUDA sampling. Results go to $WORK (default
# runs/gpu_session); when $OUT is set (the device machine's return folder, at most 8 files of
# 16 MiB) they are also packed there as one tar per model plus results.tar. Copy them into
# assets/models and bench/results afterwards.
#
#   scripts/gpu_session.sh                                          # on the GPU machine
#   DEVICE=cpu BASE_STEPS=10 BATCH=16 N=8 scripts/gpu_session.sh    # rehearsal on a CPU
#
# Budget on one H200 (see scripts/train_shipped.sh for the training rate): training 5000 steps
# ~255 s, evaluation ~60-120 s, sampling benchmark < 60 s. Each stage has its own time limit,
# so a slow stage cannot take the results of the earlier ones with it.
# The GPU machine has torch but no PyWavelets and no registry: the wheel under .whl/ (carried
# with the call) is installed from disk into /tmp/site when pywt is missing.
set -uo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
RETURN=${OUT:-}
WORK=${WORK:-runs/gpu_session}
DEVICE=${DEVICE:-cuda}
N=${N:-1000}
mkdir -p "$WORK/models"

stage() {  # NAME SECONDS COMMAND...: run with a time limit, log to $WORK/NAME.txt
  local name=$1 limit=$2; shift 2
  echo "== $name (limit ${limit} s)"
  local start=$SECONDS
  timeout "$limit" "$@" 2>&1 | tee "$WORK/$name.txt"
  local rc=${PIPESTATUS[0]}
  echo "== $name: exit $rc after $(( SECONDS - start )) s"
  return 0
}

if ! "$PYTHON" -c "import pywt" 2>/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/pywavelets-*.whl || exit 1
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
  "$PYTHON" -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__)"
} | tee "$WORK/machine.txt"

stage train "${TRAIN_LIMIT:-330}" env PYTHON="$PYTHON" GAMMA_NOISE="${GAMMA_NOISE:-10}" \
  BASE_STEPS="${BASE_STEPS:-5000}" RUNS_DIR="$WORK/runs" MODELS_DIR="$WORK/models" \
  scripts/train_shipped.sh
cp "$WORK"/runs/*.log "$WORK/models/" 2>/dev/null

models=("$WORK"/models/*.pt)
if [ -e "${models[0]}" ]; then
  stage models "${EVAL_LIMIT:-180}" "$PYTHON" bench/bench_models.py --n "$N" --steps 100 \
    --device "$DEVICE" --models "${models[@]}" --json "$WORK/models_${DEVICE}_n$N.json"
fi
stage sampling "${BENCH_LIMIT:-60}" "$PYTHON" bench/bench_sampling.py --device "$DEVICE"
rm -rf "$WORK/runs"  # resumable training state: large, and not needed once exported
ls -l "$WORK" "$WORK/models"
if [ -n "$RETURN" ]; then  # what comes back: one tar per model, and the text results
  mkdir -p "$RETURN"
  for pt in "$WORK"/models/*.pt; do
    name=$(basename "$pt" .pt)
    tar -cf "$RETURN/$name.tar" -C "$WORK/models" "$(basename "$pt")" "$name.json" \
      "${name}_loss.csv" "$name.log"
  done
  tar -cf "$RETURN/results.tar" -C "$WORK" --exclude=models .
  ls -l "$RETURN"
fi
