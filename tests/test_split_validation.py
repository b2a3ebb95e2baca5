"""clipprompt.data.splits.validate_splits: a split is checked in full when it is read (Dassl-free)."""

import pytest

from clipprompt.errors import UserError
from clipprompt.data.splits import Item, validate_splits


def make_splits(tmp_path, labels_by_split, write=True):
    """``{"train": [(label, name), ...], ...}`` -> items whose image files exist (when ``write``)."""
    splits = {}
    for split, entries in labels_by_split.items():
        items = []
        for index, (label, name) in enumerate(entries):
            path = tmp_path / f"{split}_{index}.png"
            if write:
                path.write_bytes(b"png")
            items.append(Item(str(path), label, name))
        splits[split] = items
    return splits


FOUR = [(0, "a"), (1, "b"), (2, "c"), (3, "d")]


def check(splits, tmp_path, **kw):
    return validate_splits(splits, "split.json", str(tmp_path), **kw)


def test_a_clean_split_passes_and_gives_the_class_count(tmp_path):
    assert check(make_splits(tmp_path, {"train": FOUR * 2, "val": FOUR, "test": FOUR}), tmp_path) == 4
    # val may be absent; a test-only dataset needs no train
    assert check(make_splits(tmp_path, {"train": FOUR, "val": [], "test": FOUR}), tmp_path) == 4
    assert check(make_splits(tmp_path, {"test": FOUR}), tmp_path, required=("test",)) == 4


def test_a_label_beyond_the_classes_names_file_split_entry_and_count(tmp_path):
    splits = make_splits(tmp_path, {"train": FOUR, "test": [*FOUR, (7, "b"), (7, "b")]})
    with pytest.raises(UserError) as info:
        check(splits, tmp_path)
    message = str(info.value)
    assert message.startswith("split.json: labels must be 0..4 without a gap")
    assert "no entry has label 4, 5, 6" in message
    assert "test[4] = ['test_4.png', 7, 'b'] has label 7 (and 1 more)" in message


def test_a_gap_in_the_labels(tmp_path):
    gap = [(0, "a"), (1, "b"), (2, "c"), (5, "d")]
    with pytest.raises(UserError, match=r"labels must be 0\.\.3 .*no entry has label 3, 4\): train\[3\] = .* has label 5 "
                                        r"\(and 1 more\)"):
        check(make_splits(tmp_path, {"train": gap, "test": gap}), tmp_path)


def test_one_name_per_label_and_one_label_per_name(tmp_path):
    with pytest.raises(UserError, match=r"test\[1\] = .*label 1 is also named 'b'"):
        check(make_splits(tmp_path, {"train": FOUR, "test": [(0, "a"), (1, "x")]}), tmp_path)
    with pytest.raises(UserError, match=r"train\[4\] = .*class 'a' also has label 0"):
        check(make_splits(tmp_path, {"train": [*FOUR, (4, "a")], "test": FOUR}), tmp_path)


def test_every_class_needs_training_images(tmp_path):
    splits = make_splits(tmp_path, {"train": FOUR[:3], "val": FOUR, "test": FOUR})
    with pytest.raises(UserError, match=r"val\[3\] = .*has a class with no training image \(and 1 more\)"):
        check(splits, tmp_path)


@pytest.mark.parametrize("empty", ["train", "test"])
def test_train_and_test_must_not_be_empty(tmp_path, empty):
    labels = {"train": FOUR, "test": FOUR}
    labels[empty] = []
    with pytest.raises(UserError, match=f"the '{empty}' split is empty"):
        check(make_splits(tmp_path, labels), tmp_path)


def test_every_image_is_checked_not_a_draw(tmp_path):
    splits = make_splits(tmp_path, {"train": FOUR * 3, "test": FOUR})
    for index in (5, 9):
        (tmp_path / f"train_{index}.png").unlink()
    with pytest.raises(UserError, match=r"train\[5\] = \['train_5.png', 1, 'b'\] names an image file that does not exist "
                                        r"under .* \(and 1 more\)"):
        check(splits, tmp_path)
    # a folder in place of a file is no image either
    (tmp_path / "train_5.png").mkdir()
    (tmp_path / "train_9.png").write_bytes(b"png")
    with pytest.raises(UserError, match=r"train\[5\] .*does not exist"):
        check(splits, tmp_path)
