"""train_and_evaluate: train a classifier on encrypted images and evaluate it.

The loop follows the Flax examples: an NNX model and `nnx.Optimizer`, a
jitted train step with `nnx.value_and_grad`, periodic evaluation on the
(encrypted) validation split with best-checkpoint selection, orbax
checkpoints every `checkpoint_every_steps` with exact resumption (the data
order and every random stream are functions of the step), and data
parallelism over all devices: a `jax.sharding.Mesh` with one "data" axis,
batches sharded along it, parameters replicated. On several hosts, call
`jax.distributed.initialize()` first (train.py does with --distributed);
every process then reads and feeds only its part of each global batch.

What a run writes to its workdir: metrics.jsonl (one line per
`log_every_steps` with the training loss and accuracy, one per evaluation with
the validation metrics; process 0 only), TensorBoard event files in
tensorboard/ (`config.train.tensorboard`), checkpoints/ and best/ (orbax),
results.json. Progress is a tqdm bar on a terminal and one plain line per
`log_every_steps` otherwise (logs of batch jobs).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any, Iterator

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec
from tqdm import tqdm

from lie_jax import ciphers
from lie_jax import data
from lie_jax import keys
from lie_jax import models
from lie_jax.data import encrypted_dir
from lie_jax.training import checkpoints
from lie_jax.training import encryption
from lie_jax.training import metrics as metrics_lib


def make_optimizer(optim: ml_collections.ConfigDict,
                   total_steps: int) -> optax.GradientTransformation:
  """SGD with momentum or AdamW, on a warmup-cosine schedule, with weight decay."""
  warmup = min(int(optim.warmup_steps), max(total_steps - 1, 0))
  schedule = optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=optim.learning_rate, warmup_steps=warmup,
      decay_steps=max(total_steps, warmup + 1), end_value=optim.learning_rate * 0.01)
  if optim.name == "adamw":
    return optax.adamw(schedule, weight_decay=optim.weight_decay)
  if optim.name == "sgd":
    return optax.chain(optax.add_decayed_weights(optim.weight_decay),
                       optax.sgd(schedule, momentum=optim.momentum, nesterov=True))
  raise ValueError(f"optim.name must be 'adamw' or 'sgd', got {optim.name!r}")


class _Mesh:
  """Data-parallel placement: batches split over a 'data' axis, state replicated."""

  def __init__(self, batch_size: int):
    devices = jax.devices()
    if batch_size % len(devices):
      raise ValueError(f"batch size {batch_size} is not divisible by the {len(devices)} devices")
    # Auto axes: XLA propagates the batch sharding through the model.
    self.mesh = jax.make_mesh((len(devices),), ("data",),
                              axis_types=(jax.sharding.AxisType.Auto,))
    self.batch = NamedSharding(self.mesh, PartitionSpec("data"))
    self.replicated = NamedSharding(self.mesh, PartitionSpec())

  @staticmethod
  def shard() -> dict[str, int]:
    """This process's part of every global batch (the pipeline's shard_index/shard_count)."""
    return {"shard_index": jax.process_index(), "shard_count": jax.process_count()}

  def put_batch(self, local: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    """Global batch arrays from each process's part (`shard()` of the pipeline's batches)."""
    return {k: jax.make_array_from_process_local_data(self.batch, v) for k, v in local.items()}

  def replicate(self, *objects: Any) -> None:
    """Places every array of the objects' states on all devices of all processes.

    Every process holds the same values (the same seed built them). `device_put`
    cannot target devices of other processes, so with several processes each
    global array is assembled from the process's full local copy.
    """
    for obj in objects:
      state = nnx.state(obj)
      if jax.process_count() == 1:
        nnx.update(obj, jax.device_put(state, self.replicated))
      else:
        nnx.update(obj, jax.tree.map(self._replicated_global, state))

  def _replicated_global(self, x: Any) -> Any:
    if not isinstance(x, jax.Array):
      return x
    if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
      data = self._replicated_global(jax.random.key_data(x))
      return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
    return jax.make_array_from_process_local_data(self.replicated, np.asarray(x))

  def local(self, x: jax.Array) -> np.ndarray:
    """This process's rows of a global batch output, in the order `put_batch` placed its part
    of the batch: the rows the batch sharding gives this process's devices, taken from
    whichever local shards hold them (any output sharding, replicated included)."""
    if jax.process_count() == 1:
      return np.asarray(x)
    n = x.shape[0]
    span = lambda index: (index[0] if index else slice(None)).indices(n)[:2]
    wanted = sorted({span(i) for i in self.batch.addressable_devices_indices_map(x.shape).values()})
    held = [(span(s.index), s.data) for s in x.addressable_shards]
    out = []
    for start, stop in wanted:
      (lo, _), part = next(((lo, hi), d) for (lo, hi), d in held if lo <= start and stop <= hi)
      out.append(np.asarray(part)[start - lo:stop - lo])
    return np.concatenate(out)

  def gather(self, x: jax.Array | np.ndarray) -> np.ndarray:
    """The whole value of a batch-sharded output, or of every process's local part
    concatenated in process order, on every process (NumPy)."""
    if jax.process_count() == 1:
      return np.asarray(x)
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def _loss_fn(model, inputs, labels):
  logits = model(inputs)
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  return loss + models.auxiliary_loss(model), (loss, logits)


def _check_batch(encoder: encryption.InputEncoder, images: jax.Array, indices: jax.Array,
                 labels: jax.Array | None = None) -> None:
  """Shape and dtype checks of a batch entering a jitted step (at trace time: free per step).

  Plain images to encrypt in the step are uint8 [B, H, W, C]; the data owner's
  ciphertexts arrive as stored. Labels and indices are [B] integers.
  """
  if not encoder.pre_encrypted:
    chex.assert_rank(images, 4)
    chex.assert_type(images, jnp.uint8)
  chex.assert_rank(indices, 1)
  chex.assert_type(indices, int)
  chex.assert_equal_shape_prefix([images, indices], 1)
  if labels is not None:
    chex.assert_rank(labels, 1)
    chex.assert_type(labels, int)
    chex.assert_equal_shape([labels, indices])


def _encode(encoder: encryption.InputEncoder, images: jax.Array, indices: jax.Array,
            split: str) -> jax.Array:
  inputs = encoder.encode(images, indices, split)
  chex.assert_type(inputs, jnp.float32)
  chex.assert_axis_dimension(inputs, 0, images.shape[0])
  return inputs


def make_steps(encoder: encryption.InputEncoder,
               augment_inputs: Callable[[jax.Array, jax.Array], jax.Array] | None = None):
  """The jitted (train_step, eval_step) pair, encrypting inputs with `encoder` inside.

  Args:
    encoder: the input encoder (encryption, or scaling of stored ciphertexts).
    augment_inputs: None, or `(step, inputs) -> inputs` applied to the encrypted training
      inputs: the server's augmentation of ciphertexts (`config.data.augment_ciphertexts`).

  Returns:
    train_step(model, optimizer, images, labels, indices, step=0) -> {"loss", "total_loss",
      "accuracy"} (scalars), updating model and optimizer in place; and
    eval_step(model, images, indices, split, plain=False) -> logits [B, num_classes].
    images: uint8 [B, H, W, C] (or the data owner's stored ciphertexts),
    labels and indices: int [B].
  """
  @nnx.jit
  def train_step(model, optimizer, images, labels, indices, step=0):
    _check_batch(encoder, images, indices, labels)
    inputs = _encode(encoder, images, indices, "train")
    if augment_inputs is not None:
      inputs = augment_inputs(step, inputs)
    grad_fn = nnx.value_and_grad(_loss_fn, has_aux=True)
    (total, (loss, logits)), grads = grad_fn(model, inputs, labels)
    optimizer.update(model, grads)
    return {"loss": loss, "total_loss": total,
            "accuracy": jnp.mean(jnp.argmax(logits, -1) == labels)}

  @nnx.jit(static_argnames=("split", "plain"))
  def eval_step(model, images, indices, split, plain=False):
    _check_batch(encoder, images, indices)
    inputs = images.astype(jnp.float32) / 255.0 if plain else _encode(encoder, images, indices,
                                                                       split)
    return model(inputs)

  return train_step, eval_step


def _evaluate(model, eval_step, mesh: _Mesh, split: data.ArrayDataset, name: str, batch_size: int,
              *, plain: bool = False, label_names: Any = None) -> dict[str, Any]:
  """accuracy, auc, loss of `split`; with `label_names`, also "clinical"
  (`metrics.clinical_metrics`: confusion matrix, sensitivity, specificity, per class)."""
  model.eval()
  logits, labels, masks = [], [], []  # this process's rows; gathered once at the end
  for batch in data.eval_batches(split, batch_size=batch_size, **mesh.shard()):
    device_batch = mesh.put_batch({k: batch[k] for k in ("image", "index")})
    logits.append(mesh.local(eval_step(model, device_batch["image"], device_batch["index"],
                                       name, plain)))
    labels.append(batch["label"])
    masks.append(batch["mask"])
  model.train()
  mask = mesh.gather(np.concatenate(masks))
  logits = mesh.gather(np.concatenate(logits))[mask]
  labels = mesh.gather(np.concatenate(labels))[mask]
  result = metrics_lib.classification_metrics(logits, labels)
  result["loss"] = float(optax.softmax_cross_entropy_with_integer_labels(
      jnp.asarray(logits), jnp.asarray(labels)).mean())
  if label_names is not None:
    result["clinical"] = metrics_lib.clinical_metrics(logits, labels, label_names)
  return result


class _ProgressLog:
  """Plain progress lines on stderr, for logs that are not a terminal (batch jobs, CI):
  one per log step and one per evaluation, instead of tqdm's carriage returns."""

  def __init__(self, name: str, start_step: int, total_steps: int, *, enabled: bool):
    self.name, self.start, self.total, self.enabled = name, start_step, total_steps, enabled
    self.t0 = time.perf_counter()

  @staticmethod
  def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"

  def step(self, done: int, *, loss: float, rate: float) -> None:
    if not self.enabled:
      return
    elapsed = time.perf_counter() - self.t0
    eta = elapsed / max(done - self.start, 1) * (self.total - done)
    print(f"{self.name}: step {done}/{self.total} ({100 * done // self.total}%) | loss "
          f"{loss:.4f} | {rate:.0f} img/s | {self._clock(elapsed)} elapsed, eta "
          f"{self._clock(eta)}", file=sys.stderr, flush=True)

  def eval(self, done: int, metrics: dict[str, Any]) -> None:
    if not self.enabled:
      return
    shown = " | ".join(f"val_{k} {v:.4f}" for k, v in metrics.items() if v is not None)
    print(f"{self.name}: step {done}/{self.total} eval | {shown}", file=sys.stderr, flush=True)


def _board(workdir: str, start_step: int):
  """A TensorBoard writer on workdir/tensorboard; events after `start_step` from a run that
  died before its checkpoint are purged on resume."""
  import tensorboardX  # pylint: disable=g-import-not-at-top  (only the writing process needs it)
  return tensorboardX.SummaryWriter(os.path.join(workdir, "tensorboard"),
                                    purge_step=start_step or None, flush_secs=30)


def _append_jsonl(path: str, record: dict[str, Any]) -> None:
  """Appends one record by writing the whole new file atomically (temporary file, fsync,
  rename): a crash leaves the old file or the new one, never a torn last line. The file holds
  one line per log step and per evaluation (kilobytes to a few megabytes)."""
  old = b""
  if os.path.exists(path):
    with open(path, "rb") as f:
      old = f.read()
  encrypted_dir.atomic_write(path, old + (json.dumps(record) + "\n").encode())


def _truncate_jsonl(path: str, max_step: int) -> None:
  """Drops records after `max_step` (written by a run that died before its next checkpoint)."""
  if not os.path.exists(path):
    return
  keep = []
  with open(path) as f:
    for line in f:
      try:
        if line.strip() and json.loads(line)["step"] <= max_step:
          keep.append(line)
      except (ValueError, KeyError, TypeError):
        continue  # a torn line from an older, non-atomic writer
  encrypted_dir.atomic_write(path, "".join(keep).encode())


# Separates the server's augmentation stream from the seed's other uses (keys, init, order).
_CIPHERTEXT_AUGMENT_STREAM = 0x617567  # "aug"


def _ciphertext_augmentation(config: ml_collections.ConfigDict,
                             encoder: encryption.InputEncoder):
  """`(step, inputs) -> inputs` for config.data.augment_ciphertexts (the server flips and
  shifts ciphertexts inside the step), or None. ValueError where it is invalid for the cipher
  (`encryption.ciphertext_augmentation_error`), and where config.data.augment asks to augment
  plain images that the server never sees (data the owner encrypted)."""
  owner_side = bool(config.data.get("augment", False))
  server_side = bool(config.data.get("augment_ciphertexts", False))
  if encoder.pre_encrypted and owner_side:
    raise ValueError("config.data.augment flips and shifts plain images before encryption, but "
                     "this dataset arrives encrypted by its owner: augment before `lie-jax "
                     "encrypt`, or set config.data.augment_ciphertexts=True (PE with per-image "
                     "keys only) to augment the ciphertexts")
  if not server_side:
    return None
  if owner_side:
    raise ValueError("config.data.augment (plain images, before encryption) and "
                     "config.data.augment_ciphertexts (ciphertexts, after) are both set: "
                     "choose one")
  reason = encryption.ciphertext_augmentation_error(encoder)
  if reason is not None:
    raise ValueError(f"config.data.augment_ciphertexts: {reason}")
  base = jax.random.fold_in(jax.random.key(config.seed), _CIPHERTEXT_AUGMENT_STREAM)
  return lambda step, inputs: data.random_flip_and_shift_jax(jax.random.fold_in(base, step),
                                                             inputs)


def _check_key_origin(config: ml_collections.ConfigDict) -> None:
  """Refuses experiment keys (derived from the seed) on anything but the bundled public data.

  Seed keys are reproducible by anyone who reads the config: fine for the bundled
  PneumoniaMNIST, never for real patients. `config.cipher.allow_seed_keys = True` says
  explicitly that the data are public.
  """
  if (config.cipher.name in (encryption.PLAIN, encryption.FROM_MANIFEST)
      or config.cipher.get("secret_file") or config.cipher.get("allow_seed_keys", False)):
    return
  name, path, source = config.data.name, config.data.get("path"), config.data.get("source")
  bundled = name in data.BUNDLED_DATASETS and source in ("auto", "npz") and (
      not path or os.path.realpath(path) == os.path.realpath(data.bundled_path(name)))
  if not bundled:
    raise ValueError(
        f"config.cipher.secret_file is not set, so the {config.cipher.name} keys would be "
        "derived from the run's seed, which anyone with the config can repeat; that is for the "
        "bundled public dataset only. Use a key file (`lie-jax keygen`), or set "
        "config.cipher.allow_seed_keys=True if these data are public")


NONCE_FILE = "encryption_nonce"


def _run_nonce(workdir: str) -> bytes:
  """The run's key-file nonce: drawn fresh (OS CSPRNG) on the first start, read back on resume.

  Each run's on-device keys are then unrelated to every other run's and every
  owner-encrypted dataset's under the same key file. The nonce is public (it
  is also written to results.json); losing it only means the owner cannot
  encrypt new images for this run's model.

  Raises:
    ValueError: the file exists but does not hold a hex nonce of the expected length.
  """
  path = os.path.join(workdir, NONCE_FILE)
  if os.path.lexists(path):
    if os.path.islink(path) or not os.path.isfile(path):
      raise ValueError(f"{path}: not a regular file")
    with open(path, "rb") as f:
      text = f.read(256).decode("ascii", errors="replace").strip()
    try:
      nonce = bytes.fromhex(text)
    except ValueError:
      nonce = b""
    if len(nonce) < keys.MIN_NONCE_BYTES or len(nonce) > 64:
      raise ValueError(f"{path}: not a hex nonce of {keys.MIN_NONCE_BYTES}..64 bytes")
    return nonce
  nonce = keys.new_nonce()
  encrypted_dir.atomic_write(path, (nonce.hex() + "\n").encode())
  return nonce


def _shared_nonce(workdir: str) -> bytes:
  """`_run_nonce`, read or drawn by process 0 and sent to every process (one run, one nonce)."""
  if jax.process_count() == 1:
    return _run_nonce(workdir)
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  buf = np.zeros((65,), np.uint8)
  if jax.process_index() == 0:
    nonce = _run_nonce(workdir)
    buf[0], buf[1:1 + len(nonce)] = len(nonce), np.frombuffer(nonce, np.uint8)
  buf = np.asarray(multihost_utils.broadcast_one_to_all(buf))
  return bytes(buf[1:1 + int(buf[0])])


def _public_config(config: ml_collections.ConfigDict) -> dict[str, Any]:
  return json.loads(config.to_json_best_effort())


# Fields a resumed run may change: how long it trains, how it logs, evaluates and
# checkpoints, how data are held. Anything else changes what the run is.
RESUMABLE_FIELDS = frozenset({
    "train.num_epochs", "train.num_steps", "train.log_every_steps", "train.eval_every_steps",
    "train.checkpoint_every_steps", "train.eval_batch_size", "train.progress_bar",
    "train.tensorboard", "data.in_memory", "data.download"})


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
  if not isinstance(tree, dict):
    return {prefix: tree}
  out: dict[str, Any] = {}
  for k, v in tree.items():
    out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
  return out


def _run_fingerprint(config: ml_collections.ConfigDict) -> str:
  """Hash of everything that shapes the run (not RESUMABLE_FIELDS)."""
  public = {k: v for k, v in _flat(_public_config(config)).items()
            if k not in RESUMABLE_FIELDS}
  return hashlib.sha256(json.dumps(public, sort_keys=True).encode()).hexdigest()[:16]


def _changed_fields(saved: dict[str, Any], config: ml_collections.ConfigDict) -> list[str]:
  """'field (old -> new)' for every field outside RESUMABLE_FIELDS that differs between the
  checkpointed run's config and `config`."""
  old, new = _flat(saved), _flat(_public_config(config))
  # A field added since the run was saved is unchanged when it holds its off value (the
  # run could not set it: e.g. data.augment_ciphertexts False).
  added = {k for k in set(new) - set(old) if new[k] in (None, False)}
  return [f"{k} ({old.get(k)!r} -> {new.get(k)!r})" for k in sorted(set(old) | set(new))
          if k not in RESUMABLE_FIELDS and k not in added and old.get(k) != new.get(k)]


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains `config.model` on `config.data` encrypted with `config.cipher`; evaluates it.

  When `config.data.path` is an encrypted dataset directory written by the
  data owner (`lie-jax encrypt`; source "encrypted" or "auto"), the images
  are already ciphertexts: nothing is encrypted again, no key is needed, and
  the scheme and block size come from its manifest (`config.cipher.name =
  "manifest"`, see lie_jax/configs/encrypted_dir.py).

  Args:
    config: see lie_jax/configs/default.py for the fields.
    workdir: output directory: checkpoints/, best/, metrics.jsonl, results.json.
      Rerunning with the same workdir resumes from the last checkpoint. The resumed
      config may differ only in RESUMABLE_FIELDS (train longer, log or evaluate at
      another cadence; the learning-rate schedule then follows the new length);
      any other difference is refused, naming each field.

  Returns:
    The results dict also written to workdir/results.json (test_accuracy,
    test_auc, cipher, backbone, adaptation, steps, ...).
  """
  os.makedirs(workdir, exist_ok=True)
  splits = data.load_dataset(config.data.name, source=config.data.source, path=config.data.path,
                             data_dir=config.data.get("data_dir"),
                             image_size=config.data.get("image_size"),
                             in_memory=config.data.get("in_memory"),
                             download=config.data.get("download", False))
  splits, selected_on = data.carve_validation(
      splits, fraction=config.data.get("val_fraction", 0.1), seed=config.seed)
  image_shape = tuple(int(s) for s in splits.train.images.shape[1:])
  data_cipher = encryption.encrypted_data_cipher(config.data)
  if data_cipher is not None:  # encrypted by the data owner: no key here, no second encryption
    encoder = encryption.encrypted_data_encoder(config.cipher, data_cipher)
  else:
    _check_key_origin(config)
    nonce = _shared_nonce(workdir) if config.cipher.get("secret_file") else None
    encoder = encryption.make_input_encoder(config.cipher, image_shape=image_shape,
                                            seed=config.seed, nonce=nonce)
  block_size = encoder.options.get("block_size", config.cipher.block_size)
  model = models.build_model(
      backbone=config.model.backbone, adaptation=config.model.adaptation,
      num_classes=splits.num_classes, image_shape=image_shape,
      block_size=block_size,
      cipher_key=encoder.cipher_key if config.model.adaptation == "morph" else None,
      rngs=nnx.Rngs(config.seed),
      adaptation_options=models.set_options(config.model.get("adaptation_options")),
      **models.set_options(config.model.get("options")))
  batch_size = config.train.batch_size
  steps_per_epoch = data.steps_per_epoch(len(splits.train.labels), batch_size)
  total_steps = (config.train.num_steps if config.train.get("num_steps", 0) > 0
                 else config.train.num_epochs * steps_per_epoch)
  optimizer = nnx.Optimizer(model, make_optimizer(config.optim, total_steps), wrt=nnx.Param)
  mesh = _Mesh(batch_size)
  mesh.replicate(model, optimizer)
  train_step, eval_step = make_steps(encoder, _ciphertext_augmentation(config, encoder))

  ckpts = checkpoints.Checkpoints(os.path.join(workdir, "checkpoints"))
  best_ckpt = checkpoints.Checkpoints(os.path.join(workdir, "best"), max_to_keep=1)
  metrics_path = os.path.join(workdir, "metrics.jsonl")
  start_step, best = 0, {"val_accuracy": -1.0, "step": 0}
  writer = jax.process_index() == 0  # one process writes metrics and results
  run_id = _run_fingerprint(config)
  public_config = _public_config(config)
  if ckpts.latest_step() is not None:
    start_step = ckpts.latest_step()
    saved = ckpts.metadata(start_step)  # the config check first: shapes may differ
    changed = (_changed_fields(saved["config"], config) if isinstance(saved.get("config"), dict)
               else [] if saved.get("run") == run_id else ["(a run saved without its config)"])
    if changed:
      raise ValueError(f"workdir {workdir!r} holds checkpoints of a run with another config: "
                       f"{'; '.join(changed)}. A resumed run may change only "
                       f"{', '.join(sorted(RESUMABLE_FIELDS))}; use a new --workdir")
    if start_step > total_steps:
      raise ValueError(f"workdir {workdir!r} holds checkpoints at step {start_step}, beyond this "
                       f"config's {total_steps} steps; train longer or use a new --workdir")
    ckpts.restore(start_step, {"model": model, "optimizer": optimizer})
    best = saved["best"]
    if writer:
      _truncate_jsonl(metrics_path, start_step)
  elif writer and os.path.exists(metrics_path):
    os.remove(metrics_path)

  eval_every = config.train.eval_every_steps or steps_per_epoch
  ckpt_every = config.train.checkpoint_every_steps or eval_every
  eval_bs = config.train.get("eval_batch_size", batch_size)
  # Owner-side augmentation: plain images, before the step encrypts them.
  augment = data.random_flip_and_shift if config.data.get("augment", False) else None
  batches: Iterator[dict] = data.train_batches(splits.train, batch_size=batch_size,
                                               seed=config.seed, start_step=start_step,
                                               augment=augment, **mesh.shard())
  model.train()
  show = bool(config.train.get("progress_bar", True)) and writer
  log = _ProgressLog(f"train {encoder.scheme}", start_step, total_steps,
                     enabled=show and not sys.stderr.isatty())
  progress = tqdm(range(start_step, total_steps), initial=start_step, total=total_steps,
                  desc=f"train {encoder.scheme}", unit="step", dynamic_ncols=True,
                  disable=not show or log.enabled)
  board = _board(workdir, start_step) if writer and config.train.get("tensorboard", True) else None
  tick, images_seen, start_time = time.perf_counter(), 0, time.perf_counter()
  for step in progress:
    batch = mesh.put_batch({k: v for k, v in next(batches).items() if k != "mask"})
    out = train_step(model, optimizer, batch["image"], batch["label"], batch["index"], step)
    images_seen += batch_size
    done = step + 1
    if done % config.train.log_every_steps == 0 or done == total_steps:
      loss, accuracy = float(out["loss"]), float(out["accuracy"])
      now = time.perf_counter()
      rate = images_seen / (now - tick)
      progress.set_postfix(loss=f"{loss:.4f}", img_s=f"{rate:.0f}")
      log.step(done, loss=loss, rate=rate)
      tick, images_seen = now, 0
      if writer:
        _append_jsonl(metrics_path, {"step": done, "epoch": done / steps_per_epoch,
                                     "train_loss": loss, "train_accuracy": accuracy})
      if board is not None:
        board.add_scalar("train/loss", loss, done)
        board.add_scalar("train/accuracy", accuracy, done)
        board.add_scalar("train/images_per_s", rate, done)
    if done % eval_every == 0 or done == total_steps:
      val = _evaluate(model, eval_step, mesh, splits.val, "val", eval_bs)
      record = {"step": done, "epoch": done / steps_per_epoch, "train_loss": float(out["loss"]),
                **{f"val_{k}": v for k, v in val.items()}}
      log.eval(done, val)
      if writer:
        _append_jsonl(metrics_path, record)
      if board is not None:
        for k, v in val.items():
          if v is not None:
            board.add_scalar(f"val/{k}", v, done)
        board.flush()
      if val["accuracy"] > best["val_accuracy"]:
        best = {"val_accuracy": val["accuracy"], "step": done}
        best_ckpt.save(done, {"model": model}, {"best": best, "run": run_id,
                                                "config": public_config})
    if done % ckpt_every == 0 or done == total_steps:
      ckpts.save(done, {"model": model, "optimizer": optimizer},
                 {"best": best, "run": run_id, "config": public_config})
  train_time = time.perf_counter() - start_time
  if board is not None:
    board.close()

  if best_ckpt.latest_step() is not None:
    best_ckpt.restore(best_ckpt.latest_step(), {"model": model})
  # No test split (a train/ val/ folder, flat class folders): no test metrics, said so.
  test = (_evaluate(model, eval_step, mesh, splits.test, "test", eval_bs,
                    label_names=splits.label_names)
          if splits.test is not None else {"accuracy": None, "auc": None, "loss": None})
  clinical = test.get("clinical")
  results = {
      "test_accuracy": test["accuracy"],
      "test_auc": test["auc"],
      "test_loss": test["loss"],
      # Sensitivity and specificity of the positive class 1 (two classes; else means over
      # classes), the confusion matrix and per-class precision/recall: metrics.clinical_metrics.
      "test_sensitivity": clinical and clinical["sensitivity"],
      "test_specificity": clinical and clinical["specificity"],
      "test_clinical": clinical,
      "best_val_accuracy": best["val_accuracy"],
      "best_step": best["step"],
      # The split that chose the checkpoint (never the test split).
      "selected_on": selected_on,
      "test_split": splits.test is not None,
      "steps": total_steps,
      "cipher": encoder.scheme,
      "per_image_keys": encoder.per_image_keys,
      "backbone": config.model.backbone,
      "adaptation": config.model.adaptation,
      "dataset": splits.name,
      "key_fingerprint": encoder.key_fingerprint,
      # What `lie-jax predict` needs to rebuild the model and encrypt new images like these.
      "encryption": {"scheme": encoder.scheme, "options": encoder.options,
                     "per_image_keys": encoder.per_image_keys,
                     "key_fingerprint": encoder.key_fingerprint,
                     # The dataset nonce the keys were derived under (None: no nonce).
                     "nonce": encoder.nonce,
                     "encrypted_by": "data owner" if encoder.pre_encrypted else "trainer"},
      "num_classes": splits.num_classes,
      "label_names": list(splits.label_names),
      "image_shape": list(image_shape),
      "block_size": block_size,
      "num_devices": jax.device_count(),
      "num_processes": jax.process_count(),
      "train_time_s_this_run": train_time,
      "lie_jax_version": __import__("lie_jax").__version__,
      "config": _public_config(config),
  }
  claims_plain_inputs = (encoder.scheme != encryption.PLAIN
                         and ciphers.get_scheme(encoder.scheme).plain_inputs_claim)
  if claims_plain_inputs and not encoder.pre_encrypted and splits.test is not None:
    plain = _evaluate(model, eval_step, mesh, splits.test, "test", eval_bs, plain=True)
    results["test_accuracy_plain_inputs"] = plain["accuracy"]
    results["test_auc_plain_inputs"] = plain["auc"]
  if writer and clinical is not None:
    metrics_lib.confusion_figure(clinical["confusion_matrix"], splits.label_names,
                                 os.path.join(workdir, "confusion_test.png"),
                                 title=f"test split, {encoder.scheme}")
  if writer:
    encrypted_dir.atomic_write(os.path.join(workdir, "results.json"),
                               (json.dumps(results, indent=1) + "\n").encode())
  ckpts.close()
  best_ckpt.close()
  return results
