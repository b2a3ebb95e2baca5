"""FashionMNIST IDX reading, the fixed downstream split, PNG export and the Dassl dataset."""

import gzip
import json
import os

import numpy as np
import pytest

from benchmarks import fashion_mnist as fm
from benchmarks.fashion_mnist import idx as fm_idx
from helpers import write_idx, write_synthetic_idx_root
from clipprompt.errors import UserError


@pytest.fixture
def tiny_root(tmp_path):
    """Gzipped fake IDX files: 20 train and 20 test images per class."""
    return write_synthetic_idx_root(str(tmp_path / "idx"), train_per_class=20, test_per_class=20)


# ---------------------------------------------------------------- IDX reading

@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_round_trip_plain_and_gz(tmp_path, suffix):
    images = np.arange(3 * 28 * 28, dtype=np.int64).reshape(3, 28, 28) % 256
    labels = np.array([7, 0, 9])
    write_idx(str(tmp_path / ("img" + suffix)), images)
    write_idx(str(tmp_path / ("lbl" + suffix)), labels)
    raw = (tmp_path / ("lbl" + suffix)).read_bytes()
    if suffix == ".gz":
        assert raw[:2] == b"\x1f\x8b" and gzip.decompress(raw)[:4] == bytes([0, 0, 8, 1])
    else:
        assert raw[:4] == bytes([0, 0, 8, 1])
    read_images = fm.read_idx(str(tmp_path / ("img" + suffix)), fm.IMAGES_MAGIC)
    read_labels = fm.read_idx(str(tmp_path / ("lbl" + suffix)), fm.LABELS_MAGIC)
    assert read_images.dtype == np.uint8 and read_images.shape == (3, 28, 28)
    np.testing.assert_array_equal(read_images, images.astype(np.uint8))
    np.testing.assert_array_equal(read_labels, labels)


def test_read_idx_header_bytes_follow_the_format(tmp_path):
    # hand-written file: magic 0x00000801, one dim of 2, then two label bytes
    path = tmp_path / "labels"
    path.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 2, 4, 5]))
    np.testing.assert_array_equal(fm.read_idx(str(path), fm.LABELS_MAGIC), [4, 5])


def test_read_idx_rejects_wrong_magic(tmp_path):
    path = str(tmp_path / "labels.gz")
    write_idx(path, np.zeros((2, 28, 28)))  # an images file where labels are expected
    with pytest.raises(UserError, match="magic number 0x00000803, expected 0x00000801"):
        fm.read_idx(path, fm.LABELS_MAGIC)


def test_read_idx_rejects_truncated_payload(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]))  # header says 5 labels, 2 present
    with pytest.raises(UserError, match="header says"):
        fm.read_idx(str(path), fm.LABELS_MAGIC)


def test_read_idx_rejects_broken_gzip(tmp_path):
    path = tmp_path / "labels.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(UserError, match="cannot read IDX file"):
        fm.read_idx(str(path), fm.LABELS_MAGIC)


def test_load_split_shapes_and_labels(tiny_root):
    images, labels = fm.load_split(tiny_root, "test")
    assert images.shape == (200, 28, 28) and images.dtype == np.uint8
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(labels), [20] * 10)


def test_missing_files_error_names_folders_and_how_to_get_them(tmp_path):
    with pytest.raises(UserError) as info:
        fm.load_split(str(tmp_path), "train")
    message = str(info.value)
    assert str(tmp_path) in message
    assert os.path.join(str(tmp_path), "FashionMNIST", "raw") in message
    assert "dataset-fashion-mnist" in message and "torchvision" in message
    assert "\n" not in message


def test_torchvision_layout_found_and_plain_preferred(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    write_synthetic_idx_root(str(raw), 2, 2, gzipped=True)
    write_synthetic_idx_root(str(raw), 2, 2, gzipped=False)  # torchvision keeps both
    files = fm.find_idx_files(str(tmp_path))
    assert files["train"]["images"] == str(raw / "train-images-idx3-ubyte")
    assert files["test"]["labels"] == str(raw / "t10k-labels-idx1-ubyte")


def test_incomplete_folder_is_not_mixed_with_another(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    write_synthetic_idx_root(str(first), 1, 1)
    os.remove(first / "t10k-labels-idx1-ubyte.gz")
    write_synthetic_idx_root(str(second), 1, 1)
    files = fm.find_idx_files([str(first), str(second)])
    assert all(path.startswith(str(second)) for split in files.values() for path in split.values())


def test_idx_search_roots_order(tmp_path):
    root = str(tmp_path)
    assert fm.idx_search_roots(root) == [os.path.join(root, "fashion_mnist"), root, fm.SYSTEM_IDX_DIR]
    assert fm.idx_search_roots(None) == [fm.SYSTEM_IDX_DIR]
    # the dataset folder wins over files directly under the root
    write_synthetic_idx_root(root, 1, 1)
    write_synthetic_idx_root(os.path.join(root, "fashion_mnist"), 1, 1)
    files = fm.find_idx_files(fm.idx_search_roots(root))
    assert os.path.dirname(files["train"]["images"]) == os.path.join(root, "fashion_mnist")


def test_unknown_split_is_a_user_error(tiny_root):
    with pytest.raises(UserError, match="'train' or 'test'"):
        fm.load_split(tiny_root, "val")


def test_classnames_follow_official_labels():
    assert len(fm.CLASSNAMES) == 10
    assert fm.CLASSNAMES[0] == "t-shirt" and fm.CLASSNAMES[9] == "ankle boot"
    assert [fm.CLASSNAMES[i] for i in fm.BASE_LABELS] == ["t-shirt", "trouser", "pullover", "dress", "coat"]


@pytest.mark.skipif(not os.path.isdir(fm.SYSTEM_IDX_DIR), reason="Debian package dataset-fashion-mnist not installed")
def test_real_debian_files_have_the_official_sizes():
    images, labels = fm.load_split(fm.SYSTEM_IDX_DIR, "test")
    assert images.shape == (10000, 28, 28)
    np.testing.assert_array_equal(np.bincount(labels), [1000] * 10)
    split = fm.downstream_split(labels)
    assert [len(split[name]) for name in fm.DOWNSTREAM_SPLITS] == [5000, 1000, 4000]


# ------------------------------------------------------------ downstream split

def _real_like_labels(seed=3):
    # 1,000 per class, shuffled, like the official test split
    return np.random.RandomState(seed).permutation(np.repeat(np.arange(10), 1000))


def test_downstream_split_is_a_disjoint_cover_with_documented_sizes():
    labels = _real_like_labels()
    split = fm.downstream_split(labels, seed=0)
    joined = np.concatenate([split["train"], split["val"], split["test"]])
    assert len(joined) == len(labels) == len(np.unique(joined))
    for name, per_class in (("train", 500), ("val", 100), ("test", 400)):
        np.testing.assert_array_equal(np.bincount(labels[split[name]], minlength=10), [per_class] * 10)


def test_downstream_split_is_fixed_for_a_seed_and_changes_with_it():
    labels = _real_like_labels()
    first, again = fm.downstream_split(labels, seed=0), fm.downstream_split(labels.copy(), seed=0)
    other = fm.downstream_split(labels, seed=1)
    for name in fm.DOWNSTREAM_SPLITS:
        np.testing.assert_array_equal(first[name], again[name])
    assert not np.array_equal(first["test"], other["test"])


def test_downstream_split_json_rows(tiny_root):
    _, labels = fm.load_split(tiny_root, "test")
    rows = fm.downstream_split_json(labels)
    assert sorted(rows) == ["test", "train", "val"]
    assert {label for _, label, _ in rows["val"]} == set(range(10))
    for relpath, label, classname in rows["train"]:
        index = int(relpath[len("test_"):-len(".png")])
        assert labels[index] == label and fm.CLASSNAMES[label] == classname


# --------------------------------------------------------------------- export

def test_export_writes_pngs_and_split_then_skips(tiny_root, tmp_path):
    from PIL import Image

    out = str(tmp_path / "fashion_mnist")
    first = fm.export_downstream_images(tiny_root, out)
    assert first.num_images_written == 200
    with open(first.split_path) as f:
        split = json.load(f)
    assert sum(len(rows) for rows in split.values()) == 200

    images, labels = fm.load_split(tiny_root, "test")
    relpath, label, _ = split["test"][0]
    index = int(relpath[len("test_"):-len(".png")])
    np.testing.assert_array_equal(np.asarray(Image.open(os.path.join(first.image_dir, relpath))), images[index])
    assert label == labels[index]

    mtime = os.path.getmtime(first.split_path)
    second = fm.export_downstream_images(tiny_root, out)
    assert second.num_images_written == 0
    assert os.path.getmtime(first.split_path) == mtime
    assert not [name for name in os.listdir(out) + os.listdir(first.image_dir) if name.startswith(".tmp_")]
    from clipprompt.runtime.files import default_file_mode

    mode = default_file_mode()
    assert os.stat(first.split_path).st_mode & 0o777 == mode
    assert os.stat(os.path.join(first.image_dir, relpath)).st_mode & 0o777 == mode


def test_export_completes_missing_images(tiny_root, tmp_path):
    out = str(tmp_path / "fashion_mnist")
    result = fm.export_downstream_images(tiny_root, out)
    missing = sorted(name for name in os.listdir(result.image_dir) if name.endswith(".png"))[:3]
    for name in missing:
        os.remove(os.path.join(result.image_dir, name))
    assert fm.export_downstream_images(tiny_root, out).num_images_written == 3
    assert all(os.path.isfile(os.path.join(result.image_dir, name)) for name in missing)


def test_export_redoes_an_interrupted_run(tiny_root, tmp_path):
    out = str(tmp_path / "fashion_mnist")
    result = fm.export_downstream_images(tiny_root, out)
    os.remove(os.path.join(result.image_dir, fm.SOURCE_FILENAME))  # as if killed before the end
    assert fm.export_downstream_images(tiny_root, out).num_images_written == 200
    assert fm.export_downstream_images(tiny_root, out).num_images_written == 0


def test_export_from_other_idx_data_replaces_every_png(tiny_root, tmp_path):
    from PIL import Image

    out = str(tmp_path / "fashion_mnist")
    fm.export_downstream_images(tiny_root, out)
    other_root = write_synthetic_idx_root(str(tmp_path / "other"), 20, 20, seed=7)
    result = fm.export_downstream_images(other_root, out)
    assert result.num_images_written == 200
    images, _ = fm.load_split(other_root, "test")
    for index in (0, 101, 199):
        picture = np.asarray(Image.open(os.path.join(result.image_dir, fm.image_filename(index))))
        np.testing.assert_array_equal(picture, images[index])


def test_export_rewrites_a_split_json_for_another_seed(tiny_root, tmp_path):
    out = str(tmp_path / "fashion_mnist")
    result = fm.export_downstream_images(tiny_root, out, seed=0)
    fm.export_downstream_images(tiny_root, out, seed=5)
    with open(result.split_path) as f:
        _, labels = fm.load_split(tiny_root, "test")
        assert json.load(f) == fm.downstream_split_json(labels, seed=5)


# ------------------------------------------------------------- preprocessing

def test_preprocess_matches_dassl_style_test_transform_on_the_png(tiny_root, tmp_path):
    import torch
    import torchvision.transforms as T
    from PIL import Image

    from benchmarks.mini_clip.preprocess import preprocess_images
    from clipprompt.clip.backbone import OPENAI_PIXEL_MEAN, OPENAI_PIXEL_STD

    result = fm.export_downstream_images(tiny_root, str(tmp_path / "out"))
    images, _ = fm.load_split(tiny_root, "test")
    # what Dassl's test transform does with INPUT.SIZE (32, 32), bicubic, CLIP mean/std
    transform = T.Compose([
        T.Resize(32, interpolation=T.InterpolationMode.BICUBIC),
        T.CenterCrop((32, 32)),
        T.ToTensor(),
        T.Normalize(OPENAI_PIXEL_MEAN, OPENAI_PIXEL_STD),
    ])
    indices = [0, 57, 199]
    expected = torch.stack([
        transform(Image.open(os.path.join(result.image_dir, fm.image_filename(i))).convert("RGB")) for i in indices
    ])
    got = preprocess_images(images[indices], 32)
    assert got.shape == (3, 3, 32, 32)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


# --------------------------------------------------------------- Dassl dataset

def _dassl_cfg(root, num_shots, subsample):
    from dassl.config import get_cfg_default

    cfg = get_cfg_default()
    cfg.DATASET.SUBSAMPLE_CLASSES = "all"
    cfg.merge_from_file(os.path.join(os.path.dirname(__file__), "..", "configs", "datasets", "fashion_mnist.yaml"))
    cfg.DATASET.ROOT = root
    cfg.DATASET.NUM_SHOTS = num_shots
    cfg.DATASET.SUBSAMPLE_CLASSES = subsample
    cfg.SEED = 1
    return cfg


@pytest.fixture
def dassl_root(tmp_path, monkeypatch):
    """A Dassl DATASET.ROOT whose fashion_mnist folder holds tiny fake IDX files
    (40 test images per class: 20 train pool, 4 val, 16 test)."""
    monkeypatch.setattr(fm_idx, "SYSTEM_IDX_DIR", str(tmp_path / "no_system_copy"))  # never fall back to real data
    root = tmp_path / "data"
    write_synthetic_idx_root(str(root / "fashion_mnist"), train_per_class=2, test_per_class=40)
    return str(root)


@pytest.mark.parametrize("subsample,labels", [("base", fm.BASE_LABELS), ("new", fm.NEW_LABELS)])
def test_dassl_dataset_base_new_halves_and_few_shot(dassl_root, subsample, labels):
    pytest.importorskip("dassl")
    import datasets.fashion_mnist  # noqa: F401  (registers FashionMNIST)
    from dassl.data.datasets import build_dataset

    dataset = build_dataset(_dassl_cfg(dassl_root, num_shots=4, subsample=subsample))
    expected_names = [fm.CLASSNAMES[i] for i in labels]
    assert dataset.num_classes == 5
    assert [dataset.lab2cname[i] for i in range(5)] == expected_names
    train_counts = np.bincount([item.label for item in dataset.train_x], minlength=5)
    np.testing.assert_array_equal(train_counts, [4] * 5)
    test_names = {item.classname for item in dataset.test}
    assert test_names == set(expected_names)
    assert len(dataset.test) == 5 * 16  # 40% of 40 per class
    np.testing.assert_array_equal(np.bincount([item.label for item in dataset.val], minlength=5), [4] * 5)
    for item in dataset.train_x + dataset.test:
        assert os.path.isfile(item.impath) and item.impath.endswith(".png")
        assert item.classname == expected_names[item.label]


def test_dassl_dataset_uses_downstream_split_only(dassl_root):
    pytest.importorskip("dassl")
    import datasets.fashion_mnist  # noqa: F401
    from dassl.data.datasets import build_dataset

    dataset = build_dataset(_dassl_cfg(dassl_root, num_shots=-1, subsample="all"))
    _, labels = fm.load_split(os.path.join(dassl_root, "fashion_mnist"), "test")
    split = fm.downstream_split(labels)
    test_files = {os.path.basename(item.impath) for item in dataset.test}
    assert test_files == {fm.image_filename(int(i)) for i in split["test"]}
    train_files = {os.path.basename(item.impath) for item in dataset.train_x}
    assert not train_files & test_files


def test_dassl_dataset_reuses_an_export_without_idx_files(dassl_root):
    pytest.importorskip("dassl")
    import datasets.fashion_mnist  # noqa: F401
    from dassl.data.datasets import build_dataset

    first = build_dataset(_dassl_cfg(dassl_root, num_shots=2, subsample="new"))
    folder = os.path.join(dassl_root, "fashion_mnist")
    for name in os.listdir(folder):
        if "ubyte" in name:
            os.remove(os.path.join(folder, name))
    again = build_dataset(_dassl_cfg(dassl_root, num_shots=2, subsample="new"))
    assert [item.impath for item in again.train_x] == [item.impath for item in first.train_x]


def test_dassl_dataset_without_idx_files_names_where_it_looked(tmp_path, monkeypatch):
    pytest.importorskip("dassl")
    import datasets.fashion_mnist  # noqa: F401
    from dassl.data.datasets import build_dataset

    monkeypatch.setattr(fm_idx, "SYSTEM_IDX_DIR", str(tmp_path / "no_system_copy"))
    with pytest.raises(UserError, match="dataset-fashion-mnist") as info:
        build_dataset(_dassl_cfg(str(tmp_path), num_shots=1, subsample="all"))
    assert os.path.join(str(tmp_path), "fashion_mnist") in str(info.value)


def test_dassl_dataset_finds_torchvision_layout_under_root(tmp_path, monkeypatch):
    pytest.importorskip("dassl")
    import datasets.fashion_mnist  # noqa: F401
    from dassl.data.datasets import build_dataset

    monkeypatch.setattr(fm_idx, "SYSTEM_IDX_DIR", str(tmp_path / "no_system_copy"))
    root = tmp_path / "data"
    write_synthetic_idx_root(str(root / "FashionMNIST" / "raw"), train_per_class=1, test_per_class=20)
    dataset = build_dataset(_dassl_cfg(str(root), num_shots=1, subsample="base"))
    assert len(dataset.train_x) == 5
    assert os.path.isfile(os.path.join(str(root), "fashion_mnist", fm.SPLIT_FILENAME))
