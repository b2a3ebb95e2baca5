"""Fashion colours: 60 classes such as "red sneaker", from FashionMNIST's real images (no Dassl).

Each 28x28 FashionMNIST item is rendered in a colour: every pixel becomes its
gray intensity times an RGB colour, so the item keeps its real shape and
shading and the background stays black. The colour is a property of the whole
image, so it survives every transform the trainers use (flip, crop, resize).

Palette: 12 hues 30 degrees apart on the colour wheel (``PALETTE``). Each
image's colour is its class hue plus a random hue offset (up to
``HUE_JITTER`` degrees either way) at a random saturation in
``SATURATION_RANGE`` (full value), so a class is a band of similar colours,
not one RGB triple.

Classes (60): each half has its own 5 items and its own 6 hues, in three
pairs of neighbouring hues. Base = t-shirt, pullover, sandal, sneaker, bag
(``BASE_ITEMS``) in red, lime, green, azure, blue, pink (``BASE_HUES``: pairs
pink/red, lime/green, azure/blue); new = trouser, dress, coat, shirt, ankle
boot (``NEW_ITEMS``) in orange, yellow, teal, cyan, purple, magenta
(``NEW_HUES``: pairs orange/yellow, teal/cyan, purple/magenta). Labels 0-29
and 30-59, so CoOp's split (sorted labels, the first half is base) gives
exactly these halves; every class is named "<palette word> <item>". Why:

* Base and new share no word, neither item nor colour: a prompt tuned on base
  words has to carry over to words it never saw, as on the published benchmark.
* New classes look new, as on the published datasets, yet stay close: no new
  class shares its colour with a base class, and every new hue lies 30 degrees
  from a base hue. Design E
  (docs/experiments/2026-11-30-fashion-colours-designs-b-to-e.md#design-e) gave
  both halves the same hues under other words ("red t-shirt" / "crimson coat");
  there CoOp forgot little on the new half and CoCoOp fell below it.
* Both halves hold clothes and shoes. The first design split the items by
  FashionMNIST's label order (clothes vs mostly shoes), so new-class image
  features were unlike anything the prompt was tuned on.
* Zero-shot confuses the two hues of a pair: the pretraining captions call a
  colour by a neighbour's name, so every class-name colour word is ambiguous
  in the same way, while the image features keep the hues apart.

The base half (classes, images, split) is exactly design E's: the new half is
drawn after it from the same random streams, so choices made on base classes
alone carry over between the two designs.

Downstream images come from FashionMNIST's official TEST split only (the
mini CLIP is pretrained on the official TRAIN split, in all 12 colours for all
10 items): each test image gets one of its half's 6 hues, the hues dealt out
evenly over the item's images in a random order (``assign_colours``), giving
about 167 images per class, cut per class into 50% train pool, 10% val and
40% test (``fashion_mnist.downstream_split``): about 83 / 17 / 67 per class,
2,000 test images per half. Everything is fixed by ``seed`` (default 0).
"""

import colorsys
import hashlib
import json

import numpy as np

from . import fashion_mnist as fm

ITEM_NAMES = fm.CLASSNAMES  # index = official FashionMNIST label
# Index = hue step (30 degrees each); the base half's class names use this word.
PALETTE = [
    ("red", 0), ("orange", 30), ("yellow", 60), ("lime", 90), ("green", 120), ("teal", 150),
    ("cyan", 180), ("azure", 210), ("blue", 240), ("purple", 270), ("magenta", 300), ("pink", 330),
]
COLOUR_NAMES = [name for name, _ in PALETTE]
# The mini CLIP's colour vocabulary (benchmarks/mini_clip/captions.py): per palette colour, after its
# palette word, a second class-name word (design E's new-half name), then a word no class name uses;
# some contain a neighbour's word ("sky blue").
OTHER_COLOUR_WORDS = [
    ["crimson", "scarlet"],
    ["tangerine", "amber"],
    ["lemon", "golden"],
    ["chartreuse", "yellow-green"],
    ["emerald", "grass green"],
    ["sea green", "jade"],
    ["aqua", "turquoise"],
    ["cerulean", "sky blue"],
    ["cobalt", "royal blue"],
    ["violet", "lavender"],
    ["fuchsia", "orchid"],
    ["rose", "blush"],
]
COLOUR_WORDS = [[name, *others] for name, others in zip(COLOUR_NAMES, OTHER_COLOUR_WORDS)]
# Per palette colour: the look-alike colours that captions name by mistake, its two hue neighbours.
LOOKALIKE_COLOURS = [((c - 1) % len(PALETTE), (c + 1) % len(PALETTE)) for c in range(len(PALETTE))]
BASE_ITEMS = [0, 2, 5, 7, 8]  # t-shirt, pullover, sandal, sneaker, bag
NEW_ITEMS = [1, 3, 4, 6, 9]  # trouser, dress, coat, shirt, ankle boot
BASE_HUES = [0, 3, 4, 7, 8, 11]  # red, lime, green, azure, blue, pink: pairs pink/red, lime/green, azure/blue
NEW_HUES = [1, 2, 5, 6, 9, 10]  # orange, yellow, teal, cyan, purple, magenta: pairs orange/yellow, teal/cyan, purple/magenta
HUE_JITTER = 10.0  # degrees, uniform either way
SATURATION_RANGE = (0.7, 1.0)

# label -> (item, colour); base labels first (items outer, colours inner), as CoOp's split expects.
CLASSES = [(item, colour) for items, hues in ((BASE_ITEMS, BASE_HUES), (NEW_ITEMS, NEW_HUES))
           for item in items for colour in hues]
NUM_CLASSES = len(CLASSES)
CLASSNAMES = [f"{COLOUR_NAMES[colour]} {ITEM_NAMES[item]}" for item, colour in CLASSES]
BASE_LABELS = list(range(NUM_CLASSES // 2))
NEW_LABELS = list(range(NUM_CLASSES // 2, NUM_CLASSES))
LABEL_OF = {pair: label for label, pair in enumerate(CLASSES)}
# The mini CLIP's caption templates for this benchmark: fashion10's without the two that deny colour,
# plus two; the dataset's prompt ensemble ("dataset_ensemble").
CAPTION_TEMPLATES = [t for t in fm.CAPTION_TEMPLATES if "black and white" not in t and "grayscale" not in t]
CAPTION_TEMPLATES += ["a bright photo of a {}.", "a {} in a shop window."]

SPLIT_FILENAME = "split_fashion_colours.json"
IMAGE_DIRNAME = fm.IMAGE_DIRNAME


def colour_rgb(colours, hue_offsets, saturations):
    """RGB in [0, 1], float32 [N, 3], for palette indices with per-image hue offsets (degrees) and saturations."""
    hues = (np.asarray([PALETTE[c][1] for c in np.atleast_1d(colours)], dtype=np.float64)
            + np.asarray(hue_offsets, dtype=np.float64)) % 360.0 / 360.0
    return np.array([colorsys.hsv_to_rgb(h, s, 1.0) for h, s in zip(hues, np.atleast_1d(saturations))],
                    dtype=np.float32).reshape(-1, 3)


def draw_colour_variation(n, rng):
    """Per-image (hue offset in degrees, saturation) from a ``numpy.random.RandomState``."""
    hue_offsets = rng.uniform(-HUE_JITTER, HUE_JITTER, size=n)
    saturations = rng.uniform(*SATURATION_RANGE, size=n)
    return hue_offsets, saturations


def colourise(images, rgb):
    """uint8 gray [N, H, W] times float RGB [N, 3] -> uint8 RGB [N, H, W, 3] (rounded)."""
    images = np.asarray(images, dtype=np.float32)
    rgb = np.asarray(rgb, dtype=np.float32)
    return np.clip(np.rint(images[..., None] * rgb[:, None, None, :]), 0, 255).astype(np.uint8)


def assign_colours(item_labels, seed=0):
    """Class label, hue offset and saturation per downstream (official-test) image.

    For each item (in label order) its images are put in a random order and
    dealt its half's hues in turn, so every class gets an equal share
    (up to one image); one ``numpy.random.RandomState(seed)`` drives the order
    and then the colour variation of all images.
    """
    item_labels = np.asarray(item_labels)
    rng = np.random.RandomState(seed)
    class_labels = np.full(len(item_labels), -1, dtype=np.int64)
    for item in np.unique(item_labels):
        indices = rng.permutation(np.flatnonzero(item_labels == item))
        hues = BASE_HUES if int(item) in BASE_ITEMS else NEW_HUES
        for position, index in enumerate(indices):
            class_labels[index] = LABEL_OF[(int(item), hues[position % len(hues)])]
    hue_offsets, saturations = draw_colour_variation(len(item_labels), rng)
    return class_labels, hue_offsets, saturations


class Downstream:
    """The downstream images of one seed: coloured official-test images, their labels and split."""

    def __init__(self, images, item_labels, seed=0):
        self.item_images = np.asarray(images)
        self.labels, hue_offsets, saturations = assign_colours(item_labels, seed)
        self.rgb = colour_rgb([CLASSES[label][1] for label in self.labels], hue_offsets, saturations)
        self.split = fm.downstream_split(self.labels, seed=seed)
        self.seed = seed

    def images(self, indices):
        """uint8 RGB [N, 28, 28, 3] of official-test indices."""
        indices = np.asarray(indices)
        return colourise(self.item_images[indices], self.rgb[indices])

    def split_json(self):
        """CoOp-format split: ``{"train": [[relpath, label, classname], ...], "val": ..., "test": ...}``."""
        return {name: [[fm.image_filename(int(i)), int(self.labels[i]), CLASSNAMES[int(self.labels[i])]]
                       for i in indices] for name, indices in self.split.items()}

    def source_digest(self, split_json):
        """Digest of the IDX pixels, the rendering and the split: a change of any of them re-exports."""
        digest = hashlib.sha1(self.item_images.tobytes() + self.rgb.tobytes())
        digest.update(json.dumps([PALETTE, split_json]).encode())
        return digest.hexdigest() + "\n"


def load_downstream(root, seed=0):
    images, item_labels = fm.load_split(root, "test")
    return Downstream(images, item_labels, seed=seed)


def export_downstream_images(root, out_dir, seed=0):
    """Write the coloured downstream PNGs (28x28 RGB) and ``split_fashion_colours.json`` into ``out_dir``.

    Same layout and guarantees as ``fashion_mnist.export_downstream_images``
    (idempotent, atomic, digest last).
    """
    downstream = load_downstream(root, seed=seed)
    split_json = downstream.split_json()
    return fm.export_image_folder(out_dir, SPLIT_FILENAME, split_json, downstream.source_digest(split_json),
                                  lambda filename: downstream.images([fm.image_index(filename)])[0])
