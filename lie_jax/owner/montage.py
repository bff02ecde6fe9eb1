"""Seeing the data: a PNG grid of an encrypted dataset's images (and, with the key, decrypted).

  lie-jax inspect DIR --montage grid.png [--count 16] [--split test] [--key KEYFILE]

Without a key: `count` ciphertexts of one split, what the server sees. With the owner's
key (the manifest's MAC is checked first): each ciphertext next to its decryption, the
plain image, for invertible schemes; lossy schemes (huang2022) have no decryption, said in
the returned note. Small images are enlarged (nearest neighbour) so that cells are at least
64 pixels, as MedMNIST's `montage` does.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from lie_jax import keys
from lie_jax.data import encrypted_dir
from lie_jax.owner import OwnerError

_MIN_CELL = 64
_GAP = 2


def _grid(cells: list[np.ndarray], columns: int) -> np.ndarray:
  """Tiles equal-shaped [h, w, C] uint8 cells in rows of `columns`, with white gaps."""
  h, w, c = cells[0].shape
  rows = math.ceil(len(cells) / columns)
  out = np.full((rows * (h + _GAP) - _GAP, columns * (w + _GAP) - _GAP, c), 255, np.uint8)
  for k, cell in enumerate(cells):
    r, q = divmod(k, columns)
    out[r * (h + _GAP):r * (h + _GAP) + h, q * (w + _GAP):q * (w + _GAP) + w] = cell
  return out


def montage(directory: str | os.PathLike, out: str | os.PathLike, *, count: int = 16,
            split: str | None = None, secret: keys.SecretKey | None = None) -> dict[str, Any]:
  """Writes the montage PNG; returns {"split", "count", "scale", "decrypted", "note"}.

  Raises:
    OwnerError: not an encrypted directory, unknown split, count < 1, a wrong key.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from lie_jax import ciphers  # pylint: disable=g-import-not-at-top
  from lie_jax.owner import dataset  # pylint: disable=g-import-not-at-top

  if count < 1:
    raise OwnerError(f"--count must be >= 1, got {count}")
  try:
    manifest = encrypted_dir.read_manifest(directory)
  except (ValueError, FileNotFoundError) as e:
    raise OwnerError(str(e)) from None
  present = [s for s in encrypted_dir.SPLITS if s in manifest["splits"]]
  split = split or present[0]
  if split not in present:
    raise OwnerError(f"{directory} has no {split!r} split (it has {present})")
  try:
    images, _, indices = encrypted_dir.read_split(directory, split, manifest, lazy=True)
  except ValueError as e:
    raise OwnerError(str(e)) from None
  images, indices = np.asarray(images[:count]), indices[:count]
  if not len(images):
    raise OwnerError(f"{directory}: the {split} split is empty")
  cipher_info = manifest["cipher"]
  decrypted, note = None, ""
  if secret is not None:
    dataset.verify_manifest(manifest, secret, Path(directory))
    if cipher_info["scheme"] in ciphers.INVERTIBLE:
      cipher = dataset.manifest_cipher(manifest, secret, directory)
      decrypted = dataset.apply_cipher(cipher.decrypt, images, indices, split)
    else:
      note = f"{cipher_info['scheme']} is lossy: no decrypted images"
  h, w, _ = images.shape[1:]
  scale = max(1, math.ceil(_MIN_CELL / min(h, w)))
  big = lambda x: np.repeat(np.repeat(x, scale, axis=0), scale, axis=1)
  if decrypted is None:
    cells = [big(x) for x in images]
  else:  # encrypted | decrypted, side by side in one cell
    cells = [np.concatenate([big(x), np.full((h * scale, _GAP, x.shape[-1]), 255, np.uint8),
                             big(y)], axis=1) for x, y in zip(images, decrypted)]
  grid = _grid(cells, columns=max(1, math.ceil(math.sqrt(len(cells)))))
  Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(out)
  return {"split": split, "count": len(cells), "scale": scale,
          "decrypted": decrypted is not None, "note": note}
