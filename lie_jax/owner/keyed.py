"""A ViT trained on plain images, served on encrypted ones (Kiya et al. 2022): no retraining.

The owner trains a ViT on plain images (--config pneumoniamnist:none,none,vit, or any
config with backbone "vit" and adaptation "none"), then `key_vit_model` transforms it with
the owner's key file: the patch embedding's rows and the position embeddings are permuted
as the `vit` cipher permutes pixels and blocks (`lie_jax.models.keyed_vit`). The keyed model
and images encrypted with `lie-jax encrypt --scheme vit` (or by `lie-jax predict --key`)
give the plain model's predictions on the plain images, up to float rounding.

What it protects: the server holds only the keyed model and ciphertexts. Whoever holds the
plain model as well recovers the key by matching the permuted rows, so the plain model must
stay with the owner (train it on the owner's machines or on public data). The vit cipher
with one shared key falls to a single known image (docs/SECURITY.md): this is a deployment
convenience, not protection against a server that has seen a plain scan.

  lie-jax key-model --model workdir/plain_vit --key hospital.key --out workdir/keyed_vit
  lie-jax predict --checkpoint workdir/keyed_vit --in scans/ --key hospital.key --out p.csv
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from lie_jax import keys
from lie_jax.data import encrypted_dir
from lie_jax.owner import OwnerError
from lie_jax.owner import predict


def key_vit_model(checkpoint: str | os.PathLike, out: str | os.PathLike, *,
                  secret: keys.SecretKey) -> Path:
  """Writes to the new directory `out` a workdir `lie-jax predict` serves on vit ciphertexts.

  Args:
    checkpoint: the plain ViT's training workdir (results.json, best/ or checkpoints/).
    out: a directory that does not exist yet (never overwritten).
    secret: the owner's key (`lie_jax.keys.read_key_file`).

  Returns:
    `out`, holding results.json (encryption: scheme "vit" with the patch size as block size,
    the key's fingerprint and a fresh nonce; no key material) and best/ (the keyed weights).

  Raises:
    OwnerError: `out` exists, or the model is not a ViT without adaptation trained on
      plain images.
  """
  from lie_jax import models  # pylint: disable=g-import-not-at-top  (imports JAX)
  from lie_jax.data import encryption  # pylint: disable=g-import-not-at-top
  from lie_jax.training import checkpoints  # pylint: disable=g-import-not-at-top

  out = Path(out)
  if os.path.lexists(out):
    raise OwnerError(f"{out} already exists; key-model writes a new directory only")
  trained = predict.load_trained_model(checkpoint)
  results = trained.results
  model_config = results["config"]["model"]
  if results["encryption"]["scheme"] != "none":
    raise OwnerError(f"{checkpoint}: the model was trained on {results['encryption']['scheme']}"
                     "-encrypted images; key-model transforms a ViT trained on plain images")
  if model_config.get("backbone") != "vit" or model_config.get("adaptation") != "none":
    raise OwnerError(f"{checkpoint}: key-model needs backbone 'vit' with adaptation 'none', "
                     f"got {model_config.get('backbone')!r} with "
                     f"{model_config.get('adaptation')!r}")
  shape = tuple(results["image_shape"])
  options = encryption.scheme_options("vit", block_size=trained.model.backbone.patch_size)
  nonce = keys.new_nonce()
  try:
    cipher = encryption.key_file_cipher(secret, "vit", image_shape=shape, options=options,
                                        nonce=nonce)
    keyed = models.keyed_vit(trained.model, cipher.cipher_key)
  except (ValueError, TypeError) as e:
    raise OwnerError(f"{checkpoint}: cannot key this ViT ({e})") from None
  out.mkdir(parents=True)
  saved = checkpoints.Checkpoints(out / "best", max_to_keep=1)
  saved.save(trained.step, {"model": keyed}, {"keyed_from_step": trained.step})
  saved.close()
  keyed_results = {
      **results, "cipher": "vit", "per_image_keys": False,
      "key_fingerprint": secret.fingerprint,
      "encryption": {"scheme": "vit", "options": options, "per_image_keys": False,
                     "key_fingerprint": secret.fingerprint, "nonce": nonce.hex(),
                     "encrypted_by": "data owner (keyed model)"},
      "keyed_from": str(checkpoint),
  }
  encrypted_dir.atomic_write(out / "results.json",
                             (json.dumps(keyed_results, indent=1) + "\n").encode())
  return out
