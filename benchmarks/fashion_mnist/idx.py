"""FashionMNIST's official IDX files: where they are looked for, and reading them (plain or gzipped).

Where they come from (either works): Debian's ``apt-get install dataset-fashion-mnist`` puts them,
gzipped, in ``SYSTEM_IDX_DIR``; ``torchvision.datasets.FashionMNIST(root, download=True)`` writes
``<root>/FashionMNIST/raw/*-ubyte[.gz]``.
"""

import gzip
import os

import numpy as np

from benchmarks.fashion_mnist.classes import NUM_CLASSES
from clipprompt.errors import UserError

# Where the Debian package dataset-fashion-mnist installs the IDX files.
SYSTEM_IDX_DIR = "/usr/share/datasets/fashion-mnist"

# Official file stems per split: (images, labels).
IDX_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# IDX magic numbers: two zero bytes, type code 0x08 (unsigned byte), number of dimensions.
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801

HOW_TO_GET_FILES = (
    "install them with `apt-get install dataset-fashion-mnist` "
    f"(files land in {SYSTEM_IDX_DIR}) or download with "
    "torchvision.datasets.FashionMNIST(<root>, download=True) (files land in <root>/FashionMNIST/raw)"
)


def _candidate_dirs(root):
    """Folders that may hold the IDX files for a user-given root, in search order."""
    return [
        root,
        os.path.join(root, "FashionMNIST", "raw"),  # torchvision's download layout
        os.path.join(root, "fashion-mnist"),  # e.g. root=/usr/share/datasets
    ]


def idx_search_roots(data_root=None):
    """Where the benchmark looks for the IDX files, given a data root (DATASET.ROOT).

    ``<data_root>/fashion_mnist`` (the Dassl dataset's folder), then
    ``<data_root>`` itself, then the Debian package's folder; each is searched
    as ``find_idx_files`` describes. Without a data root: the Debian folder.
    """
    if not data_root:
        return [SYSTEM_IDX_DIR]
    data_root = os.path.abspath(os.path.expanduser(data_root))
    return [os.path.join(data_root, "fashion_mnist"), data_root, SYSTEM_IDX_DIR]


def _find_file(folder, stem):
    """The plain file if present (torchvision keeps both), else the .gz one, else None."""
    for name in (stem, stem + ".gz"):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    return None


def find_idx_files(root):
    """Locate the four official IDX files under ``root``.

    ``root`` may be one folder or a list of folders; for each, the folder
    itself, ``<folder>/FashionMNIST/raw`` and ``<folder>/fashion-mnist`` are
    searched, and the first one holding all four files wins (files are not
    mixed across folders). Each file may be plain or gzipped.

    Returns ``{"train": {"images": path, "labels": path}, "test": {...}}``.
    Raises ``UserError`` naming every folder searched if none is complete.
    """
    roots = [root] if isinstance(root, (str, os.PathLike)) else list(root)
    searched = []
    for one_root in roots:
        for folder in _candidate_dirs(os.fspath(one_root)):
            searched.append(folder)
            found = {}
            for split, (image_stem, label_stem) in IDX_STEMS.items():
                images = _find_file(folder, image_stem)
                labels = _find_file(folder, label_stem)
                if images is None or labels is None:
                    break
                found[split] = {"images": images, "labels": labels}
            else:
                return found
    raise UserError(
        "FashionMNIST IDX files (train-images-idx3-ubyte[.gz] and the other three) not found in "
        + ", ".join(searched)
        + "; "
        + HOW_TO_GET_FILES
    )


def _read_bytes(path):
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            return f.read()
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise UserError(f"cannot read IDX file {path}: {exc}") from None


def read_idx(path, expected_magic):
    """Read an unsigned-byte IDX file (plain or .gz) into a numpy uint8 array.

    The magic number must equal ``expected_magic`` (``IMAGES_MAGIC`` or
    ``LABELS_MAGIC``) and the payload size must match the header's dims.
    """
    data = _read_bytes(path)
    if len(data) < 4:
        raise UserError(f"IDX file {path} is truncated (no header); re-download it")
    magic = int.from_bytes(data[:4], "big")
    if magic != expected_magic:
        raise UserError(
            f"IDX file {path} has magic number 0x{magic:08x}, expected 0x{expected_magic:08x}; "
            "is it the right file and not corrupted?"
        )
    ndim = magic & 0xFF
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise UserError(f"IDX file {path} is truncated (short header); re-download it")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected_size = header_size + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected_size:
        raise UserError(
            f"IDX file {path} has {len(data)} bytes but its header says {expected_size}; re-download it"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(dims)


def load_split(root, split):
    """Load an official split: ``(images uint8 [N, 28, 28], labels int64 [N])``.

    ``split`` is ``"train"`` (60,000 images) or ``"test"`` (10,000 images);
    ``root`` is searched as in ``find_idx_files``.
    """
    if split not in IDX_STEMS:
        raise UserError(f"unknown FashionMNIST split {split!r}; use 'train' or 'test'")
    paths = find_idx_files(root)[split]
    images = read_idx(paths["images"], IMAGES_MAGIC)
    labels = read_idx(paths["labels"], LABELS_MAGIC).astype(np.int64)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise UserError(
            f"FashionMNIST {split} files do not match: images {paths['images']} have shape "
            f"{images.shape}, labels {paths['labels']} have shape {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise UserError(f"labels in {paths['labels']} are outside 0..{NUM_CLASSES - 1}")
    return images, labels
