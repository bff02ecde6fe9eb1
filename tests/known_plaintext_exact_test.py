"""The exact known-plaintext attack: planted keys it must recover, the minimum pair count
against a brute-force enumeration of every consistent map on tiny images, ambiguity it
must report, and per-image keys it must not claim to break."""

import itertools
import math

import jax
import numpy as np
import pytest

from lie_jax import ciphers
from lie_jax import data
from lie_jax.attacks import chosen_plaintext as cpa
from lie_jax.attacks import known_plaintext_exact as kpe
from lie_jax.ciphers import blockwise
from lie_jax.ciphers import etc
from lie_jax.ciphers import le
from lie_jax.ciphers import pe
from lie_jax.ciphers import vit

CASES = [
    ("le", {"block_size": 4}),
    ("ele", {"block_size": 4}),
    ("etc", {"block_size": 4}),
    ("pe", {}),
    ("vit", {"block_size": 4}),
    ("blockwise", {"block_size": 4, "transforms": ("shuffle",)}),
    ("blockwise", {"block_size": 4, "transforms": ("shuffle", "flip")}),
    ("blockwise", {"block_size": 4, "transforms": ("flip",)}),
]
CASE_IDS = [f"{s}-{'+'.join(o.get('transforms', ()))}" for s, o in CASES]


def _encryptor(scheme, opts, shape, seed=3):
  record = ciphers.get_scheme(scheme)
  key = record.generate_key(jax.random.key(seed), image_shape=shape, **opts)
  return lambda x: np.asarray(record.encrypt(key, x))


@pytest.fixture(scope="module")
def xrays():
  splits = data.load_dataset("pneumoniamnist")
  return splits.train.images[:64], splits.test.images[:16]


# ---------------------------------------------------------------- planted keys


@pytest.mark.parametrize("shape", [(8, 8, 1), (8, 8, 3)])
@pytest.mark.parametrize("scheme,opts", CASES, ids=CASE_IDS)
def test_planted_key_decrypts_held_out_victims(scheme, opts, shape):
  enc = _encryptor(scheme, opts, shape)
  rng = np.random.default_rng(shape[2])
  known = rng.integers(0, 256, (8,) + shape, dtype=np.uint8)
  victims = rng.integers(0, 256, (5,) + shape, dtype=np.uint8)
  out, info = kpe.attack(known, enc(known), enc(victims), scheme=scheme, options=opts)
  assert out.dtype == np.uint8 and out.shape == victims.shape
  np.testing.assert_array_equal(out, victims)
  assert info["certain"] == [True] * 5 and info["consistent"]
  assert info["ambiguous_positions"] == 0


@pytest.mark.parametrize("scheme,opts", CASES, ids=CASE_IDS)
def test_planted_key_on_xray_crops(scheme, opts, xrays):
  train, test = xrays
  crop = lambda x: x[:, 4:20, 8:24]  # 16x16x1, block 4
  enc = _encryptor(scheme, opts, (16, 16, 1), seed=11)
  known, victims = crop(train)[:32], crop(test)
  out, info = kpe.attack(known, enc(known), enc(victims), scheme=scheme, options=opts)
  np.testing.assert_array_equal(out, victims)
  assert all(info["certain"])
  k = kpe.min_known_pairs(enc, crop(train), victims, scheme=scheme, options=opts)
  assert k is not None and 1 <= k <= 32
  # One pair fewer than the minimum leaves some victim undetermined.
  if k > 1:
    out, info = kpe.attack(known[:k - 1], enc(known[:k - 1]), enc(victims), scheme=scheme,
                           options=opts)
    assert not all(info["certain"])


@pytest.mark.parametrize("scheme,opts", CASES, ids=CASE_IDS)
def test_one_pair_of_flat_images_reports_ambiguity(scheme, opts):
  shape = (8, 8, 3)
  enc = _encryptor(scheme, opts, shape)
  rng = np.random.default_rng(5)
  known = np.full((1,) + shape, 60, np.uint8)
  known[0, :2, :2] = 200  # a few distinct values, the rest repeated
  victims = rng.integers(0, 256, (3,) + shape, dtype=np.uint8)
  out, info = kpe.attack(known, enc(known), enc(victims), scheme=scheme, options=opts)
  if opts.get("transforms") == ("flip",):  # nothing moves: one pair gives every mask
    assert info["ambiguous_positions"] == 0 and all(info["certain"])
    return
  assert info["ambiguous_positions"] > 0
  assert not any(info["certain"])
  assert not (out == victims).all()


def test_recover_map_pure_permutation_by_hand():
  plain = np.array([[[[1], [2]], [[3], [4]]], [[[5], [6]], [[7], [9]]]], np.uint8)
  perm = np.array([2, 0, 3, 1])  # cipher position p holds plain position perm[p]
  cipher = plain.reshape(2, 4)[:, perm].reshape(plain.shape)
  got = kpe.recover_map(plain, cipher, masks=(0,))
  np.testing.assert_array_equal(got.source, perm)
  np.testing.assert_array_equal(got.mask, 0)
  assert got.ambiguous == 0
  # Negated values match only when the masks allow it.
  neg = cipher ^ np.uint8(255)
  assert kpe.recover_map(plain, neg, masks=(0, 255)).ambiguous == 0
  np.testing.assert_array_equal(kpe.recover_map(plain, neg, masks=(0, 255)).source, perm)
  assert not kpe.recover_map(plain, neg, masks=(0,)).consistent


def test_general_xor_masks_recover_arbitrary_masks():
  rng = np.random.default_rng(0)
  plain = rng.integers(0, 256, (3, 4, 4, 3), dtype=np.uint8)
  perm = rng.permutation(48)
  mask = rng.integers(0, 256, 48, dtype=np.uint8)
  cipher = (plain.reshape(3, -1)[:, perm] ^ mask).reshape(plain.shape)
  got = kpe.recover_map(plain, cipher, masks=None)
  np.testing.assert_array_equal(got.source, perm)
  np.testing.assert_array_equal(got.mask, mask)
  victim = rng.integers(0, 256, (2, 4, 4, 3), dtype=np.uint8)
  ct = (victim.reshape(2, -1)[:, perm] ^ mask).reshape(victim.shape)
  np.testing.assert_array_equal(kpe.decrypt(got, ct), victim)


# ---------------------------------------------------------------- brute force


def _brute_min_pairs(src, mask, true, pool, victims, max_pairs):
  """Smallest K such that every map (src[i], mask[i]) consistent with the first K pairs
  decrypts the victims identically. Maps: cipher[p] = plain[src[p]] ^ mask[p] (values)."""
  def apply(values):  # [n, m] -> [M, n, m]
    return values[:, src].transpose(1, 0, 2) ^ mask[:, None, :]

  cts = apply(pool)[true]
  vcts = apply(victims)[true]
  cand = apply(pool)  # [M, K, m]
  for k in range(1, max_pairs + 1):
    ok = (cand[:, :k] == cts[None, :k]).all(axis=(1, 2))
    dec = np.zeros((int(ok.sum()),) + vcts.shape, np.uint8)
    rows = np.arange(len(dec))[:, None]
    for v in range(len(vcts)):
      dec[rows, v, src[ok]] = vcts[v][None, :] ^ mask[ok]
    if (dec == dec[:1]).all():
      return k
  return None


def _to_values(images, nibbles):
  return cpa.image_values(images, nibbles=nibbles).astype(np.uint8)


def _flat_maps(m, group):
  perms = np.array(list(itertools.permutations(range(m))))
  masks = np.array(list(itertools.product(group, repeat=m)), np.uint8)
  src = np.repeat(perms, len(masks), axis=0)
  return src, np.tile(masks, (len(perms), 1))


def _compare(src, mask, true, pool_img, vic_img, *, scheme, opts, structured, nibbles,
             equal=True):
  """min_known_pairs against the brute force, the victim's key being map `true`."""
  pool, vics = _to_values(pool_img, nibbles), _to_values(vic_img, nibbles)
  brute = _brute_min_pairs(src, mask, true, pool, vics, len(pool))
  enc = lambda x: _repack(_to_values(x, nibbles)[:, src[true]] ^ mask[true], x.shape, nibbles)
  got = kpe.min_known_pairs(enc, pool_img, vic_img, scheme=scheme, options=opts,
                            structured=structured, max_pairs=len(pool))
  if equal:
    assert got == brute, (true, got, brute)
  else:  # the attack's model relaxes the scheme's: it may need more pairs, never fewer
    assert brute is not None and (got is None or got >= brute), (true, got, brute)
  return brute


def _repack(values, shape, nibbles):
  if nibbles:
    n = values.shape[1] // 2
    values = values[:, :n] | (values[:, n:] << 4)
  return values.astype(np.uint8).reshape(shape)


def _few_levels(rng, n, shape, levels):
  return np.asarray(levels, np.uint8)[rng.integers(0, len(levels), (n,) + shape)]


@pytest.mark.parametrize("scheme,group,shape,levels,nibbles", [
    ("vit", (0,), (2, 3, 1), (0, 1, 2), False),
    ("pe", (0, 255), (2, 2, 1), (0, 255, 1), False),
    ("le", (0, 15), (2, 1, 1), (0x00, 0xF0, 0x1F, 0x11), True),
])
def test_min_pairs_flat_matches_brute_force(scheme, group, shape, levels, nibbles):
  m = math.prod(shape) * (2 if nibbles else 1)
  src, mask = _flat_maps(m, group)
  seen = set()
  for seed in range(12):
    rng = np.random.default_rng(seed)
    pool, vic = _few_levels(rng, 8, shape, levels), _few_levels(rng, 3, shape, levels)
    seen.add(_compare(src, mask, rng.integers(len(src)), pool, vic, scheme=scheme, opts={},
                      structured=False, nibbles=nibbles))
  assert len(seen - {None}) >= 2  # the cases are not all decided by the first pair


def _library_maps(scheme, keys, shape, nibbles):
  """(source, mask) of every key, read by the chosen-plaintext attack (not this module)."""
  record = ciphers.get_scheme(scheme)
  helpers = cpa.helper_images(shape, nibbles=nibbles)
  maps = [cpa.recover_transform(np.asarray(record.encrypt(k, helpers)), nibbles=nibbles)
          for k in keys]
  assert all(t.consistent for t in maps)
  return np.stack([t.source for t in maps]), np.stack([t.mask for t in maps])


def _etc_keys(shape, b):
  nb = (shape[0] // b) * (shape[1] // b)
  geometry = ciphers.KeyGeometry(block_size=b, channels=shape[2], image_shape=shape)
  per_block = list(itertools.product(range(4), range(3), (False, True)))
  for perm in itertools.permutations(range(nb)):
    for choice in itertools.product(per_block, repeat=nb):
      rot, flip, neg = (np.array(v) for v in zip(*choice))
      yield etc.EtCKey(block_perm=np.array(perm, np.int32), rotation=rot.astype(np.int32),
                       flip=flip.astype(np.int32), negate=neg.astype(bool),
                       color=np.zeros(nb, np.int32), geometry=geometry)


def _vit_keys(shape, b):
  d, nb = b * b * shape[2], (shape[0] // b) * (shape[1] // b)
  for pix in itertools.permutations(range(d)):
    for blk in itertools.permutations(range(nb)):
      yield vit.key_from_permutations(np.array(pix), np.array(blk), block_size=b,
                                      image_shape=shape)


def _pe_keys(shape):
  h, w, c = shape
  for neg in itertools.product((False, True), repeat=h * w * c):
    for col in itertools.product(range(6), repeat=h * w):
      yield pe.key_from_arrays(np.array(neg).reshape(shape), np.array(col, np.uint8).reshape(h, w))


def _blockwise_keys(b, c):
  d = b * b * c
  for perm in itertools.permutations(range(d)):
    for flips in itertools.combinations(range(d), d // 2):
      fm = np.zeros(d, bool)
      fm[list(flips)] = True
      yield blockwise.key_from_arrays(block_shape=(b, b, c), permutation=np.array(perm),
                                      flip_mask=fm)


@pytest.mark.parametrize("scheme,opts,shape,levels", [
    ("vit", {"block_size": 2}, (4, 4, 1), (0, 1, 2)),
    ("etc", {"block_size": 2}, (2, 4, 1), (0, 255, 1, 254)),
    ("pe", {}, (1, 2, 3), (0, 255, 1)),
])
def test_min_pairs_structured_matches_brute_force_over_keys(scheme, opts, shape, levels):
  keys = {"vit": lambda: _vit_keys(shape, 2), "etc": lambda: _etc_keys(shape, 2),
          "pe": lambda: _pe_keys(shape)}[scheme]()
  src, mask = _library_maps(scheme, keys, shape, nibbles=False)
  seen = set()
  for seed in range(8):
    rng = np.random.default_rng(seed)
    pool, vic = _few_levels(rng, 10, shape, levels), _few_levels(rng, 3, shape, levels)
    seen.add(_compare(src, mask, rng.integers(len(src)), pool, vic, scheme=scheme, opts=opts,
                      structured=True, nibbles=False))
  assert len(seen - {None}) >= 2


def _pooled_maps(shape, b, group, nibbles):
  """Every shared in-block permutation with any per-position mask in `group`, as maps."""
  blocks = ciphers.block_positions(shape, b).astype(np.int64)
  if nibbles:
    blocks = np.concatenate([blocks, blocks + math.prod(shape)], axis=1)
  nb, e = blocks.shape
  perms, masks = _flat_maps(e, group)
  src = np.empty((len(perms), nb * e), np.int64)
  msk = np.empty((len(perms), nb * e), np.uint8)
  src[:, blocks.reshape(-1)] = blocks[:, perms].transpose(1, 0, 2).reshape(len(perms), -1)
  msk[:, blocks.reshape(-1)] = np.tile(masks, (1, nb))
  return src, msk


@pytest.mark.parametrize("scheme,opts,shape,b,group,nibbles,levels", [
    ("le", {"block_size": 1}, (2, 2, 3), 1, (0, 15), True, (0x00, 0xF1, 0x1F)),
    ("blockwise", {"block_size": 2, "transforms": ("shuffle", "flip")}, (2, 4, 1), 2, (0, 255),
     False, (0, 255, 1)),
])
def test_min_pairs_pooled_matches_brute_force(scheme, opts, shape, b, group, nibbles, levels):
  src, mask = _pooled_maps(shape, b, group, nibbles)  # the attack's (relaxed) model, exactly
  record_keys = {"le": lambda: (le.key_from_permutation(np.array(p), block_shape=(1, 1, 3))
                                for p in itertools.permutations(range(6))),
                 "blockwise": lambda: _blockwise_keys(2, 1)}[scheme]()
  lsrc, lmask = _library_maps(scheme, record_keys, shape, nibbles)
  seen = set()
  for seed in range(8):
    rng = np.random.default_rng(seed)
    pool, vic = _few_levels(rng, 10, shape, levels), _few_levels(rng, 3, shape, levels)
    true = rng.integers(len(lsrc))  # a real key, and the same map in the relaxed model
    relaxed = np.nonzero((src == lsrc[true]).all(1) & (mask == lmask[true]).all(1))[0]
    assert len(relaxed) == 1
    seen.add(_compare(src, mask, relaxed[0], pool, vic, scheme=scheme, opts=opts,
                      structured=True, nibbles=nibbles))
    # The real key space is smaller: it may need fewer pairs, never more.
    _compare(lsrc, lmask, true, pool, vic, scheme=scheme, opts=opts, structured=True,
             nibbles=nibbles, equal=False)
  assert len(seen - {None}) >= 2


# ---------------------------------------------------------------- search, chosen, per-image


def test_min_known_pairs_is_the_first_sufficient_count(xrays):
  train, test = (x[:, 8:24, 8:24] for x in xrays)
  opts = {"block_size": 4}
  enc = _encryptor("ele", opts, (16, 16, 1))
  k = kpe.min_known_pairs(enc, train, test[:4], scheme="ele", options=opts)
  assert k is not None and k > 1
  for pairs, expect in ((k - 1, False), (k, True)):
    out, info = kpe.attack(train[:pairs], enc(train[:pairs]), enc(test[:4]), scheme="ele",
                           options=opts)
    assert all(info["certain"]) == expect
  assert kpe.min_known_pairs(enc, train, test[:4], scheme="ele", options=opts,
                             max_pairs=k - 1) is None


def test_min_chosen_plaintexts_is_what_the_chosen_plaintext_attack_uses():
  assert kpe.min_chosen_plaintexts("vit", (28, 28, 1), {"block_size": 4}) == 3
  assert kpe.min_chosen_plaintexts("le", (28, 28, 1), {"block_size": 4}) == 4
  assert kpe.min_chosen_plaintexts("etc", (224, 224, 3)) == 4
  for shape in [(8, 8, 1), (28, 28, 3)]:
    for nib in (False, True):
      assert cpa.num_helper_images(shape, nibbles=nib) == len(cpa.helper_images(shape,
                                                                                nibbles=nib))


def test_per_image_keys_are_refused_or_uncertain():
  assert "own key" in kpe.PER_IMAGE_REASON
  shape = (8, 8, 1)
  record = ciphers.get_scheme("vit")
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, (6,) + shape, dtype=np.uint8)
  ct = np.asarray(record.encrypt_per_image(jax.random.key(0), x, block_size=4))
  out, info = kpe.attack(x[:4], ct[:4], ct[4:], scheme="vit", options={"block_size": 4})
  assert not info["consistent"] and not any(info["certain"])
  assert not (out == x[4:]).all()


def test_bad_input_is_refused():
  x = np.zeros((1, 8, 8, 1), np.uint8)
  with pytest.raises(ValueError, match="not invertible"):
    kpe.attack(x, x, x, scheme="huang2022")
  with pytest.raises(ValueError, match="ffx"):
    kpe.attack(x, x, x, scheme="blockwise", options={"transforms": ("ffx",)})
  with pytest.raises(ValueError, match="closed under XOR"):
    kpe.recover_map(x, x, masks=(0, 1, 2))
  with pytest.raises(ValueError, match="known ciphertexts"):
    kpe.recover_map(x, x[:, :4])


def test_known_images_to_recover_on_a_dataset_sample():
  rng = np.random.default_rng(3)
  noise = rng.integers(0, 256, (12, 8, 8, 1), dtype=np.uint8)
  # Random images: one pair pins every position of a pixel-wise cipher.
  est = kpe.known_images_to_recover(noise, scheme="pe", victims=4)
  assert est == kpe.KnownImagesEstimate(pairs=1, pool=8, victims=4)
  # Identical flat images carry no information on where a value comes from: never enough.
  flat = np.full((12, 8, 8, 1), 7, np.uint8)
  flat[-4:] = noise[-4:]  # the victims differ, so they cannot be decrypted without the map
  assert kpe.known_images_to_recover(flat, scheme="vit", options={"block_size": 4},
                                     victims=4).pairs is None
  with pytest.raises(ValueError, match="no exact known-plaintext attack"):
    kpe.known_images_to_recover(noise, scheme="morph")
