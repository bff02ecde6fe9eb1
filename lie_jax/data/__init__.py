"""Data for training on encrypted images: loaders, deterministic batches, augmentation.

Loaders (`sources`) return `DatasetSplits` of uint8 [N, H, W, C] images and
int32 [N] labels: the bundled PneumoniaMNIST (real pediatric chest X-rays,
CC BY 4.0, see PNEUMONIAMNIST.md), MedMNIST .npz files (MedMNIST+ 64-224 too),
image and DICOM folders, prepared TFDS datasets and the data owner's encrypted
dataset directories. Small splits are held in memory; larger ones (over
IN_MEMORY_BYTES, or `in_memory=False`) are `lazy.LazyImages`, read and decoded
per batch, never materialised. `pipeline` turns a split into deterministic,
resumable training batches (each process reading only its part of every
global batch) and fixed-shape eval batches through grain.

Shared with the data owner's tools (`lie_jax.owner`): `images` (the one image
decoder: PNG/JPEG/TIFF/DICOM, resize, class folders), `encrypted_dir` (the
encrypted dataset directory's format) and `encryption` (a scheme plus a key
file or PRNG key -> the cipher the trainer and the owner both apply; import it
as `from lie_jax.data import encryption`, it loads the ciphers).

Example:
  >>> from lie_jax import data
  >>> splits = data.load_dataset("pneumoniamnist")
  >>> batch = next(data.train_batches(splits.train, batch_size=32, seed=0))
  >>> batch["image"].shape, batch["label"].shape, batch["index"].shape
  ((32, 28, 28, 1), (32,), (32,))
"""

from lie_jax.data.encrypted_dir import is_encrypted_dir
from lie_jax.data.pipeline import epoch_order
from lie_jax.data.pipeline import eval_batches
from lie_jax.data.pipeline import flip_and_shift
from lie_jax.data.pipeline import random_flip_and_shift
from lie_jax.data.pipeline import random_flip_and_shift_jax
from lie_jax.data.pipeline import steps_per_epoch
from lie_jax.data.pipeline import train_batch_indices
from lie_jax.data.pipeline import train_batches
from lie_jax.data.sources import ArrayDataset
from lie_jax.data.sources import as_array_dataset
from lie_jax.data.sources import BUNDLED_DATASETS
from lie_jax.data.sources import bundled_path
from lie_jax.data.sources import carve_validation
from lie_jax.data.sources import DatasetSplits
from lie_jax.data.sources import default_cache_dir
from lie_jax.data.sources import IN_MEMORY_BYTES
from lie_jax.data.sources import download_medmnist
from lie_jax.data.sources import load_dataset
from lie_jax.data.sources import load_encrypted_dir
from lie_jax.data.sources import load_image_folder
from lie_jax.data.sources import load_medmnist_npz
from lie_jax.data.sources import load_tfds

__all__ = [
    "ArrayDataset", "DatasetSplits", "BUNDLED_DATASETS", "as_array_dataset", "bundled_path",
    "carve_validation", "IN_MEMORY_BYTES", "default_cache_dir",
    "load_dataset", "load_medmnist_npz", "download_medmnist", "load_image_folder", "load_tfds",
    "load_encrypted_dir", "is_encrypted_dir",
    "steps_per_epoch", "epoch_order", "train_batch_indices", "train_batches", "eval_batches",
    "random_flip_and_shift",
    "random_flip_and_shift_jax",
    "flip_and_shift",
]
