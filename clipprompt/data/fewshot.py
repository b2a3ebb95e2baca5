"""Few-shot sampling, its on-disk cache, and CoOp's base/new class split (Dassl-free).

Items are duck-typed (``.impath``, ``.label``, ``.classname``); functions that
create items take ``make_item(impath, label, classname)``, by default
:class:`clipprompt.data.splits.Item`.

Two samplers (``DATASET.FEWSHOT_SAMPLER``):

* ``private`` (default): a private RNG over the sorted split, cached as JSON
  with relative paths (:func:`load_or_sample_few_shot`).
* ``coop``: CoOp's own draw, image for image (:func:`sample_few_shot_coop`),
  cached in CoOp's pickle format and read through a restricted unpickler
  (:func:`load_or_sample_few_shot_coop`).
"""

import hashlib
import json
import math
import os
import pickle
import random
import warnings
from collections import defaultdict

from clipprompt.data.splits import Item, items_to_entries, relative_image_path
from clipprompt.errors import UserError
from clipprompt.runtime.files import write_bytes_atomic, write_json_atomic

__all__ = [
    "Item",
    "sample_few_shot",
    "fewshot_cache_path",
    "split_fingerprint",
    "load_or_sample_few_shot",
    "subsample_classes",
    "SUBSAMPLE_CHOICES",
    "VAL_MAX_SHOTS",
    "FEWSHOT_SAMPLERS",
    "check_sampler",
    "sample_few_shot_coop",
    "coop_cache_path",
    "read_coop_cache",
    "write_coop_cache",
    "load_or_sample_few_shot_coop",
]

FEWSHOT_SAMPLERS = ("private", "coop")

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

    _warn_short(short, num_shots)
    return sampled


def _warn_short(short, num_shots):
    """One warning naming the classes (``(classname, count)``) that had fewer than ``num_shots``."""
    if not short:
        return
    named = ", ".join(f"{name!r} ({count})" for name, count in short[:_MAX_NAMED_CLASSES])
    if len(short) > _MAX_NAMED_CLASSES:
        named += f", ... and {len(short) - _MAX_NAMED_CLASSES} more"
    warnings.warn(
        f"{len(short)} class(es) have fewer than {num_shots} images, using all they have: {named}",
        stacklevel=3,
    )


def _check_seed(seed):
    if not isinstance(seed, int) or seed < 0:
        raise UserError(f"few-shot sampling needs SEED >= 0 (got {seed!r}); CoOp's scripts use seeds 1, 2, 3")


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
    _check_seed(seed)
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


# CoOp's sampler and pickle cache ---------------------------------------------


def check_sampler(sampler):
    """``sampler`` if it is a known ``DATASET.FEWSHOT_SAMPLER``, else a UserError."""
    if sampler not in FEWSHOT_SAMPLERS:
        raise UserError(
            f"DATASET.FEWSHOT_SAMPLER must be one of {', '.join(FEWSHOT_SAMPLERS)} (got {sampler!r})"
        )
    return sampler


def sample_few_shot_coop(items, num_shots, rng):
    """CoOp's draw: Dassl's ``DatasetBase.generate_fewshot_dataset`` on ``rng``.

    Classes in order of first appearance in ``items``, each class's items in
    list order, one ``rng.sample(group, num_shots)`` per class (a class with
    fewer items keeps them all and draws nothing): the same calls on the same
    RNG state as Dassl, hence the same images in the same order. CoOp draws
    from the global RNG right after ``random.seed(SEED)`` with nothing drawn
    in between, which is ``random.Random(SEED)``; train is drawn first, then
    val from the same RNG (see :func:`load_or_sample_few_shot_coop`). Unlike
    :func:`sample_few_shot`, the result depends on the order of ``items``
    (CoOp's split-file order).
    """
    items = list(items)
    if num_shots < 1:
        return items
    groups = {}
    for item in items:
        groups.setdefault(item.label, []).append(item)
    sampled, short = [], []
    for group in groups.values():
        if len(group) >= num_shots:
            sampled.extend(rng.sample(group, num_shots))
        else:
            sampled.extend(group)
            short.append((group[0].classname, len(group)))
    _warn_short(short, num_shots)
    return sampled


def coop_cache_path(cache_dir, num_shots, seed):
    """CoOp's few-shot cache for ``(num_shots, seed)``."""
    return os.path.join(cache_dir, f"shot_{num_shots}-seed_{seed}.pkl")


# Where Dassl's Datum class lives (its pickles name the defining module).
_DATUM_MODULES = frozenset({"dassl.data.datasets.base_dataset", "dassl.data.datasets"})
# Plain data types only: nothing that can import, call, open or evaluate.
_SAFE_BUILTINS = {t.__name__: t for t in (set, frozenset, bytearray, bytes, complex, int, float, str, bool)}


class _DatumRecord:
    """What a pickled Dassl ``Datum`` becomes when read here: its state dict, no behaviour."""

    __slots__ = ("state",)

    def __setstate__(self, state):
        self.state = state


class _RefusedGlobal(pickle.UnpicklingError):
    pass


class _CoOpCacheUnpickler(pickle.Unpickler):
    """Unpickler that resolves only Dassl's ``Datum`` (to :class:`_DatumRecord`) and plain builtins.

    Every other global (``os.system``, ``builtins.eval``, any class) is refused
    before it is looked up, so a pickle from a shared folder cannot run code.
    """

    def find_class(self, module, name):
        if name == "Datum" and module in _DATUM_MODULES:
            return _DatumRecord
        if module == "builtins" and name in _SAFE_BUILTINS:
            return _SAFE_BUILTINS[name]
        raise _RefusedGlobal(f"{module}.{name}")


def _record_fields(record):
    """``(impath, label, classname)`` of a pickled Datum, or None if it is not one."""
    if not isinstance(record, _DatumRecord) or not isinstance(getattr(record, "state", None), dict):
        return None
    state = record.state
    impath, label, classname = state.get("_impath"), state.get("_label"), state.get("_classname")
    valid = isinstance(impath, str) and isinstance(classname, str)
    valid = valid and isinstance(label, int) and not isinstance(label, bool)
    return (impath, label, classname) if valid else None


def read_coop_cache(path):
    """CoOp's few-shot pickle -> ``{"train": [(impath, label, classname), ...], "val": [...] or None}``.

    The file is read by an unpickler that knows only Dassl's ``Datum`` and
    plain builtins: anything else (a pickle that would call ``os.system``, say)
    is a UserError naming the file, raised before any of it runs. Paths are as
    CoOp wrote them (absolute, on the machine that made the file).
    """
    try:
        with open(path, "rb") as f:
            data = _CoOpCacheUnpickler(f).load()
    except _RefusedGlobal as err:
        raise UserError(
            f"refusing to load few-shot cache {path}: it refers to {err}, but CoOp caches hold only Dassl "
            "Datum records (a pickle can run code; delete the file if you do not trust it)"
        ) from None
    except Exception as err:  # noqa: BLE001  (corrupt pickles raise almost anything)
        raise UserError(
            f"cannot read few-shot cache {path} ({type(err).__name__}: {err}); delete it to sample again"
        ) from None

    if not isinstance(data, dict) or not isinstance(data.get("train"), list):
        raise UserError(f"few-shot cache {path} is not a CoOp cache (expected a dict with a 'train' list of Datum)")
    out = {}
    for name in ("train", "val"):
        records = data.get(name)
        if records is None and name == "val":
            out[name] = None
            continue
        fields = [_record_fields(record) for record in records] if isinstance(records, list) else [None]
        if None in fields:
            raise UserError(f"few-shot cache {path}: '{name}' must be a list of Dassl Datum records")
        out[name] = fields
    return out


def write_coop_cache(path, train, val):
    """Write ``{"train": train, "val": val}`` (no "val" when None, as CoOp's ImageNet) like CoOp, atomically.

    The items are pickled as they are: pass Dassl ``Datum`` objects for a file
    upstream CoOp can read.
    """
    data = {"train": list(train)} if val is None else {"train": list(train), "val": list(val)}
    write_bytes_atomic(path, pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL), ".pkl")


def _relocate(records, split, image_dir, path, split_name, make_item):
    """The items of ``split`` that CoOp's ``records`` name, in the records' order.

    CoOp pickles hold absolute paths from the machine that wrote them; each
    is matched to the current split by its longest path suffix that is a path
    relative to ``image_dir`` there, so a cache made under another data root
    (or another user's home) works as is. Labels and class names must agree.
    """
    index = {relative_image_path(item.impath, image_dir): item for item in split}
    items = []
    for impath, label, classname in records:
        parts = impath.replace("\\", "/").split("/")
        item = next((index[key] for key in ("/".join(parts[i:]) for i in range(len(parts))) if key in index), None)
        if item is None:
            raise UserError(
                f"few-shot cache {path}: {split_name} image {impath!r} is not in the current {split_name} split "
                f"under {image_dir} (a cache from another split or dataset?); delete the file to sample again"
            )
        if (item.label, item.classname) != (label, classname):
            raise UserError(
                f"few-shot cache {path}: {impath!r} has label {label} ({classname!r}) there but "
                f"{item.label} ({item.classname!r}) in the current split; delete the file to sample again"
            )
        items.append(make_item(item.impath, item.label, item.classname))
    return items


def load_or_sample_few_shot_coop(train, val, num_shots, seed, cache_dir, image_dir, make_item=Item, pickle_item=None):
    """Few-shot ``(train, val)`` exactly as CoOp draws and caches them.

    A cache ``<cache_dir>/shot_{K}-seed_{S}.pkl`` (CoOp's, shared, or ours) is
    read safely (:func:`read_coop_cache`) and its paths relocated to
    ``image_dir`` (:func:`_relocate`). Otherwise train is sampled with
    ``random.Random(seed)`` (CoOp's global RNG right after seeding), then val
    with ``min(num_shots, 4)`` from the same RNG, and both are written in
    CoOp's format with ``pickle_item(item)`` (e.g. a Dassl ``Datum``; default:
    the item) so upstream CoOp reads the file too. ``val=None`` stays None.
    """
    if num_shots < 1:
        return train, val
    _check_seed(seed)
    image_dir = os.path.abspath(os.path.expanduser(image_dir))
    path = coop_cache_path(cache_dir, num_shots, seed)
    if os.path.exists(path):
        cache = read_coop_cache(path)
        train_fs = _relocate(cache["train"], train, image_dir, path, "train", make_item)
        if val is None:
            return train_fs, None
        if cache["val"] is None:
            raise UserError(f"few-shot cache {path} has no 'val' list but the dataset has a val split; delete it")
        return train_fs, _relocate(cache["val"], val, image_dir, path, "val", make_item)

    rng = random.Random(seed)
    train_fs = sample_few_shot_coop(train, num_shots, rng)
    val_fs = None if val is None else sample_few_shot_coop(val, min(num_shots, VAL_MAX_SHOTS), rng)
    to_pickle = pickle_item or (lambda item: item)
    try:
        write_coop_cache(path, [to_pickle(item) for item in train_fs],
                         None if val_fs is None else [to_pickle(item) for item in val_fs])
    except (OSError, pickle.PicklingError) as err:
        warnings.warn(f"could not write the few-shot cache {path} ({err}); continuing without it", stacklevel=2)
    return train_fs, val_fs
