#!/usr/bin/env bash
# Everything the trained-model and classroom-speed issues need a GPU for, in one command that
# fits one device call (10 min): render the data, measure the training rate, retrain the four
# shipped Gaussian-residual models for as many steps as fit TRAIN_SECONDS, time CUDA sampling
# of every shipped network (bench_network.py --only cuda), then score the new models
# (bench_models.py, N samples per cell, every softness; cells are written as they finish, so a
# cut-off stage keeps what it did). Results go to $WORK (default runs/gpu_session); when $OUT is
# set (the device machine's return folder: at most 8 files of 16 MiB) they are packed there as
# one tar per model plus results.tar. Copy the models into assets/models afterwards.
#
#   scripts/gpu_session.sh                                           # on the GPU machine
#   DEVICE=cpu TRAIN_SECONDS=20 CAL_STEPS=4 BATCH=8 MAX_STEPS=8 N=16 N_BPD=4 N_T=2 \
#     SOFTNESS="1" scripts/gpu_session.sh                            # rehearsal on a CPU
#
# Time (defaults): data < 30 s, calibration ~60 s, training TRAIN_SECONDS = 270 s plus
# start-up and export, sampling figures <= 60 s, model scores <= 90 s: about 9 min.
# The GPU machine has torch and Pillow but no PyWavelets and no registry: the wheel under .whl/
# (carried with the call: carry [".whl"]) is installed from disk into /tmp/site when pywt is
# missing. Fetch it here first (the registry has no 1.9.0 wheel for that machine's Python 3.12):
#   .venv/bin/python -m pip download --only-binary=:all: --no-deps --python-version 3.12 \
#     --platform manylinux2014_x86_64 --implementation cp -d .whl PyWavelets==1.8.0
set -uo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
RETURN=${OUT:-}
WORK=${WORK:-runs/gpu_session}
DEVICE=${DEVICE:-cuda}
N=${N:-1000}
BATCH=${BATCH:-128}
TRAIN_SECONDS=${TRAIN_SECONDS:-270}
MAX_STEPS=${MAX_STEPS:-20000}
SOFTNESS=${SOFTNESS:-inf 3 1 0.3 0.1}
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
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
  "$PYTHON" -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__)"
} | tee "$WORK/machine.txt"

stage data 60 "$PYTHON" -c "from rgdiff_core.data import load_dataset
for name in ('glyphs', 'shapes'):
    for split in ('train', 'test'):
        print(name, split, tuple(load_dataset(name, 32, split).shape), flush=True)"

# calibration: all four at once for CAL_STEPS, the slowest one's last rate sets STEPS
stage calibrate 150 env PYTHON="$PYTHON" STEPS="${CAL_STEPS:-100}" BATCH="$BATCH" \
  DEVICE="$DEVICE" RUNS_DIR="$WORK/cal" MODELS_DIR="$WORK/cal/models" scripts/train_shipped.sh
rate=$(for f in "$WORK"/cal/*.log; do grep -o '[0-9.]* steps/s' "$f" | tail -n 1; done \
       | awk '{print $1}' | sort -g | head -n 1)
steps=$("$PYTHON" -c "import sys
r = float(sys.argv[1] or 0)
print(max(min(int(0.9 * r * float(sys.argv[2])), int(sys.argv[3])), min(200, int(sys.argv[3]))))" \
  "${rate:-0}" "$TRAIN_SECONDS" "$MAX_STEPS")
echo "slowest calibration rate ${rate:-?} steps/s -> $steps steps each" | tee "$WORK/steps.txt"
rm -rf "$WORK/cal"

stage train $(( TRAIN_SECONDS + 120 )) env PYTHON="$PYTHON" STEPS="$steps" BATCH="$BATCH" \
  DEVICE="$DEVICE" RUNS_DIR="$WORK/runs" MODELS_DIR="$WORK/models" scripts/train_shipped.sh
cp "$WORK"/runs/*.log "$WORK/models/" 2>/dev/null

if [ "$DEVICE" != cpu ]; then
  stage sampling "${BENCH_LIMIT:-60}" "$PYTHON" bench/bench_network.py --only cuda \
    --out "$WORK/network_cuda.md"
fi
models=("$WORK"/models/*.pt)
if [ -e "${models[0]}" ]; then
  # shellcheck disable=SC2086
  stage models "${EVAL_LIMIT:-90}" "$PYTHON" bench/bench_models.py --models "${models[@]}" \
    --n "$N" --n-bpd "${N_BPD:-200}" --n-t "${N_T:-16}" --method dpm2m --softness $SOFTNESS \
    --device "$DEVICE" \
    --cells "$WORK/models_cells.jsonl"
fi
rm -rf "$WORK/runs"  # resumable training state: large, and not needed once exported
ls -l "$WORK" "$WORK/models"
if [ -n "$RETURN" ]; then  # what comes back: one tar per model, and the text results
  mkdir -p "$RETURN"
  for pt in "$WORK"/models/*.pt; do
    [ -e "$pt" ] || continue
    name=$(basename "$pt" .pt)
    tar -cf "$RETURN/$name.tar" -C "$WORK/models" "$(basename "$pt")" "$name.json" \
      "${name}_loss.csv" "$name.log"
  done
  tar -cf "$RETURN/results.tar" -C "$WORK" --exclude=models .
  ls -l "$RETURN"
fi
