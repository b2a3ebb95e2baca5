"""The one Dassl dataset base class implementing CoOp's data protocol from ``cfg``.

A subclass only names its folders::

    @DATASET_REGISTRY.register()
    class OxfordPets(CoOpDataset):
        dataset_dir = "oxford_pets"                 # under DATASET.ROOT
        image_dir = "images"                        # under dataset_dir ("" = dataset_dir itself)
        split_file = "split_zhou_OxfordPets.json"   # under dataset_dir

and may override :meth:`CoOpDataset.read_splits` when its data is not in a
split file (folder layouts, text files).

Protocol (``__init__``): check the dataset folder; read the splits as light
``clipprompt.data.splits.Item`` objects; sample ``DATASET.NUM_SHOTS`` per class with
``SEED`` (cached under ``<dataset_dir>/split_fewshot/``; ``DATASET.FEWSHOT_SAMPLER``
picks our private-RNG sampler or CoOp's, see ``clipprompt.data.fewshot``); apply
``DATASET.SUBSAMPLE_CLASSES``; hand train/val/test to Dassl as ``Datum`` lists
(a missing image is a UserError). Test-only datasets (``test_only = True``,
the ImageNet variants) skip few-shot sampling and use test as train_x.

After ``__init__``, ``self.dataset_dir``, ``self.image_dir`` and
``self.split_path`` (None without a split file) are absolute paths and
``self.template`` is the hand-crafted prompt template.
"""

import os

from dassl.data.datasets import DatasetBase, Datum

from clipprompt.data.fewshot import (
    check_sampler,
    load_or_sample_few_shot,
    load_or_sample_few_shot_coop,
    subsample_classes,
)
from clipprompt.data.splits import read_split, validate_splits
from clipprompt.errors import UserError
from clipprompt.prompts.templates import dataset_template


def make_datum(impath, label, classname):
    """A Dassl ``Datum``; a missing image is a UserError instead of Dassl's bare assert."""
    if not os.path.isfile(impath):
        raise UserError(
            f"image file not found: {impath} (check DATASET.ROOT and the folder layout in docs/datasets.md)"
        )
    return Datum(impath=impath, label=label, classname=classname)


def to_datum(item):
    return make_datum(item.impath, item.label, item.classname)


def to_datums(items):
    return [to_datum(item) for item in items]


def resolve_path(path, root):
    """``path`` with ``~`` expanded, made absolute against ``root`` when relative."""
    path = os.path.expanduser(path)
    return os.path.abspath(os.path.join(root, path))


# Splits read and checked by ``preflight`` before Dassl builds the trainer, taken by the
# dataset's own __init__ so that they are read once.
_PREPARED = {}


def _prepared_key(cls, cfg):
    return cls, str(cfg.DATASET), str(cfg.TEST)


def preflight(cfg, dataset_cls):
    """Read and check ``dataset_cls``'s splits for ``cfg`` now (train.py calls this before its
    config dump, so a bad split file costs seconds); the dataset built later reuses them."""
    if not (isinstance(dataset_cls, type) and issubclass(dataset_cls, CoOpDataset)):
        return
    dataset = dataset_cls.__new__(dataset_cls)
    splits = dataset.read_checked_splits(cfg)
    _PREPARED[_prepared_key(dataset_cls, cfg)] = (dict(vars(dataset)), splits)


class CoOpDataset(DatasetBase):
    """CoOp's dataset protocol on Dassl; see the module docstring."""

    dataset_dir = ""  # folder name under DATASET.ROOT
    image_dir = ""  # image folder relative to dataset_dir; "" is dataset_dir itself
    split_file = None  # CoOp split file in dataset_dir; None when read_splits is overridden
    test_only = False  # evaluation-only datasets: train_x = test, no few-shot sampling
    val_is_test = False  # no val split of its own: evaluate on test (CoOp's ImageNet)
    template = None  # hand-crafted prompt; None -> clipprompt.prompts.templates.dataset_template(<class name>)
    # The dataset's own prompt ensemble (HAND_TEMPLATES entry "dataset_ensemble"); None -> the template
    # plus CoOp's seven ImageNet templates, the set CoOp's ZeroshotCLIP2 uses.
    ensemble_templates = None

    def __init__(self, cfg):
        prepared = _PREPARED.pop(_prepared_key(type(self), cfg), None)
        if prepared is None:
            train, val, test = self.read_checked_splits(cfg)
        else:  # train.py's preflight read and checked them already (see preflight)
            attributes, (train, val, test) = prepared
            self.__dict__.update(attributes)

        subsample = cfg.DATASET.get("SUBSAMPLE_CLASSES", "all")
        if self.test_only:
            # No few-shot sampling; Dassl takes the class names from train_x, so train_x is test.
            (test,) = subsample_classes(test, subsample=subsample)
            if not test:
                raise UserError(f"dataset {type(self).__name__} has no images in {self.image_dir}")
            test = to_datums(test)
            super().__init__(train_x=test, val=None, test=test)
            return

        num_shots = cfg.DATASET.NUM_SHOTS
        sampler = check_sampler(cfg.DATASET.get("FEWSHOT_SAMPLER", "private"))
        if num_shots >= 1 and sampler == "coop":
            # CoOp's draw and .pkl cache; pickled as Dassl Datum so upstream CoOp reads the file too.
            train, val = load_or_sample_few_shot_coop(
                train, val, num_shots, cfg.SEED, self.split_fewshot_dir, self.image_dir, pickle_item=to_datum
            )
        elif num_shots >= 1:
            train, val = load_or_sample_few_shot(
                train, val, num_shots, cfg.SEED, self.split_fewshot_dir, self.image_dir
            )
        train, val, test = subsample_classes(train, val, test, subsample=subsample)
        if not train:
            raise UserError(f"dataset {type(self).__name__} has no training images in {self.dataset_dir}")

        train, test = to_datums(train), to_datums(test)
        if val is not None:
            val = to_datums(val)
        elif self.val_is_test:
            val = test
        super().__init__(train_x=train, val=val, test=test)

    def read_checked_splits(self, cfg):
        """Locate the dataset, read its splits and check them in full (``validate_splits``):
        ``(train, val, test)``, val None when absent. Nothing is sampled or written here but
        what ``locate`` prepares (e.g. FashionMNIST's exported images)."""
        root = os.path.abspath(os.path.expanduser(cfg.DATASET.ROOT))
        self.dataset_dir, self.image_dir = self.locate(cfg, root)
        if not os.path.isdir(self.dataset_dir):
            raise UserError(
                f"dataset folder not found: {self.dataset_dir} "
                f"(is DATASET.ROOT={cfg.DATASET.ROOT!r} right? see docs/datasets.md)"
            )
        self.split_path = self.locate_split_file(cfg, root)
        self.split_fewshot_dir = self.fewshot_cache_dir()
        if self.template is None:
            self.template = dataset_template(type(self).__name__)

        # Light Items: Datum (which stats its file) is built only for what is kept.
        train, val, test = self.read_splits(cfg)
        source = self.split_path or self.image_dir
        required = ("test",) if self.test_only else ("train", "test")
        validate_splits({"train": train, "val": val, "test": test}, source, self.image_dir, required)
        if not val:
            val = None
        if val is None and not self.val_is_test and not self.test_only:
            # Without a val split, Dassl would select or report on the test split under val's name.
            for key, value in (("TEST.FINAL_MODEL", "best_val"), ("TEST.SPLIT", "val")):
                if cfg.TEST.get(key.split(".")[1]) == value:
                    raise UserError(f"{key} {value} needs a val split, but {source} has none; "
                                    "add a 'val' list or use the default")
        return train, val, test

    # Hooks ------------------------------------------------------------------

    def locate(self, cfg, root):
        """Absolute ``(dataset_dir, image_dir)``; CustomDataset overrides this."""
        dataset_dir = os.path.normpath(os.path.join(root, type(self).dataset_dir))
        return dataset_dir, os.path.normpath(os.path.join(dataset_dir, type(self).image_dir))

    def locate_split_file(self, cfg, root):
        """Absolute path of the split file, or None when the dataset has none."""
        if self.split_file is None:
            return None
        return os.path.join(self.dataset_dir, self.split_file)

    def fewshot_cache_dir(self):
        return os.path.join(self.dataset_dir, "split_fewshot")

    def read_splits(self, cfg):
        """``(train, val, test)`` lists of :class:`clipprompt.data.splits.Item` (anything with
        ``.impath``, ``.label``, ``.classname``); val may be None or empty. Images
        are checked later, only for the items that are kept."""
        if self.split_path is None:
            raise NotImplementedError(f"{type(self).__name__} must set split_file or override read_splits")
        return read_split(self.split_path, self.image_dir)

    # Helpers for subclasses -------------------------------------------------

    def require_file(self, path):
        """``path`` if it is a file, else a UserError naming it."""
        if not os.path.isfile(path):
            raise UserError(f"file not found: {path} (see docs/datasets.md)")
        return path

    def require_dir(self, path):
        """``path`` if it is a folder, else a UserError naming it."""
        if not os.path.isdir(path):
            raise UserError(f"folder not found: {path} (see docs/datasets.md)")
        return path
