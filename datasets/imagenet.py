import hashlib
import json
import os
import warnings

from dassl.data.datasets import DATASET_REGISTRY

from clipprompt.data.splits import (
    Item,
    classes_from_folders,
    list_images,
    list_subfolders,
    read_classnames,
    read_image_folders,
)
from clipprompt.errors import UserError
from clipprompt.runtime.files import write_json_atomic

from .base import CoOpDataset

CLASSNAMES_FILE = "classnames.txt"


class ImageNetFolders(CoOpDataset):
    """Shared by ImageNet and its variants: class names from ``classnames.txt``."""

    def classnames_path(self):
        """The dataset's own ``classnames.txt``, else ImageNet's (CoOp has users copy it)."""
        own = os.path.join(self.dataset_dir, CLASSNAMES_FILE)
        if os.path.isfile(own):
            return own
        imagenet = os.path.join(os.path.dirname(self.dataset_dir), ImageNet.dataset_dir, CLASSNAMES_FILE)
        if os.path.isfile(imagenet):
            return imagenet
        raise UserError(f"class names file not found: {own} (copy it from {imagenet}; see docs/datasets.md)")


@DATASET_REGISTRY.register()
class ImageNet(ImageNetFolders):
    """ImageNet-1k: ``images/train`` and ``images/val`` (folders named by WordNet id).

    As in CoOp the official val set is the test set, and also the val split.
    Labels are positions of the class folders of ``images/train`` in sorted
    order. The folder scan is cached in ``image_list_cache.json``; the cache is
    rebuilt when a class folder (or classnames.txt) changes.
    """

    dataset_dir = "imagenet"
    image_dir = "images"
    val_is_test = True
    scan_cache_file = "image_list_cache.json"
    scan_cache_format = 1

    def read_splits(self, cfg):
        classnames_path = self.classnames_path()
        train_dir = self.require_dir(os.path.join(self.image_dir, "train"))
        test_dir = self.require_dir(os.path.join(self.image_dir, "val"))
        classes = classes_from_folders(list_subfolders(train_dir), read_classnames(classnames_path), classnames_path)
        fingerprint = self._scan_fingerprint(classes, train_dir, test_dir)

        cache_path = os.path.join(self.dataset_dir, self.scan_cache_file)
        image_names = self._read_scan_cache(cache_path, fingerprint, len(classes))
        if image_names is None:
            image_names = {
                "train": [list_images(os.path.join(train_dir, folder)) for folder, _, _ in classes],
                "val": [list_images(os.path.join(test_dir, folder)) for folder, _, _ in classes],
            }
            cache = {"format": self.scan_cache_format, "fingerprint": fingerprint, **image_names}
            try:
                write_json_atomic(cache_path, cache)
            except OSError as err:
                warnings.warn(f"could not write {cache_path} ({err}); the folders will be scanned again next time")

        def items(split_dir, names_per_class):
            return [
                Item(os.path.join(split_dir, folder, name), label, classname)
                for (folder, label, classname), names in zip(classes, names_per_class)
                for name in names
            ]

        return items(train_dir, image_names["train"]), None, items(test_dir, image_names["val"])

    @staticmethod
    def _scan_fingerprint(classes, train_dir, test_dir):
        # A folder's mtime changes when files are added to or removed from it.
        state = []
        for folder, label, classname in classes:
            mtimes = []
            for split_dir in (train_dir, test_dir):
                class_dir = os.path.join(split_dir, folder)
                if not os.path.isdir(class_dir):
                    raise UserError(f"class folder not found: {class_dir} (see docs/datasets.md)")
                mtimes.append(os.stat(class_dir).st_mtime_ns)
            state.append([folder, label, classname, *mtimes])
        return hashlib.sha1(json.dumps(state).encode("utf-8")).hexdigest()

    def _read_scan_cache(self, path, fingerprint, num_classes):
        """``{"train": [[image names] per class], "val": [...]}`` from a valid cache, else None."""
        if not os.path.isfile(path):
            return None
        try:
            with open(path) as f:
                cache = json.load(f)
        except (OSError, ValueError):
            return None
        if (
            not isinstance(cache, dict)
            or cache.get("format") != self.scan_cache_format
            or cache.get("fingerprint") != fingerprint
        ):
            return None
        names = {split: cache.get(split) for split in ("train", "val")}
        if not all(isinstance(per_class, list) and len(per_class) == num_classes for per_class in names.values()):
            return None
        return names


class ImageNetVariant(ImageNetFolders):
    """A test-only ImageNet variant laid out as one folder per WordNet id.

    Labels are positions of the folders present in sorted order (so 0..199
    for the 200-class ImageNet-A and ImageNet-R, as in CoOp).
    """

    test_only = True

    def read_splits(self, cfg):
        classnames_path = self.classnames_path()
        classes = classes_from_folders(
            list_subfolders(self.image_dir), read_classnames(classnames_path), classnames_path
        )
        return [], None, self.read_class_folders(classes)

    def read_class_folders(self, classes):
        """Items from ``image_dir/<folder>/`` for each ``(folder, label, classname)``."""
        return read_image_folders(self.image_dir, classes)
