#!/usr/bin/env bash
# The checks that need a GPU, in one run, most important first, each skipped when too little
# of the time budget is left (issue 17: known-answer vectors bit-identical on the GPU; issue 20:
# training throughput at 224 px and 224 px training runs).
#
#   bash benchmarks/gpu_checks.sh OUTDIR [SECONDS]
#
# OUTDIR receives log.txt, versions.txt and results.tgz (the JSON results, each training run's
# results.json and metrics.jsonl); SECONDS (default 540) bounds the whole run. Record what it
# measured: copy results/gpu_checks.json and results/train_throughput_gpu.json (written by
# `python -m benchmarks.gpu_checks OUTDIR` at the end) into benchmarks/results/ and run
# `python -m benchmarks.report`.
set -u
out=${1:?usage: gpu_checks.sh OUTDIR [SECONDS]}
budget=${2:-540}
mkdir -p "$out/results" "$out/runs"
start=$(date +%s)
left() { echo $(( budget - ($(date +%s) - start) )); }
log() { echo "[gpu_checks +$(( $(date +%s) - start ))s] $*" | tee -a "$out/log.txt"; }
pack() { tar czf "$out/results.tgz" -C "$out" results runs 2>/dev/null; }
# Stage NAME NEEDED_SECONDS COMMAND...: runs COMMAND under `timeout` of what is left, if enough is.
stage() {
  local name=$1 need=$2; shift 2
  local remaining; remaining=$(left)
  if (( remaining < need )); then log "skip $name: ${remaining}s left, needs ${need}s"; return 0; fi
  log "start $name (${remaining}s left)"
  timeout --signal=INT --kill-after=10 $(( remaining - 5 )) "$@" 2>&1 | tee -a "$out/log.txt"
  log "end $name: exit ${PIPESTATUS[0]}"
  pack
}
export PYTHONUNBUFFERED=1

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c "import sys, jax, jaxlib, flax, optax, orbax.checkpoint as o, grain, numpy
print(sys.version); print('jax', jax.__version__, 'jaxlib', jaxlib.__version__, 'flax', flax.__version__,
      'optax', optax.__version__, 'orbax', o.__version__, 'numpy', numpy.__version__)
print(jax.devices())"; } 2>&1 | tee "$out/versions.txt"

# GPU_CHECKS_QUICK=1: a smoke test of this script (2 training steps, 1 scheme, tiny batches).
quick=${GPU_CHECKS_QUICK:-0}
train_flags=(); tt_flags=(--batch-size 64 --steps 5)
if [[ $quick == 1 ]]; then
  train_flags=(--config.train.num_steps=2 --config.train.eval_batch_size=16)
  tt_flags=(--batch-size 2 --steps 1 --schemes le)
fi

# Issue 17: the key-file -> key -> ciphertext known-answer vectors, computed on the GPU
# (JAX_PLATFORMS=cuda: no silent fall-back to the CPU).
stage kat 60 env XLA_PYTHON_CLIENT_PREALLOCATE=false JAX_PLATFORMS=cuda \
  python3 -m pytest -p no:cacheprovider -q -o addopts="" -n 4 tests/kat_test.py tests/chacha_test.py

# Issue 20: one 224 px training run of the default scheme (MedMNIST+ protocol, 10 epochs, on
# the bundled PneumoniaMNIST upsampled to 224), then the same model on plain images.
train224() {  # NAME SPEC: the run, and its results.json and metrics.jsonl kept under runs/NAME
  stage "train_$1" 150 python3 -m lie_jax.train --config "medmnist:pneumoniamnist,$2" \
    --config.data.path=lie_jax/data/pneumoniamnist.npz --config.data.image_size=224 \
    --config.data.download=False --workdir "/tmp/gpu_runs/$1" "${train_flags[@]}"
  mkdir -p "$out/runs/$1"
  cp "/tmp/gpu_runs/$1/results.json" "/tmp/gpu_runs/$1/metrics.jsonl" "$out/runs/$1/" 2>/dev/null
  pack
}
throughput() {  # BACKBONE NEEDED_SECONDS
  stage "throughput_$1" "$2" python3 -m benchmarks.train_throughput --backbones "$1" \
    "${tt_flags[@]}" --out "$out/results/train_throughput_$1.json"
}
train224 med224_huang2022_pixel huang2022,pixel
throughput resnet18 120
train224 med224_none_none none,none
throughput vit 120
throughput densenet121 150
python3 -m benchmarks.gpu_checks "$out" 2>&1 | tee -a "$out/log.txt"
log "done"
pack
