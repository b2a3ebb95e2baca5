"""Few-shot sampling, its cache, base/new subsampling and split files (no Dassl)."""

import json
import os
import pickle
import random
import shutil
import warnings

import pytest

from clipprompt.errors import UserError
from clipprompt.data.fewshot import (
    Item,
    check_sampler,
    coop_cache_path,
    fewshot_cache_path,
    load_or_sample_few_shot,
    load_or_sample_few_shot_coop,
    read_coop_cache,
    sample_few_shot,
    sample_few_shot_coop,
    subsample_classes,
)
from clipprompt.data.splits import (
    classes_from_folders,
    read_classnames,
    read_image_folders,
    read_split,
    write_split,
)


def make_items(per_class, root="/data/images"):
    """Items for classes 0..len(per_class)-1 with per_class[i] images each."""
    return [
        Item(os.path.join(root, f"class{label}", f"img{index:03d}.jpg"), label, f"class{label}")
        for label, count in enumerate(per_class)
        for index in range(count)
    ]


def keys(items):
    return [(item.impath, item.label, item.classname) for item in items]


def label_counts(items):
    counts = {}
    for item in items:
        counts[item.label] = counts.get(item.label, 0) + 1
    return counts


# sample_few_shot ------------------------------------------------------------


def test_sample_takes_num_shots_per_class_from_that_class():
    items = make_items([20, 20, 20])
    sampled = sample_few_shot(items, 4, seed=1)
    assert label_counts(sampled) == {0: 4, 1: 4, 2: 4}
    assert set(keys(sampled)) <= set(keys(items))
    assert len(set(keys(sampled))) == len(sampled)  # no duplicates


def test_sample_is_deterministic_for_a_seed_and_differs_across_seeds():
    items = make_items([30] * 5)
    first = sample_few_shot(items, 4, seed=1)
    assert keys(first) == keys(sample_few_shot(items, 4, seed=1))
    assert keys(first) != keys(sample_few_shot(items, 4, seed=2))


def test_sample_ignores_input_order_and_output_is_ordered():
    items = make_items([15] * 4)
    shuffled = list(items)
    random.Random(0).shuffle(shuffled)
    sampled = sample_few_shot(items, 3, seed=7)
    assert keys(sample_few_shot(shuffled, 3, seed=7)) == keys(sampled)
    assert [(i.label, i.impath) for i in sampled] == sorted((i.label, i.impath) for i in sampled)


def test_sample_does_not_touch_the_global_rng():
    random.seed(123)
    expected = random.random()
    random.seed(123)
    sample_few_shot(make_items([10, 10]), 2, seed=5)
    assert random.random() == expected


def test_sample_with_less_than_one_shot_returns_everything():
    items = make_items([3, 5])
    assert keys(sample_few_shot(items, 0, seed=1)) == keys(items)
    assert keys(sample_few_shot(items, -1, seed=1)) == keys(items)


def test_short_classes_are_used_whole_with_one_warning_naming_them():
    items = make_items([10, 2, 10, 1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sampled = sample_few_shot(items, 4, seed=1)
    assert label_counts(sampled) == {0: 4, 1: 2, 2: 4, 3: 1}
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "'class1' (2)" in message and "'class3' (1)" in message
    assert "'class0'" not in message


def test_no_warning_when_every_class_has_enough():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sample_few_shot(make_items([4, 4]), 4, seed=1)


# few-shot cache ---------------------------------------------------------------


def test_cache_is_written_with_relative_paths_and_reused(tmp_path):
    image_dir = str(tmp_path / "images")
    train, val = make_items([10, 10, 10], image_dir), make_items([6, 6, 6], image_dir)
    cache_dir = str(tmp_path / "split_fewshot")
    train_fs, val_fs = load_or_sample_few_shot(train, val, 8, 1, cache_dir, image_dir)
    assert label_counts(train_fs) == {0: 8, 1: 8, 2: 8}
    assert label_counts(val_fs) == {0: 4, 1: 4, 2: 4}  # val: min(num_shots, 4)

    path = fewshot_cache_path(cache_dir, 8, 1)
    assert os.path.basename(path) == "shot_8-seed_1.json"
    with open(path) as f:
        cache = json.load(f)
    assert all(not os.path.isabs(relpath) for relpath, _, _ in cache["train"] + cache["val"])
    assert [e[0] for e in cache["train"]][:1] == [os.path.relpath(train_fs[0].impath, image_dir)]

    # A reused cache gives the same sample even if the sampler would now differ.
    cache["train"] = cache["train"][:3]
    with open(path, "w") as f:
        json.dump(cache, f)
    again, _ = load_or_sample_few_shot(train, val, 8, 1, cache_dir, image_dir)
    assert keys(again) == keys(train_fs[:3])


def test_cache_survives_moving_the_data_folder(tmp_path):
    old_root, new_root = tmp_path / "old", tmp_path / "new"
    old_images = str(old_root / "images")
    train_fs, val_fs = load_or_sample_few_shot(
        make_items([9, 9], old_images), make_items([5, 5], old_images), 3, 2, str(old_root / "split_fewshot"), old_images
    )
    shutil.move(str(old_root), str(new_root))
    new_images = str(new_root / "images")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a reused cache must not warn
        moved_train, moved_val = load_or_sample_few_shot(
            make_items([9, 9], new_images),
            make_items([5, 5], new_images),
            3,
            2,
            str(new_root / "split_fewshot"),
            new_images,
        )
    relocate = lambda items: [(i.impath.replace(str(old_root), str(new_root)), i.label, i.classname) for i in items]
    assert keys(moved_train) == relocate(train_fs)
    assert keys(moved_val) == relocate(val_fs)
    assert all(i.impath.startswith(new_images) for i in moved_train)


def test_stale_cache_from_another_split_is_rebuilt_with_a_warning(tmp_path):
    image_dir = str(tmp_path / "images")
    cache_dir = str(tmp_path / "split_fewshot")
    load_or_sample_few_shot(make_items([10, 10], image_dir), None, 2, 1, cache_dir, image_dir)

    other_train = make_items([10, 10, 10], image_dir)  # a different split
    with pytest.warns(UserWarning, match="different split"):
        train_fs, val_fs = load_or_sample_few_shot(other_train, None, 2, 1, cache_dir, image_dir)
    assert val_fs is None
    assert label_counts(train_fs) == {0: 2, 1: 2, 2: 2}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rebuilt cache now matches
        again, _ = load_or_sample_few_shot(other_train, None, 2, 1, cache_dir, image_dir)
    assert keys(again) == keys(train_fs)


def test_corrupt_cache_is_rebuilt(tmp_path):
    image_dir = str(tmp_path / "images")
    cache_dir = tmp_path / "split_fewshot"
    cache_dir.mkdir()
    (cache_dir / "shot_2-seed_1.json").write_text("{not json")
    with pytest.warns(UserWarning, match="unreadable"):
        train_fs, _ = load_or_sample_few_shot(make_items([5, 5], image_dir), None, 2, 1, str(cache_dir), image_dir)
    assert label_counts(train_fs) == {0: 2, 1: 2}
    assert json.loads((cache_dir / "shot_2-seed_1.json").read_text())["num_shots"] == 2


def test_all_shots_touch_no_cache_and_negative_seed_is_rejected(tmp_path):
    train = make_items([3, 3])
    cache_dir = tmp_path / "split_fewshot"
    assert load_or_sample_few_shot(train, None, -1, 1, str(cache_dir), "/data/images") == (train, None)
    assert not cache_dir.exists()
    with pytest.raises(UserError, match="SEED"):
        load_or_sample_few_shot(train, None, 2, -1, str(cache_dir), "/data/images")


# CoOp's sampler (DATASET.FEWSHOT_SAMPLER coop; against real Dassl: test_coop_sampler.py) -------


def test_coop_sampler_equals_the_global_rng_draw_after_seeding():
    items = make_items([12, 9, 15])
    random.seed(5)
    from_global = sample_few_shot_coop(items, 4, random)  # the random module: CoOp's global RNG
    assert keys(sample_few_shot_coop(items, 4, random.Random(5))) == keys(from_global)
    assert keys(sample_few_shot_coop(items, 4, random.Random(6))) != keys(from_global)
    assert label_counts(from_global) == {0: 4, 1: 4, 2: 4}
    assert len(set(keys(from_global))) == 12 and set(keys(from_global)) <= set(keys(items))


def test_coop_sampler_follows_list_order_unlike_the_private_one():
    items = make_items([10, 10, 10])
    reordered = [it for it in items if it.label == 2] + [it for it in items if it.label != 2]
    sampled = sample_few_shot_coop(reordered, 3, random.Random(1))
    assert [it.label for it in sampled] == [2] * 3 + [0] * 3 + [1] * 3  # classes in order of appearance
    # The same set of files in another order gives other images (CoOp's split-file order matters).
    reversed_within = [it for label in (2, 0, 1) for it in reversed([x for x in items if x.label == label])]
    assert keys(sample_few_shot_coop(reversed_within, 3, random.Random(1))) != keys(sampled)


def test_coop_sampler_short_class_is_kept_whole_without_a_draw():
    items = make_items([10, 10])
    short = [Item("/data/images/rare/a.jpg", 7, "rare"), Item("/data/images/rare/b.jpg", 7, "rare")]
    with pytest.warns(UserWarning, match="'rare' \\(2\\)"):
        sampled = sample_few_shot_coop(short + items, 4, random.Random(3))
    assert keys(sampled[:2]) == keys(short)
    # Dassl draws nothing for a short class, so the other classes get the same images.
    assert keys(sampled[2:]) == keys(sample_few_shot_coop(items, 4, random.Random(3)))


def test_coop_mode_draws_val_after_train_from_the_same_rng(tmp_path):
    image_dir = str(tmp_path / "images")
    train, val = make_items([10, 10], image_dir), make_items([8, 8], image_dir)
    cache_dir = str(tmp_path / "split_fewshot")
    train_fs, val_fs = load_or_sample_few_shot_coop(train, val, 5, 2, cache_dir, image_dir)
    rng = random.Random(2)
    assert keys(train_fs) == keys(sample_few_shot_coop(train, 5, rng))
    assert keys(val_fs) == keys(sample_few_shot_coop(val, 4, rng))  # min(5, 4), continuing the RNG
    assert keys(val_fs) != keys(sample_few_shot_coop(val, 4, random.Random(2)))
    assert os.path.basename(coop_cache_path(cache_dir, 5, 2)) == "shot_5-seed_2.pkl"
    with pytest.raises(UserError, match="SEED"):
        load_or_sample_few_shot_coop(train, val, 5, -1, cache_dir, image_dir)


class _RunsShell:
    """Pickles into a call of os.system, as a malicious shared cache would."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_coop_cache_that_would_run_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "shot_1-seed_1.pkl"
    path.write_bytes(pickle.dumps({"train": [_RunsShell(marker)], "val": []}))
    with pytest.raises(UserError) as err:
        read_coop_cache(str(path))
    message = str(err.value)
    assert str(path) in message and "system" in message and "\n" not in message
    assert not marker.exists()
    # Through the sampler too: the file is refused, not replaced by a new sample.
    with pytest.raises(UserError, match="refusing"):
        load_or_sample_few_shot_coop(make_items([3], str(tmp_path)), None, 1, 1, str(tmp_path), str(tmp_path))
    assert not marker.exists()
    pickle.loads(path.read_bytes())  # the same bytes through plain pickle do run the command
    assert marker.exists()


@pytest.mark.parametrize(
    "payload, expected",
    [
        (pickle.dumps({"train": [Item("/x/a.jpg", 0, "a")]}), "clipprompt.data.splits.Item"),
        (pickle.dumps({"train": [], "extra": (eval, ("1",))}), "refusing"),
        (b"not a pickle", "cannot read"),
        (pickle.dumps(["train"]), "not a CoOp cache"),
        (pickle.dumps({"train": [("/x/a.jpg", 0, "a")]}), "Datum records"),
    ],
)
def test_coop_cache_with_anything_but_datum_records_is_a_user_error(tmp_path, payload, expected):
    path = tmp_path / "shot_1-seed_1.pkl"
    path.write_bytes(payload)
    with pytest.raises(UserError, match=expected) as err:
        read_coop_cache(str(path))
    assert str(path) in str(err.value)


def test_unknown_sampler_is_a_user_error():
    assert check_sampler("coop") == "coop"
    with pytest.raises(UserError, match="DATASET.FEWSHOT_SAMPLER.*private, coop"):
        check_sampler("global")


# base/new subsampling ---------------------------------------------------------


def test_base_gets_ceil_half_of_an_odd_class_count_and_new_the_rest():
    train = make_items([2] * 5)
    test = make_items([1] * 5)
    base_train, base_test = subsample_classes(train, test, subsample="base")
    new_train, new_test = subsample_classes(train, test, subsample="new")
    assert {i.classname for i in base_train} == {"class0", "class1", "class2"}
    assert {i.classname for i in new_train} == {"class3", "class4"}
    assert {i.classname for i in base_test} == {"class0", "class1", "class2"}
    assert {i.classname for i in new_test} == {"class3", "class4"}


def test_subsampling_relabels_in_sorted_order_and_keeps_classnames():
    # Sparse labels, given out of order: base/new is decided on sorted labels.
    train = [Item(f"/d/{label}.jpg", label, name) for label, name in [(7, "g"), (2, "b"), (9, "i"), (4, "d")]]
    (base,) = subsample_classes(train, subsample="base")
    (new,) = subsample_classes(train, subsample="new")
    assert sorted((i.label, i.classname) for i in base) == [(0, "b"), (1, "d")]
    assert sorted((i.label, i.classname) for i in new) == [(0, "g"), (1, "i")]
    assert [i.impath for i in new] == ["/d/7.jpg", "/d/9.jpg"]  # order within a split kept


def test_labels_come_from_the_first_split():
    train = make_items([1, 1])  # labels 0, 1
    test = make_items([1, 1, 1, 1])  # labels 0..3; 2 and 3 are in neither half
    _, new_test = subsample_classes(train, test, subsample="new")
    assert [(i.label, i.classname) for i in new_test] == [(0, "class1")]


def test_subsample_all_none_splits_and_bad_values():
    train, test = make_items([2, 2]), make_items([1, 1])
    assert subsample_classes(train, None, test, subsample="all") == (train, None, test)
    base_train, base_val, _ = subsample_classes(train, None, test, subsample="base")
    assert base_val is None and len(base_train) == 2
    with pytest.raises(UserError, match="DATASET.SUBSAMPLE_CLASSES"):
        subsample_classes(train, subsample="Base")
    with pytest.raises(UserError, match="no classes"):
        subsample_classes(make_items([3]), subsample="new")


def test_subsample_uses_the_item_factory():
    made = []

    def factory(impath, label, classname):
        made.append(label)
        return Item(impath, label, classname)

    subsample_classes(make_items([1, 1, 1]), subsample="base", make_item=factory)
    assert made == [0, 1]


# split files ------------------------------------------------------------------


def test_split_round_trip_gives_absolute_paths(tmp_path):
    image_dir = str(tmp_path / "images")
    train, val, test = make_items([2, 2], image_dir), make_items([1, 1], image_dir), make_items([3, 3], image_dir)
    path = str(tmp_path / "split_zhou_Toy.json")
    write_split(path, train, val, test, image_dir)
    with open(path) as f:
        raw = json.load(f)
    assert raw["train"][0] == ["class0/img000.jpg", 0, "class0"]
    got = read_split(path, image_dir)
    assert [keys(split) for split in got] == [keys(train), keys(val), keys(test)]


def test_read_split_missing_file_names_path_and_docs(tmp_path):
    path = str(tmp_path / "split_zhou_OxfordPets.json")
    with pytest.raises(UserError, match="split file not found") as err:
        read_split(path, str(tmp_path))
    assert path in str(err.value) and "docs/datasets.md" in str(err.value)


@pytest.mark.parametrize(
    "content, expected",
    [
        ("{oops", "not valid JSON"),
        ("[]", "JSON object"),
        ('{"train": []}', "no 'test'"),
        ('{"train": [["a.jpg", 0]], "test": []}', r"train\[0\]"),
        ('{"train": [], "test": [["a.jpg", "0", "cat"]]}', r"test\[0\]"),
        ('{"train": [["a.jpg", -1, "cat"]], "test": []}', r"train\[0\]"),
    ],
)
def test_read_split_malformed_file_names_file_and_entry(tmp_path, content, expected):
    path = tmp_path / "split.json"
    path.write_text(content)
    with pytest.raises(UserError, match=expected) as err:
        read_split(str(path), str(tmp_path))
    assert str(path) in str(err.value)


def test_read_split_val_is_optional(tmp_path):
    path = tmp_path / "split.json"
    path.write_text(json.dumps({"train": [["a.jpg", 0, "cat"]], "test": [["b.jpg", 0, "cat"]]}))
    train, val, test = read_split(str(path), str(tmp_path))
    assert val == [] and train[0].impath == str(tmp_path / "a.jpg")


# folder-per-class layout ------------------------------------------------------


def test_read_image_folders_and_classnames(tmp_path):
    (tmp_path / "classnames.txt").write_text("n02 goldfish\nn01 great white shark\n")
    for folder, names in {"n01": ["b.jpg", "a.JPEG", "notes.txt"], "n02": ["c.png"]}.items():
        (tmp_path / "train" / folder).mkdir(parents=True)
        for name in names:
            (tmp_path / "train" / folder / name).write_bytes(b"")
    classnames = read_classnames(str(tmp_path / "classnames.txt"))
    assert classnames == {"n02": "goldfish", "n01": "great white shark"}
    classes = classes_from_folders(["n01", "n02"], classnames, "classnames.txt")
    assert classes == [("n01", 0, "great white shark"), ("n02", 1, "goldfish")]
    items = read_image_folders(str(tmp_path / "train"), classes)
    root = str(tmp_path / "train")
    assert keys(items) == [
        (os.path.join(root, "n01", "a.JPEG"), 0, "great white shark"),
        (os.path.join(root, "n01", "b.jpg"), 0, "great white shark"),
        (os.path.join(root, "n02", "c.png"), 1, "goldfish"),
    ]
    with pytest.raises(UserError, match="n03"):
        classes_from_folders(["n01", "n03"], classnames, "classnames.txt")
    with pytest.raises(UserError, match="class folder not found"):
        read_image_folders(str(tmp_path / "train"), [("n09", 0, "x")])
