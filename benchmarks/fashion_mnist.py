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
"""

import gzip
import hashlib
import io
import json
import os
from dataclasses import dataclass

import numpy as np

from clipprompt.errors import UserError
from clipprompt.runtime.files import default_file_mode, write_bytes_atomic  # noqa: F401 (default_file_mode: part of this module's API)

# Index = official label. Lower-case words that read naturally in "a photo of a {}.".
CLASSNAMES = [
    "t-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
]
NUM_CLASSES = len(CLASSNAMES)
# The caption templates of the benchmark's mini CLIP (benchmarks/mini_clip/captions.py); "a photo of
# a {}." is only one of them. The dataset offers them as its prompt ensemble ("dataset_ensemble").
CAPTION_TEMPLATES = [
    "a photo of a {}.",
    "a blurry photo of the {}.",
    "a {} on a plain background.",
    "a black and white photo of a {}.",
    "a low resolution photo of the {}.",
    "a close-up photo of a {}.",
    "{} for sale.",
    "a picture of my {}.",
    "a product shot of the {}.",
    "a grayscale image of a {}.",
    "this {} is on sale today.",
    "an old {}.",
    "look at this {}!",
    "a small photo of a {}.",
]
BASE_LABELS = list(range(0, 5))
NEW_LABELS = list(range(5, 10))

# The rest of the mini CLIP's caption vocabulary (benchmarks/mini_clip/captions.py draws noisy
# captions from it; docs/mini_clip.md says why). Per official label: other words captions use for
# the item; "top" and "shoe" are shared on purpose, as captions in the wild are ambiguous.
OTHER_CLASS_WORDS = [
    ["tee", "tshirt", "top"],
    ["trousers", "pants", "jeans"],
    ["sweater", "jumper", "top"],
    ["gown", "frock", "summer dress"],
    ["jacket", "parka", "top"],
    ["flip-flop", "summer shoe", "shoe"],
    ["blouse", "button-down", "top"],
    ["trainer", "running shoe", "shoe"],
    ["handbag", "purse", "tote"],
    ["boot", "bootie", "shoe"],
]
# Per official label: the class name used downstream first, then the other words.
CLASS_WORDS = [[name, *others] for name, others in zip(CLASSNAMES, OTHER_CLASS_WORDS)]
# Per official label: the look-alike item that captions name by mistake (FashionMNIST's usual confusions).
LOOKALIKE = [6, 3, 4, 4, 2, 7, 0, 9, 2, 7]
# Words without class information.
GENERIC_WORDS = ["item of clothing", "fashion item", "product", "thing", "garment"]

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

# Fractions of each class's official-test images per downstream split; test gets the rest.
DOWNSTREAM_FRACTIONS = {"train": 0.5, "val": 0.1}
DOWNSTREAM_SPLITS = ("train", "val", "test")

SPLIT_FILENAME = "split_fashion_mnist.json"
IMAGE_DIRNAME = "images"
SOURCE_FILENAME = "SOURCE"  # in the image folder: digest of the IDX data the PNGs came from

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


def downstream_split(labels, seed=0, fractions=None):
    """Partition official-TEST indices into downstream train pool / val / test.

    For each class (in label order) its indices are permuted with
    ``numpy.random.RandomState(seed)`` (one generator shared across classes),
    then the first ``round(fractions["train"] * n)`` go to train, the next
    ``round(fractions["val"] * n)`` to val and the rest to test. Defaults are
    ``DOWNSTREAM_FRACTIONS`` (50% / 10% / 40%: 500 / 100 / 400 per class on the
    real data). Returns ``{"train": idx, "val": idx, "test": idx}``, each a
    sorted int64 array; together they cover every index exactly once.
    """
    labels = np.asarray(labels)
    fractions = dict(DOWNSTREAM_FRACTIONS if fractions is None else fractions)
    if fractions["train"] + fractions["val"] >= 1:
        raise ValueError(f"downstream fractions {fractions} leave nothing for test")
    rng = np.random.RandomState(seed)
    parts = {name: [] for name in DOWNSTREAM_SPLITS}
    for label in np.unique(labels):
        indices = rng.permutation(np.flatnonzero(labels == label))
        n_train = int(round(fractions["train"] * len(indices)))
        n_val = int(round(fractions["val"] * len(indices)))
        parts["train"].append(indices[:n_train])
        parts["val"].append(indices[n_train : n_train + n_val])
        parts["test"].append(indices[n_train + n_val :])
    return {name: np.sort(np.concatenate(chunks)).astype(np.int64) if chunks else np.zeros(0, np.int64)
            for name, chunks in parts.items()}


def image_filename(test_index):
    """PNG name of an official-test image inside the downstream image folder."""
    return f"test_{test_index:05d}.png"


def downstream_split_json(labels, seed=0):
    """The CoOp-format split dict for the downstream images.

    ``{"train": [[relpath, label, classname], ...], "val": ..., "test": ...}``
    with relpaths relative to the image folder.
    """
    labels = np.asarray(labels)
    split = downstream_split(labels, seed=seed)
    return {
        name: [[image_filename(int(i)), int(labels[i]), CLASSNAMES[int(labels[i])]] for i in indices]
        for name, indices in split.items()
    }


def _atomic_write_bytes(path, write):
    """``write(f)`` into memory, then one atomic write (``clipprompt.runtime.files.write_bytes_atomic``)."""
    buffer = io.BytesIO()
    write(buffer)
    write_bytes_atomic(path, buffer.getvalue(), os.path.splitext(path)[1])


@dataclass
class DownstreamExport:
    """Where ``export_downstream_images`` put things and how much it wrote."""

    image_dir: str
    split_path: str
    num_images_written: int


def export_downstream_images(root, out_dir, seed=0):
    """Write the downstream images as PNGs plus a CoOp-format split JSON.

    Reads the official TEST split from ``root`` (see ``find_idx_files``) and
    writes ``<out_dir>/images/test_<index>.png`` (28x28 grayscale, the raw
    pixels) for every image of ``downstream_split(labels, seed)`` and
    ``<out_dir>/split_fashion_mnist.json``, through ``export_image_folder``.
    """
    images, labels = load_split(root, "test")
    source = hashlib.sha1(images.tobytes() + labels.tobytes()).hexdigest() + "\n"
    return export_image_folder(out_dir, SPLIT_FILENAME, downstream_split_json(labels, seed=seed), source,
                               lambda filename: images[image_index(filename)])


def image_index(filename):
    """Official-test index of a downstream PNG name (the inverse of ``image_filename``)."""
    return int(filename[len("test_") : -len(".png")])


def export_image_folder(out_dir, split_filename, split_json, source, render):
    """Write every image a CoOp-format split lists as a PNG, plus the split JSON.

    ``render(filename)`` gives the uint8 pixels ([H, W] or [H, W, 3]) of a
    listed file; ``source`` is a digest of everything the pixels depend on,
    kept in ``<out_dir>/images/SOURCE``.

    Idempotent: if the digest, the JSON and every listed PNG are already there,
    nothing is written. Each file is written atomically (temporary file +
    rename) and the digest last, so an interrupted export is redone by the next
    call; PNGs left from another source are always rewritten.
    """
    from PIL import Image  # imported here so the IDX reader works without Pillow

    image_dir = os.path.join(out_dir, IMAGE_DIRNAME)
    split_path = os.path.join(out_dir, split_filename)
    source_path = os.path.join(image_dir, SOURCE_FILENAME)
    listed = [row[0] for rows in split_json.values() for row in rows]

    same_source = _read_text(source_path) == source
    if same_source and _read_json(split_path) == split_json and all(
        os.path.isfile(os.path.join(image_dir, name)) for name in listed
    ):
        return DownstreamExport(image_dir, split_path, 0)

    os.makedirs(image_dir, exist_ok=True)
    if os.path.exists(source_path):
        os.remove(source_path)  # until the export completes, nothing in the folder is trusted
    num_written = 0
    for filename in listed:
        path = os.path.join(image_dir, filename)
        if same_source and os.path.isfile(path):
            continue
        picture = Image.fromarray(np.ascontiguousarray(render(filename)))
        _atomic_write_bytes(path, lambda f: picture.save(f, format="PNG"))
        num_written += 1
    payload = json.dumps(split_json, indent=1).encode()
    _atomic_write_bytes(split_path, lambda f: f.write(payload))
    _atomic_write_bytes(source_path, lambda f: f.write(source.encode()))
    return DownstreamExport(image_dir, split_path, num_written)


def _read_text(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


# CLIP's normalisation constants (also INPUT.PIXEL_MEAN/STD in CoOp's configs).
CLIP_PIXEL_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_PIXEL_STD = (0.26862954, 0.26130258, 0.27577711)


def preprocess_images(images, size, mean=CLIP_PIXEL_MEAN, std=CLIP_PIXEL_STD):
    """Turn uint8 images, grayscale [N, H, W] or RGB [N, H, W, 3], into normalised float tensors [N, 3, size, size].

    Matches Dassl's test transform with ``INPUT.INTERPOLATION: bicubic`` on the
    exported PNGs: PIL reads the PNG and converts it to RGB (three equal
    channels for grayscale), resizes the shorter side to ``size`` with PIL's
    bicubic filter, center-crops ``size x size``, scales to [0, 1] and
    normalises with ``mean``/``std``. Resizing a grayscale image once and
    copying it to three channels gives the same pixels, at a third of the cost.
    """
    import torch

    images = np.asarray(images, dtype=np.uint8)
    if images.ndim == 4 and images.shape[-1] == 3:
        pixels = torch.from_numpy(resize_images(images, size)).float().div_(255.0).permute(0, 3, 1, 2)
    elif images.ndim == 3:
        pixels = torch.from_numpy(resize_images(images, size)).float().div_(255.0).unsqueeze(1).expand(-1, 3, -1, -1)
    else:
        raise ValueError(f"expected images [N, H, W] or [N, H, W, 3], got shape {images.shape}")
    return normalize_pixels(pixels, mean, std)


def normalize_pixels(pixels, mean=CLIP_PIXEL_MEAN, std=CLIP_PIXEL_STD):
    """[N, 3, H, W] floats in [0, 1] -> CLIP-normalised."""
    import torch

    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return ((pixels - mean_t) / std_t).contiguous()


def resize_images(images, size):
    """uint8 [N, H, W(, 3)] -> uint8 [N, size, size(, 3)]: shorter side to ``size`` (PIL bicubic), center crop."""
    from PIL import Image

    height, width = images.shape[1:3]
    # Shorter side to `size`, the other scaled as torchvision's Resize(int) does.
    if height <= width:
        new_height, new_width = size, int(size * width / height)
    else:
        new_height, new_width = int(size * height / width), size
    top = int(round((new_height - size) / 2.0))
    left = int(round((new_width - size) / 2.0))
    resized = np.empty((len(images), size, size) + images.shape[3:], dtype=np.uint8)
    for i, image in enumerate(images):
        # PIL directly: torchvision's functional wrappers cost 10x more per tiny image.
        picture = Image.fromarray(image).resize((new_width, new_height), Image.BICUBIC)
        resized[i] = np.asarray(picture)[top : top + size, left : left + size]
    return resized
