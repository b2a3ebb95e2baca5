"""FashionMNIST's ten classes: their names downstream, the base and new halves, and the words of the
mini CLIP's captions (benchmarks/mini_clip/captions.py draws them; docs/mini_clip.md says why)."""

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
