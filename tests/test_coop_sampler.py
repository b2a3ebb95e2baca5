"""DATASET.FEWSHOT_SAMPLER coop against the installed Dassl: CoOp's images for a seed, CoOp's pickles."""

import json
import os
import pickle
import random
import shutil

import pytest

dassl = pytest.importorskip("dassl")

from PIL import Image  # noqa: E402

from dassl.config import get_cfg_default  # noqa: E402
from dassl.data.datasets import DatasetBase, Datum, build_dataset  # noqa: E402
from dassl.utils import set_random_seed  # noqa: E402

import datasets  # noqa: E402,F401  (registers the datasets)
from clipprompt.config import extend_cfg  # noqa: E402
from clipprompt.errors import UserError  # noqa: E402

CLASSES = ["abyssinian", "beagle", "boxer", "chihuahua", "pug"]
# Uneven classes, one short of 4 shots in train and val; interleaved and shuffled below so
# that the split-file order (which CoOp's draw depends on) is not sorted.
TRAIN_COUNTS, VAL_COUNTS, TEST_COUNT = [9, 7, 3, 8, 11], [5, 3, 4, 6, 5], 2
SHOTS = 4


def write_coop_dataset(dataset_dir):
    """Tiny PNGs under ``images/`` and ``split_zhou_OxfordPets.json`` in a shuffled order."""
    image_dir = os.path.join(dataset_dir, "images")
    os.makedirs(image_dir, exist_ok=True)
    split, rng = {}, random.Random(0)
    for name, counts in (("train", TRAIN_COUNTS), ("val", VAL_COUNTS), ("test", [TEST_COUNT] * len(CLASSES))):
        entries = []
        for label, (classname, count) in enumerate(zip(CLASSES, counts)):
            for index in range(count):
                relpath = f"{classname}_{name}_{index}.png"
                Image.new("RGB", (4, 4), (label * 40, index, 0)).save(os.path.join(image_dir, relpath))
                entries.append([relpath, label, classname])
        rng.shuffle(entries)
        split[name] = entries
    with open(os.path.join(dataset_dir, "split_zhou_OxfordPets.json"), "w") as f:
        json.dump(split, f)
    return image_dir, split


def upstream_fewshot(split, image_dir, seed):
    """Upstream CoOp's OxfordPets: its read_split (Datum per entry, file order), train.py's
    set_random_seed, then Dassl's generate_fewshot_dataset on train, then on val with min(K, 4)."""
    train, val = ([Datum(os.path.join(image_dir, p), int(y), domain=0, classname=c) for p, y, c in split[name]]
                  for name in ("train", "val"))
    set_random_seed(seed)
    dassl_dataset = DatasetBase.__new__(DatasetBase)  # only its sampling method is used
    train = dassl_dataset.generate_fewshot_dataset(train, num_shots=SHOTS)
    val = dassl_dataset.generate_fewshot_dataset(val, num_shots=min(SHOTS, 4))
    return train, val


def make_cfg(root, seed, sampler="coop", subsample="all"):
    cfg = get_cfg_default()
    extend_cfg(cfg)
    cfg.VERBOSE = False
    cfg.SEED = seed
    cfg.DATASET.ROOT = str(root)
    cfg.DATASET.NAME = "OxfordPets"
    cfg.DATASET.NUM_SHOTS = SHOTS
    cfg.DATASET.SUBSAMPLE_CLASSES = subsample
    cfg.DATASET.FEWSHOT_SAMPLER = sampler
    return cfg


def rows(items):
    return [(item.impath, item.label, item.classname) for item in items]


@pytest.fixture
def coop_data(tmp_path):
    image_dir, split = write_coop_dataset(str(tmp_path / "oxford_pets"))
    return tmp_path, image_dir, split


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_coop_mode_picks_the_files_upstream_picks(coop_data, seed):
    root, image_dir, split = coop_data
    ref_train, ref_val = upstream_fewshot(split, image_dir, seed)
    random.seed(12345)  # whatever ran before dataset building, the sample does not depend on it
    [random.random() for _ in range(7)]
    with pytest.warns(UserWarning) as caught:
        ours = build_dataset(make_cfg(root, seed))
    short = sorted(str(w.message).split(": ")[-1] for w in caught if "fewer than" in str(w.message))
    assert short == ["'beagle' (3)", "'boxer' (3)"]  # val's and train's short classes
    assert rows(ours.train_x) == rows(ref_train)  # the same files, in the same order
    assert rows(ours.val) == rows(ref_val)
    assert len(ours.test) == TEST_COUNT * len(CLASSES)

    # Base/new halves are cut after sampling, as upstream does: 3 base, 2 new classes.
    for subsample, labels in (("base", [0, 1, 2]), ("new", [3, 4])):
        half = build_dataset(make_cfg(root, seed, subsample=subsample))
        relabel = {y: i for i, y in enumerate(labels)}
        expected = [(d.impath, relabel[d.label], d.classname) for d in ref_train if d.label in relabel]
        assert rows(half.train_x) == expected

    # The cache is CoOp's own file: plain pickle (upstream's reader) gets Dassl Datums, absolute paths.
    path = root / "oxford_pets" / "split_fewshot" / f"shot_{SHOTS}-seed_{seed}.pkl"
    with open(path, "rb") as f:
        cached = pickle.load(f)
    assert set(cached) == {"train", "val"}
    assert all(isinstance(d, Datum) for d in cached["train"] + cached["val"])
    assert rows(cached["train"]) == rows(ref_train) and rows(cached["val"]) == rows(ref_val)


def test_private_default_draws_other_files_and_keeps_its_json_cache(coop_data):
    root, image_dir, split = coop_data
    ref_train, _ = upstream_fewshot(split, image_dir, 1)
    with pytest.warns(UserWarning, match="fewer than"):
        private = build_dataset(make_cfg(root, 1, sampler="private"))
    assert sorted(rows(private.train_x)) != sorted(rows(ref_train))
    assert sorted(os.listdir(root / "oxford_pets" / "split_fewshot")) == [f"shot_{SHOTS}-seed_1.json"]
    with pytest.raises(UserError, match="DATASET.FEWSHOT_SAMPLER"):
        build_dataset(make_cfg(root, 1, sampler="global"))


def test_a_coop_pickle_from_another_machine_is_relocated(coop_data, tmp_path_factory):
    root, image_dir, split = coop_data
    # The author's copy of the data, with its own absolute paths; it is gone by the time we read the pickle.
    author_dir = tmp_path_factory.mktemp("author") / "home" / "someone" / "data" / "oxford_pets"
    shutil.copytree(root / "oxford_pets", author_dir)
    author_train, author_val = upstream_fewshot(split, os.path.join(author_dir, "images"), 2)
    fewshot_dir = root / "oxford_pets" / "split_fewshot"
    fewshot_dir.mkdir()
    # Reversed, so the test tells a read cache from a fresh draw.
    with open(fewshot_dir / f"shot_{SHOTS}-seed_2.pkl", "wb") as f:
        pickle.dump({"train": author_train[::-1], "val": author_val}, f, protocol=pickle.HIGHEST_PROTOCOL)
    shutil.rmtree(author_dir)

    ours = build_dataset(make_cfg(root, 2))
    ref_train, ref_val = upstream_fewshot(split, image_dir, 2)
    assert rows(ours.train_x) == rows(ref_train[::-1])
    assert rows(ours.val) == rows(ref_val)
    assert all(d.impath.startswith(image_dir + os.sep) and os.path.isfile(d.impath) for d in ours.train_x)


def test_a_coop_pickle_from_another_split_is_a_user_error(coop_data):
    root, image_dir, split = coop_data
    train, val = upstream_fewshot(split, image_dir, 1)
    fewshot_dir = root / "oxford_pets" / "split_fewshot"
    fewshot_dir.mkdir()
    path = fewshot_dir / f"shot_{SHOTS}-seed_1.pkl"

    relabelled = Datum(train[0].impath, label=(train[0].label + 1) % len(CLASSES), classname=train[0].classname)
    with open(path, "wb") as f:
        pickle.dump({"train": [relabelled] + train[1:], "val": val}, f)
    with pytest.raises(UserError, match=f"{path}.*has label"):
        build_dataset(make_cfg(root, 1))

    os.remove(os.path.join(image_dir, os.path.basename(val[0].impath)))
    split["val"] = [e for e in split["val"] if e[0] != os.path.basename(val[0].impath)]
    with open(root / "oxford_pets" / "split_zhou_OxfordPets.json", "w") as f:
        json.dump(split, f)
    with open(path, "wb") as f:
        pickle.dump({"train": train, "val": val}, f)
    with pytest.raises(UserError, match=f"{path}: val image .* is not in the current val split"):
        build_dataset(make_cfg(root, 1))


class _RunsShell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_coop_pickle_is_refused_before_it_runs(coop_data):
    root, image_dir, split = coop_data
    train, val = upstream_fewshot(split, image_dir, 1)
    fewshot_dir = root / "oxford_pets" / "split_fewshot"
    fewshot_dir.mkdir()
    marker = root / "ran"
    path = fewshot_dir / f"shot_{SHOTS}-seed_1.pkl"
    with open(path, "wb") as f:
        pickle.dump({"train": train + [_RunsShell(marker)], "val": val}, f)
    with pytest.raises(UserError, match="refusing to load few-shot cache") as err:
        build_dataset(make_cfg(root, 1))
    assert str(path) in str(err.value) and "system" in str(err.value)
    assert not marker.exists()
    assert path.read_bytes()  # left in place for the user to inspect, not overwritten
