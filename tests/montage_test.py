"""lie-jax inspect --montage: a PNG grid of ciphertexts, and with the key each next to its
decryption, which must be the plain image."""

import numpy as np
import pytest
from PIL import Image

from lie_jax import cli
from lie_jax import keys
from lie_jax.owner import OwnerError
from lie_jax.owner import dataset
from lie_jax.owner import montage


@pytest.fixture
def encrypted(tmp_path):
  rng = np.random.default_rng(0)
  plain = rng.integers(0, 256, (6, 8, 8), dtype=np.uint8)
  np.savez(tmp_path / "xray.npz", train_images=plain, train_labels=np.arange(6) % 2,
           test_images=plain[:2], test_labels=np.arange(2))
  secret = keys.write_key_file(tmp_path / "owner.key")
  dataset.encrypt_dataset(tmp_path / "xray.npz", tmp_path / "enc", secret=secret, scheme="le",
                          block_size=4, progress=False)
  return tmp_path, plain, secret


def test_montage_with_the_key_shows_each_ciphertext_next_to_the_plain_image(encrypted, capsys):
  tmp_path, plain, _ = encrypted
  assert cli.main(["inspect", str(tmp_path / "enc"), "--montage", str(tmp_path / "m.png"),
                   "--count", "4", "--split", "train", "--key", str(tmp_path / "owner.key"),
                   "--quiet"]) == 0
  assert "wrote" in capsys.readouterr().err
  grid = np.asarray(Image.open(tmp_path / "m.png"))
  scale, gap, side = 8, 2, 64  # 8 px images enlarged 8x to 64 px cells
  cell_w = 2 * side + gap
  assert grid.shape == (2 * side + gap, 2 * cell_w + gap)  # 4 cells in 2 x 2
  for k in range(4):
    r, q = divmod(k, 2)
    cell = grid[r * (side + gap):r * (side + gap) + side, q * (cell_w + gap):][:, :cell_w]
    encrypted_part, decrypted_part = cell[:, :side], cell[:, side + gap:]
    np.testing.assert_array_equal(decrypted_part[::scale, ::scale], plain[k])
    assert not np.array_equal(encrypted_part[::scale, ::scale], plain[k])


def test_montage_without_a_key_shows_ciphertexts_only(encrypted):
  tmp_path, plain, _ = encrypted
  made = montage.montage(tmp_path / "enc", tmp_path / "c.png", count=16)
  assert made == {"split": "train", "count": 6, "scale": 8, "decrypted": False, "note": ""}
  grid = np.asarray(Image.open(tmp_path / "c.png"))
  assert grid.shape == (2 * 64 + 2, 3 * 64 + 2 * 2)  # 6 cells in rows of 3
  with pytest.raises(OwnerError, match="no 'val' split"):
    montage.montage(tmp_path / "enc", tmp_path / "v.png", split="val")
  other = keys.generate_secret()
  with pytest.raises(OwnerError):
    montage.montage(tmp_path / "enc", tmp_path / "w.png", secret=other)
