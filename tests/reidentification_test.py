"""Re-identification scores against hand-computed ranks, identity, chance and brute force."""

import numpy as np
import pytest

from lie_jax.attacks import metrics
from lie_jax.attacks import reidentification as reid


def _four_tiny():
  """Four 1x2 grayscale candidates and four reconstructions with hand-known distances."""
  cands = np.array([[0, 0], [10, 10], [20, 20], [30, 30]], np.uint8).reshape(4, 1, 2, 1)
  # Reconstruction 0 = candidate 0 exactly; 1 lies nearer candidate 2 than 1;
  # 2 is equally far from candidates 1 and 2 (a tie); 3 is nearest candidate 0.
  rec = np.array([[0, 0], [18, 18], [15, 15], [1, 1]], np.uint8).reshape(4, 1, 2, 1)
  return rec, cands


def test_psnr_ranks_hand_computed():
  rec, cands = _four_tiny()
  # Squared distances per pixel, rows = reconstructions, columns = candidates:
  #   r0=0:  0, 100, 400, 900      -> truth (col 0) is best:               rank 1
  #   r1=18: 324, 64, 4, 144       -> truth 64; 4 is better:                rank 2
  #   r2=15: 225, 25, 25, 225      -> truth 25 ties with col 1 (pessimist): rank 2
  #   r3=1:  1, 81, 361, 841       -> truth 841 is worst:                    rank 4
  scores = reid.similarity_matrix(rec, cands, similarity="psnr")
  mse = np.array([[0, 100, 400, 900], [324, 64, 4, 144], [225, 25, 25, 225], [1, 81, 361, 841]])
  with np.errstate(divide="ignore"):
    np.testing.assert_allclose(scores, 10 * np.log10(255.0 ** 2 / mse))
  r = reid.identification_rates(rec, cands, similarity="psnr", ks=(1, 2, 3))
  np.testing.assert_array_equal(r["ranks"], [1, 2, 2, 4])
  assert r["top1"] == 0.25 and r["top2"] == 0.75 and r["top3"] == 0.75
  assert r["chance_top1"] == 0.25 and r["chance_top2"] == 0.5 and r["chance_top3"] == 0.75
  assert r["mean_rank"] == 2.25 and r["num_candidates"] == 4 and r["num_recovered"] == 4


def test_ncc_hand_computed_and_gain_invariant():
  # Candidates: ramps up, ramp down, a bump; correlations are +-1 or computed by hand.
  cands = np.array([[0, 1, 2], [2, 1, 0], [0, 2, 0]], np.float64).reshape(3, 1, 3, 1)
  rec = np.array([[10, 30, 50], [0, 2, 0], [5, 5, 5]], np.float64).reshape(3, 1, 3, 1)
  s = reid.similarity_matrix(rec, cands)
  # r0 is ramp up x20 + 10: r = 1, -1 and 0 (bump is orthogonal to the centred ramp).
  np.testing.assert_allclose(s[0], [1, -1, 0], atol=1e-12)
  # r1 is the bump, shown to the ramp-down candidate: 0, 0 and 1 -> truth 0 ties with
  # ramp up and loses to the bump: rank 3.  r2 is constant: r = 0 with all -> rank 3.
  np.testing.assert_allclose(s[1], [0, 0, 1], atol=1e-12)
  np.testing.assert_array_equal(s[2], [0, 0, 0])
  np.testing.assert_array_equal(reid.true_ranks(s), [1, 3, 3])


def test_true_ranks_ties_and_nan_are_pessimistic():
  s = np.array([[0.5, 0.5, 0.1], [0.2, np.nan, 0.1], [1.0, 1.0, 1.0]])
  np.testing.assert_array_equal(reid.true_ranks(s), [2, 3, 3])


@pytest.mark.parametrize("similarity", reid.SIMILARITIES)
def test_identity_identifies_everyone(similarity):
  x = np.random.default_rng(1).integers(0, 256, (12, 16, 16, 3), dtype=np.uint8)
  r = reid.identification_rates(x, x, similarity=similarity)
  assert r["top1"] == 1.0 and r["top5"] == 1.0
  np.testing.assert_array_equal(r["ranks"], np.ones(12))
  assert r["chance_top1"] == pytest.approx(1 / 12) and r["chance_top5"] == pytest.approx(5 / 12)


def test_duplicate_candidates_tie_against_the_truth():
  x = np.random.default_rng(2).integers(0, 256, (5, 8, 8, 1), dtype=np.uint8)
  x[3] = x[0]  # two patients with the same image: neither can be told apart
  for similarity in ("ncc", "psnr"):
    r = reid.identification_rates(x, x, similarity=similarity, ks=(1,))
    np.testing.assert_array_equal(r["ranks"], [2, 1, 1, 2, 1])


def test_random_noise_is_near_chance():
  rng = np.random.default_rng(3)
  cands = rng.integers(0, 256, (400, 12, 12, 1), dtype=np.uint8)
  noise = rng.integers(0, 256, (400, 12, 12, 1), dtype=np.uint8)
  r = reid.identification_rates(noise, cands)
  # Binomial(400, p): 4 standard deviations around chance.
  for k in (1, 5):
    p = k / 400
    assert abs(r[f"top{k}"] - p) <= 4 * np.sqrt(p * (1 - p) / 400) + 1 / 400
  assert 150 < r["mean_rank"] < 250


def test_distractors_and_chunking_match_brute_force():
  rng = np.random.default_rng(4)
  cands = rng.integers(0, 256, (30, 12, 12, 2), dtype=np.uint8)
  rec = np.clip(cands[:10].astype(int) + rng.normal(0, 90, cands[:10].shape), 0, 255)
  for similarity in reid.SIMILARITIES:
    full = reid.similarity_matrix(rec, cands, similarity=similarity)
    tiny = reid.similarity_matrix(rec, cands, similarity=similarity, max_elements=500)
    np.testing.assert_allclose(tiny, full, rtol=1e-6)
    # Brute force, pair by pair, with independent formulas.
    for i in range(10):
      for j in range(30):
        a, b = rec[i].astype(np.float64), cands[j].astype(np.float64)
        if similarity == "ncc":
          want = np.corrcoef(a.ravel(), b.ravel())[0, 1]
        elif similarity == "psnr":
          want = 10 * np.log10(255 ** 2 / np.mean((a - b) ** 2))
        else:
          want = float(metrics.ssim(a, b))
        assert full[i, j] == pytest.approx(want, rel=1e-5, abs=1e-6)
    ranks = [1 + sum(full[i, j] >= full[i, i] for j in range(30) if j != i) for i in range(10)]
    np.testing.assert_array_equal(reid.true_ranks(full), ranks)


def test_ncc_ignores_global_intensity_change_psnr_does_not():
  rng = np.random.default_rng(5)
  cands = rng.integers(60, 200, (50, 12, 12, 1), dtype=np.uint8)
  dark = 0.1 * cands + 5.0  # what a mis-scaled reconstruction looks like
  assert reid.identification_rates(dark, cands)["top1"] == 1.0
  assert reid.identification_rates(dark, cands, similarity="psnr")["top1"] < 0.2


def test_grayscale_without_channel_axis():
  x = np.random.default_rng(6).integers(0, 256, (6, 16, 16), dtype=np.uint8)
  assert reid.identification_rates(x[:3], x)["top1"] == 1.0


@pytest.mark.parametrize("kwargs, message", [
    (dict(similarity="mse"), "unknown similarity"),
    (dict(ks=(0,)), "positive integers"),
    (dict(ks=()), "positive integers"),
    (dict(max_elements=0), "max_elements"),
])
def test_bad_arguments(kwargs, message):
  x = np.zeros((3, 4, 4, 1), np.uint8)
  with pytest.raises(ValueError, match=message):
    reid.identification_rates(x, x, **kwargs)


def test_bad_shapes():
  x = np.zeros((3, 4, 4, 1), np.uint8)
  with pytest.raises(ValueError, match="only 2 candidates"):
    reid.identification_rates(x, x[:2])
  with pytest.raises(ValueError, match="differ in shape"):
    reid.identification_rates(x, np.zeros((3, 4, 5, 1), np.uint8))
  with pytest.raises(ValueError, match=r"\[N, H, W\]"):
    reid.identification_rates(np.zeros((4, 4)), np.zeros((4, 4)))
  with pytest.raises(ValueError, match="scores must be"):
    reid.true_ranks(np.zeros((3, 2)))


def test_chance_p_value_is_the_binomial_tail():
  # Hand-computed: P(X >= 2) for X ~ Binomial(16, 1/16) = 1 - (15/16)^16 - 16 (1/16)(15/16)^15.
  q = 15 / 16
  assert reid.chance_p_value(2, 16, 1 / 16) == pytest.approx(1 - q ** 16 - q ** 15)
  assert reid.chance_p_value(0, 16, 1 / 16) == pytest.approx(1.0)
  assert reid.chance_p_value(16, 16, 0.5) == pytest.approx(0.5 ** 16)
  with pytest.raises(ValueError, match="hits"):
    reid.chance_p_value(17, 16, 0.5)


def test_two_lucky_hits_among_sixteen_are_not_significant():
  rec, cands = _four_tiny()
  r = reid.identification_rates(rec, cands, similarity="psnr")
  # One of four identified (r0), chance 1/4: P(X >= 1) = 1 - (3/4)^4.
  assert r["top1"] == 0.25
  assert r["p_top1"] == pytest.approx(1 - 0.75 ** 4)


def test_chance_p_value_holds_for_thousands_of_victims():
  # P(X >= 1) = 1 - (1 - p)^n exactly; C(2000, 1000) overflows a float, the log-space sum not.
  p = 1 / 2000
  assert reid.chance_p_value(1, 2000, p) == pytest.approx(1 - (1 - p) ** 2000)
  assert reid.chance_p_value(30, 2000, p) < 1e-20
