"""The data owner's side: encrypting datasets, decrypting them, encrypted inference.

The hospital keeps its key file and plain scans; the server gets an
encrypted dataset directory it can train on without the key:

  inputs    reading the owner's plain sources (MedMNIST .npz, PNG/JPEG/TIFF/
            DICOM class folders, decoded by `lie_jax.data.images`), listing
            every unusable input with a reason
  dataset   encrypt_dataset (resumable after SIGKILL, byte-identical output)
            and decrypt_dataset (refuses a key with another fingerprint)
  predict   loading a model trained by `train_and_evaluate` and classifying
            encrypted directories or new plain scans (encrypted with the key)
  keyed     a ViT trained on plain images, transformed with the key to serve
            vit-encrypted images (Kiya et al. 2022), no retraining

What the owner shares with the rest of lie_jax lives in `lie_jax.data`: the
directory format (`encrypted_dir`), the image decoder (`images`) and the
cipher built from a key file (`encryption`, the same one the trainer uses).
The `lie-jax keygen | encrypt | decrypt | predict | key-model | inspect` commands
(`lie_jax.cli.owner`) are thin wrappers over these. Submodules are imported
on use.
"""


# What `lie-jax encrypt` uses when no --scheme is named, and lie_jax/configs/quickstart.py trains on:
# the configuration docs/FRONTIER.md shows strongest within 2 points of plain accuracy
# (`benchmarks.frontier.strongest`; tests/frontier_test.py keeps the two in step). It is the
# least bad measured, not a safe one (its best attack still tells whose scan it is far above
# chance: 11-13% of 28x28 X-rays, 34-40% of 224x224 scans), and like every scheme it does not hide
# which ciphertext a scan is from an attacker who holds the scan (linkage, 100%):
# docs/SECURITY.md. `--scheme vit --per-image-keys` resists the reconstruction attacks on 28x28
# X-rays but is restored from its ciphertext alone at 224x224.
DEFAULT_SCHEME = "huang2022"
DEFAULT_PER_IMAGE_KEYS = True


class OwnerError(ValueError):
  """A problem the user can fix (bad arguments, wrong key, unusable input): the command
  prints its one-line message and exits with status 2."""
