"""The Dassl datasets on tiny synthetic data laid out as CoOp expects."""

import json
import os

import pytest

dassl = pytest.importorskip("dassl")

from PIL import Image  # noqa: E402

from dassl.config import get_cfg_default  # noqa: E402
from dassl.data.datasets import DATASET_REGISTRY, Datum, build_dataset  # noqa: E402
from yacs.config import CfgNode  # noqa: E402

import datasets  # noqa: E402,F401  (registers the datasets)
from clipprompt.errors import UserError  # noqa: E402
from clipprompt.prompts.templates import dataset_template  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PET_CLASSES = ["abyssinian", "beagle", "boxer"]  # labels 0, 1, 2
PER_CLASS = {"train": 5, "val": 3, "test": 2}


def write_png(path, value=0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", (4, 4), (value, value, value)).save(path)


def write_split_dataset(image_dir, split_path, classes=PET_CLASSES, per_class=PER_CLASS):
    """PNG images under image_dir and a CoOp split file listing them."""
    split = {}
    for name, count in per_class.items():
        split[name] = []
        for label, classname in enumerate(classes):
            for index in range(count):
                relpath = f"{classname}_{name}_{index}.png"
                write_png(os.path.join(image_dir, relpath), label * 40 + index)
                split[name].append([relpath, label, classname])
    os.makedirs(os.path.dirname(split_path), exist_ok=True)
    with open(split_path, "w") as f:
        json.dump(split, f)
    return split


def make_cfg(root, name, num_shots=-1, seed=1, subsample="all", custom=None):
    cfg = get_cfg_default()
    cfg.VERBOSE = False
    cfg.SEED = seed
    cfg.DATASET.ROOT = str(root)
    cfg.DATASET.NAME = name
    cfg.DATASET.NUM_SHOTS = num_shots
    cfg.DATASET.SUBSAMPLE_CLASSES = subsample
    cfg.DATASET.CUSTOM = CfgNode({"IMAGE_DIR": "", "SPLIT_FILE": "", "TEMPLATE": ""})
    for key, value in (custom or {}).items():
        cfg.DATASET.CUSTOM[key] = value
    return cfg


def counts_by_label(items):
    counts = {}
    for item in items:
        counts[item.label] = counts.get(item.label, 0) + 1
    return counts


@pytest.fixture
def pets_data(tmp_path):
    write_split_dataset(
        str(tmp_path / "oxford_pets" / "images"), str(tmp_path / "oxford_pets" / "split_zhou_OxfordPets.json")
    )
    return tmp_path


# Split-file datasets (OxfordPets stands for the nine of them) ------------------


def test_oxford_pets_full_split(pets_data):
    dataset = build_dataset(make_cfg(pets_data, "OxfordPets"))
    assert (len(dataset.train_x), len(dataset.val), len(dataset.test)) == (15, 9, 6)
    assert dataset.num_classes == 3
    assert dataset.classnames == PET_CLASSES
    assert dataset.template == "a photo of a {}, a type of pet."
    item = dataset.train_x[0]
    assert isinstance(item, Datum)
    assert os.path.isabs(item.impath) and os.path.isfile(item.impath)
    assert item.impath.startswith(str(pets_data / "oxford_pets" / "images"))


def test_oxford_pets_few_shot_is_cached_and_repeatable(pets_data):
    dataset = build_dataset(make_cfg(pets_data, "OxfordPets", num_shots=2, seed=1))
    assert counts_by_label(dataset.train_x) == {0: 2, 1: 2, 2: 2}
    assert counts_by_label(dataset.val) == {0: 2, 1: 2, 2: 2}
    assert len(dataset.test) == 6  # the test split is never sampled
    assert os.path.isfile(pets_data / "oxford_pets" / "split_fewshot" / "shot_2-seed_1.json")

    again = build_dataset(make_cfg(pets_data, "OxfordPets", num_shots=2, seed=1))
    assert [i.impath for i in again.train_x] == [i.impath for i in dataset.train_x]

    # Short classes are used whole, with a warning: 5 train and 3 val images per class.
    with pytest.warns(UserWarning, match="fewer than"):
        dataset = build_dataset(make_cfg(pets_data, "OxfordPets", num_shots=8, seed=1))
    assert counts_by_label(dataset.train_x) == {0: 5, 1: 5, 2: 5}
    assert counts_by_label(dataset.val) == {0: 3, 1: 3, 2: 3}


def test_oxford_pets_base_and_new(pets_data):
    base = build_dataset(make_cfg(pets_data, "OxfordPets", num_shots=2, subsample="base"))
    new = build_dataset(make_cfg(pets_data, "OxfordPets", num_shots=2, subsample="new"))
    assert base.classnames == ["abyssinian", "beagle"]  # ceil(3 / 2) base classes
    assert new.classnames == ["boxer"]
    assert {i.label for i in new.test} == {0}  # relabelled from 2
    assert {i.classname for i in new.test} == {"boxer"}
    assert len(base.test) == 4 and len(new.test) == 2
    # Base and new come from the same few-shot sample.
    full = build_dataset(make_cfg(pets_data, "OxfordPets", num_shots=2))
    assert sorted(i.impath for i in base.train_x + new.train_x) == sorted(i.impath for i in full.train_x)


def test_missing_dataset_folder_and_split_file(tmp_path):
    with pytest.raises(UserError, match="dataset folder not found") as err:
        build_dataset(make_cfg(tmp_path, "OxfordPets"))
    assert str(tmp_path / "oxford_pets") in str(err.value) and "docs/datasets.md" in str(err.value)

    (tmp_path / "caltech-101").mkdir()
    with pytest.raises(UserError, match="split file not found") as err:
        build_dataset(make_cfg(tmp_path, "Caltech101"))
    assert str(tmp_path / "caltech-101" / "split_zhou_Caltech101.json") in str(err.value)


def test_missing_image_and_bad_seed_and_bad_subsample(pets_data):
    os.remove(pets_data / "oxford_pets" / "images" / "beagle_test_1.png")
    with pytest.raises(UserError, match=r"test\[\d+\] = \['beagle_test_1.png'.*names an image file that does not exist"):
        build_dataset(make_cfg(pets_data, "OxfordPets"))
    write_png(pets_data / "oxford_pets" / "images" / "beagle_test_1.png")
    with pytest.raises(UserError, match="SEED"):
        build_dataset(make_cfg(pets_data, "OxfordPets", num_shots=2, seed=-1))
    with pytest.raises(UserError, match="DATASET.SUBSAMPLE_CLASSES"):
        build_dataset(make_cfg(pets_data, "OxfordPets", subsample="half"))


def test_stanford_cars_paths_are_relative_to_the_dataset_folder(tmp_path):
    dataset_dir = tmp_path / "stanford_cars"
    write_split_dataset(str(dataset_dir), str(dataset_dir / "split_zhou_StanfordCars.json"), classes=["a", "b"])
    dataset = build_dataset(make_cfg(tmp_path, "StanfordCars"))
    assert os.path.dirname(dataset.test[0].impath) == str(dataset_dir)
    assert dataset.template == dataset_template("StanfordCars")


# FGVCAircraft (the dataset's own txt files) -----------------------------------


def test_fgvc_aircraft_reads_its_variant_files(tmp_path):
    dataset_dir = tmp_path / "fgvc_aircraft"
    variants = ["707-320", "A300B4", "Cessna 172"]
    (dataset_dir / "images").mkdir(parents=True)
    (dataset_dir / "variants.txt").write_text("\n".join(variants) + "\n")
    image_id = 1000
    for split, count in (("train", 3), ("val", 1), ("test", 2)):
        lines = []
        for variant in variants:
            for _ in range(count):
                write_png(str(dataset_dir / "images" / f"{image_id}.jpg"))
                lines.append(f"{image_id} {variant}")
                image_id += 1
        (dataset_dir / f"images_variant_{split}.txt").write_text("\n".join(lines) + "\n")

    dataset = build_dataset(make_cfg(tmp_path, "FGVCAircraft", num_shots=1, seed=3))
    assert dataset.classnames == variants
    assert counts_by_label(dataset.train_x) == {0: 1, 1: 1, 2: 1}
    assert len(dataset.test) == 6
    assert dataset.template == "a photo of a {}, a type of aircraft."

    (dataset_dir / "images_variant_test.txt").write_text("9999 Concorde\n")
    with pytest.raises(UserError, match="Concorde"):
        build_dataset(make_cfg(tmp_path, "FGVCAircraft"))


# ImageNet and its variants (folder-per-class layouts) --------------------------


WNIDS = {"n01440764": "tench", "n01443537": "goldfish", "n01484850": "great white shark"}


def write_classnames(path, wnids=WNIDS):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.writelines(f"{wnid} {name}\n" for wnid, name in wnids.items())


def write_class_folders(root, folders, per_class):
    for label, folder in enumerate(folders):
        for index in range(per_class):
            write_png(os.path.join(root, folder, f"{folder}_{index}.JPEG"), label)


@pytest.fixture
def imagenet_root(tmp_path):
    dataset_dir = tmp_path / "imagenet"
    write_classnames(str(dataset_dir / "classnames.txt"))
    write_class_folders(str(dataset_dir / "images" / "train"), WNIDS, 4)
    write_class_folders(str(dataset_dir / "images" / "val"), WNIDS, 2)
    return tmp_path


def test_imagenet_folders_val_is_test_and_scan_is_cached(imagenet_root):
    dataset = build_dataset(make_cfg(imagenet_root, "ImageNet", num_shots=2, seed=1))
    assert dataset.classnames == ["tench", "goldfish", "great white shark"]  # sorted wnid order
    assert counts_by_label(dataset.train_x) == {0: 2, 1: 2, 2: 2}
    assert len(dataset.test) == 6 and dataset.val is dataset.test
    cache_path = imagenet_root / "imagenet" / "image_list_cache.json"
    assert cache_path.is_file()

    # A changed class folder invalidates the scan cache. Set its mtime explicitly:
    # the file system clock may not tick between creating and adding a file.
    class_dir = imagenet_root / "imagenet" / "images" / "val" / "n01443537"
    write_png(str(class_dir / "extra.JPEG"))
    stat = os.stat(class_dir)
    os.utime(class_dir, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    dataset = build_dataset(make_cfg(imagenet_root, "ImageNet"))
    assert len(dataset.test) == 7 and len(dataset.train_x) == 12


def test_imagenet_base_new_and_missing_classnames(imagenet_root):
    new = build_dataset(make_cfg(imagenet_root, "ImageNet", subsample="new"))
    assert new.classnames == ["great white shark"]
    assert new.val is new.test and len(new.test) == 2
    os.remove(imagenet_root / "imagenet" / "classnames.txt")
    with pytest.raises(UserError, match="classnames.txt"):
        build_dataset(make_cfg(imagenet_root, "ImageNet"))


def test_imagenet_a_is_test_only_with_its_subset_of_classes(imagenet_root):
    # Two of the three classes, and no classnames.txt of its own: ImageNet's is used.
    write_class_folders(str(imagenet_root / "imagenet-adversarial" / "imagenet-a"), ["n01443537", "n01484850"], 3)
    (imagenet_root / "imagenet-adversarial" / "imagenet-a" / "README.txt").write_text("ignored")
    dataset = build_dataset(make_cfg(imagenet_root, "ImageNetA", num_shots=1))
    assert dataset.classnames == ["goldfish", "great white shark"]
    assert counts_by_label(dataset.test) == {0: 3, 1: 3}
    assert dataset.train_x is dataset.test and dataset.val is None  # NUM_SHOTS ignored
    assert not (imagenet_root / "imagenet-adversarial" / "split_fewshot").exists()


def test_imagenetv2_folders_are_named_by_label(tmp_path):
    dataset_dir = tmp_path / "imagenetv2"
    write_classnames(str(dataset_dir / "classnames.txt"))
    write_class_folders(str(dataset_dir / "imagenetv2-matched-frequency-format-val"), ["0", "1", "2"], 2)
    dataset = build_dataset(make_cfg(tmp_path, "ImageNetV2"))
    assert dataset.classnames == ["tench", "goldfish", "great white shark"]
    assert all(os.path.basename(os.path.dirname(i.impath)) == str(i.label) for i in dataset.test)


# CustomDataset -------------------------------------------------------------------


def test_custom_dataset_relative_paths_template_and_few_shot(tmp_path):
    write_split_dataset(
        str(tmp_path / "mine" / "pics"),
        str(tmp_path / "mine" / "split.json"),
        classes=["red", "green"],
        per_class={"train": 4, "test": 1},  # no val
    )
    custom = {"IMAGE_DIR": "mine/pics", "SPLIT_FILE": "mine/split.json"}
    dataset = build_dataset(make_cfg(tmp_path, "CustomDataset", custom=custom))
    assert dataset.classnames == ["red", "green"]
    assert (len(dataset.train_x), len(dataset.test)) == (8, 2)
    assert dataset.val is None
    assert dataset.template == "a photo of a {}."

    custom["TEMPLATE"] = "a {} thing."
    dataset = build_dataset(make_cfg(tmp_path, "CustomDataset", num_shots=3, seed=2, custom=custom))
    assert dataset.template == "a {} thing."
    assert counts_by_label(dataset.train_x) == {0: 3, 1: 3}
    assert (tmp_path / "mine" / "split_fewshot" / "split" / "shot_3-seed_2.json").is_file()
    assert dataset.ensemble_templates is None  # "dataset_ensemble" then falls back to CoOp's set

    custom["ENSEMBLE_TEMPLATES"] = ["a {} thing.", "an old {}."]
    dataset = build_dataset(make_cfg(tmp_path, "CustomDataset", custom=custom))
    assert dataset.ensemble_templates == ["a {} thing.", "an old {}."]


def test_custom_dataset_config_errors(tmp_path):
    with pytest.raises(UserError, match="DATASET.CUSTOM.IMAGE_DIR is not set"):
        build_dataset(make_cfg(tmp_path, "CustomDataset"))
    (tmp_path / "pics").mkdir()
    with pytest.raises(UserError, match="DATASET.CUSTOM.SPLIT_FILE not found") as err:
        build_dataset(make_cfg(tmp_path, "CustomDataset", custom={"IMAGE_DIR": "pics", "SPLIT_FILE": "s.json"}))
    assert str(tmp_path / "s.json") in str(err.value)
    (tmp_path / "s.json").write_text('{"train": [], "test": []}')
    with pytest.raises(UserError, match="DATASET.CUSTOM.TEMPLATE"):
        build_dataset(
            make_cfg(
                tmp_path,
                "CustomDataset",
                custom={"IMAGE_DIR": str(tmp_path / "pics"), "SPLIT_FILE": "s.json", "TEMPLATE": "no slot"},
            )
        )
    with pytest.raises(UserError, match="DATASET.CUSTOM.ENSEMBLE_TEMPLATES: .*'no slot'"):
        build_dataset(
            make_cfg(
                tmp_path,
                "CustomDataset",
                custom={"IMAGE_DIR": str(tmp_path / "pics"), "SPLIT_FILE": "s.json",
                        "ENSEMBLE_TEMPLATES": ["a {}.", "no slot"]},
            )
        )


def test_custom_dataset_through_dassl_data_manager(tmp_path):
    from dassl.data import DataManager

    write_split_dataset(str(tmp_path / "pics"), str(tmp_path / "split.json"), classes=["a", "b", "c"])
    cfg = make_cfg(
        tmp_path, "CustomDataset", num_shots=2, subsample="base", custom={"IMAGE_DIR": "pics", "SPLIT_FILE": "split.json"}
    )
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.DATALOADER.TRAIN_X.BATCH_SIZE = 2
    cfg.INPUT.SIZE = (8, 8)
    dm = DataManager(cfg)
    assert dm.num_classes == 2 and dm.lab2cname == {0: "a", 1: "b"}
    batch = next(iter(dm.train_loader_x))
    assert tuple(batch["img"].shape) == (2, 3, 8, 8)


# Registry and configs ------------------------------------------------------------


def test_every_coop_dataset_config_names_a_registered_dataset():
    # The configs of this data layer (other modules may add their own).
    expected = [
        "caltech101", "dtd", "eurosat", "fgvc_aircraft", "food101", "imagenet", "imagenet_a", "imagenet_r",
        "imagenet_sketch", "imagenetv2", "oxford_flowers", "oxford_pets", "stanford_cars", "sun397", "ucf101",
        "custom",
    ]
    registered = set(DATASET_REGISTRY.registered_names())
    names = {}
    for stem in expected:
        with open(os.path.join(REPO, "configs", "datasets", f"{stem}.yaml")) as f:
            names[stem] = CfgNode.load_cfg(f).DATASET.NAME
    assert {stem: name for stem, name in names.items() if name not in registered} == {}
    assert names["dtd"] == "DescribableTextures" and names["imagenet_a"] == "ImageNetA"
    assert len(set(names.values())) == len(expected)
