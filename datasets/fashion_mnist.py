"""FashionMNIST for the CPU base-to-new benchmark with the mini CLIP.

The protocol (few-shot sampling, base/new halves, split reading) is
``CoOpDataset``'s; this subclass only makes sure its inputs exist: on first
use it writes the downstream images (drawn from the official TEST split, see
``benchmarks.fashion_mnist``) as PNGs plus a CoOp-format split file::

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

from benchmarks import fashion_mnist as fm
from clipprompt.errors import UserError

from .base import CoOpDataset


def prepare_downstream_folder(dataset_dir, idx_roots, export=fm.export_downstream_images,
                              split_filename=fm.SPLIT_FILENAME):
    """Export the downstream PNGs and split file into ``dataset_dir`` unless already there.

    ``idx_roots``: the folders searched for the IDX files (``find_idx_files``);
    ``export(idx_root, dataset_dir)`` writes the images (the benchmark's exporter).
    """
    try:
        idx_files = fm.find_idx_files(idx_roots)
    except UserError:
        if os.path.isfile(os.path.join(dataset_dir, split_filename)):
            return  # exported earlier (maybe on another machine): CoOpDataset checks the images
        raise
    export(os.path.dirname(idx_files["test"]["images"]), dataset_dir)


@DATASET_REGISTRY.register()
class FashionMNIST(CoOpDataset):
    """FashionMNIST (10 classes; base = t-shirt..coat, new = sandal..ankle boot)."""

    dataset_dir = "fashion_mnist"
    image_dir = fm.IMAGE_DIRNAME
    split_file = fm.SPLIT_FILENAME
    ensemble_templates = fm.CAPTION_TEMPLATES  # the mini CLIP's caption templates

    def locate(self, cfg, root):
        dataset_dir, image_dir = super().locate(cfg, root)
        prepare_downstream_folder(dataset_dir, fm.idx_search_roots(root))  # dataset_dir comes first
        return dataset_dir, image_dir
