"""FashionMNIST for the CPU base-to-new benchmark with the mini CLIP.

The protocol (few-shot sampling, base/new halves, split reading) is
``CoOpDataset``'s; this subclass only makes sure its inputs exist: on first
use it writes the downstream images (drawn from the official TEST split, see
``clipprompt.fashion_mnist``) as PNGs plus a CoOp-format split file::

    <DATASET.ROOT>/fashion_mnist/
        images/test_00000.png ...
        split_fashion_mnist.json
        split_fewshot/            (CoOpDataset's few-shot cache)

The IDX files are looked for in ``<DATASET.ROOT>/fashion_mnist`` (plain,
``FashionMNIST/raw`` or ``fashion-mnist`` inside it), then in
``<DATASET.ROOT>`` (e.g. torchvision's ``<root>/FashionMNIST/raw``), then in
the Debian package's ``/usr/share/datasets/fashion-mnist``. Once exported, the
IDX files are no longer needed.
"""

import os

from dassl.data.datasets import DATASET_REGISTRY

from clipprompt import fashion_mnist as fm
from clipprompt.errors import UserError

from .base import CoOpDataset


def prepare_downstream_folder(dataset_dir, root):
    """Export the downstream PNGs and split file into ``dataset_dir`` unless already there."""
    try:
        idx_files = fm.find_idx_files(fm.idx_search_roots(root))  # dataset_dir comes first
    except UserError:
        if os.path.isfile(os.path.join(dataset_dir, fm.SPLIT_FILENAME)):
            return  # exported earlier (maybe on another machine): CoOpDataset checks the images
        raise
    idx_root = os.path.dirname(idx_files["test"]["images"])
    fm.export_downstream_images(idx_root, dataset_dir)


@DATASET_REGISTRY.register()
class FashionMNIST(CoOpDataset):
    """FashionMNIST (10 classes; base = t-shirt..coat, new = sandal..ankle boot)."""

    dataset_dir = "fashion_mnist"
    image_dir = fm.IMAGE_DIRNAME
    split_file = fm.SPLIT_FILENAME

    def locate(self, cfg, root):
        dataset_dir, image_dir = super().locate(cfg, root)
        prepare_downstream_folder(dataset_dir, root)
        return dataset_dir, image_dir
