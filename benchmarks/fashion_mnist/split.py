"""The downstream split of FashionMNIST's official TEST images: train pool / val / test per class, and
its CoOp-format split file rows (the PNG names the export writes)."""

import numpy as np

from benchmarks.fashion_mnist.classes import CLASSNAMES

# Fractions of each class's official-test images per downstream split; test gets the rest.
DOWNSTREAM_FRACTIONS = {"train": 0.5, "val": 0.1}
DOWNSTREAM_SPLITS = ("train", "val", "test")


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


def image_index(filename):
    """Official-test index of a downstream PNG name (the inverse of ``image_filename``)."""
    return int(filename[len("test_") : -len(".png")])


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
