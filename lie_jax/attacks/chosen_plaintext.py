"""Chosen-plaintext key recovery (Chang & Case 2020) for shared-key block transforms.

Every shared-key scheme that is a block transform (`lie_jax.ciphers.BlockTransform`:
LE, ELE, EtC, PE, the ViT cipher, block-wise shuffle/flip) is, for a fixed key, one
permutation of the image's values followed by an XOR mask: byte values for
most schemes, 4-bit nibbles for LE and ELE:

  cipher[p] = plain[source[p]] ^ mask[p]      for every flat position p.

The attacker asks the victim to encrypt a few helper images of its choice:
an all-zero image (its ciphertext is the mask), then images whose value at
every position p is digit k of p in base 256 (base 16 for nibbles). XORing
off the mask reads the digits of source[p] directly, so 1 + ceil(log_base(n))
helpers reveal the whole map (3 for a 28x28 grayscale image, 4 for its 1568
nibbles). The map decrypts every other ciphertext made with the same key,
and for LE, PE and ViT it converts back into a cipher key object that the
scheme's own `decrypt` accepts.

With per-image keys the helpers are encrypted under keys of their own, so
the map read off them is some other key's (or not a permutation at all):
the attack then "recovers" noise, which is what per-image keys are for.

Example:
  >>> import jax, numpy as np
  >>> from lie_jax.ciphers import le
  >>> from lie_jax.attacks import chosen_plaintext as cpa
  >>> k = le.generate_key(jax.random.key(1), image_shape=(8, 8, 1), block_size=4)
  >>> helpers = cpa.helper_images((8, 8, 1), nibbles=True)
  >>> recovered = cpa.recover_transform(le.encrypt(k, helpers), nibbles=True)
  >>> stolen = cpa.le_key(recovered, image_shape=(8, 8, 1), block_size=4)
  >>> x = np.arange(64, dtype=np.uint8).reshape(8, 8, 1)
  >>> bool((le.decrypt(stolen, le.encrypt(k, x)) == x).all())
  True
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np
from jax.typing import ArrayLike

from lie_jax import ciphers
from lie_jax.ciphers import le
from lie_jax.ciphers import pe
from lie_jax.ciphers import vit

# Schemes whose encryption with one key is a value permutation plus an XOR mask: every
# invertible block or pixel transform (`ciphers.apply_transform`), over nibbles for LE and ELE.
NIBBLE_SCHEMES = ("le", "ele")
BYTE_SCHEMES = tuple(
    name for name, s in ciphers.SCHEMES.items()
    if s.invertible and s.kind in ("block", "pixel") and name not in NIBBLE_SCHEMES)


class RecoveredTransform(NamedTuple):
  """A shared-key transform read off helper ciphertexts.

  Attributes:
    source: [m] int32, the plain position every cipher position is read from
      (m = H*W*C bytes, or 2*H*W*C nibbles: low nibbles first, then high).
    mask: [m] uint8, the XOR applied at every cipher position.
    image_shape: (H, W, C).
    nibbles: whether positions are nibbles (LE, ELE) or bytes.
    consistent: whether the digits read formed a permutation (False: the
      helpers were not all encrypted under one key; `source` was then
      repaired into a permutation by ranking).
  """

  source: np.ndarray
  mask: np.ndarray
  image_shape: tuple[int, int, int]
  nibbles: bool
  consistent: bool


def _digits(count: int, base: int) -> int:
  return max(1, math.ceil(math.log(count, base))) if count > 1 else 1


def helper_images(image_shape: tuple[int, int, int], *, nibbles: bool = False) -> np.ndarray:
  """The chosen plaintexts: an all-zero image, then one image per digit of the positions.

  Args:
    image_shape: (H, W, C) of the victim's images.
    nibbles: encode nibble positions (LE, ELE) instead of byte positions.

  Returns:
    [K, H, W, C] uint8 with K = 1 + ceil(log_base(m)), m the number of
    positions, base 16 (nibbles) or 256 (bytes).
  """
  n = math.prod(image_shape)
  if nibbles:
    k = _digits(2 * n, 16)
    pos = np.arange(n, dtype=np.int64)
    digit = lambda q, i: (q >> (4 * i)) & 15
    planes = [digit(pos, i) | (digit(pos + n, i) << 4) for i in range(k)]
  else:
    k = _digits(n, 256)
    pos = np.arange(n, dtype=np.int64)
    planes = [(pos >> (8 * i)) & 255 for i in range(k)]
  helpers = np.stack([np.zeros(n, np.int64)] + planes).astype(np.uint8)
  return helpers.reshape(len(helpers), *image_shape)


def num_helper_images(image_shape: tuple[int, int, int], *, nibbles: bool = False) -> int:
  """How many chosen plaintexts `helper_images` makes: 1 + ceil(log_base(m)) (>= 2).

  Args:
    image_shape: (H, W, C).
    nibbles: count nibble positions (LE, ELE, base 16) instead of bytes (base 256).
  """
  n = math.prod(image_shape)
  return 1 + (_digits(2 * n, 16) if nibbles else _digits(n, 256))


def image_values(images: ArrayLike, *, nibbles: bool = False) -> np.ndarray:
  """[K, H, W, C] uint8 -> [K, m] values: the bytes, or the nibbles (low ones, then high).

  The positions of the map `recover_transform` reads: m = H*W*C bytes, or 2*H*W*C
  nibbles, the low nibble of byte t at t and its high nibble at t + H*W*C.
  """
  return _values(np.asarray(images), nibbles)


def _values(images: np.ndarray, nibbles: bool) -> np.ndarray:
  """[K, H, W, C] uint8 -> [K, m] values (bytes, or nibbles: low ones then high ones)."""
  flat = np.asarray(images).reshape(len(images), -1)
  if not nibbles:
    return flat
  return np.concatenate([flat & 15, flat >> 4], axis=1)


def _as_permutation(values: np.ndarray) -> tuple[np.ndarray, bool]:
  """values [..., m] -> (a permutation per row, whether every row already was one)."""
  m = values.shape[-1]
  is_perm = bool((np.sort(values, axis=-1) == np.arange(m)).all())
  if is_perm:
    return values.astype(np.int32), True
  ranks = np.argsort(np.argsort(values, axis=-1, kind="stable"), axis=-1, kind="stable")
  return ranks.astype(np.int32), False


def recover_transform(helper_ciphertexts: ArrayLike, *,
                      nibbles: bool = False) -> RecoveredTransform:
  """Reads the source map and mask off the encrypted `helper_images`.

  Args:
    helper_ciphertexts: [K, H, W, C] uint8, `helper_images(...)` encrypted by the victim.
    nibbles: as given to `helper_images`.

  Returns:
    A `RecoveredTransform`.
  """
  cts = np.asarray(helper_ciphertexts)
  if cts.ndim != 4 or cts.dtype != np.uint8:
    raise ValueError(f"helper ciphertexts must be uint8 [K, H, W, C], got {cts.dtype} "
                     f"{cts.shape}")
  image_shape = tuple(int(s) for s in cts.shape[1:])
  expected = len(helper_images(image_shape, nibbles=nibbles))
  if len(cts) != expected:
    raise ValueError(f"expected the {expected} encrypted helper images, got {len(cts)}")
  values = _values(cts, nibbles).astype(np.int64)
  mask = values[0]
  bits = 4 if nibbles else 8
  source = sum((values[1 + i] ^ mask) << (bits * i) for i in range(len(values) - 1))
  source, consistent = _as_permutation(source)
  return RecoveredTransform(source=source, mask=mask.astype(np.uint8), image_shape=image_shape,
                            nibbles=nibbles, consistent=consistent)


def invert(recovered: RecoveredTransform, ciphertexts: ArrayLike) -> np.ndarray:
  """Decrypts with a recovered map: plain[source[p]] = cipher[p] ^ mask[p].

  Args:
    recovered: from `recover_transform`.
    ciphertexts: [H, W, C] or [N, H, W, C] uint8 of the recovered image shape.

  Returns:
    Plain-image estimates, uint8, same shape.
  """
  cts = np.asarray(ciphertexts)
  single = cts.ndim == 3
  batch = cts[None] if single else cts
  if tuple(batch.shape[1:]) != recovered.image_shape:
    raise ValueError(f"ciphertexts must be {list(recovered.image_shape)} images, got "
                     f"{list(batch.shape[1:])}")
  values = _values(batch, recovered.nibbles) ^ recovered.mask
  plain = np.empty_like(values)
  plain[:, recovered.source] = values
  if recovered.nibbles:
    n = plain.shape[1] // 2
    plain = plain[:, :n] | (plain[:, n:] << 4)
  out = plain.astype(np.uint8).reshape(batch.shape)
  return out[0] if single else out


def _block_indices(recovered: RecoveredTransform, block_size: int) -> tuple[np.ndarray, ...]:
  """For every (output block j, value i): the source (block, value) index pair."""
  positions = ciphers.block_positions(recovered.image_shape, block_size)
  if recovered.nibbles:  # LE's nibble image: the n low nibbles, then the n high ones
    positions = np.concatenate([positions, positions + math.prod(recovered.image_shape)], axis=1)
  nb, e = positions.shape
  where = np.empty(nb * e, np.int64)
  where[positions.reshape(-1)] = np.arange(nb * e)
  src = where[recovered.source[positions]]  # [nb, e] flat (block * e + value)
  return src // e, src % e


def le_key(recovered: RecoveredTransform, *, image_shape: tuple[int, int, int],
           block_size: int) -> le.LEKey:
  """The LE key of a nibble map recovered from LE ciphertexts (read from block 0).

  Args:
    recovered: `recover_transform(..., nibbles=True)` of LE-encrypted helpers.
    image_shape: (H, W, C).
    block_size: B.

  Returns:
    An `le.LEKey` for `le.decrypt` (exactly the victim's key when the
    helpers were encrypted under it).
  """
  _, value = _block_indices(_checked(recovered, image_shape, nibbles=True), block_size)
  perm, _ = _as_permutation(value[0])
  c = image_shape[2]
  return le.key_from_permutation(perm, block_shape=(block_size, block_size, c))


def vit_key(recovered: RecoveredTransform, *, image_shape: tuple[int, int, int],
            block_size: int) -> vit.ViTKey:
  """The ViT cipher key of a byte map: block order from values 0, pixel order from block 0.

  Args:
    recovered: `recover_transform(...)` of vit-encrypted helpers.
    image_shape: (H, W, C).
    block_size: the patch size P.

  Returns:
    A `vit.ViTKey` ("hwc" layout) for `vit.decrypt`.
  """
  block, value = _block_indices(_checked(recovered, image_shape, nibbles=False), block_size)
  block_perm, _ = _as_permutation(block[:, 0])
  pixel_perm, _ = _as_permutation(value[0])
  return vit.key_from_permutations(pixel_perm, block_perm, block_size=block_size,
                                   image_shape=tuple(image_shape))


def pe_key(recovered: RecoveredTransform, *, image_shape: tuple[int, int, int]) -> pe.PEKey:
  """The PE key of a byte map: per pixel, its colour order and negation bits.

  Args:
    recovered: `recover_transform(...)` of PE-encrypted helpers (one shared key).
    image_shape: (H, W, C).

  Returns:
    A `pe.PEKey` for `pe.decrypt`. Pixels whose channel order is not one of
    the 6 colour permutations (inconsistent helpers) get the identity.
  """
  h, w, c = image_shape
  _, value = _block_indices(_checked(recovered, image_shape, nibbles=False), 1)  # [H*W, C]
  flips = (recovered.mask.reshape(h * w, c) != 0)
  if c == 3:
    table = ciphers.COLOR_PERMUTATIONS
    match = (value[:, None, :] == table[None]).all(-1)  # [H*W, 6]
    color = np.where(match.any(-1), match.argmax(-1), 0).astype(np.uint8)
    order = table[color]
  else:
    color = np.zeros(h * w, np.uint8)
    order = np.zeros((h * w, 1), np.int64)
  # The mask sits on output channel c; PE negates source channel order[c] first.
  negate = np.zeros_like(flips)
  np.put_along_axis(negate, order, flips, axis=1)
  return pe.key_from_arrays(negate.reshape(h, w, c), color.reshape(h, w))


def _checked(recovered: RecoveredTransform, image_shape: tuple[int, int, int], *,
             nibbles: bool) -> RecoveredTransform:
  if tuple(image_shape) != recovered.image_shape:
    raise ValueError(f"the map was recovered for {list(recovered.image_shape)} images, not "
                     f"{list(image_shape)}")
  if recovered.nibbles != nibbles:
    raise ValueError(f"this scheme needs a {'nibble' if nibbles else 'byte'} map")
  return recovered


def attack(encrypt_oracle: Callable[[np.ndarray], ArrayLike], ciphertexts: ArrayLike, *,
           scheme: str, block_size: int = 4
           ) -> tuple[np.ndarray, le.LEKey | pe.PEKey | vit.ViTKey | RecoveredTransform]:
  """Runs the whole attack: helpers -> oracle -> map -> decrypted ciphertexts.

  Args:
    encrypt_oracle: encrypts [K, H, W, C] uint8 helper images under the
      victim's key(s), as the victim's system would for the attacker.
    ciphertexts: [N, H, W, C] uint8 victim ciphertexts to decrypt.
    scheme: one of NIBBLE_SCHEMES + BYTE_SCHEMES.
    block_size: the scheme's block size (used to build LE and ViT keys).

  Returns:
    (plain estimates [N, H, W, C] uint8, the recovered key): an `LEKey`,
    `PEKey` or `ViTKey` for "le", "pe", "vit" (decrypted with the scheme's
    own `decrypt`), else the `RecoveredTransform` (decrypted with `invert`).
  """
  if scheme not in NIBBLE_SCHEMES + BYTE_SCHEMES:
    raise ValueError(f"chosen-plaintext recovery applies to {NIBBLE_SCHEMES + BYTE_SCHEMES}, "
                     f"not {scheme!r}")
  cts = np.asarray(ciphertexts)
  image_shape = tuple(int(s) for s in cts.shape[1:])
  nibbles = scheme in NIBBLE_SCHEMES
  helpers = helper_images(image_shape, nibbles=nibbles)
  recovered = recover_transform(np.asarray(encrypt_oracle(helpers)), nibbles=nibbles)
  if scheme == "le":
    key = le_key(recovered, image_shape=image_shape, block_size=block_size)
    return np.asarray(le.decrypt(key, cts)), key
  if scheme == "vit":
    key = vit_key(recovered, image_shape=image_shape, block_size=block_size)
    return np.asarray(vit.decrypt(key, cts)), key
  if scheme == "pe":
    key = pe_key(recovered, image_shape=image_shape)
    return np.asarray(pe.decrypt(key, cts)), key
  return invert(recovered, cts), recovered
