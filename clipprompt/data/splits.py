"""Reading and writing dataset splits, Dassl-free.

Two on-disk sources are supported:

* CoOp's split files (``split_zhou_<Dataset>.json``)::

      {"train": [[relpath, label, classname], ...], "val": [...], "test": [...]}

  where ``relpath`` is relative to the dataset's image folder.
* A folder-per-class image layout (ImageNet and its variants), read with
  :func:`read_image_folders`.

Items are duck-typed: anything with ``.impath``, ``.label`` and ``.classname``.
Functions that create items take a ``make_item(impath, label, classname)``
factory so the Dassl side can build ``Datum`` objects; :class:`Item` is the
default.
"""

import json
import os
from collections import OrderedDict
from dataclasses import dataclass

from clipprompt.errors import UserError
from clipprompt.runtime.files import write_json_atomic

SPLIT_NAMES = ("train", "val", "test")

# Extensions accepted when scanning class folders (compared in lower case);
# anything else (README.txt, .DS_Store, ...) is skipped.
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)


@dataclass(frozen=True)
class Item:
    """One labelled image, for code and tests that do not use Dassl's ``Datum``."""

    impath: str
    label: int
    classname: str


def relative_image_path(impath, image_dir):
    """``impath`` relative to ``image_dir``, with ``/`` separators (portable in JSON)."""
    prefix = os.path.join(image_dir, "")
    if impath.startswith(prefix):
        # Fast path: os.path.relpath is slow on ImageNet-sized lists.
        relpath = impath[len(prefix):]
    else:
        relpath = os.path.relpath(impath, image_dir)
    return relpath.replace(os.sep, "/")


def items_to_entries(items, image_dir):
    """Items -> ``[[relpath, label, classname], ...]`` as stored in split files."""
    return [[relative_image_path(item.impath, image_dir), int(item.label), item.classname] for item in items]


def write_split(path, train, val, test, image_dir):
    """Write items in CoOp's split format; ``val`` may be None (written as ``[]``)."""
    split = {
        "train": items_to_entries(train, image_dir),
        "val": items_to_entries(val or [], image_dir),
        "test": items_to_entries(test, image_dir),
    }
    write_json_atomic(path, split)


def load_json_file(path, what="file"):
    """Parse a JSON file; a missing or malformed file is a one-line UserError."""
    if not os.path.isfile(path):
        raise UserError(f"{what} not found: {path} (see docs/datasets.md)")
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise UserError(f"{what} {path} is not valid JSON: {err}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read {what} {path}: {err}") from None


def _short_repr(value, limit=120):
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def entries_to_items(entries, image_dir, make_item, source, split_name):
    """Check the form of ``[[relpath, label, classname], ...]`` and turn it into items
    (what the labels and names mean together is ``validate_splits``' check)."""
    if not isinstance(entries, list):
        raise UserError(f"{source}: '{split_name}' must be a list of [relative_image_path, label, classname]")
    items = []
    for index, entry in enumerate(entries):
        valid = (
            isinstance(entry, (list, tuple))
            and len(entry) == 3
            and isinstance(entry[0], str)
            and entry[0] != ""
            and isinstance(entry[1], int)
            and not isinstance(entry[1], bool)
            and entry[1] >= 0
            and isinstance(entry[2], str)
        )
        if not valid:
            raise UserError(
                f"{source}: bad entry {split_name}[{index}] = {_short_repr(entry)} "
                "(expected [relative_image_path, non-negative integer label, classname])"
            )
        relpath, label, classname = entry
        items.append(make_item(os.path.join(image_dir, relpath), label, classname))
    return items


def read_split(path, image_dir, make_item=Item):
    """Read a CoOp split file -> ``(train, val, test)`` lists of items with absolute paths.

    ``"val"`` may be absent (then it is ``[]``); ``"train"`` and ``"test"`` are required.
    """
    split = load_json_file(path, what="split file")
    if not isinstance(split, dict):
        raise UserError(f"split file {path} must hold a JSON object with keys 'train', 'val', 'test'")
    for key in ("train", "test"):
        if key not in split:
            raise UserError(f"split file {path} has no '{key}' list")
    image_dir = os.path.abspath(os.path.expanduser(image_dir))
    return tuple(
        entries_to_items(split.get(name, []), image_dir, make_item, path, name)
        for name in SPLIT_NAMES
    )


class _FolderListing:
    """Which files exist, one ``os.listdir`` per folder: far cheaper than a stat per image on
    ImageNet-sized splits, so every path of a split can be checked, not only the few-shot draw."""

    def __init__(self):
        self._names = {}

    def exists(self, path):
        folder, name = os.path.split(path)
        names = self._names.get(folder)
        if names is None:
            try:
                names = self._names[folder] = frozenset(os.listdir(folder))
            except OSError:  # missing folder or not a folder
                names = self._names[folder] = frozenset()
        return name in names and os.path.isfile(path)


def _describe(split_name, index, item, image_dir):
    path = relative_image_path(item.impath, image_dir) if image_dir else item.impath
    return f"{split_name}[{index}] = [{path!r}, {item.label}, {item.classname!r}]"


def _first_and_count(offending, what):
    """``"<first entry> <what> (and N more)"`` for a list of entry descriptions."""
    more = len(offending) - 1
    return f"{offending[0]} {what}" + (f" (and {more} more)" if more else "")


def validate_splits(splits, source, image_dir=None, required=("train", "test"), check_images=True):
    """Check a dataset's splits in full before anything trains or writes; a UserError otherwise.

    ``splits`` maps a split name to its items (None or [] for an absent split). The checks:
    the ``required`` splits are non-empty; each label has one class name and each class name one
    label; the labels are ``0..K-1`` with no gap (K distinct labels); every label of a split other
    than train has training images (when train is given); every image file exists (all of them,
    not only a few-shot draw). The message names ``source`` (the split file or folder), the split,
    the first offending entry and how many more, so a wrong label never reaches an evaluation.
    """
    present = {name: items for name, items in splits.items() if items}
    for name in required:
        if name not in present:
            raise UserError(f"{source}: the '{name}' split is empty; it needs at least one image")

    labels = {item.label for items in present.values() for item in items}
    num_classes = len(labels)
    if max(labels) >= num_classes:
        missing = sorted(set(range(max(labels) + 1)) - labels)
        shown = ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else "")
        beyond = [(split_name, index, item) for split_name, items in present.items()
                  for index, item in enumerate(items) if item.label >= num_classes]
        first = beyond[0][2]
        raise UserError(f"{source}: labels must be 0..{num_classes - 1} without a gap ({num_classes} classes; "
                        f"no entry has label {shown}): "
                        + _first_and_count([_describe(*entry, image_dir) for entry in beyond],
                                           f"has label {first.label}")
                        + "; renumber the labels")

    name_of, label_of = {}, {}
    for split_name, items in present.items():
        for index, item in enumerate(items):
            known = name_of.setdefault(item.label, item.classname)
            if known != item.classname:
                raise UserError(f"{source}: {_describe(split_name, index, item, image_dir)}: label {item.label} "
                                f"is also named {known!r}; each label needs one class name")
            other = label_of.setdefault(item.classname, item.label)
            if other != item.label:
                raise UserError(f"{source}: {_describe(split_name, index, item, image_dir)}: class "
                                f"{item.classname!r} also has label {other}; each class name needs one label")

    if "train" in present:
        trained = {item.label for item in present["train"]}
        offending = [_describe(split_name, index, item, image_dir) for split_name, items in present.items()
                     for index, item in enumerate(items) if item.label not in trained]
        if offending:
            raise UserError(f"{source}: " + _first_and_count(offending, "has a class with no training image")
                            + "; every class needs images in 'train'")

    if check_images:
        listing = _FolderListing()
        offending = [_describe(split_name, index, item, image_dir) for split_name, items in present.items()
                     for index, item in enumerate(items) if not listing.exists(item.impath)]
        if offending:
            where = f" under {image_dir}" if image_dir else ""
            raise UserError(f"{source}: " + _first_and_count(offending, f"names an image file that does not exist{where}")
                            + " (check DATASET.ROOT and the folder layout in docs/datasets.md)")
    return num_classes


def read_classnames(path):
    """Read ImageNet's ``classnames.txt`` (``<folder> <class name>`` per line) -> OrderedDict."""
    if not os.path.isfile(path):
        raise UserError(f"class names file not found: {path} (see docs/datasets.md)")
    classnames = OrderedDict()
    with open(path) as f:
        for line_number, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            folder, _, classname = line.partition(" ")
            classname = classname.strip()
            if not classname:
                raise UserError(f"{path}, line {line_number}: expected '<folder> <class name>', got {line!r}")
            classnames[folder] = classname
    if not classnames:
        raise UserError(f"class names file is empty: {path}")
    return classnames


def list_subfolders(folder):
    """Sorted names of the non-hidden sub-folders of ``folder``."""
    if not os.path.isdir(folder):
        raise UserError(f"image folder not found: {folder} (see docs/datasets.md)")
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def list_images(folder):
    """Sorted file names of the images directly in ``folder``."""
    return sorted(
        e.name
        for e in os.scandir(folder)
        if not e.name.startswith(".")
        and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS
        and e.is_file()
    )


def read_image_folders(root, classes, make_item=Item):
    """Items from a folder-per-class layout.

    ``classes`` is an iterable of ``(folder_name, label, classname)``; images are
    read from ``root/<folder_name>/`` in sorted order.
    """
    items = []
    for folder, label, classname in classes:
        class_dir = os.path.join(root, folder)
        if not os.path.isdir(class_dir):
            raise UserError(f"class folder not found: {class_dir} (see docs/datasets.md)")
        for name in list_images(class_dir):
            items.append(make_item(os.path.join(class_dir, name), label, classname))
    return items


def classes_from_folders(folders, classnames, classnames_path):
    """``[(folder, label, classname)]`` with labels = positions in ``folders``.

    ``classnames`` maps folder names to class names (see :func:`read_classnames`).
    """
    classes = []
    for label, folder in enumerate(folders):
        if folder not in classnames:
            raise UserError(f"class folder {folder!r} is not listed in {classnames_path}")
        classes.append((folder, label, classnames[folder]))
    return classes
