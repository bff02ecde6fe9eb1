#!/usr/bin/env bash
# The checks that need a GPU, in one run, most important first, each skipped when too little
# of the time budget is left (issue 17: known-answer vectors bit-identical on the GPU; issue 20:
# training throughput at 224 px and 224 px training runs).
#
#   bash benchmarks/gpu_checks.sh OUTDIR [SECONDS]
#   GPU_CHECKS_ONLY="kat huang256" bash benchmarks/gpu_checks.sh OUTDIR   # stages whose name
#                                                     # contains one of these words, no others
#
# OUTDIR receives log.txt (this run's only: emptied at the start), versions.txt and results.tgz
# (the JSON results, each training run's results.json and metrics.jsonl, kept only when the
# run exits 0); SECONDS (default 540) bounds the whole run. Record what it measured: copy
# results/gpu_checks.json and results/train_throughput_gpu.json (written by
# `python -m benchmarks.gpu_checks OUTDIR` at the end; stages that failed or were skipped are
# listed there) into benchmarks/results/ and run `python -m benchmarks.report`.
set -u
out=${1:?usage: gpu_checks.sh OUTDIR [SECONDS]}
work=${GPU_CHECKS_WORK:-/tmp/gpu_checks_work}  # training workdirs and the image folder
budget=${2:-540}
mkdir -p "$out/results" "$out/runs"
: > "$out/log.txt"
start=$(date +%s)
left() { echo $(( budget - ($(date +%s) - start) )); }
log() { echo "[gpu_checks +$(( $(date +%s) - start ))s] $*" | tee -a "$out/log.txt"; }
pack() { tar czf "$out/results.tgz" -C "$out" results runs 2>/dev/null; }
selected() {  # NAME: whether GPU_CHECKS_ONLY is unset or names a word NAME contains
  [[ -z ${GPU_CHECKS_ONLY:-} ]] && return 0
  local word
  for word in $GPU_CHECKS_ONLY; do [[ $1 == *"$word"* ]] && return 0; done
  return 1
}
# stage NAME NEEDED_SECONDS COMMAND...: runs COMMAND under `timeout` of what is left, if enough
# is; returns COMMAND's exit status (1 when skipped).
stage() {
  local name=$1 need=$2; shift 2
  local remaining; remaining=$(left)
  if ! selected "$name"; then log "skip $name: not in GPU_CHECKS_ONLY"; return 1; fi
  if (( remaining < need )); then log "skip $name: ${remaining}s left, needs ${need}s"; return 1; fi
  log "start $name (${remaining}s left)"
  timeout --signal=INT --kill-after=10 $(( remaining - 5 )) "$@" 2>&1 | tee -a "$out/log.txt"
  local status=${PIPESTATUS[0]}
  log "end $name: exit $status"
  pack
  return "$status"
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
# the bundled PneumoniaMNIST upsampled to 224), then the same model on plain images; the seed
# paper's DenseNet-121 at 256 px (configs/huang2022.py, 10 of its 60 epochs) on the same
# images as an image folder, encrypted and plain.
train() {  # NAME NEEDED_SECONDS CONFIG FLAGS...: results.json, metrics.jsonl, command under runs/NAME
  local name=$1 need=$2 config=$3; shift 3
  rm -rf "$work/runs/$name" "$out/runs/$name"  # never resume or report an earlier call's run
  if stage "train_$name" "$need" python3 -m lie_jax.train --config "$config" "$@" \
      --workdir "$work/runs/$name" "${train_flags[@]}"; then
    mkdir -p "$out/runs/$name"
    echo "python -m lie_jax.train --config $config $* --workdir workdir/$name" \
      > "$out/runs/$name/command.txt"
    cp "$work/runs/$name/results.json" "$work/runs/$name/metrics.jsonl" "$out/runs/$name/"
    pack
  fi
}
med224=(--config.data.path=lie_jax/data/pneumoniamnist.npz --config.data.image_size=224
        --config.data.download=False)
folder=$work/pneumoniamnist_folder
huang256=(--config.data.path=$folder --config.train.num_epochs=10
          --config.cipher.allow_seed_keys=True)  # public data: keys from the seed
throughput() {  # BACKBONE NEEDED_SECONDS
  rm -f "$out/results/train_throughput_$1.json"
  stage "throughput_$1" "$2" python3 -m benchmarks.train_throughput --backbones "$1" \
    "${tt_flags[@]}" --out "$out/results/train_throughput_$1.json"
}
train med224_huang2022_pixel 150 medmnist:pneumoniamnist,huang2022,pixel "${med224[@]}"
throughput resnet18 120
train med224_none_none 150 medmnist:pneumoniamnist,none,none "${med224[@]}"
throughput vit 120
# (named for the runs that need it: GPU_CHECKS_ONLY=huang256 selects it too)
[[ -d $folder ]] || stage huang256_folder 60 python3 -m benchmarks.gpu_checks \
  --pneumonia-folder "$folder"
train huang256_densenet121 240 huang2022:densenet121 "${huang256[@]}"
train huang256_densenet121_plain 240 huang2022:densenet121,none,none "${huang256[@]}"
throughput densenet121 150
# Issue 18: the learned attacks at 224 px trained far past the CPU's 100-step cap, against the
# default scheme and PE with per-image keys, when EVAL_SET names the evaluation set's .npz
# (`python -m benchmarks.eval_set --out DIR` makes it here in seconds; carry it along).
if [[ -n ${EVAL_SET:-} ]]; then
  attack_steps=${ATTACK_STEPS:-2000}
  [[ $quick == 1 ]] && attack_steps=2
  stage attacks224 240 python3 -m benchmarks.security --eval-set "$EVAL_SET" \
    --schemes huang2022 pe --attacks inverse_network gan --steps "$attack_steps" \
    --out "$out/results/security_224_gpu.json"
fi
python3 -m benchmarks.gpu_checks "$out" 2>&1 | tee -a "$out/log.txt"
log "done"
pack
