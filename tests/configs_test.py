"""The realistic-size configs (lie_jax/configs/medmnist.py, lie_jax/configs/huang2022.py): every dataset and
scheme builds, the model builds at its size, MedMNIST files download through the config."""

import urllib.request

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from lie_jax.configs import huang2022
from lie_jax.configs import medmnist
from lie_jax import data
from lie_jax import models
from lie_jax.data import sources
from tests.data_test import _FakeResponse
from tests.data_test import _npz_bytes

# Classes per dataset as published in the MedMNIST v2 paper (Yang et al. 2023, Table 1).
PUBLISHED_CLASSES = {"pathmnist": 9, "dermamnist": 7, "octmnist": 4, "pneumoniamnist": 2,
                     "retinamnist": 5, "breastmnist": 2, "bloodmnist": 8, "tissuemnist": 8,
                     "organamnist": 11, "organcmnist": 11, "organsmnist": 11}


def test_every_single_label_medmnist_dataset_has_its_published_class_names():
  assert {k: len(v) for k, v in sources.MEDMNIST_LABEL_NAMES.items()} == PUBLISHED_CLASSES
  from lie_jax.data import encrypted_dir
  for name, labels in sources.MEDMNIST_LABEL_NAMES.items():
    for label in labels:  # usable as CSV columns and folder names by the owner's tools
      encrypted_dir.check_label_name(label, f"{name} label")


def _abstract_model(config, shape):
  model = nnx.eval_shape(lambda: models.build_model(
      backbone=config.model.backbone, adaptation=config.model.adaptation, num_classes=7,
      image_shape=shape, block_size=config.cipher.block_size,
      rngs=nnx.Rngs(jax.random.key(0, impl="rbg")),
      adaptation_options=models.set_options(config.model.adaptation_options),
      **models.set_options(config.model.options)))
  model.eval()
  if model.adaptation is not None and hasattr(model.adaptation, "out_channels"):
    # The papers' adaptation keeps the image's size: 3 channels into the 224 px stem.
    assert model.adaptation.out_channels == 3
  return nnx.eval_shape(lambda m, x: m(x), model, jax.ShapeDtypeStruct((1, *shape), jnp.float32))


@pytest.mark.parametrize("arg,backbone", [
    ("dermamnist,none,none", "resnet18"), ("pathmnist,etc,block,block=16", "resnet18"),
    ("bloodmnist,vit,none", "vit"), ("octmnist,le,block,xception", "xception"),
    ("tissuemnist,pe,pixel,densenet121", "densenet121"), ("breastmnist,none,none,vit", "vit")])
def test_medmnist_configs_build_their_model_at_224(arg, backbone):
  config = medmnist.get_config(arg)
  assert config.model.backbone == backbone and config.data.path.endswith("_224.npz")
  assert config.data.download is True and config.data.source == "npz"
  assert _abstract_model(config, (224, 224, 3)).shape == (1, 7)
  if backbone == "vit":
    patch = config.model.options.patch_size or config.cipher.block_size
    assert patch == 16 and config.model.options.dim == 384


def test_medmnist_config_arguments_are_checked():
  with pytest.raises(ValueError, match="chestmnist is multi-label"):
    medmnist.get_config("chestmnist,none,none")
  with pytest.raises(ValueError, match="size= is one of"):
    medmnist.get_config("dermamnist,none,none,size=100")
  assert medmnist.get_config("dermamnist,none,none,size=64").data.path.endswith(
      "dermamnist_64.npz")


def test_a_missing_medmnist_file_downloads_through_the_config(monkeypatch, tmp_path):
  payload = _npz_bytes()  # 3 classes of random 5x7 images in the MedMNIST layout
  requested = []
  monkeypatch.setattr(urllib.request, "urlopen",
                      lambda url, timeout=None: requested.append(url) or _FakeResponse(payload))
  config = medmnist.get_config("retinamnist,none,none")
  config.data.path = str(tmp_path / "medmnist" / "retinamnist_224.npz")
  with pytest.warns(UserWarning, match="no published MD5"):
    splits = data.load_dataset(config.data.name, source=config.data.source,
                               path=config.data.path, download=config.data.download)
  assert requested == ["https://zenodo.org/records/10519652/files/retinamnist_224.npz"
                       "?download=1"]
  assert splits.label_names == ("grade 0", "grade 1", "grade 2", "grade 3", "grade 4")
  assert (tmp_path / "medmnist" / "retinamnist_224.npz").read_bytes() == payload
  with pytest.raises(ValueError, match="NAME_SIZE.npz"):
    data.load_dataset(path=tmp_path / "scans.npz", download=True)


@pytest.mark.parametrize("backbone", huang2022.BACKBONES)
def test_huang2022_config_is_the_papers_setup(backbone):
  config = huang2022.get_config(backbone)
  assert (config.cipher.name, config.cipher.per_image_keys, config.model.adaptation) == (
      "huang2022", True, "pixel")
  assert (config.optim.name, config.optim.momentum, config.train.batch_size) == ("sgd", 0.9, 35)
  assert config.data.image_size == 256 and config.model.options.imagenet_stem
  assert _abstract_model(config, (256, 256, 3)).shape == (1, 7)
  plain = huang2022.get_config(f"{backbone},none,none")
  assert plain.cipher.name == "none" and plain.model.backbone == backbone
  with pytest.raises(ValueError, match="needs path="):
    data.load_dataset(config.data.name, source=config.data.source, path=config.data.path)


def test_pneumoniamnist_augment_and_data_settings():
  from lie_jax.configs import pneumoniamnist
  owner = pneumoniamnist.get_config("pe,pixel")
  assert (owner.data.augment, owner.data.augment_ciphertexts) == (True, False)
  server = pneumoniamnist.get_config("pe,pixel,augment=ciphertexts")
  assert (server.data.augment, server.data.augment_ciphertexts) == (False, True)
  off = pneumoniamnist.get_config("le,block,augment=none")
  assert (off.data.augment, off.data.augment_ciphertexts) == (False, False)
  rgb = pneumoniamnist.get_config("etc,block,data=some/dir/ihc_dab.npz")
  assert (rgb.data.source, rgb.data.path, rgb.data.name) == ("npz", "some/dir/ihc_dab.npz",
                                                             "ihc_dab")
  assert not rgb.cipher.allow_seed_keys  # a data= file is not known to be public
  with pytest.raises(ValueError, match=r"augment= is one of \['ciphertexts', 'none', 'owner'\]"):
    pneumoniamnist.get_config("pe,pixel,augment=server")
  with pytest.raises(ValueError, match="data= wants a MedMNIST-layout .npz file"):
    pneumoniamnist.get_config("le,block,data=scans/")


@pytest.mark.parametrize("module,arg", [(medmnist, "pathmnist,le,block,data=/x/y.npz"),
                                        (medmnist, "pathmnist,pe,pixel,augment=owner"),
                                        (huang2022, "densenet121,huang2022,pixel,data=a.npz")])
def test_configs_with_their_own_data_refuse_the_data_settings(module, arg):
  with pytest.raises(ValueError, match=r"(data|augment)= is not a setting of the (medmnist|"
                     r"huang2022) config .*use --config.data.path"):
    module.get_config(arg)
