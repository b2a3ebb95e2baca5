"""FashionMNIST as a small real-image benchmark for CLIP prompt learning (no Dassl).

The protocol keeps pretraining and few-shot evaluation apart:

* the mini CLIP (``benchmarks/pretrain_mini_clip.py``) is pretrained on the official
  TRAIN split (60,000 images) only;
* the downstream dataset (few-shot train pool, val, test) is drawn from the
  official TEST split (10,000 images, 1,000 per class), so no downstream image
  was seen during pretraining.

Downstream partition (``downstream_split``): for every class separately, the
official-test indices of that class are shuffled with
``numpy.random.RandomState(seed)`` (NumPy keeps this legacy generator's stream
fixed across versions) and cut into 50% train pool, 10% val and 40% test.
With the real data and ``seed=0`` this is 500 / 100 / 400 images per class,
i.e. 5,000 / 1,000 / 4,000 in total. The few-shot sampler then draws its K
shots per class from the train pool.

Base-to-new: labels 0-4 (t-shirt, trouser, pullover, dress, coat) are the base
half, labels 5-9 (sandal, shirt, sneaker, bag, ankle boot) the new half.

Where the IDX files come from (either works):

* Debian: ``apt-get install dataset-fashion-mnist`` puts them, gzipped, in
  ``/usr/share/datasets/fashion-mnist``;
* torchvision: ``torchvision.datasets.FashionMNIST(root, download=True)``
  writes ``<root>/FashionMNIST/raw/*-ubyte[.gz]``.

The modules, one concern each (their public names are also importable from here):

* ``classes``: the class names, the base and new halves, the caption vocabulary;
* ``idx``: finding and reading the official IDX files (``load_split``);
* ``split``: the downstream split of the official TEST images (``downstream_split``);
* ``export``: the downstream images as PNGs plus the split file (``export_downstream_images``,
  and ``export_image_folder``, which ``benchmarks.fashion_colours`` uses too).

A test that replaces a setting patches the module that reads it, e.g.
``benchmarks.fashion_mnist.idx.SYSTEM_IDX_DIR``. The mini CLIP's preprocessing of these images
is ``benchmarks.mini_clip.preprocess``.
"""

from benchmarks.fashion_mnist.classes import (
    BASE_LABELS,
    CAPTION_TEMPLATES,
    CLASS_WORDS,
    CLASSNAMES,
    GENERIC_WORDS,
    LOOKALIKE,
    NEW_LABELS,
    NUM_CLASSES,
    OTHER_CLASS_WORDS,
)
from benchmarks.fashion_mnist.export import (
    IMAGE_DIRNAME,
    SOURCE_FILENAME,
    SPLIT_FILENAME,
    DownstreamExport,
    export_downstream_images,
    export_image_folder,
)
from benchmarks.fashion_mnist.idx import (
    HOW_TO_GET_FILES,
    IDX_STEMS,
    IMAGES_MAGIC,
    LABELS_MAGIC,
    SYSTEM_IDX_DIR,
    find_idx_files,
    idx_search_roots,
    load_split,
    read_idx,
)
from benchmarks.fashion_mnist.split import (
    DOWNSTREAM_FRACTIONS,
    DOWNSTREAM_SPLITS,
    downstream_split,
    downstream_split_json,
    image_filename,
    image_index,
)

__all__ = [
    "BASE_LABELS", "CAPTION_TEMPLATES", "CLASS_WORDS", "CLASSNAMES", "GENERIC_WORDS", "LOOKALIKE", "NEW_LABELS",
    "NUM_CLASSES", "OTHER_CLASS_WORDS",
    "IMAGE_DIRNAME", "SOURCE_FILENAME", "SPLIT_FILENAME", "DownstreamExport", "export_downstream_images",
    "export_image_folder",
    "HOW_TO_GET_FILES", "IDX_STEMS", "IMAGES_MAGIC", "LABELS_MAGIC", "SYSTEM_IDX_DIR", "find_idx_files",
    "idx_search_roots", "load_split", "read_idx",
    "DOWNSTREAM_FRACTIONS", "DOWNSTREAM_SPLITS", "downstream_split", "downstream_split_json", "image_filename",
    "image_index",
]
