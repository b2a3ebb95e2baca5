"""benchmarks/fashion_colours.py and datasets/fashion_colours.py: 60 coloured FashionMNIST classes."""

import colorsys
import json
import os

import numpy as np
import pytest

from benchmarks import fashion_colours as fc
from benchmarks import fashion_mnist as fm
from benchmarks.fashion_mnist import idx as fm_idx
from helpers import write_synthetic_idx_root


def _hue_of(rgb_image):
    """Mean hue (degrees, circular) of the bright pixels of a uint8 RGB image."""
    pixels = np.asarray(rgb_image, dtype=np.float64).reshape(-1, 3) / 255.0
    bright = pixels[pixels.max(axis=1) > 0.4]
    hues = np.array([colorsys.rgb_to_hsv(*p)[0] for p in bright]) * 2 * np.pi
    return np.degrees(np.arctan2(np.sin(hues).mean(), np.cos(hues).mean())) % 360


def _hue_distance(a, b):
    return abs((a - b + 180) % 360 - 180)


@pytest.fixture(scope="module")
def idx_root(tmp_path_factory):
    return write_synthetic_idx_root(str(tmp_path_factory.mktemp("idx")), train_per_class=2, test_per_class=60)


# ------------------------------------------------------------------ classes

def test_sixty_classes_base_first_and_halves_share_no_word():
    from clipprompt.data.fewshot import subsample_classes
    from clipprompt.data.splits import Item

    assert fc.NUM_CLASSES == 60 and len(set(fc.CLASSNAMES)) == 60
    items = [Item(f"{label}.png", label, name) for label, name in enumerate(fc.CLASSNAMES)]
    (base,) = subsample_classes(items, subsample="base")  # CoOp's rule: sorted labels, first half
    (new,) = subsample_classes(items, subsample="new")
    assert [item.classname for item in base] == fc.CLASSNAMES[:30]
    assert [item.classname for item in new] == fc.CLASSNAMES[30:]
    base_words = {w for item in base for w in item.classname.split()}
    new_words = {w for item in new for w in item.classname.split()}
    assert not base_words & new_words
    assert "orange coat" in fc.CLASSNAMES[30:] and "red t-shirt" in fc.CLASSNAMES[:30]


def test_each_half_draws_its_own_hues_in_three_neighbouring_pairs():
    """No new class shares its colour with a base class, but every new hue is a base hue's neighbour."""
    half = fc.NUM_CLASSES // 2
    assert sorted({colour for _, colour in fc.CLASSES[:half]}) == sorted(fc.BASE_HUES)
    assert sorted({colour for _, colour in fc.CLASSES[half:]}) == sorted(fc.NEW_HUES)
    assert not set(fc.BASE_HUES) & set(fc.NEW_HUES)
    for half_hues in (fc.BASE_HUES, fc.NEW_HUES):
        hues = [fc.PALETTE[c][1] for c in half_hues]
        nearest = [min(_hue_distance(h, other) for other in hues if other != h) for h in hues]
        assert nearest == [30] * 6  # every hue has its look-alike within its half
        assert len({frozenset((a, b)) for a in hues for b in hues if _hue_distance(a, b) == 30}) == 3
    base_angles = [fc.PALETTE[c][1] for c in fc.BASE_HUES]
    for colour in fc.NEW_HUES:
        assert min(_hue_distance(fc.PALETTE[colour][1], b) for b in base_angles) == 30
    for item, colour in fc.CLASSES:
        assert fc.CLASSNAMES[fc.LABEL_OF[(item, colour)]] == f"{fc.COLOUR_NAMES[colour]} {fc.ITEM_NAMES[item]}"


def test_base_half_does_not_depend_on_the_new_half(monkeypatch):
    """Choices made on base classes carry over between designs that differ only in the new half."""
    item_labels = np.repeat(np.arange(10), 24)
    before = fc.assign_colours(item_labels, seed=3)
    design_e_new_hues = [0, 3, 4, 7, 8, 11]  # design E: the new half in the base half's hues
    new_labels = {(item, colour): 30 + 6 * i + j for i, item in enumerate(fc.NEW_ITEMS)
                  for j, colour in enumerate(design_e_new_hues)}
    monkeypatch.setattr(fc, "NEW_HUES", design_e_new_hues)
    monkeypatch.setattr(fc, "LABEL_OF", {**fc.LABEL_OF, **new_labels})
    after = fc.assign_colours(item_labels, seed=3)
    base = np.isin(item_labels, fc.BASE_ITEMS)
    colour_of = {label: colour for (_, colour), label in new_labels.items()}
    assert {colour_of[label] for label in after[0][~base]} == set(design_e_new_hues)  # the patch took effect
    assert np.array_equal(before[0][base], after[0][base])
    assert np.array_equal(before[1], after[1]) and np.array_equal(before[2], after[2])
    split_before = fm.downstream_split(before[0], seed=3)
    split_after = fm.downstream_split(after[0], seed=3)
    for name in split_before:
        assert [i for i in split_before[name] if base[i]] == [i for i in split_after[name] if base[i]]


def test_each_half_holds_clothes_and_shoes():
    """Items are split across FashionMNIST's label order, so neither half is only shoes."""
    shoes = {5, 7, 9}  # sandal, sneaker, ankle boot
    assert sorted(fc.BASE_ITEMS + fc.NEW_ITEMS) == list(range(10))
    for items in (fc.BASE_ITEMS, fc.NEW_ITEMS):
        assert set(items) & shoes and set(items) - shoes - {8}


# ---------------------------------------------------------------- rendering

def test_colourise_keeps_background_black_and_shape():
    gray = np.zeros((1, 28, 28), np.uint8)
    gray[0, 5:20, 8:14] = 200
    rgb = fc.colour_rgb([0], [0.0], [1.0])  # pure red
    out = fc.colourise(gray, rgb)
    assert out.shape == (1, 28, 28, 3) and out.dtype == np.uint8
    assert out[0][gray[0] == 0].max() == 0
    np.testing.assert_array_equal(out[0, 5:20, 8:14], np.broadcast_to([200, 0, 0], (15, 6, 3)))


def test_assign_colours_is_balanced_deterministic_and_keeps_each_item():
    item_labels = np.repeat(np.arange(10), 61)
    labels, offsets, saturations = fc.assign_colours(item_labels, seed=0)
    again, offsets_again, _ = fc.assign_colours(item_labels, seed=0)
    other, _, _ = fc.assign_colours(item_labels, seed=1)
    np.testing.assert_array_equal(labels, again)
    np.testing.assert_array_equal(offsets, offsets_again)
    assert (labels != other).any()
    counts = np.bincount(labels, minlength=60)
    assert counts.min() >= 10 and counts.max() <= 11  # 61 images of an item over its 6 colours
    for label, item in zip(labels, item_labels):
        assert fc.CLASSES[label][0] == item
    assert np.abs(offsets).max() <= fc.HUE_JITTER
    assert fc.SATURATION_RANGE[0] <= saturations.min() and saturations.max() <= fc.SATURATION_RANGE[1]


def test_colour_survives_the_trainers_transforms(idx_root):
    """The class colour is readable after random crops, flips and the resize to 32x32."""
    import torchvision.transforms as T
    from PIL import Image

    downstream = fc.load_downstream(idx_root)
    transform = T.Compose([T.RandomResizedCrop(32, scale=(0.08, 1.0), interpolation=T.InterpolationMode.BICUBIC),
                           T.RandomHorizontalFlip()])
    indices = downstream.split["train"][:40]
    for index, image in zip(indices, downstream.images(indices)):
        picture = Image.fromarray(image)
        for _ in range(3):
            crop = np.asarray(transform(picture))
            if (crop.max(axis=2) > 102).sum() < 5:  # a crop of pure background shows no colour
                continue
            hue = _hue_of(crop)
            distances = [_hue_distance(hue, fc.PALETTE[c][1]) for c in range(len(fc.PALETTE))]
            assert int(np.argmin(distances)) == fc.CLASSES[downstream.labels[index]][1]


# -------------------------------------------------------------------- export

def test_export_writes_rgb_pngs_of_the_official_test_split_then_skips(idx_root, tmp_path):
    from PIL import Image

    out = str(tmp_path / "fashion_colours")
    first = fc.export_downstream_images(idx_root, out)
    assert first.num_images_written == 600
    with open(first.split_path) as f:
        split = json.load(f)
    assert os.path.basename(first.split_path) == fc.SPLIT_FILENAME
    images, item_labels = fm.load_split(idx_root, "test")
    relpath, label, classname = split["test"][0]
    index = fm.image_index(relpath)
    png = np.asarray(Image.open(os.path.join(first.image_dir, relpath)))
    assert png.shape == (28, 28, 3)
    assert fc.CLASSES[label][0] == item_labels[index] and fc.CLASSNAMES[label] == classname
    np.testing.assert_array_equal(png.max(axis=2) > 0, images[index] > 0)  # same item, coloured
    assert fc.export_downstream_images(idx_root, out).num_images_written == 0
    assert fc.export_downstream_images(idx_root, out, seed=1).num_images_written == 600  # other colours


# ------------------------------------------------------------- Dassl dataset

def _dassl_cfg(root, num_shots, subsample):
    from dassl.config import get_cfg_default

    cfg = get_cfg_default()
    cfg.merge_from_file(os.path.join(os.path.dirname(__file__), "..", "configs", "datasets", "fashion_colours.yaml"))
    cfg.DATASET.ROOT = root
    cfg.DATASET.NUM_SHOTS = num_shots
    cfg.DATASET.SUBSAMPLE_CLASSES = subsample
    cfg.SEED = 1
    return cfg


@pytest.mark.parametrize("subsample,labels", [("base", fc.BASE_LABELS), ("new", fc.NEW_LABELS)])
def test_dassl_dataset_halves_and_few_shot(tmp_path, monkeypatch, subsample, labels):
    pytest.importorskip("dassl")
    import datasets.fashion_colours  # noqa: F401  (registers FashionColours)
    from dassl.data.datasets import build_dataset

    monkeypatch.setattr(fm_idx, "SYSTEM_IDX_DIR", str(tmp_path / "no_system_copy"))
    root = tmp_path / "data"
    write_synthetic_idx_root(str(root / "fashion_mnist"), train_per_class=1, test_per_class=60)
    dataset = build_dataset(_dassl_cfg(str(root), num_shots=1, subsample=subsample))
    names = [fc.CLASSNAMES[i] for i in labels]
    assert dataset.num_classes == 30
    assert [dataset.lab2cname[i] for i in range(30)] == names
    np.testing.assert_array_equal(np.bincount([item.label for item in dataset.train_x], minlength=30), [1] * 30)
    assert {item.classname for item in dataset.test} == set(names)
    assert os.path.isfile(root / "fashion_colours" / fc.SPLIT_FILENAME)
