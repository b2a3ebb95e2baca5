"""Fashion colours (60 classes such as "red sneaker") for the CPU base-to-new benchmark.

Like ``datasets/fashion_mnist.py``: the protocol is ``CoOpDataset``'s; on first
use the coloured downstream images (official TEST split, see
``benchmarks.fashion_colours``) are written as PNGs with a CoOp-format split::

    <DATASET.ROOT>/fashion_colours/
        images/test_00000.png ...      (28x28 RGB)
        split_fashion_colours.json
        split_fewshot/

The IDX files are looked for as for FashionMNIST (``<DATASET.ROOT>/fashion_colours``
first, then ``<DATASET.ROOT>/fashion_mnist``, ``<DATASET.ROOT>``, and the Debian folder).
"""

import os

from dassl.data.datasets import DATASET_REGISTRY

from benchmarks import fashion_colours as fc
from benchmarks import fashion_mnist as fm

from .base import CoOpDataset
from .fashion_mnist import prepare_downstream_folder


@DATASET_REGISTRY.register()
class FashionColours(CoOpDataset):
    """60 classes: 5 base items x 6 hues (labels 0-29), 5 other items x 6 other hues (labels 30-59)."""

    dataset_dir = "fashion_colours"
    image_dir = fc.IMAGE_DIRNAME
    split_file = fc.SPLIT_FILENAME
    ensemble_templates = fc.CAPTION_TEMPLATES  # the mini CLIP's caption templates

    def locate(self, cfg, root):
        dataset_dir, image_dir = super().locate(cfg, root)
        roots = [dataset_dir] + fm.idx_search_roots(root)
        prepare_downstream_folder(dataset_dir, roots, fc.export_downstream_images, fc.SPLIT_FILENAME)
        return dataset_dir, image_dir
