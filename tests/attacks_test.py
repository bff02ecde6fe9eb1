"""The security suite: metrics against independent oracles, each attack on what it
breaks and on what it must not break, the registry and the command line."""

import json
import subprocess
import sys

import jax
import numpy as np
import pytest
from skimage.metrics import structural_similarity

from lie_jax import attacks
from lie_jax import ciphers
from lie_jax import data
from lie_jax.attacks import chosen_plaintext as cpa
from lie_jax.attacks import feature_reconstruction as fr
from lie_jax.attacks import inverse_network as itn
from lie_jax.attacks import jigsaw
from lie_jax.attacks import metrics

SHAPE = (28, 28, 1)


@pytest.fixture(scope="module")
def xrays():
  splits = data.load_dataset("pneumoniamnist")
  return splits.test.images[:16], splits.train.images[:256]


def _random_pair(shape, seed, mix=0.6):
  rng = np.random.default_rng(seed)
  a = rng.integers(0, 256, shape, dtype=np.uint8)
  noise = rng.integers(0, 256, shape, dtype=np.uint8)
  return a, (mix * a + (1 - mix) * noise).astype(np.uint8)


def _smooth_images(n, size, channels=1, seed=0):
  """Smooth random images: sums of a few low-frequency waves, 0..255."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:size, 0:size] / size
  out = np.zeros((n, size, size, channels))
  for i in range(n):
    for c in range(channels):
      for _ in range(3):
        fy, fx, ph = rng.uniform(0.3, 1.5), rng.uniform(0.3, 1.5), rng.uniform(0, 6.3)
        out[i, :, :, c] += np.sin(2 * np.pi * (fy * yy + fx * xx) + ph)
  out -= out.min(axis=(1, 2, 3), keepdims=True)
  out /= out.max(axis=(1, 2, 3), keepdims=True)
  return np.round(20 + 215 * out).astype(np.uint8)


# ---------------------------------------------------------------- metrics


@pytest.mark.parametrize("shape", [(3, 20, 24, 1), (2, 16, 16, 3), (1, 28, 28, 1)])
@pytest.mark.parametrize("mix", [0.2, 0.8])
def test_ssim_matches_scikit_image(shape, mix):
  a, b = _random_pair(shape, seed=shape[1], mix=mix)
  ours = np.asarray(metrics.ssim(a, b))
  ref = [structural_similarity(a[i], b[i], gaussian_weights=True, sigma=1.5,
                               use_sample_covariance=False, data_range=255, channel_axis=-1)
         for i in range(shape[0])]
  np.testing.assert_allclose(ours, ref, atol=2e-5)
  # One image in, one score out; float input on the same scale gives the same.
  np.testing.assert_allclose(float(metrics.ssim(a[0].astype(np.float32), b[0])), ref[0],
                             atol=2e-5)


def test_ssim_errors():
  with pytest.raises(ValueError, match="same shape"):
    metrics.ssim(np.zeros((16, 16, 1)), np.zeros((16, 17, 1)))
  with pytest.raises(ValueError, match="at least 11x11"):
    metrics.ssim(np.zeros((8, 8, 1)), np.zeros((8, 8, 1)))


def test_psnr_matches_numpy_formula():
  a, b = _random_pair((4, 12, 10, 3), seed=3)
  mse = ((a.astype(np.float64) - b) ** 2).reshape(4, -1).mean(1)
  np.testing.assert_allclose(np.asarray(metrics.psnr(a, b)), 10 * np.log10(255.0 ** 2 / mse),
                             rtol=1e-5)
  assert np.isinf(float(metrics.psnr(a[0], a[0])))


# ------------------------------------------------------- chosen plaintext


@pytest.mark.parametrize("scheme,shape", [("le", SHAPE), ("le", (16, 16, 3)), ("pe", SHAPE),
                                          ("pe", (16, 16, 3)), ("vit", SHAPE),
                                          ("vit", (16, 16, 3))])
def test_chosen_plaintext_recovers_the_key(scheme, shape):
  module = ciphers.get_scheme(scheme)
  opts = {} if scheme == "pe" else {"block_size": 4}
  key = module.generate_key(jax.random.key(7), image_shape=shape, **opts)
  x = np.random.default_rng(0).integers(0, 256, (5,) + shape, dtype=np.uint8)
  recovered, stolen = cpa.attack(lambda h: module.encrypt(key, h), module.encrypt(key, x),
                                 scheme=scheme, block_size=4)
  assert len(cpa.helper_images(shape, nibbles=scheme == "le")) <= 4
  np.testing.assert_array_equal(recovered, x)
  assert type(stolen) is type(key)
  for field in {"le": ["perm"], "pe": ["negate", "color"],
                "vit": ["pixel_perm", "block_perm"]}[scheme]:
    np.testing.assert_array_equal(np.asarray(getattr(stolen, field)),
                                  np.asarray(getattr(key, field)))


@pytest.mark.parametrize("scheme,opts", [("ele", {"block_size": 4}), ("etc", {"block_size": 4}),
                                         ("blockwise", {"block_size": 4,
                                                        "transforms": ("shuffle", "flip")})])
def test_chosen_plaintext_map_decrypts_other_shared_key_schemes(scheme, opts):
  module = ciphers.get_scheme(scheme)
  key = module.generate_key(jax.random.key(1), image_shape=(16, 16, 3), **opts)
  x = np.random.default_rng(1).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
  recovered, stolen = cpa.attack(lambda h: module.encrypt(key, h), module.encrypt(key, x),
                                 scheme=scheme)
  assert stolen.consistent
  np.testing.assert_array_equal(recovered, x)


@pytest.mark.parametrize("scheme", ["le", "pe", "vit"])
def test_chosen_plaintext_recovers_real_images_exactly(xrays, scheme):
  result = attacks.run_attack("chosen_plaintext", scheme, xrays[0], key=jax.random.key(3))
  np.testing.assert_array_equal(result.recovered, xrays[0])
  assert result.ssim_mean == pytest.approx(1.0, abs=1e-6)
  assert result.exact_fraction == 1.0 and result.breaks
  assert result.cipher_ssim_mean < 0.3


@pytest.mark.parametrize("scheme", ["le", "pe", "vit"])
def test_chosen_plaintext_fails_against_per_image_keys(xrays, scheme):
  result = attacks.run_attack("chosen_plaintext", scheme, xrays[0], key=jax.random.key(3),
                              per_image_keys=True)
  assert result.exact_fraction == 0.0
  assert result.ssim_mean < 0.3 and not result.breaks


# ------------------------------------------------- feature reconstruction


def test_fr_basic_inverts_pe_on_dark_images():
  x = np.random.default_rng(0).integers(0, 128, (3, 12, 12, 1), dtype=np.uint8)
  y = ciphers.get_scheme("pe").encrypt_per_image(jax.random.key(0), x)
  assert (np.asarray(y) != x).any()
  np.testing.assert_array_equal(np.asarray(fr.basic(y)), x)


def test_fr_advanced_follows_smooth_images_through_mid_grey():
  x = _smooth_images(4, 24)  # spans 20..235: the fold alone gets half of it wrong
  y = ciphers.get_scheme("pe").encrypt_per_image(jax.random.key(0), x)
  decoded = np.asarray(fr.advanced(y))
  # Exact up to the global polarity the first pixel's fold chose.
  best = np.maximum(metrics.ssim(decoded, x), metrics.ssim(255 - decoded, x))
  assert best.min() > 0.99
  assert float(metrics.ssim(fr.basic(y), x).mean()) < 0.6


def test_fr_advanced_candidates_cover_colour_orders_and_flips():
  orders, flips = fr.candidates(3)
  assert len({(tuple(o), tuple(f)) for o, f in zip(orders, flips)}) == 48
  # Colour images whose channels move together (as natural colours do).
  g = _smooth_images(3, 16, seed=4).astype(np.float64)
  x = np.concatenate([g, 0.9 * g + 10, 0.8 * g + 30], axis=-1).astype(np.uint8)
  y = ciphers.get_scheme("pe").encrypt_per_image(jax.random.key(2), x)
  decoded = np.asarray(fr.advanced(y))
  # Exact up to one global channel order and flip pattern (the first pixel's choice).
  best = np.max([np.asarray(metrics.ssim(np.where(f, 255 - decoded, decoded)[..., o], x))
                 for o, f in zip(orders, flips)], axis=0)
  assert best.min() > 0.98
  assert float(metrics.ssim(fr.basic(y), x).mean()) < 0.5


def test_fr_advanced_beats_the_floor_on_xrays_with_per_image_pe(xrays):
  test, train = xrays
  result = attacks.run_attack("fr_advanced", "pe", test, key=jax.random.key(0),
                              per_image_keys=True, train_images=train)
  assert result.ssim_mean > result.cipher_ssim_mean + 0.2


# --------------------------------------------------------- inverse network


def test_inverse_network_shapes_and_family_check():
  from flax import nnx
  net = itn.InverseNetwork(family="pixel", image_shape=(8, 8, 3), rngs=nnx.Rngs(0))
  assert net(np.zeros((2, 8, 8, 3), np.uint8)).shape == (2, 8, 8, 3)
  bits = np.asarray(itn.bit_planes(np.array([[[[5]]]], np.uint8)))
  np.testing.assert_array_equal(bits.reshape(-1), [1, -1, 1, -1, -1, -1, -1, -1])
  with pytest.raises(ValueError, match="family"):
    itn.InverseNetwork(family="pixels", image_shape=(8, 8, 1), rngs=nnx.Rngs(0))


def test_inverse_network_beats_the_floor_on_le(xrays):
  test, train = xrays
  result = attacks.run_attack("inverse_network", "le", test, key=jax.random.key(0),
                              train_images=train, steps=150)
  assert result.ssim_mean > result.cipher_ssim_mean + 0.4


# ------------------------------------------------ known plaintext, morph


@pytest.mark.parametrize("copies,pairs", [(4, 49), (16, 4)])
def test_known_plaintext_linear_decrypts_morph_exactly(xrays, copies, pairs):
  # copies c: each image gives c slices, so ceil(m / c) = ceil(784 / c^2) pairs suffice.
  test, train = xrays
  result = attacks.run_attack("known_plaintext_linear", "morph", test, key=jax.random.key(2),
                              train_images=train[:pairs], options={"copies": copies})
  np.testing.assert_array_equal(result.recovered, test)
  assert result.ssim_mean == pytest.approx(1.0, abs=1e-6) and result.psnr_mean == 100.0
  assert result.exact_fraction == 1.0 and result.breaks
  # The float ciphertexts are shown and scored as images (cipher_view): near-zero SSIM.
  assert result.encrypted.shape == test.shape and result.encrypted.dtype == np.uint8
  assert abs(result.cipher_ssim_mean) < 0.1
  assert result.key_space_bits == 64.0 and result.nominal_key_space_bits == float("inf")


def test_known_plaintext_linear_recovers_the_dense_matrix(xrays):
  test = xrays[0]
  train = data.load_dataset("pneumoniamnist").train.images[:800]  # copies=1: 784 pairs needed
  key = ciphers.morph.generate_key(jax.random.key(4), image_shape=SHAPE)
  recovered, core = attacks.known_plaintext.attack(
      train, ciphers.morph.encrypt(key, train), ciphers.morph.encrypt(key, test),
      image_shape=SHAPE)
  np.testing.assert_allclose(core, np.asarray(key.core), atol=1e-3)
  np.testing.assert_array_equal(recovered, test)


def test_known_plaintext_linear_refuses_too_few_or_degenerate_pairs(xrays):
  test, train = xrays
  with pytest.raises(ValueError, match="too few known plaintexts.*at least 196"):
    attacks.run_attack("known_plaintext_linear", "morph", test[:2], key=jax.random.key(0),
                       train_images=train[:48], options={"copies": 4})
  same = np.repeat(train[:1], 60, axis=0)  # 240 slices, but all from one image: rank <= 4
  with pytest.raises(ValueError, match="degenerate"):
    attacks.run_attack("known_plaintext_linear", "morph", test[:2], key=jax.random.key(0),
                       train_images=same, options={"copies": 4})
  with pytest.raises(ValueError, match="train_images"):
    attacks.run_attack("known_plaintext_linear", "morph", test[:2], key=jax.random.key(0))
  with pytest.raises(ValueError, match="per-image keys"):
    attacks.run_attack("known_plaintext_linear", "morph", test[:2], key=jax.random.key(0),
                       train_images=train, per_image_keys=True)


@pytest.mark.parametrize("scheme", ["le", "pe", "huang2022", "etc"])
def test_known_plaintext_linear_applies_to_morph_only(xrays, scheme):
  with pytest.raises(ValueError, match="does not apply.*morph"):
    attacks.run_attack("known_plaintext_linear", scheme, xrays[0][:2], key=jax.random.key(0),
                       train_images=xrays[1])


def test_markdown_table_shows_an_infinite_key_space():
  row = {"scheme": "morph", "per_image_keys": False, "attack": "known_plaintext_linear",
         "ssim_mean": 1.0, "psnr_mean": 100.0, "placement_accuracy": None,
         "exact_fraction": 1.0, "cipher_ssim_mean": 0.0, "cipher_psnr_mean": 5.0,
         "prior_ssim_mean": 0.6, "key_space_bits": 64.0, "breaks": True}
  for nominal in (float("inf"), None):  # None: strict JSON's null
    assert "| 64 (∞) | **yes** |" in attacks.report.markdown_table(
        [{**row, "nominal_key_space_bits": nominal}])


# ------------------------------------------------------------------ jigsaw


def test_dissimilarities_match_a_loop():
  pieces = np.random.default_rng(0).normal(size=(5, 3, 3, 2))
  right, below = jigsaw.dissimilarities(pieces)
  for i in range(5):
    for j in range(5):
      if i == j:
        assert np.isinf(right[i, j]) and np.isinf(below[i, j])
        continue
      a, b = pieces[i], pieces[j]
      r = ((2 * a[:, 2] - a[:, 1] - b[:, 0]) ** 2).sum() + (
          (2 * b[:, 0] - b[:, 1] - a[:, 2]) ** 2).sum()
      d = ((2 * a[2] - a[1] - b[0]) ** 2).sum() + ((2 * b[0] - b[1] - a[2]) ** 2).sum()
      assert right[i, j] == pytest.approx(r) and below[i, j] == pytest.approx(d)


def test_jigsaw_solves_block_scrambling_of_smooth_images():
  x = _smooth_images(4, 32)
  shape = x.shape[1:]
  scramble = ciphers.vit.generate_key(jax.random.key(5), image_shape=shape, block_size=4)
  scramble_only = ciphers.vit.key_from_permutations(
      np.arange(16), np.asarray(scramble.block_perm), block_size=4, image_shape=shape)
  y = np.asarray(ciphers.vit.encrypt(scramble_only, x))
  solved = jigsaw.solve(y, block_size=4)
  assert jigsaw.placement_accuracy(y, x, block_size=4).mean() < 0.2
  assert jigsaw.placement_accuracy(solved, x, block_size=4).mean() > 0.8
  # The full ViT cipher also shuffles pixels inside blocks: edges no longer match.
  y_full = np.asarray(ciphers.vit.encrypt(scramble, x))
  assert jigsaw.placement_accuracy(jigsaw.solve(y_full, block_size=4), x,
                                   block_size=4).mean() < 0.2


def test_the_suite_jigsaw_breaks_block_scrambling_alone():
  """The scheme option for block scrambling alone (ViT without pixel shuffling)."""
  x = _smooth_images(4, 32)
  r = attacks.run_attack("jigsaw", "vit", x, key=jax.random.key(5),
                         options={"block_size": 4, "pixel_shuffling": False})
  assert r.placement_accuracy > 0.8 and r.neighbour_comparison > 0.8 and r.breaks
  assert r.details["transforms"] == ["shuffle"]


# ------------------------------------------------------------ the registry


def test_registry_errors(xrays):
  x = xrays[0][:2]
  with pytest.raises(ValueError, match="unknown attack"):
    attacks.run_attack("nope", "le", x, key=jax.random.key(0))
  with pytest.raises(ValueError, match="unknown scheme"):
    attacks.run_attack("jigsaw", "nope", x, key=jax.random.key(0))
  with pytest.raises(ValueError, match="does not apply"):
    attacks.run_attack("fr_basic", "le", x, key=jax.random.key(0))
  with pytest.raises(ValueError, match="does not apply"):
    attacks.run_attack("chosen_plaintext", "morph", x, key=jax.random.key(0))
  with pytest.raises(ValueError, match="train_images"):
    attacks.run_attack("inverse_network", "le", x, key=jax.random.key(0))
  with pytest.raises(ValueError, match="ffx"):
    attacks.run_attack("chosen_plaintext", "blockwise", x, key=jax.random.key(0),
                       options={"transforms": ("ffx",)})
  assert attacks.applicable_attacks("morph") == ["known_plaintext_linear", "linkage"]


def test_result_summary_is_json_without_key_material(xrays):
  result = attacks.run_attack("jigsaw", "etc", xrays[0][:3], key=jax.random.key(0))
  summary = json.loads(json.dumps(result.summary()))
  assert 0.0 <= summary["placement_accuracy"] <= 1.0
  assert summary["key_space_bits"] == 64.0 and summary["nominal_key_space_bits"] > 64
  assert not {"perm", "block_perm", "negate", "key"} & set(summary)


# ------------------------------------------------------- the command line


def _cli(*args):
  return subprocess.run([sys.executable, "-m", "lie_jax", *args], capture_output=True,
                        text=True, timeout=300)


def test_cli_attack_writes_json_and_grid(tmp_path):
  out = tmp_path / "report.json"
  run = _cli("attack", "--scheme", "pe", "--attack", "chosen_plaintext", "--data",
             "pneumoniamnist", "--num-images", "6", "--train-images", "20", "--out", str(out))
  assert run.returncode == 0, run.stderr
  report = json.loads(out.read_text())
  assert report["scheme"] == "pe" and report["attack"] == "chosen_plaintext"
  assert report["num_images"] == 6 and report["ssim_mean"] == pytest.approx(1.0, abs=1e-6)
  for field in ("psnr_mean", "cipher_ssim_mean", "key_space_bits", "placement_accuracy"):
    assert field in report
  assert "experiment keys" in report["keys"]
  from PIL import Image
  grid = Image.open(tmp_path / "report.png")
  assert grid.size[1] > 3 * 28


def test_cli_reads_an_npz_path(tmp_path):
  src = data.bundled_path()
  out = tmp_path / "r.json"
  run = _cli("attack", "--scheme", "huang2022", "--attack", "fr_basic", "--data", str(src),
             "--num-images", "3", "--train-images", "5", "--out", str(out))
  assert run.returncode == 0, run.stderr
  assert json.loads(out.read_text())["num_images"] == 3


@pytest.mark.parametrize("args,message", [
    (["--scheme", "nope", "--attack", "jigsaw"], "unknown scheme"),
    (["--scheme", "le", "--attack", "nope"], "unknown attack"),
    (["--scheme", "le", "--attack", "jigsaw"], "does not apply"),
    (["--scheme", "le", "--attack", "chosen_plaintext", "--data", "/no/such.npz"],
     "no file or folder"),
    (["--scheme", "le", "--attack", "chosen_plaintext", "--block-size", "5"], "--block-size"),
])
def test_cli_bad_arguments(tmp_path, args, message):
  if "--data" not in args:
    args = args + ["--data", "pneumoniamnist"]
  run = _cli("attack", *args, "--num-images", "2", "--out", str(tmp_path / "r.json"))
  assert run.returncode != 0
  assert message in run.stderr and "Traceback" not in run.stderr
  assert not (tmp_path / "r.json").exists()


@pytest.mark.slow
def test_cli_security_report(tmp_path):
  run = _cli("security-report", "--data", "pneumoniamnist", "--num-images", "4",
             "--train-images", "32", "--steps", "5", "--out", str(tmp_path))
  assert run.returncode == 0, run.stderr
  table = (tmp_path / "security.md").read_text()
  assert "| le | shared | chosen_plaintext |" in table and "per image" in table
  # 32 known plaintexts cannot pin down morph's 784 x 784 matrix: said, not fatal.
  assert "morph / known_plaintext_linear: not run: too few known plaintexts" in table
  assert "too few known plaintexts" in run.stderr
  rows = json.loads((tmp_path / "security.json").read_text())["results"]
  assert {(r["scheme"], r["attack"]) for r in rows} >= {("pe", "fr_advanced"), ("etc", "jigsaw")}
  assert (tmp_path / "security.png").stat().st_size > 0


def test_cli_attack_runs_linkage_without_known_plaintexts(tmp_path):
  out = tmp_path / "linkage.json"
  run = _cli("attack", "--scheme", "huang2022", "--attack", "linkage", "--per-image-keys",
             "--data", "pneumoniamnist", "--num-images", "10", "--train-images", "0",
             "--block-size", "2", "--out", str(out))
  assert run.returncode == 0, run.stderr
  result = json.loads(out.read_text())
  assert result["reid_top1"] == 1.0 and result["breaks"] and result["exact_fraction"] == 0.0
  assert "top-1 re-identification 100.0% (chance 10.0%)" in run.stdout
