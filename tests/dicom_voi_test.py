"""DICOM as PACS exports it: the file's VOI transform (VOI LUT Sequence, LINEAR, LINEAR_EXACT,
SIGMOID) through pydicom, on the DICOM files pydicom ships, against the formulas of DICOM PS3.3
C.11.2 written out here."""

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
from pydicom.data import get_testdata_file  # noqa: E402

from lie_jax.data import images  # noqa: E402


def _mr(tmp_path, name="mr.dcm", **tags):
  """pydicom's MR_small.dcm (16-bit signed, window 600/1600) with `tags` changed, saved."""
  ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
  for key, value in tags.items():
    setattr(ds, key, value)
  ds.save_as(tmp_path / name)
  values = ds.pixel_array.astype(np.float64)  # no rescale in this file
  return tmp_path / name, values, ds


def _to_uint8(y, low, high):
  return np.clip(np.rint((y - low) / (high - low) * 255.0), 0, 255).astype(np.uint8)


def test_linear_window_matches_the_standard(tmp_path):
  path, x, _ = _mr(tmp_path)
  image, how = images.read_dicom(path)
  c, w = 600.0, 1600.0  # C.11.2.1.2.1: linear, clipped to the window
  y = np.clip(((x - (c - 0.5)) / (w - 1) + 0.5), 0, 1) * 255
  assert how == "tags"
  assert np.abs(image[..., 0].astype(int) - np.rint(y).astype(int)).max() <= 1
  assert (image[..., 0] == np.rint(y)).mean() > 0.99


@pytest.mark.parametrize("function", ["SIGMOID", "LINEAR_EXACT"])
def test_voi_lut_functions(tmp_path, function):
  path, x, _ = _mr(tmp_path, VOILUTFunction=function)
  image, how = images.read_dicom(path)
  c, w = 600.0, 1600.0
  if function == "SIGMOID":  # C.11.2.1.3.1
    y = 1.0 / (1.0 + np.exp(-4.0 * (x - c) / w))
  else:  # C.11.2.1.3.2
    y = np.clip((x - c) / w + 0.5, 0, 1)
  expected = np.rint(y * 255).astype(int)
  assert how == "tags"
  assert np.abs(image[..., 0].astype(int) - expected).max() <= 1
  linear, _ = images.read_dicom(_mr(tmp_path, "plain.dcm")[0])
  assert not np.array_equal(image, linear)  # the function is honoured, not ignored


def test_voi_lut_sequence(tmp_path):
  from pydicom.dataset import Dataset
  from pydicom.sequence import Sequence
  first, n = 100, 1024
  lut = (np.sqrt(np.arange(n) / (n - 1)) * 4095).astype(np.uint16)  # a gamma curve, 12 bits
  item = Dataset()
  item.add_new(0x00283002, "US", [n, first, 12])  # LUT Descriptor
  item.add_new(0x00283006, "US", lut.tolist())    # LUT Data
  path, x, _ = _mr(tmp_path, VOILUTSequence=Sequence([item]))
  image, how = images.read_dicom(path)
  # C.11.2.1.1: below the first mapped value -> the first entry, above the last -> the last.
  y = lut[np.clip(x.astype(int) - first, 0, n - 1)].astype(np.float64)
  assert how == "voi_lut"
  np.testing.assert_array_equal(image[..., 0], _to_uint8(y, lut.min(), lut.max()))


def test_an_explicit_window_still_wins(tmp_path):
  path, x, _ = _mr(tmp_path, VOILUTFunction="SIGMOID")
  image, how = images.read_dicom(path, window=(1000.0, 500.0))
  assert how == "fixed"
  np.testing.assert_array_equal(image[..., 0], images.window_to_uint8(x, 1000.0, 500.0))
