import os

from dassl.data.datasets import DATASET_REGISTRY

from clipprompt.data.splits import Item
from clipprompt.errors import UserError

from .base import CoOpDataset


@DATASET_REGISTRY.register()
class FGVCAircraft(CoOpDataset):
    """FGVC-Aircraft 2013b at the variant level (100 classes).

    As in CoOp, the splits come from the dataset's own files, not a split_zhou
    JSON: ``variants.txt`` (class order = labels) and
    ``images_variant_{train,val,test}.txt`` (``<image id> <variant>`` per line),
    images in ``images/<image id>.jpg``.
    """

    dataset_dir = "fgvc_aircraft"
    image_dir = "images"

    def read_splits(self, cfg):
        variants_path = self.require_file(os.path.join(self.dataset_dir, "variants.txt"))
        with open(variants_path) as f:
            classnames = [line.strip() for line in f if line.strip()]
        label_of = {name: label for label, name in enumerate(classnames)}
        return tuple(
            self._read_list(os.path.join(self.dataset_dir, f"images_variant_{split}.txt"), label_of)
            for split in ("train", "val", "test")
        )

    def _read_list(self, path, label_of):
        self.require_file(path)
        items = []
        with open(path) as f:
            for line_number, line in enumerate(f, start=1):
                line = line.strip()
                if not line:
                    continue
                image_id, _, classname = line.partition(" ")
                if classname not in label_of:
                    raise UserError(f"{path}, line {line_number}: variant {classname!r} is not in variants.txt")
                impath = os.path.join(self.image_dir, image_id + ".jpg")
                items.append(Item(impath, label_of[classname], classname))
        return items
