"""Exact known-plaintext attack on every shared-key block or pixel transform.

For one key, LE, ELE, EtC, PE, the ViT cipher and block-wise shuffle/flip are a
fixed map of values (bytes; 4-bit nibbles for LE and ELE, viewed as in
`chosen_plaintext`):

  cipher[p] = plain[source[p]] ^ mask[p]      for every flat position p.

An attacker who holds K (plain, cipher) pairs under the victim's key, and no
encryption oracle, matches every cipher position to the plain positions whose
values agree with it on all K pairs, up to a mask the scheme allows: the
"sequence of values over the pairs" of a position is its fingerprint. As in
Chang & Case (2020), who read the same map off chosen plaintexts, the map
then decrypts every other ciphertext under the key, byte for byte; here no
helper image is chosen, the leaked pairs (public datasets, earlier studies)
are enough. Matching is done once for all positions by hashing fingerprints
(`np.unique` over rows).

What the attacker knows about the scheme cuts the pairs needed:

* masks: the allowed XOR masks per position, a group under XOR ({0} for pure
  permutations, {0, 0xFF} for negative-positive, {0, 0xF} for LE's nibble
  flips, all values when unknown: general XOR-difference matching). A
  fingerprint is reduced to a canonical form under the group, so matching
  is exact up to the allowed masks.
* "pooled" (LE, block-wise): one in-block permutation and mask shared by every
  block that stays in place: the fingerprint of an in-block position holds
  its values in every block of every pair (nb times more evidence per pair).
* "vit" (ViT cipher): block scrambling plus one shared in-block permutation:
  in-block positions and blocks are matched by colour refinement (block-order
  invariant multisets), then blocks by their full content.
* "etc" (EtC): whole blocks move with one of the 8 square symmetries, a
  colour order and a negative-positive flip: blocks are matched by their
  canonical form under that group (Kurihara, Kiya et al.).
* "ele" (ELE): block scrambling plus a free nibble permutation with flips per
  block: blocks are matched by their multiset of canonical nibble columns.
* "pixel" (PE): values only move between the channels of their own pixel.
* "fixed" (block-wise flip without shuffle): no value moves, only masks.
* "flat": any position may come from any position (no structure).

Certainty. The pairs leave a set of consistent maps; the analysis keeps, for
every cipher position, its class (what it may be matched with) and the XOR
that brings it to canonical form. Every consistent map decrypts a victim
ciphertext the same way exactly when, within every class, the victim's
canonicalised values agree (`certain`): the attacker knows from the
ciphertext alone whether a decryption is forced. `min_known_pairs` searches
the smallest K at which every victim is forced (and exact).

The mask models relax two schemes: LE and ELE flip a nibble according to
their permutation, and block-wise "flip" flips exactly floor(d/2) values;
here any mask of the group is allowed per position. An attacker using those
rules might need fewer pairs, so the counts for these schemes are upper
bounds (for the others, brute force over every key of tiny images agrees).

Per-image keys: every image has its own map (`PER_IMAGE_REASON`).

Reference: Chang, A. H., & Case, B. M. (2020). Attacks on image encryption
schemes for privacy-preserving deep neural networks. arXiv:2004.13263.

Example:
  >>> import jax, numpy as np
  >>> from lie_jax.ciphers import vit
  >>> from lie_jax.attacks import known_plaintext_exact as kpe
  >>> k = vit.generate_key(jax.random.key(0), image_shape=(8, 8, 1), block_size=4)
  >>> rng = np.random.default_rng(0)
  >>> known = rng.integers(0, 256, (2, 8, 8, 1), dtype=np.uint8)
  >>> victim = rng.integers(0, 256, (3, 8, 8, 1), dtype=np.uint8)
  >>> out, info = kpe.attack(known, np.asarray(vit.encrypt(k, known)),
  ...                        np.asarray(vit.encrypt(k, victim)), scheme="vit",
  ...                        options={"block_size": 4})
  >>> bool((out == victim).all()), info["certain"]
  (True, [True, True, True])
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
from jax.typing import ArrayLike

from lie_jax import ciphers
from lie_jax.attacks import chosen_plaintext
from lie_jax.ciphers import etc

PER_IMAGE_REASON = (
    "every image is encrypted under its own key, so its "
    "map (source positions and masks) is its own; known (plain, cipher) pairs reveal only "
    "their own images' maps, never the map of another image")
STRUCTURES = ("flat", "pooled", "pixel", "fixed", "vit", "etc", "ele")
SCHEMES = ("le", "ele", "etc", "pe", "vit", "blockwise")
DEFAULT_MAX_PAIRS = 64


class Evidence(NamedTuple):
  """What the known pairs say about each cipher position (one row per entry).

  A cipher position may have several entries (EtC blocks with symmetries).
  Two entries with the same `cls` are interchangeable: value ^ xor agrees
  on every known pair. Plain positions have entries of the same classes.
  """

  pos: np.ndarray
  cls: np.ndarray
  xor: np.ndarray


class RecoveredMap(NamedTuple):
  """The map read off known pairs: plain[source[p]] = cipher[p] ^ mask[p].

  Attributes:
    source: [m] int64 permutation, the plain position of every cipher position
      (m = H*W*C bytes, or 2*H*W*C nibbles: low nibbles first, then high).
    mask: [m] uint8 XOR of every cipher position.
    image_shape: (H, W, C).
    nibbles: positions are nibbles (LE, ELE) or bytes.
    structure: the matching structure used (STRUCTURES).
    ambiguous: cipher positions whose source the pairs leave open (0: the map
      is fully determined).
    consistent: False when the pairs fit no map of this structure (e.g. they
      were encrypted under different keys); source is then only a guess.
    complete: whether `evidence` covers every consistent map (False only for
      "vit" when the shared in-block permutation stays ambiguous); `certain`
      then says False.
    evidence: the classes of the cipher positions, for `certain`.
  """

  source: np.ndarray
  mask: np.ndarray
  image_shape: tuple[int, int, int]
  nibbles: bool
  structure: str
  ambiguous: int
  consistent: bool
  complete: bool
  evidence: Evidence


# ---------------------------------------------------------------------------- helpers


def _xor_table(masks: Sequence[int] | None, bits: int) -> np.ndarray:
  """[2**bits] uint8: the XOR bringing a leading value to its canonical one under `masks`.

  `masks` must be a group under XOR (contain 0, be closed); None means every value.
  """
  size = 1 << bits
  values = np.arange(size)
  if masks is None:
    return values.astype(np.uint8)
  group = np.unique(np.asarray(list(masks), dtype=np.int64))
  if group.size == 0 or group.min() < 0 or group.max() >= size:
    raise ValueError(f"masks must be values in 0..{size - 1}, got {list(masks)}")
  if 0 not in group or not np.isin(group[:, None] ^ group[None, :], group).all():
    raise ValueError(f"masks must contain 0 and be closed under XOR, got {list(masks)}")
  best = np.argmin(values[:, None] ^ group[None, :], axis=1)
  return group[best].astype(np.uint8)


def _row_ids(*arrays: np.ndarray) -> list[np.ndarray]:
  """Joint ids of the rows of 2-D arrays (same width): equal rows get equal ids, ids in
  lexicographic (byte) order of the rows."""
  rows = np.concatenate([np.ascontiguousarray(a) for a in arrays], axis=0)
  if rows.shape[1] == 0:
    ids = np.zeros(len(rows), np.int64)
  else:
    void = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).reshape(-1)
    ids = np.unique(void, return_inverse=True)[1].reshape(-1).astype(np.int64)
  cuts = np.cumsum([len(a) for a in arrays])[:-1]
  return np.split(ids, cuts)


def _combine(*ids: np.ndarray) -> np.ndarray:
  """One int64 id per tuple of ids (dense)."""
  stacked = np.stack([np.asarray(i, np.int64) for i in ids], axis=1)
  return _row_ids(stacked)[0]


def _canonical_columns(cols_c: np.ndarray, cols_p: np.ndarray, table: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """Columns [units, L] -> (class id, canonicalising XOR) for cipher and plain units."""
  xc, xp = table[cols_c[:, 0]], table[cols_p[:, 0]]
  ic, ip = _row_ids(cols_c ^ xc[:, None], cols_p ^ xp[:, None])
  return ic, xc, ip, xp


def _block_positions(image_shape: tuple[int, int, int], block_size: int,
                     nibbles: bool) -> np.ndarray:
  """[nb, e] flat value positions of every block (nibbles: d low ones, then d high ones)."""
  if image_shape[0] % block_size or image_shape[1] % block_size:
    raise ValueError(f"image size {image_shape[0]}x{image_shape[1]} is not divisible by "
                     f"block_size={block_size}")
  pos = ciphers.block_positions(image_shape, block_size).astype(np.int64)
  if nibbles:
    pos = np.concatenate([pos, pos + math.prod(image_shape)], axis=1)
  return pos


# ---------------------------------------------------------------------------- structures


class _Entries(NamedTuple):
  """Cipher and plain entries; `unit` orders entries of a class so that pairing the
  k-th cipher entry with the k-th plain entry of every class is one consistent map."""

  c: Evidence
  c_unit: np.ndarray
  p: Evidence
  p_unit: np.ndarray


def _flat(vc: np.ndarray, vp: np.ndarray, table: np.ndarray, region: np.ndarray) -> _Entries:
  """Positions match within their region (one id per position) up to the masks."""
  ic, xc, ip, xp = _canonical_columns(vc.T, vp.T, table)
  cc, cp = np.split(_combine(np.concatenate([region, region]), np.concatenate([ic, ip])), 2)
  pos = np.arange(vc.shape[1])
  return _Entries(Evidence(pos, cc, xc), pos, Evidence(pos, cp, xp), pos)


def _pooled(vc: np.ndarray, vp: np.ndarray, table: np.ndarray, blocks: np.ndarray) -> _Entries:
  """Blocks stay in place; one in-block permutation and mask for all blocks."""
  k = len(vc)
  cols = lambda v: v[:, blocks].transpose(2, 0, 1).reshape(blocks.shape[1], k * len(blocks))
  ic, xc, ip, xp = _canonical_columns(cols(vc), cols(vp), table)
  nb, e = blocks.shape
  block = np.repeat(np.arange(nb), e)
  cp_ = _combine(np.concatenate([block, block]), np.concatenate([np.tile(ic, nb),
                                                                  np.tile(ip, nb)]))
  cc, cp_ = np.split(cp_, 2)
  pos = blocks.reshape(-1)
  return _Entries(Evidence(pos, cc, np.tile(xc, nb)), pos, Evidence(pos, cp_, np.tile(xp, nb)),
                  pos)


def _ele(vc: np.ndarray, vp: np.ndarray, table: np.ndarray, blocks: np.ndarray) -> _Entries:
  """Blocks scrambled; each block its own value permutation with per-value masks."""
  nb, e = blocks.shape
  cols = lambda v: v[:, blocks].reshape(len(v), nb * e).T  # [(block, value), K]
  ic, xc, ip, xp = _canonical_columns(cols(vc), cols(vp), table)
  sc = np.sort(ic.reshape(nb, e), axis=1)
  sp = np.sort(ip.reshape(nb, e), axis=1)
  oc, op = _row_ids(sc, sp)  # block orbit: its multiset of canonical columns
  cls = _combine(np.concatenate([np.repeat(oc, e), np.repeat(op, e)]), np.concatenate([ic, ip]))
  cc, cp_ = np.split(cls, 2)
  unit = np.repeat(np.arange(nb), e) * e + np.tile(np.arange(e), nb)
  pos = blocks.reshape(-1)
  return _Entries(Evidence(pos, cc, xc), unit, Evidence(pos, cp_, xp), unit)


def _etc_group(block_size: int, channels: int) -> np.ndarray:
  """[g, d] distinct in-block gathers: the 8 square symmetries times the colour orders."""
  table = etc.within_block_permutations(block_size, channels)
  return np.unique(table.reshape(-1, table.shape[-1]), axis=0).astype(np.int64)


def _etc(vc: np.ndarray, vp: np.ndarray, blocks: np.ndarray, block_size: int,
         channels: int) -> tuple[_Entries, _Entries]:
  """Blocks move whole, with a symmetry, colour order and negation from a group H.

  Returns (entries of the first valid transform of every block, for pairing;
  entries of every valid transform, the evidence)."""
  group = _etc_group(block_size, channels)
  nb, d = blocks.shape
  k = len(vc)

  def versions(v):  # [nb, h, 2, K*d]: every block under every transform and negation
    b = v[:, blocks]  # [K, nb, d]
    t = b[:, :, group].transpose(1, 2, 0, 3)  # [nb, h, K, d]
    t = np.stack([t, t ^ np.uint8(255)], axis=2)
    return t.reshape(nb, len(group), 2, k * d)

  wc, wp = versions(vc), versions(vp)
  ic, ip = _row_ids(wc.reshape(-1, k * d), wp.reshape(-1, k * d))
  ic, ip = ic.reshape(nb, -1), ip.reshape(nb, -1)  # [nb, 2h] (h-major, then negation)
  h_all = np.repeat(np.arange(len(group)), 2)
  n_all = np.tile(np.array([0, 255], np.uint8), len(group))

  def entries(ids, first_only):
    orbit = ids.min(axis=1)
    valid = ids == orbit[:, None]
    if first_only:
      valid = np.zeros_like(valid)
      valid[np.arange(nb), np.argmax(ids == orbit[:, None], axis=1)] = True
    blk, which = np.nonzero(valid)
    gathers = group[h_all[which]]  # [E, d]: canonical position r reads block value gathers[r]
    pos = blocks[blk[:, None], gathers].reshape(-1)
    r = np.tile(np.arange(d), len(blk))
    cls = np.repeat(orbit[blk], d) * d + r
    xor = np.repeat(n_all[which], d)
    return Evidence(pos, cls, xor), np.repeat(blk, d)

  (ec1, uc1), (ep1, up1) = entries(ic, True), entries(ip, True)
  (eca, uca), (epa, upa) = entries(ic, False), entries(ip, False)
  return _Entries(ec1, uc1, ep1, up1), _Entries(eca, uca, epa, upa)


def _refine_vit(tc: np.ndarray, tp: np.ndarray, rounds: int = 50) -> tuple[np.ndarray,
                                                                            np.ndarray, bool]:
  """Colour refinement of in-block positions under unknown block order.

  tc, tp: [nb, d] ids of the K-tuples of values (cipher, plain). Returns column
  colours (cipher, plain) and whether they match one to one.
  """
  nb, d = tc.shape
  col_c, col_p = np.zeros(d, np.int64), np.zeros(d, np.int64)
  blk_c, blk_p = np.zeros(nb, np.int64), np.zeros(nb, np.int64)
  count = -1
  for _ in range(rounds):
    # Columns: their sorted multiset of (block colour, value) over blocks.
    scale = tc.max() + tp.max() + 2
    key_c = np.sort(blk_c[:, None] * scale + tc, axis=0).T
    key_p = np.sort(blk_p[:, None] * scale + tp, axis=0).T
    col_c, col_p = np.split(_combine(np.concatenate([col_c, col_p]),
                                     np.concatenate(_row_ids(key_c, key_p))), 2)
    # Blocks: their values sorted by (column colour, value).
    bc = np.sort(col_c[None, :] * scale + tc, axis=1)
    bp = np.sort(col_p[None, :] * scale + tp, axis=1)
    blk_c, blk_p = np.split(_combine(np.concatenate([blk_c, blk_p]),
                                     np.concatenate(_row_ids(bc, bp))), 2)
    new = len(np.unique(col_c)) + len(np.unique(blk_c))
    if new == count:
      break
    count = new
  one_to_one = (len(np.unique(col_c)) == d and
                np.array_equal(np.sort(col_c), np.sort(col_p)))
  return col_c, col_p, bool(one_to_one)


def _vit(vc: np.ndarray, vp: np.ndarray, blocks: np.ndarray) -> tuple[_Entries, bool]:
  """Block scrambling and one shared in-block permutation, no masks."""
  nb, d = blocks.shape
  k = len(vc)
  tup = lambda v: v[:, blocks].transpose(1, 2, 0).reshape(nb * d, k)
  tc, tp = (t.reshape(nb, d) for t in _row_ids(tup(vc), tup(vp)))
  col_c, col_p, complete = _refine_vit(tc, tp)
  pi = _pair(col_c, np.arange(d), col_p, np.arange(d))[0]  # cipher in-block i <- plain pi[i]
  # Unpermute cipher blocks, then match blocks by full content over the pairs.
  bc = vc[:, blocks]  # [K, nb, d]
  un = np.empty_like(bc)
  un[:, :, pi] = bc
  rows = lambda b: b.transpose(1, 0, 2).reshape(nb, k * d)
  oc, op = _row_ids(rows(un), rows(vp[:, blocks]))
  unit = np.repeat(np.arange(nb), d)
  cc = np.repeat(oc, d) * d + np.tile(pi, nb)
  cp_ = np.repeat(op, d) * d + np.tile(np.arange(d), nb)
  zeros = np.zeros(nb * d, np.uint8)
  pos = blocks.reshape(-1)
  return _Entries(Evidence(pos, cc, zeros), unit, Evidence(pos, cp_, zeros), unit), complete


def _pair(cls_c: np.ndarray, unit_c: np.ndarray, cls_p: np.ndarray, unit_p: np.ndarray
          ) -> tuple[np.ndarray, bool]:
  """Pairs the k-th cipher entry of every class (ordered by unit) with its k-th plain entry.

  Returns (for every cipher entry, the index of its plain entry; whether every class had
  as many cipher as plain entries). Unpaired entries are paired with leftovers.
  """
  def ranked(cls, unit):
    order = np.lexsort((unit, cls))
    sorted_cls = cls[order]
    starts = np.r_[0, np.nonzero(np.diff(sorted_cls))[0] + 1]
    first = np.repeat(starts, np.diff(np.r_[starts, len(cls)]))
    rank = np.empty(len(cls), np.int64)
    rank[order] = np.arange(len(cls)) - first
    return rank

  rc, rp = ranked(cls_c, unit_c), ranked(cls_p, unit_p)
  kc, kp = np.split(_combine(np.concatenate([cls_c, cls_p]), np.concatenate([rc, rp])), 2)
  order = np.argsort(kp, kind="stable")
  at = np.searchsorted(kp[order], kc)
  at = np.minimum(at, len(kp) - 1)
  hit = kp[order][at] == kc
  match = np.full(len(kc), -1, np.int64)
  match[hit] = order[at[hit]]
  consistent = bool(hit.all()) and len(kc) == len(kp)
  if not consistent:
    free = np.setdiff1d(np.arange(len(kp)), match[hit])
    match[~hit] = free[:int((~hit).sum())]
  return match, consistent


def _ambiguous(e: _Entries, m: int) -> int:
  """Cipher positions with more than one candidate source."""
  cp_pairs = np.unique(np.stack([e.c.pos, e.c.cls], 1), axis=0)
  classes_per_pos = np.bincount(cp_pairs[:, 0], minlength=m)
  pp_pairs = np.unique(np.stack([e.p.cls, e.p.pos], 1), axis=0)
  cls_ids, plain_count = np.unique(pp_pairs[:, 0], return_counts=True)
  size = np.zeros(len(cp_pairs), np.int64)
  at = np.searchsorted(cls_ids, cp_pairs[:, 1])
  ok = (at < len(cls_ids))
  size[ok] = np.where(cls_ids[at[ok]] == cp_pairs[ok, 1], plain_count[at[ok]], 0)
  single = np.zeros(m, bool)
  single[cp_pairs[:, 0]] = True
  one_source = np.ones(m, bool)
  np.logical_and.at(one_source, cp_pairs[:, 0], size == 1)
  return int((~(single & (classes_per_pos == 1) & one_source)).sum())


# ---------------------------------------------------------------------------- public API


def recover_map(known_plain: ArrayLike, known_cipher: ArrayLike, *, nibbles: bool = False,
                masks: Sequence[int] | None = None, structure: str = "flat",
                block_size: int | None = None) -> RecoveredMap:
  """Recovers the value map of one key from K known (plain, cipher) pairs.

  Args:
    known_plain: [K, H, W, C] uint8 plain images (K >= 1).
    known_cipher: [K, H, W, C] uint8, their ciphertexts under the victim's key.
    nibbles: match 4-bit nibbles (LE, ELE) instead of bytes.
    masks: the XOR masks a position may carry, a group under XOR, e.g. (0,),
      (0, 255), (0, 15); None: any value (XOR-difference matching). Used by
      "flat", "pooled", "pixel", "fixed" and "ele"; "etc" always uses whole-block
      (0, 255) and "vit" no masks.
    structure: one of STRUCTURES (see the module docstring).
    block_size: B, for the block structures.

  Returns:
    A `RecoveredMap` (its source is a permutation; every choice left open by the
    pairs is made arbitrarily and counted in `ambiguous`).
  """
  plain, cipher = np.asarray(known_plain), np.asarray(known_cipher)
  if plain.ndim != 4 or plain.dtype != np.uint8 or len(plain) == 0:
    raise ValueError(f"known plaintexts must be a non-empty uint8 [K, H, W, C] batch, got "
                     f"{plain.dtype} {plain.shape}")
  if cipher.shape != plain.shape or cipher.dtype != np.uint8:
    raise ValueError(f"known ciphertexts must be uint8 {list(plain.shape)}, got {cipher.dtype} "
                     f"{list(cipher.shape)}")
  if structure not in STRUCTURES:
    raise ValueError(f"structure must be one of {STRUCTURES}, got {structure!r}")
  blocky = structure in ("pooled", "vit", "etc", "ele")
  if blocky and block_size is None:
    raise ValueError(f"structure {structure!r} needs a block_size")
  if structure in ("etc", "vit") and nibbles:
    raise ValueError(f"structure {structure!r} works on bytes, not nibbles")
  image_shape = tuple(int(s) for s in plain.shape[1:])
  vp = chosen_plaintext.image_values(plain, nibbles=nibbles)
  vc = chosen_plaintext.image_values(cipher, nibbles=nibbles)
  m = vc.shape[1]
  table = _xor_table(masks, 4 if nibbles else 8)
  complete = True
  blocks = _block_positions(image_shape, block_size, nibbles) if blocky else None
  if structure == "flat":
    pairing = evidence = _flat(vc, vp, table, np.zeros(m, np.int64))
  elif structure == "fixed":
    pairing = evidence = _flat(vc, vp, table, np.arange(m))
  elif structure == "pixel":
    byte = np.arange(m) % math.prod(image_shape)  # nibbles: low and high of byte t
    pairing = evidence = _flat(vc, vp, table, byte // image_shape[2])
  elif structure == "pooled":
    pairing = evidence = _pooled(vc, vp, table, blocks)
  elif structure == "ele":
    pairing = evidence = _ele(vc, vp, table, blocks)
  elif structure == "vit":
    pairing, complete = _vit(vc, vp, blocks)
    evidence = pairing
  else:
    pairing, evidence = _etc(vc, vp, blocks, block_size, image_shape[2])
  match, consistent = _pair(pairing.c.cls, pairing.c_unit, pairing.p.cls, pairing.p_unit)
  source = np.empty(m, np.int64)
  source[pairing.c.pos] = pairing.p.pos[match]
  mask = np.empty(m, np.uint8)
  mask[pairing.c.pos] = pairing.c.xor ^ pairing.p.xor[match]
  if not (np.sort(source) == np.arange(m)).all():  # inconsistent pairs: keep a permutation
    consistent = False
    source = np.argsort(np.argsort(source, kind="stable"), kind="stable")
  return RecoveredMap(source=source, mask=mask, image_shape=image_shape, nibbles=nibbles,
                      structure=structure, ambiguous=_ambiguous(evidence, m),
                      consistent=consistent, complete=complete, evidence=evidence.c)


def decrypt(recovered: RecoveredMap, ciphertexts: ArrayLike) -> np.ndarray:
  """Decrypts ciphertexts of the same key with a recovered map.

  Args:
    recovered: from `recover_map`.
    ciphertexts: [H, W, C] or [N, H, W, C] uint8.

  Returns:
    uint8 plain estimates, same shape.
  """
  t = chosen_plaintext.RecoveredTransform(
      source=recovered.source, mask=recovered.mask, image_shape=recovered.image_shape,
      nibbles=recovered.nibbles, consistent=recovered.consistent)
  return chosen_plaintext.invert(t, ciphertexts)


def certain(recovered: RecoveredMap, ciphertexts: ArrayLike) -> np.ndarray:
  """Whether every map consistent with the known pairs decrypts each ciphertext the same way.

  Needs no plaintext: within every class of interchangeable cipher positions the
  ciphertext's canonicalised values must agree.

  Args:
    recovered: from `recover_map`.
    ciphertexts: [N, H, W, C] uint8 of the recovered image shape.

  Returns:
    [N] bool.
  """
  cts = np.asarray(ciphertexts)
  if cts.ndim != 4 or tuple(cts.shape[1:]) != recovered.image_shape:
    raise ValueError(f"ciphertexts must be [N, {', '.join(map(str, recovered.image_shape))}], "
                     f"got {list(cts.shape)}")
  if not (recovered.complete and recovered.consistent):
    return np.zeros(len(cts), bool)
  ev = recovered.evidence
  sig = chosen_plaintext.image_values(cts, nibbles=recovered.nibbles)[:, ev.pos] ^ ev.xor
  order = np.argsort(ev.cls, kind="stable")
  cls = ev.cls[order]
  starts = np.r_[0, np.nonzero(np.diff(cls))[0] + 1]
  first = np.repeat(starts, np.diff(np.r_[starts, len(cls)]))
  s = sig[:, order]
  return (s == s[:, first]).all(axis=1)


def scheme_setup(scheme: str, options: dict[str, Any] | None = None, *,
                 structured: bool = True) -> dict[str, Any]:
  """recover_map arguments (nibbles, masks, structure, block_size) for a scheme.

  Args:
    scheme: one of SCHEMES.
    options: the scheme's `generate_key` options (block_size, transforms, ...).
    structured: use the scheme's structure; False: "flat" matching with the
      scheme's mask set only.
  """
  if scheme not in SCHEMES:
    reason = ("it is not invertible" if scheme == "huang2022" else
              "it is not a value permutation with masks")
    raise ValueError(f"the exact known-plaintext attack applies to {SCHEMES}, not {scheme!r}: "
                     f"{reason}")
  record = ciphers.get_scheme(scheme)
  opts = record.check_options(dict(options or {}))
  nibbles = scheme in chosen_plaintext.NIBBLE_SCHEMES
  block_size = opts.get("block_size")
  masks: tuple[int, ...] = (0, 15) if nibbles else (0, 255)
  structure = {"le": "pooled", "ele": "ele", "etc": "etc", "pe": "pixel", "vit": "vit",
               "blockwise": "pooled"}[scheme]
  if scheme == "vit":
    masks = (0,)
  if scheme == "blockwise":
    transforms = tuple(opts["transforms"])
    if "ffx" in transforms:
      raise ValueError("the exact known-plaintext attack covers blockwise 'shuffle' and 'flip', "
                       "not 'ffx' (its uint16 codes are not a permutation of bytes)")
    masks = (0, 255) if "flip" in transforms else (0,)
    if "shuffle" not in transforms:
      structure = "fixed"
  if not structured:
    structure = "flat"
  return {"nibbles": nibbles, "masks": masks, "structure": structure, "block_size": block_size}


def attack(known_plain: ArrayLike, known_cipher: ArrayLike, victim_ciphertexts: ArrayLike, *,
           scheme: str, options: dict[str, Any] | None = None, structured: bool = True
           ) -> tuple[np.ndarray, dict[str, Any]]:
  """Recovers the map from known pairs and decrypts the victims' ciphertexts.

  Args:
    known_plain: [K, H, W, C] uint8 plain images the attacker holds.
    known_cipher: [K, H, W, C] uint8, their ciphertexts under the victim's key.
    victim_ciphertexts: [N, H, W, C] uint8 ciphertexts under the same key.
    scheme: one of SCHEMES (shared key).
    options: the scheme's `generate_key` options (block_size, transforms, ...).
    structured: use what the scheme's structure allows (see `scheme_setup`).

  Returns:
    (recovered victims [N, H, W, C] uint8, info): info holds "structure",
    "pairs" (K), "ambiguous_positions", "consistent" and "certain" (a list: for
    each victim, whether every consistent map gives this decryption). No key
    material.
  """
  setup = scheme_setup(scheme, options, structured=structured)
  recovered = recover_map(known_plain, known_cipher, **setup)
  victims = np.asarray(victim_ciphertexts)
  out = decrypt(recovered, victims)
  info = {"structure": recovered.structure, "pairs": int(len(np.asarray(known_plain))),
          "ambiguous_positions": recovered.ambiguous, "consistent": recovered.consistent,
          "certain": [bool(c) for c in certain(recovered, victims)]}
  return out, info


def _sufficient(setup: dict[str, Any], plain: np.ndarray, cipher: np.ndarray,
                victims: np.ndarray, victim_cts: np.ndarray, criterion: str) -> bool:
  recovered = recover_map(plain, cipher, **setup)
  exact = bool((decrypt(recovered, victim_cts) == victims).all())
  return exact and (criterion == "exact" or bool(certain(recovered, victim_cts).all()))


def min_known_pairs(encrypt: Callable[[np.ndarray], ArrayLike], pool_plain: ArrayLike,
                    victims: ArrayLike, *, scheme: str, options: dict[str, Any] | None = None,
                    max_pairs: int = DEFAULT_MAX_PAIRS, structured: bool = True,
                    criterion: str = "certain", progress: bool = False) -> int | None:
  """The fewest known pairs (the first K of `pool_plain`) that decrypt every victim exactly.

  With criterion "certain" (the default), K suffices when every map consistent
  with the K pairs (in the scheme's structure) decrypts every victim the same
  way (`certain`: the attacker knows the result is right), and that decryption
  is the victim. More pairs only remove consistent maps, so this is monotone
  in K; it is searched by doubling K = 1, 2, 4, ... (then max_pairs) until it
  suffices, then by bisection between the last failure and the first success.
  ("vit" declares a victim uncertain while its in-block permutation stays
  ambiguous after colour refinement: conservative, possibly not monotone.)
  With criterion "exact", K suffices when the one map `recover_map` returns
  (ties broken arbitrarily) decrypts every victim exactly: possibly fewer
  pairs, by luck, and not monotone in K, so the same search returns the
  smallest sufficient K it visits, an upper bound on the smallest one.

  Args:
    encrypt: encrypts [K, H, W, C] uint8 under the victim's key.
    pool_plain: [M, H, W, C] uint8 known plaintexts, used in order.
    victims: [N, H, W, C] uint8 plain victim images.
    scheme: one of SCHEMES.
    options: the scheme's `generate_key` options.
    max_pairs: the largest K tried (at most len(pool_plain)).
    structured: as in `attack`.
    criterion: "certain" or "exact" (above).
    progress: show a progress bar over the tries.

  Returns:
    The smallest K found, or None when max_pairs pairs do not suffice.
  """
  if criterion not in ("certain", "exact"):
    raise ValueError(f"criterion must be 'certain' or 'exact', got {criterion!r}")
  setup = scheme_setup(scheme, options, structured=structured)
  pool = np.asarray(pool_plain)
  victims = np.asarray(victims)
  if max_pairs < 1:
    raise ValueError(f"max_pairs must be >= 1, got {max_pairs}")
  limit = min(max_pairs, len(pool))
  if limit < 1:
    raise ValueError("pool_plain holds no images")
  cipher = np.asarray(encrypt(pool[:limit]))
  victim_cts = np.asarray(encrypt(victims))
  bar = None
  if progress:
    from tqdm.auto import tqdm
    bar = tqdm(desc="pairs", unit="try")
  tried: dict[int, bool] = {}

  def ok(k: int) -> bool:
    if k not in tried:
      tried[k] = _sufficient(setup, pool[:k], cipher[:k], victims, victim_cts, criterion)
      if bar is not None:
        bar.update(1)
    return tried[k]

  low, k = 0, 1  # low: largest K known to fail
  while not ok(k):
    low = k
    if k >= limit:
      if bar is not None:
        bar.close()
      return None
    k = min(2 * k, limit)
  high = k
  while high - low > 1:
    mid = (low + high) // 2
    if ok(mid):
      high = mid
    else:
      low = mid
  if bar is not None:
    bar.close()
  return high


def min_chosen_plaintexts(scheme: str, image_shape: tuple[int, int, int],
                          options: dict[str, Any] | None = None) -> int:
  """Chosen plaintexts `chosen_plaintext.attack` needs: 1 + the digits of a position."""
  setup = scheme_setup(scheme, options)
  return chosen_plaintext.num_helper_images(tuple(image_shape), nibbles=setup["nibbles"])


class KnownImagesEstimate(NamedTuple):
  """How many known images recover a shared key, measured on a sample.

  Attributes:
    pairs: the fewest known (plain, cipher) pairs that decrypt every held-out
      sample image exactly (`min_known_pairs`), or None when the whole pool
      does not suffice.
    pool: the known images tried (pairs is "more than pool" when None).
    victims: the held-out sample images that had to be decrypted.
  """

  pairs: int | None
  pool: int
  victims: int


def known_images_to_recover(images: ArrayLike, *, scheme: str,
                            options: dict[str, Any] | None = None, max_pairs: int = 32,
                            victims: int = 8, seed: int = 0) -> KnownImagesEstimate:
  """Measures, on a sample of a dataset, how many of its images recover a shared key.

  The count depends on the images and the scheme's structure, not on the
  particular key, so it is measured under a fresh experiment key drawn from
  `seed` (never the data owner's): the first images of the sample are the
  attacker's known pool, the last `victims` must be decrypted exactly.

  Args:
    images: [M, H, W, C] uint8 plain images of the dataset (M >= 2).
    scheme: one of SCHEMES.
    options: the scheme's `generate_key` options.
    max_pairs: the largest pool tried.
    victims: held-out images (at most half the sample).
    seed: the experiment key's seed.

  Returns:
    A `KnownImagesEstimate`.

  Raises:
    ValueError: a scheme this attack does not cover, or fewer than 2 images.
  """
  import jax  # pylint: disable=g-import-not-at-top

  if scheme not in SCHEMES:
    raise ValueError(f"no exact known-plaintext attack for scheme {scheme!r}; "
                     f"it covers {SCHEMES}")
  images = np.asarray(images)
  if images.ndim != 4 or len(images) < 2:
    raise ValueError(f"images must be [M >= 2, H, W, C], got shape {images.shape}")
  held = max(1, min(victims, len(images) // 2))
  pool = images[:min(max_pairs, len(images) - held)]
  record = ciphers.get_scheme(scheme)
  opts = record.check_options(dict(options or {}))
  key = record.generate_key(jax.random.key(seed), image_shape=tuple(images.shape[1:]), **opts)
  encrypt = lambda x: np.asarray(record.encrypt(key, x))
  pairs = min_known_pairs(encrypt, pool, images[-held:], scheme=scheme, options=opts,
                          max_pairs=len(pool))
  return KnownImagesEstimate(pairs=pairs, pool=len(pool), victims=held)
