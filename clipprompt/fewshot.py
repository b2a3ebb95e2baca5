"""Few-shot sampling, its on-disk cache, and CoOp's base/new class split (Dassl-free).

Items are duck-typed (``.impath``, ``.label``, ``.classname``); functions that
create items take ``make_item(impath, label, classname)``, by default
:class:`clipprompt.splits.Item`.
"""

import hashlib
import json
import math
import os
import random
import warnings
from collections import defaultdict

from clipprompt.errors import UserError
from clipprompt.splits import Item, items_to_entries, relative_image_path, write_json_atomic

__all__ = [
    "Item",
    "sample_few_shot",
    "fewshot_cache_path",
    "split_fingerprint",
    "load_or_sample_few_shot",
    "subsample_classes",
    "SUBSAMPLE_CHOICES",
    "VAL_MAX_SHOTS",
]

SUBSAMPLE_CHOICES = ("all", "base", "new")

# CoOp samples min(num_shots, 4) validation images per class.
VAL_MAX_SHOTS = 4

# Bumped if the cache layout changes; caches with another version are rebuilt.
CACHE_FORMAT = 1

# At most this many short classes are named in the warning.
_MAX_NAMED_CLASSES = 20


def sample_few_shot(items, num_shots, seed):
    """``num_shots`` items per class, drawn with a private RNG seeded with ``seed``.

    The result depends only on the set of items, ``num_shots`` and ``seed``
    (items are sorted by ``(label, impath)`` first, so the input order does not
    matter) and comes out ordered by label, then by image path. ``num_shots < 1``
    returns all items unchanged. A class with fewer than ``num_shots`` items
    keeps all of them, with one warning per call naming such classes.
    """
    items = list(items)
    if num_shots < 1:
        return items
    by_label = defaultdict(list)
    for item in sorted(items, key=lambda it: (it.label, it.impath)):
        by_label[item.label].append(item)

    rng = random.Random(seed)
    sampled, short = [], []
    for label in sorted(by_label):
        group = by_label[label]
        if len(group) < num_shots:
            chosen = group
            short.append((group[0].classname, len(group)))
        else:
            chosen = rng.sample(group, num_shots)
        sampled.extend(sorted(chosen, key=lambda it: it.impath))

    if short:
        named = ", ".join(f"{name!r} ({count})" for name, count in short[:_MAX_NAMED_CLASSES])
        if len(short) > _MAX_NAMED_CLASSES:
            named += f", ... and {len(short) - _MAX_NAMED_CLASSES} more"
        warnings.warn(
            f"{len(short)} class(es) have fewer than {num_shots} images, using all they have: {named}",
            stacklevel=2,
        )
    return sampled


def fewshot_cache_path(cache_dir, num_shots, seed):
    """Where the few-shot sample for ``(num_shots, seed)`` is cached."""
    return os.path.join(cache_dir, f"shot_{num_shots}-seed_{seed}.json")


def split_fingerprint(items, image_dir):
    """sha1 of the sorted ``(relpath, label, classname)`` list: identifies a source split.

    Paths are taken relative to ``image_dir`` so moving the data folder keeps
    the fingerprint.
    """
    # Joined strings rather than json.dumps of tuples: faster on ImageNet-sized splits.
    rows = sorted(
        f"{relative_image_path(item.impath, image_dir)}\0{int(item.label)}\0{item.classname}" for item in items
    )
    return hashlib.sha1("\n".join(rows).encode("utf-8")).hexdigest()


def _entries_to_items(entries, image_dir, make_item):
    return [make_item(os.path.join(image_dir, relpath), label, classname) for relpath, label, classname in entries]


def _read_cache(path, fingerprints, image_dir, make_item):
    """Items from a valid cache, or None (with a warning) when it must be rebuilt."""
    try:
        with open(path) as f:
            cache = json.load(f)
        valid_layout = (
            isinstance(cache, dict)
            and cache.get("format") == CACHE_FORMAT
            and isinstance(cache.get("train"), list)
        )
    except (OSError, ValueError) as err:
        warnings.warn(f"ignoring unreadable few-shot cache {path} ({err}); sampling again", stacklevel=3)
        return None
    if not valid_layout:
        warnings.warn(f"ignoring few-shot cache {path} with an unknown layout; sampling again", stacklevel=3)
        return None
    if cache.get("source_fingerprint") != fingerprints:
        warnings.warn(
            f"few-shot cache {path} was built from a different split; sampling again and overwriting it",
            stacklevel=3,
        )
        return None
    try:
        train = _entries_to_items(cache["train"], image_dir, make_item)
        val = None if cache.get("val") is None else _entries_to_items(cache["val"], image_dir, make_item)
    except (TypeError, ValueError) as err:
        warnings.warn(f"ignoring malformed few-shot cache {path} ({err}); sampling again", stacklevel=3)
        return None
    return train, val


def load_or_sample_few_shot(train, val, num_shots, seed, cache_dir, image_dir, make_item=Item):
    """Few-shot ``(train, val)``: read from the cache or sampled and cached.

    ``train`` gets ``num_shots`` per class and ``val`` ``min(num_shots, 4)`` as
    in CoOp; ``val=None`` (datasets without a val split) stays None.
    ``num_shots < 1`` returns the inputs unchanged and touches no cache.

    The cache, ``<cache_dir>/shot_{K}-seed_{S}.json``, stores paths relative to
    ``image_dir`` plus a fingerprint of the source split; a cache built from a
    different split is rebuilt with a warning. Failing to write it (read-only
    data folder) only warns.
    """
    if num_shots < 1:
        return train, val
    if not isinstance(seed, int) or seed < 0:
        raise UserError(f"few-shot sampling needs SEED >= 0 (got {seed!r}); CoOp's scripts use seeds 1, 2, 3")
    image_dir = os.path.abspath(os.path.expanduser(image_dir))
    fingerprints = {
        "train": split_fingerprint(train, image_dir),
        "val": None if val is None else split_fingerprint(val, image_dir),
    }
    path = fewshot_cache_path(cache_dir, num_shots, seed)
    if os.path.exists(path):
        cached = _read_cache(path, fingerprints, image_dir, make_item)
        if cached is not None:
            return cached

    train_fs = sample_few_shot(train, num_shots, seed)
    val_fs = None if val is None else sample_few_shot(val, min(num_shots, VAL_MAX_SHOTS), seed)
    cache = {
        "format": CACHE_FORMAT,
        "num_shots": num_shots,
        "seed": seed,
        "source_fingerprint": fingerprints,
        "train": items_to_entries(train_fs, image_dir),
        "val": None if val_fs is None else items_to_entries(val_fs, image_dir),
    }
    try:
        write_json_atomic(path, cache)
    except OSError as err:
        warnings.warn(f"could not write the few-shot cache {path} ({err}); continuing without it", stacklevel=2)
    return train_fs, val_fs


def subsample_classes(*splits, subsample="all", make_item=Item):
    """CoOp's base-to-new protocol over ``splits`` (e.g. train, val, test).

    The labels of the FIRST split, sorted, are cut at ``ceil(n / 2)``: "base"
    keeps the first part, "new" the rest; every split keeps only those labels,
    relabelled ``0..k-1`` in sorted order, class names unchanged. "all" returns
    the splits unchanged. A None split stays None. Returns a tuple.
    """
    if subsample not in SUBSAMPLE_CHOICES:
        raise UserError(
            f"DATASET.SUBSAMPLE_CLASSES must be one of {', '.join(SUBSAMPLE_CHOICES)} (got {subsample!r})"
        )
    if subsample == "all":
        return tuple(splits)
    if not splits or splits[0] is None:
        raise UserError("DATASET.SUBSAMPLE_CLASSES needs a training split to decide the base/new classes")

    labels = sorted({item.label for item in splits[0]})
    num_base = math.ceil(len(labels) / 2)
    selected = labels[:num_base] if subsample == "base" else labels[num_base:]
    if not selected:
        raise UserError(
            f"DATASET.SUBSAMPLE_CLASSES={subsample} leaves no classes: the training split has {len(labels)} class(es)"
        )
    new_label = {label: index for index, label in enumerate(selected)}

    output = []
    for split in splits:
        if split is None:
            output.append(None)
            continue
        output.append(
            [make_item(item.impath, new_label[item.label], item.classname) for item in split if item.label in new_label]
        )
    return tuple(output)
