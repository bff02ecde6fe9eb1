"""Learned known-plaintext attacks (inverse network, SIA-GAN) on planted tiny cases.

Oracles: a planted block permutation the mixing layer must find (argmax of every row)
and undo (images back almost byte for byte); a scripted loss sequence for early
stopping; the mean training image, which the trained networks must beat on held-out
victims; hand-built bad inputs.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

from lie_jax import ciphers
from lie_jax.attacks import gan
from lie_jax.attacks import inverse_network as itn


def _smooth_images(n: int, size: int, channels: int = 1, seed: int = 0) -> np.ndarray:
  """Smooth random images: sums of a few low-frequency waves, 20..235."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:size, 0:size] / size
  f = rng.uniform(0.3, 1.5, (n, channels, 3, 2))
  ph = rng.uniform(0, 6.3, (n, channels, 3))
  waves = np.sin(2 * np.pi * (f[..., 0, None, None] * yy + f[..., 1, None, None] * xx)
                 + ph[..., None, None]).sum(2)
  out = waves.transpose(0, 2, 3, 1)
  out = out - out.min(axis=(1, 2, 3), keepdims=True)
  out = out / out.max(axis=(1, 2, 3), keepdims=True)
  return np.round(20 + 215 * out).astype(np.uint8)


def _scramble(images: np.ndarray, perm: np.ndarray, b: int) -> np.ndarray:
  """Output block j is input block perm[j] (row-major blocks of b x b pixels)."""
  n, h, w, c = images.shape
  blocks = images.reshape(n, h // b, b, w // b, b, c).transpose(0, 1, 3, 2, 4, 5)
  blocks = blocks.reshape(n, -1, b, b, c)[:, perm]
  return blocks.reshape(n, h // b, w // b, b, b, c).transpose(0, 1, 3, 2, 4, 5).reshape(
      images.shape)


def _mean_mse(train_plain: np.ndarray, victims: np.ndarray) -> float:
  mean = np.round(train_plain.astype(np.float64).mean(0))
  return float(((victims - mean) ** 2).mean())


def _mse(a: np.ndarray, b: np.ndarray) -> float:
  return float(((a.astype(np.float64) - b) ** 2).mean())


# ------------------------------------------------------------- block mixing


def test_mixing_learns_a_planted_block_permutation():
  rng = np.random.default_rng(3)
  perm = rng.permutation(9)  # 12x12 images, 3x3 blocks of 4x4
  plain = rng.integers(0, 256, (288, 12, 12, 1), dtype=np.uint8)
  cipher = _scramble(plain, perm, 4)
  net, history = itn.train(cipher[:256], plain[:256], family="block", block_size=4,
                           max_steps=600, eval_every=50, patience=3, seed=0)
  mixing = np.asarray(net.mixing[...])
  # Plain block q comes from cipher block j with perm[j] = q.
  np.testing.assert_array_equal(mixing.argmax(1), np.argsort(perm))
  out = itn.reconstruct(net, cipher[256:])
  assert np.abs(out.astype(int) - plain[256:]).mean() < 2.0
  assert history["best_val_loss"] < 1e-3 < history["initial_val_loss"]


# ----------------------------------------------------------- early stopping


class _Counter(nnx.Module):
  def __init__(self):
    self.value = nnx.Param(np.zeros(()))


def test_fit_stops_after_patience_and_restores_the_best_parameters():
  model = _Counter()
  losses = iter([1.0, 0.5, 0.3, 0.4, 0.35, 0.9, 0.2])

  def run_steps(start, count):
    model.value[...] = float(start + count)  # the parameter records how many steps ran

  history = itn.fit(run_steps, lambda: next(losses), model, max_steps=100, eval_every=2, patience=3)
  # Evaluations at steps 0, 2, 4, 6, 8, 10: best 0.3 at step 4, then 3 without improvement.
  assert history["steps"] == 10 and history["stopped_early"]
  assert history["best_step"] == 4 and history["best_val_loss"] == 0.3
  assert history["initial_val_loss"] == 1.0
  assert [s for s, _ in history["val_curve"]] == [0, 2, 4, 6, 8, 10]
  assert float(model.value[...]) == 4.0


def test_fit_caps_the_steps_and_keeps_the_last_when_it_keeps_improving():
  model = _Counter()
  losses = iter([1.0 / (k + 1) for k in range(10)])

  def run_steps(start, count):
    model.value[...] = float(start + count)

  history = itn.fit(run_steps, lambda: next(losses), model, max_steps=7, eval_every=3, patience=1)
  assert history["steps"] == 7 and not history["stopped_early"]
  assert history["best_step"] == 7 and float(model.value[...]) == 7.0


def test_fit_keeps_the_start_when_training_only_hurts():
  model = _Counter()
  losses = iter([0.1, 0.2, 0.3])

  def run_steps(start, count):
    model.value[...] = float(start + count)

  history = itn.fit(run_steps, lambda: next(losses), model, max_steps=50, eval_every=5, patience=2)
  assert history["best_step"] == 0 and float(model.value[...]) == 0.0


# ------------------------------------------------------ beating the prior


@pytest.mark.parametrize("scheme, channels", [("ele", 1), ("etc", 3), ("pe", 3)])
def test_itn_beats_the_mean_image_on_real_ciphers(scheme, channels):
  images = _smooth_images(260, 16, channels, seed=1)
  record = ciphers.get_scheme(scheme)
  opts = {} if scheme == "pe" else {"block_size": 4}
  key = record.generate_key(jax.random.key(5), image_shape=images.shape[1:], **opts)
  cipher = np.asarray(record.encrypt(key, images))
  family = "pixel" if record.kind == "pixel" else "block"
  net, history = itn.train(cipher[:200], images[:200], family=family, block_size=4,
                           max_steps=200, eval_every=50, patience=2)
  out = itn.reconstruct(net, cipher[200:])
  assert history["best_val_loss"] < history["initial_val_loss"]
  assert _mse(out, images[200:]) < 0.7 * _mean_mse(images[:200], images[200:])


def test_untrained_network_predicts_the_mean_image():
  images = _smooth_images(8, 8, 3, seed=2)
  mean = images.astype(np.float64).mean(0)
  net = itn.InverseNetwork(family="block", image_shape=(8, 8, 3), block_size=4,
                           mean_image=mean, rngs=nnx.Rngs(0))
  out = np.asarray(net(images[::-1]))
  np.testing.assert_allclose(out, np.broadcast_to(mean / 255.0, out.shape), atol=1e-6)


def test_parameter_count_stays_sane_at_224_rgb_with_16_blocks():
  net = nnx.eval_shape(lambda: itn.InverseNetwork(
      family="block", image_shape=(224, 224, 3), block_size=16, rngs=nnx.Rngs(0)))
  count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(net, nnx.Param)))
  assert net.mixing.shape == (196, 196) and net.has_mixing
  assert count < 10_000_000


def test_mixing_auto_leaves_out_a_matrix_over_the_limit():
  # 224x224 in 2x2 blocks: 12544 blocks, a 12544^2 matrix (157M) is over MIXING_MAX_PARAMS.
  nb = (224 // 2) ** 2
  assert nb * nb > itn.MIXING_MAX_PARAMS >= 196 * 196
  net = nnx.eval_shape(lambda: itn.InverseNetwork(
      family="block", image_shape=(224, 224, 1), block_size=2, rngs=nnx.Rngs(0)))
  assert not net.has_mixing and net.num_blocks == nb
  with pytest.raises(ValueError, match="12544x12544 mixing matrix"):
    itn.InverseNetwork(family="block", image_shape=(224, 224, 1), block_size=2, mixing=True,
                       rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="mixing must be True, False or 'auto'"):
    itn.InverseNetwork(family="block", image_shape=(8, 8, 1), block_size=4, mixing="false",
                       rngs=nnx.Rngs(0))


# -------------------------------------------------------------------- GAN


def test_discriminator_shapes():
  for shape in [(16, 12, 3), (64, 64, 1)]:
    d = gan.Discriminator(image_shape=shape, rngs=nnx.Rngs(0))
    assert d(np.zeros((3, *shape), np.float32)).shape == (3,)


def test_gan_one_step_and_reconstruction_shapes():
  images = _smooth_images(20, 8, 3, seed=4)
  cipher = 255 - images
  gen, history = gan.train(cipher, images, family="block", block_size=4, max_steps=1,
                           eval_every=1, patience=1)
  assert history["steps"] == 1 and history["num_val"] == 2
  assert np.isfinite([history["gen_mse"], history["gen_adversarial"], history["disc_loss"]]).all()
  out = gan.reconstruct(gen, cipher[:5])
  assert out.shape == (5, 8, 8, 3) and out.dtype == np.uint8


def test_gan_beats_the_mean_image_on_scrambled_blocks():
  rng = np.random.default_rng(7)
  images = _smooth_images(260, 16, 1, seed=3)
  cipher = _scramble(images, rng.permutation(16), 4)
  gen, history = gan.train(cipher[:200], images[:200], family="block", block_size=4,
                           max_steps=200, eval_every=50, patience=2)
  out = gan.reconstruct(gen, cipher[200:])
  assert history["best_val_loss"] < history["initial_val_loss"]
  assert _mse(out, images[200:]) < 0.5 * _mean_mse(images[:200], images[200:])


# ------------------------------------------------------------- bad inputs


def test_bad_inputs_are_refused():
  x = np.zeros((4, 8, 8, 1), np.uint8)
  with pytest.raises(ValueError, match="one shape"):
    itn.train(x, x[:, :4], family="block", block_size=4)
  with pytest.raises(ValueError, match="one shape"):
    itn.train(x.astype(np.float32), x, family="block", block_size=4)
  with pytest.raises(ValueError, match="channels"):
    itn.train(np.zeros((4, 8, 8, 2), np.uint8), np.zeros((4, 8, 8, 2), np.uint8),
              family="pixel")
  with pytest.raises(ValueError, match="at least 2"):
    itn.train(x[:1], x[:1], family="block", block_size=4)
  with pytest.raises(ValueError, match="family"):
    itn.train(x, x, family="blocks", block_size=4)
  with pytest.raises(ValueError, match="divisible"):
    itn.train(x, x, family="block", block_size=3)
  with pytest.raises(ValueError, match="val_fraction"):
    itn.train(x, x, family="block", block_size=4, val_fraction=1.0)
  with pytest.raises(ValueError, match="batch_size"):
    itn.train(x, x, family="block", block_size=4, batch_size=0)
  with pytest.raises(ValueError, match="max_steps"):
    itn.train(x, x, family="block", block_size=4, max_steps=0)
  with pytest.raises(ValueError, match="adversarial_weight"):
    gan.train(x, x, family="block", block_size=4, adversarial_weight=-1.0)
  net = itn.InverseNetwork(family="block", image_shape=(8, 8, 1), block_size=4,
                           rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="trained on"):
    itn.reconstruct(net, np.zeros((2, 12, 12, 1), np.uint8))
  with pytest.raises(ValueError, match="uint8"):
    gan.reconstruct(net, np.zeros((2, 8, 8, 1), np.float32))


def test_split_keeps_every_view_of_an_image_on_one_side():
  plain = np.repeat(_smooth_images(10, 8, seed=3), 4, axis=0)  # 10 images x 4 views
  cipher = np.zeros_like(plain)
  cipher[:, 0, 0, 0] = np.arange(len(plain))  # row i is marked i
  c_tr, p_tr, c_val, p_val = itn.split_pairs(cipher, plain, val_fraction=0.2, seed=0)
  key = lambda a: {x.tobytes() for x in a}
  assert len(p_val) == 2 * 4 and len(p_tr) == 8 * 4  # ceil(0.2 * 10) images, all views
  assert not key(p_tr) & key(p_val)
  assert len(key(p_val)) == 2
  # pairs stay pairs: the rows were moved together
  rows = {x.tobytes(): i for i, x in enumerate(cipher)}
  for c, p in zip(c_val, p_val):
    np.testing.assert_array_equal(plain[rows[c.tobytes()]], p)
  # distinct images: the old rule, ceil(val_fraction * N) pairs
  _, _, c_val, _ = itn.split_pairs(cipher[::4], plain[::4], val_fraction=0.2, seed=0)
  assert len(c_val) == 2


def test_key_views_train_on_every_known_image_under_several_keys(monkeypatch):
  from lie_jax.attacks import suite

  seen = {}

  def fake_train(cipher, plain, **kwargs):
    seen["cipher"], seen["plain"] = cipher, plain
    return "net", {"steps": 0}

  monkeypatch.setattr(itn, "train", fake_train)
  monkeypatch.setattr(itn, "reconstruct", lambda net, c: np.zeros_like(c))
  victims, known = _smooth_images(3, 12, seed=4), _smooth_images(5, 12, seed=5)
  result = suite.run_attack("inverse_network", "pe", victims, key=jax.random.key(0),
                            per_image_keys=True, train_images=known, key_views=3)
  assert result.summary()["details"]["key_views"] == 3
  np.testing.assert_array_equal(seen["plain"], np.concatenate([known] * 3))
  views = seen["cipher"].reshape(3, 5, -1)
  assert all(not np.array_equal(views[a, i], views[b, i])  # a key of its own per view
             for i in range(5) for a, b in ((0, 1), (0, 2), (1, 2)))
  # each view decrypts to its image: PE keeps every pixel's value multiset per position
  for i in range(5):
    np.testing.assert_array_equal(np.sort(np.minimum(views[:, i], 255 - views[:, i]), -1),
                                  np.sort(np.minimum(views[:1, i], 255 - views[:1, i]), -1)
                                  .repeat(3, 0))
  for bad, kwargs in ((0, {"per_image_keys": True}), (2, {}),
                      (2, {"per_image_keys": True, "attack": "chosen_plaintext"})):
    attack = kwargs.pop("attack", "inverse_network")
    with pytest.raises(ValueError, match="key_views"):
      suite.run_attack(attack, "pe", victims, key=jax.random.key(0), train_images=known,
                       key_views=bad, **kwargs)


def test_key_views_benchmark_rows():
  from benchmarks import key_views
  from lie_jax import data

  splits = data.load_dataset("pneumoniamnist")
  rows = key_views.measure(splits.test.images[:6], splits.train.images[:12], views=2,
                           configs=(("pe", None),), steps=2)
  assert [(r["scheme"], r["key_views"]) for r in rows] == [("pe", 1), ("pe", 2)]
  assert rows[1]["details"]["key_views"] == 2 and "key_views" not in rows[0]["details"]
  assert rows[0]["details"]["num_train"] + rows[0]["details"]["num_val"] == 12
  assert rows[1]["details"]["num_train"] + rows[1]["details"]["num_val"] == 24
  assert key_views.format_row(rows[1]).startswith("| pe | 2 | ")


def test_security_md_quotes_the_key_views_results_file():
  import json
  import pathlib

  from benchmarks import key_views

  root = pathlib.Path(__file__).resolve().parents[1]
  result = json.loads((root / "benchmarks" / "results" / "key_views.json").read_text())
  text = (root / "docs" / "SECURITY.md").read_text()
  section = text.split("## Many keys per known image", 1)[1].split("\n## ")[0]
  assert result["views"] == key_views.DEFAULT_VIEWS
  assert [(r["scheme"], r["key_views"]) for r in result["results"]] == [
      (scheme, k) for scheme, _ in key_views.CONFIGS for k in (1, key_views.DEFAULT_VIEWS)]
  assert key_views.HEADER in section
  for row in result["results"]:
    assert key_views.format_row(row) in section


def test_security_md_quotes_the_224_px_key_views_results_file():
  import json
  import pathlib

  from benchmarks import key_views

  flat = lambda s: " ".join(s.split())
  root = pathlib.Path(__file__).resolve().parents[1]
  result = json.loads((root / "benchmarks" / "results" / "key_views_224.json").read_text())
  text = (root / "docs" / "SECURITY.md").read_text()
  section = text.split("## Many keys per known image", 1)[1].split("\n## ")[0]
  section = section.split("At 224x224, on the tiles", 1)[1]
  security_224 = json.loads((root / "benchmarks" / "results" / "security_224.json").read_text())
  assert result["data"] == security_224["data"]  # the 224 px table's tiles
  assert result["command"] == "python -m benchmarks.key_views --eval-set NPZ"
  assert result["views"] == key_views.DEFAULT_VIEWS
  rows = {(r["scheme"], r["key_views"]): r for r in result["results"]}
  assert list(rows) == [(s, k) for s, _ in key_views.CONFIGS_224
                        for k in (1, key_views.DEFAULT_VIEWS)]
  assert key_views.HEADER in section
  for row in result["results"]:
    assert key_views.format_row(row) in section
    assert row["details"]["stopped_early"] and row["steps"] < result["steps_cap"]
  assert f"none reached the {result['steps_cap']}-step cap" in section
  assert f"{round(result['seconds'] / 60)} minutes on\n2 cores" in section
  pct = lambda scheme, k: f"{100 * rows[scheme, k]['reid_top1']:.0f}%"
  views = key_views.DEFAULT_VIEWS
  assert (f"goes from {pct('huang2022', 1)} to {pct('huang2022', views)} of the scans"
          in section)
  assert f"PE from {pct('pe', 1)} to {pct('pe', views)} (" in flat(section)
  ssim = lambda scheme: f"{rows[scheme, views]['ssim_mean']:.2f}"
  prior = f"{rows['pe', views]['prior_ssim_mean']:.2f}"
  assert f"(SSIM {ssim('huang2022')} and {ssim('pe')}, below the mean tile's {prior})" in (
      flat(section))
  assert all(r["ssim_mean"] < r["prior_ssim_mean"] for r in result["results"])
  # Where the docs give the default's and PE's 224 px leak, the 32-key numbers are there too.
  h1, h32, p32 = pct("huang2022", 1), pct("huang2022", views), pct("pe", views)
  summary = flat(text.split("\n## ", 1)[0])
  assert f"**{h1} on 224x224 scans, {h32} when it encrypts each known scan under 32 keys**" in (
      summary)
  readme = flat((root / "README.md").read_text())
  assert f"{h1} of 224x224 scans ({h32} if it encrypts its known scans under many keys" in readme
  assert f"{h1[:-1]}-{h32} of 224x224 real scans" in readme
  owner = flat((root / "lie_jax" / "owner" / "__init__.py").read_text())
  assert f"{h1[:-1]}-{h32} of 224x224 scans" in owner
  whole = flat(text)
  exact = f"{100 * rows['huang2022', views]['reid_top1']:.1f}%"
  assert f"under 32 keys each the inverse network re-identifies {exact}" in whole
  assert f"{p32} when each known tile is encrypted under 32 keys" in whole
  assert f"{p32} at 224 px), Huang 2022 (12.5% at B=2; {h32} at 224 px)" in whole
