"""Pretrain a mini CLIP on FashionMNIST's official TRAIN split, on a CPU, for one of the CPU benchmarks.

Why: the published base-to-new benchmark needs GPUs and OpenAI's weights. This
script makes a small stand-in with OpenAI's architecture (``clip.model.CLIP``,
ViT image encoder) in minutes on a CPU, so prompt learners can be checked on
real images: the downstream few-shot split comes from the official TEST split
(``benchmarks.fashion_mnist``, ``benchmarks.fashion_colours``), so no
downstream image is seen here.

``--benchmark`` picks the downstream task the CLIP is made for, with one code
path: ``fashion10`` (the default: FashionMNIST's 10 gray classes, the recipe
below) or ``fashion_colours`` (60 classes such as "red sneaker"; its recipe
departs from fashion10's as ``BENCHMARK_RECIPES`` says, see "fashion_colours"
at the end of this text).

Recipe of fashion10 (the defaults; ``--quick`` shrinks everything for tests) and why:

* Architecture: OpenAI's ViT CLIP at toy size. Image encoder on 32x32 inputs
  with 8x8 patches (16 patches + class token), width 128, 4 layers; text
  transformer width 128, 3 layers, with the full 77-token context and
  49,408-token vocabulary so ``clip.tokenize`` and ``clip.model.build_model``
  work unchanged (the loader sets heads = width / 64, hence widths that are
  multiples of 64); joint embedding 128. About 7.8M parameters, 6.3M of them
  the token embedding. Small widths keep a step of 128 pairs near 0.2 s on
  two idle cores.
* Images: the official train split (all 60,000; ``--images-per-class`` takes
  a fixed random subset), preprocessed exactly as Dassl's test transform
  treats the exported PNGs (gray -> 3 channels, bicubic resize to 32, CLIP
  mean/std; ``benchmarks.fashion_mnist.preprocess_images``), plus random
  horizontal flips.
* Captions look like noisy web alt-text, not clean labels: a template from
  ``CAPTION_TEMPLATES`` (14 of them; the downstream prompt "a photo of a {}."
  is just one) filled with a word chosen per caption as
  - 10% generic, no class information ("item of clothing", "product");
  - 10% a word of a random other class (mislabelled alt-text);
  - 10% the class name of the item's look-alike (``LOOKALIKE``: a coat
    called a pullover, a sandal a sneaker, a dress a coat, ...);
  - 10% the dataset's own class name (``CLASSNAMES``);
  - 60% another word for the class ("tee", "jumper", "jacket", "trainer",
    "handbag", ...), some of them shared loosely ("top", "shoe").
  The image tower still sees a different caption mix for every class, so it
  learns features that separate the classes well; the downstream class names
  themselves are rare and often misused, so the text tower's idea of them is
  blurred, mostly between look-alikes within each half. That is the gap
  prompt learning closes on real CLIP (class names that pretraining captions
  rarely use the way a downstream dataset does), and what makes zero-shot
  accuracy land well below what the features allow.
* Optimisation: symmetric InfoNCE with CLIP's learnable temperature (init
  1/0.07, capped at 100), AdamW (lr 5e-4, betas 0.9/0.98, eps 1e-6, weight
  decay 0.1 on weight matrices only), 100 warm-up steps then cosine decay,
  1,200 steps of 128 pairs (about 2.6 epochs): short, like CLIP relative to
  any one downstream task.
* Result (seed 0; accuracy in % on the 4,000-image downstream test split,
  each half among its own 5 classes; 2 threads on a 2-core machine: about
  5.3 steps/s while the machine was idle, i.e. about 4 min for the 1,200
  steps; 5.7 and 11.7 min when other jobs shared the cores)::

                                    base    new   all 10
      zero-shot "a photo of a {}."  66.4   76.2    55.3
      16-shot class-mean probe      87.3   93.6    83.3

  The class-mean probe (nearest mean image feature of 16 downstream training
  images per class) shows what the image features allow. A quick check while
  designing (a 4-token CoOp-style context trained on 16 base shots per class,
  features frozen) lifted base from 66% to 88% and dropped new from 76% to
  59%: room to gain, and room for base-only tuning to overfit. With 15%
  look-alike captions zero-shot fell to 52% / 70%; with none (and 600
  steps) it reached 85% / 92%, no better than a 16-shot probe, which left
  nothing for prompt tuning to learn.
* Speed trick (exact): the text transformer is causal and reads its feature at
  the end-of-text token, so tokens after the longest caption's end-of-text
  token cannot change any output; training feeds only that prefix instead of
  all 77 positions (the installed ``clip`` slices its causal mask to the input
  length). The saved model is the ordinary 77-token CLIP.

* Speed trick (exact): only the rows of the token table that some caption
  uses (a few hundred of 49,408) are trained (``CaptionTokenRows``); the
  others would never get a gradient, and AdamW without weight decay on
  embeddings leaves them unchanged anyway.

fashion_colours (``BENCHMARK_RECIPES["fashion_colours"]``): every pretraining
image is drawn in one of all 12 palette colours (hue and saturation varied as
downstream), for all 10 items, so the text tower meets every class word; its
caption names the colour and the item, "a photo of a scarlet tee.", each
word noisy on its own: the item word as for fashion10; the colour word 4%
omitted, 40% one of a neighbouring hue's two class-name words (a look-alike
colour), 24% one of the colour's own two class-name words ("red", or
"crimson", which named the new half's hues in design E), 32% its third word
("scarlet"), which no class name uses. Both class-name words of a colour are
thus equally ambiguous, so the two halves' zero-shot accuracies are alike in
kind. Design F (the benchmark now) names every class by its palette word; the
recipe, and so the checkpoint, did not change. (With
no third word, 30% own and 50% neighbour words, zero-shot reached 89% / 83%
against a probe of 92% / 87%: the clean third word is what leaves room.)
Templates: fashion10's without the two that say "black and white" /
"grayscale", plus two. The text tower is 64 wide (heads = 1): 60 classes
make every prompt learner's text passes 6x longer than fashion10's, and its
own steps cheaper. 2,000 steps of 128: with colour in every caption the
image tower needs more steps than fashion10's 1,200 to learn the items'
shapes.

Determinism: ``torch.manual_seed(seed)``, one seeded ``torch.Generator`` for
subset choice, shuffling, flips, colours and captions, and
``torch.use_deterministic_algorithms(True)``; two runs with the same seed and
the same number of threads give identical weights.

Output: ``torch.save(model.state_dict())`` (float32, OpenAI's key layout) at
``--out``, written atomically; ``clip.model.build_model(state_dict)`` rebuilds
the model. A ``<out>.json`` next to it records the recipe, the wall time and
the zero-shot accuracies. An existing file is never replaced without
``--overwrite``.

Usage::

    python benchmarks/pretrain_mini_clip.py --out /data/mini_clip/fashion_vit32.pt
    python benchmarks/pretrain_mini_clip.py --benchmark fashion_colours --out /data/mini_clip/colours.pt
    python benchmarks/pretrain_mini_clip.py --out /tmp/tiny.pt --quick   # seconds
"""

import argparse
import dataclasses
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

# Make `clipprompt` and `benchmarks` importable when run as `python benchmarks/pretrain_mini_clip.py`.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import fashion_colours as fc  # noqa: E402
from benchmarks import fashion_mnist as fm  # noqa: E402
from clipprompt.errors import UserError, exit_status  # noqa: E402
from clipprompt.files import torch_save_atomic, write_text_atomic  # noqa: E402

ZERO_SHOT_TEMPLATE = "a photo of a {}."

# The caption templates live with each benchmark's data (its datasets offer them as the
# "dataset_ensemble" prompt ensemble, as CLIP's prompt engineering offers its own templates).
CAPTION_TEMPLATES = fm.CAPTION_TEMPLATES

# Per official label: the class name used downstream first, then other words for it.
# "top" and "shoe" are shared on purpose: captions in the wild are ambiguous.
CLASS_WORDS = [
    ["t-shirt", "tee", "tshirt", "top"],
    ["trouser", "trousers", "pants", "jeans"],
    ["pullover", "sweater", "jumper", "top"],
    ["dress", "gown", "frock", "summer dress"],
    ["coat", "jacket", "parka", "top"],
    ["sandal", "flip-flop", "summer shoe", "shoe"],
    ["shirt", "blouse", "button-down", "top"],
    ["sneaker", "trainer", "running shoe", "shoe"],
    ["bag", "handbag", "purse", "tote"],
    ["ankle boot", "boot", "bootie", "shoe"],
]
# Per official label: the look-alike item that captions name by mistake (FashionMNIST's usual confusions).
LOOKALIKE = [6, 3, 4, 4, 2, 7, 0, 9, 2, 7]
GENERIC_WORDS = ["item of clothing", "fashion item", "product", "thing", "garment"]

# Caption kinds, drawn with probabilities generic_prob, wrong_word_prob, lookalike_prob,
# canonical_prob; the remaining captions use one of the class's other words.
CAPTION_KINDS = ("generic", "wrong", "lookalike", "canonical", "synonym")

# fashion_colours: per palette colour (benchmarks.fashion_colours.PALETTE order), its class-name word
# first (the palette word), a second class-name word (design E's new-half name), then other words for
# it; some contain a neighbour's word ("sky blue").
COLOUR_WORDS = [
    ["red", "crimson", "scarlet"],
    ["orange", "tangerine", "amber"],
    ["yellow", "lemon", "golden"],
    ["lime", "chartreuse", "yellow-green"],
    ["green", "emerald", "grass green"],
    ["teal", "sea green", "jade"],
    ["cyan", "aqua", "turquoise"],
    ["azure", "cerulean", "sky blue"],
    ["blue", "cobalt", "royal blue"],
    ["purple", "violet", "lavender"],
    ["magenta", "fuchsia", "orchid"],
    ["pink", "rose", "blush"],
]
# Colour kinds, drawn with probabilities colour_omit_prob, colour_lookalike_prob (one of a
# neighbouring hue's class-name words), colour_canonical_prob (one of its own class-name words);
# the rest use another word. A colour's class-name words are its first ``colour_names`` words.
COLOUR_KINDS = ("omitted", "lookalike", "canonical", "synonym")
COLOUR_CAPTION_TEMPLATES = fc.CAPTION_TEMPLATES

BENCHMARKS = ("fashion10", "fashion_colours")


@dataclasses.dataclass
class Recipe:
    """Everything that shapes the checkpoint (saved next to it)."""

    benchmark: str = "fashion10"
    # architecture (widths must be multiples of 64: OpenAI's loader sets heads = width // 64)
    embed_dim: int = 128
    image_resolution: int = 32  # must equal INPUT.SIZE in configs/datasets/<benchmark>.yaml
    vision_patch_size: int = 8
    vision_width: int = 128
    vision_layers: int = 4
    text_width: int = 128
    text_layers: int = 3
    # data
    images_per_class: int = 6000
    generic_prob: float = 0.1
    wrong_word_prob: float = 0.1
    lookalike_prob: float = 0.1
    canonical_prob: float = 0.1  # the rest (60%) use the class's other words
    flip_prob: float = 0.5
    # fashion_colours only: noise of the colour word (the rest use another word for the colour)
    colour_omit_prob: float = 0.0
    colour_lookalike_prob: float = 0.0
    colour_canonical_prob: float = 0.0
    colour_names: int = 1  # a colour's first words that class names use (look-alike and canonical kinds)
    # optimisation
    steps: int = 1200
    batch_size: int = 128
    lr: float = 5e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1
    # evaluation (downstream test split; <= 0 means all test images of each class)
    eval_images_per_class: int = 0


# Per benchmark: how its recipe departs from the dataclass defaults (fashion10's).
BENCHMARK_RECIPES = {
    "fashion10": {},
    "fashion_colours": dict(text_width=64, colour_names=2, colour_omit_prob=0.04, colour_lookalike_prob=0.4,
                            colour_canonical_prob=0.24, steps=2000),
}

QUICK_OVERRIDES = dict(
    embed_dim=64, vision_width=64, vision_layers=1, text_width=64, text_layers=1,
    images_per_class=16, steps=3, batch_size=32, warmup_steps=1, eval_images_per_class=8,
)


def build_clip(recipe):
    """A freshly initialised ``clip.model.CLIP`` (float32) for the recipe."""
    from clip.model import CLIP

    for field in ("vision_width", "text_width"):
        if getattr(recipe, field) % 64:
            raise UserError(f"--{field.replace('_', '-')} must be a multiple of 64 (heads = width / 64)")
    if recipe.image_resolution % recipe.vision_patch_size:
        raise UserError("--image-resolution must be a multiple of --vision-patch-size")
    return CLIP(
        embed_dim=recipe.embed_dim,
        image_resolution=recipe.image_resolution,
        vision_layers=recipe.vision_layers,
        vision_width=recipe.vision_width,
        vision_patch_size=recipe.vision_patch_size,
        context_length=77,
        vocab_size=49408,
        transformer_width=recipe.text_width,
        transformer_heads=recipe.text_width // 64,
        transformer_layers=recipe.text_layers,
    )


def kind_edges(fractions, flags, rest):
    """Cumulative edges for drawing a caption kind; the fractions must be >= 0 and sum to <= 1."""
    if min(fractions) < 0 or sum(fractions) > 1:
        raise UserError(f"{', '.join(flags)} must be >= 0 and add up to at most 1 (the rest are {rest})")
    return torch.tensor(fractions, dtype=torch.float64).cumsum(0)


def draw_words(pools, edges, labels, generator):
    """A word id per label: a kind by ``edges``, then a uniform pick in ``pools[kind][label]``."""
    n = len(labels)
    kinds = torch.bucketize(torch.rand(n, generator=generator, dtype=torch.float64), edges, right=True)
    pick = torch.rand(n, generator=generator)  # uniform choice within a word pool
    word_ids = torch.empty(n, dtype=torch.long)
    for i, (kind, label) in enumerate(zip(kinds.tolist(), labels.tolist())):
        pool = pools[kind][label]
        word_ids[i] = pool[int(pick[i] * len(pool))]
    return word_ids


class CaptionSampler:
    """Draws noisy captions (as rows of a pre-tokenised table) for item labels."""

    templates = CAPTION_TEMPLATES

    def __init__(self, recipe):
        words = sorted({w for ws in CLASS_WORDS for w in ws} | set(GENERIC_WORDS))
        self.word_index = {w: i for i, w in enumerate(words)}
        self.words = words
        self.num_words = len(words)
        self.class_word_ids = [torch.tensor([self.word_index[w] for w in ws]) for ws in CLASS_WORDS]
        generic_word_ids = torch.tensor([self.word_index[w] for w in GENERIC_WORDS])
        all_class_word_ids = torch.tensor([self.word_index[w] for ws in CLASS_WORDS for w in ws])
        # Word pools per caption kind (CAPTION_KINDS order), per label.
        self.pools = [
            [generic_word_ids] * len(CLASS_WORDS),
            # another class's word, never one of the class's own words (even a shared one like "top")
            [all_class_word_ids[~torch.isin(all_class_word_ids, own)] for own in self.class_word_ids],
            [self.class_word_ids[LOOKALIKE[label]][:1] for label in range(len(CLASS_WORDS))],
            [own[:1] for own in self.class_word_ids],
            [own[1:] for own in self.class_word_ids],
        ]
        self.edges = kind_edges(
            [recipe.generic_prob, recipe.wrong_word_prob, recipe.lookalike_prob, recipe.canonical_prob],
            ["--generic-prob", "--wrong-word-prob", "--lookalike-prob", "--canonical-prob"], "synonyms")
        self.captions = [t.format(w) for t in self.templates for w in self.phrases()]
        self.tokens = _tokenize(self.captions)  # [templates * phrases, 77]

    def phrases(self):
        return self.words

    def sample(self, labels, generator):
        """Token rows [B, 77] for item labels [B]."""
        word_ids = draw_words(self.pools, self.edges, labels, generator)
        template_ids = torch.randint(len(self.templates), (len(labels),), generator=generator)
        return self.tokens[template_ids * self.num_words + word_ids]


class ColourCaptionSampler(CaptionSampler):
    """Captions "<colour word> <item word>" for (item, colour) pairs, each word noisy on its own."""

    templates = COLOUR_CAPTION_TEMPLATES

    def __init__(self, recipe):
        colour_words = [""] + sorted({w for ws in COLOUR_WORDS for w in ws})  # "" = colour omitted
        self.colour_index = {w: i for i, w in enumerate(colour_words)}
        self.colour_words = colour_words
        own = [torch.tensor([self.colour_index[w] for w in ws]) for ws in COLOUR_WORDS]
        n, k = len(COLOUR_WORDS), recipe.colour_names
        if not 1 <= k < min(len(ws) for ws in COLOUR_WORDS):
            raise UserError(f"--colour-names must be between 1 and {min(len(ws) for ws in COLOUR_WORDS) - 1} "
                            f"(a colour needs a word left for the synonym captions), got {k}")
        # Colour word pools per kind (COLOUR_KINDS order), per palette colour.
        self.colour_pools = [
            [torch.tensor([0])] * n,
            [torch.cat([own[(c - 1) % n][:k], own[(c + 1) % n][:k]]) for c in range(n)],  # hue neighbours
            [ws[:k] for ws in own],
            [ws[k:] for ws in own],
        ]
        self.colour_edges = kind_edges(
            [recipe.colour_omit_prob, recipe.colour_lookalike_prob, recipe.colour_canonical_prob],
            ["--colour-omit-prob", "--colour-lookalike-prob", "--colour-canonical-prob"], "colour synonyms")
        super().__init__(recipe)

    def phrases(self):
        return [f"{c} {w}".strip() for c in self.colour_words for w in self.words]

    def sample(self, labels, generator, colours=None):
        """Token rows [B, 77] for item labels [B] and palette colours [B]."""
        word_ids = draw_words(self.pools, self.edges, labels, generator)
        colour_ids = draw_words(self.colour_pools, self.colour_edges, colours, generator)
        template_ids = torch.randint(len(self.templates), (len(labels),), generator=generator)
        phrase_ids = colour_ids * self.num_words + word_ids
        return self.tokens[template_ids * (len(self.colour_words) * self.num_words) + phrase_ids]


def _tokenize(captions):
    import clip

    return clip.tokenize(captions)


class CaptionTokenRows(torch.nn.Module):
    """Stands in for CLIP's token embedding during pretraining, holding only the rows of the tokens
    that captions use (a few hundred of 49,408).

    Exact: the other rows never get a gradient, so AdamW (no weight decay on embeddings) leaves
    them as initialised, while a dense table costs a 6M-value gradient and optimiser update per
    step. ``put_back`` writes the trained rows into the full table.
    """

    def __init__(self, table, token_ids):
        super().__init__()
        self.token_ids = torch.unique(token_ids)
        self.rows = torch.nn.Parameter(table.weight.detach()[self.token_ids].clone())
        lookup = torch.full((table.num_embeddings,), -1, dtype=torch.long)
        lookup[self.token_ids] = torch.arange(len(self.token_ids))
        self.register_buffer("lookup", lookup, persistent=False)

    def forward(self, tokens):
        return F.embedding(self.lookup[tokens], self.rows)

    @torch.no_grad()
    def put_back(self, table):
        table.weight[self.token_ids] = self.rows.detach()


def trim_tokens(tokens):
    """Drop the padding columns after the last end-of-text token (exact for CLIP's causal text tower)."""
    length = int(tokens.argmax(dim=-1).max()) + 1
    return tokens[:, :length]


def clip_loss(model, images, tokens):
    logits_per_image, _ = model(images, trim_tokens(tokens))
    targets = torch.arange(len(images))
    return (F.cross_entropy(logits_per_image, targets) + F.cross_entropy(logits_per_image.t(), targets)) / 2


def make_optimizer(model, recipe):
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        # weight decay on matrices only; not on embeddings, gains, biases or the temperature
        (decay if param.ndim >= 2 and "embedding" not in name else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=recipe.lr, betas=(0.9, 0.98), eps=1e-6)


def lr_at(step, recipe):
    if step < recipe.warmup_steps:
        return recipe.lr * (step + 1) / recipe.warmup_steps
    progress = (step - recipe.warmup_steps) / max(1, recipe.steps - recipe.warmup_steps)
    return recipe.lr * 0.5 * (1 + math.cos(math.pi * progress))


def pick_per_class(labels, per_class, generator, num_classes=fm.NUM_CLASSES):
    """Indices of a random subset with ``per_class`` items of each class (all if per_class <= 0)."""
    labels = torch.as_tensor(labels)
    chosen = []
    for label in range(num_classes):
        indices = torch.nonzero(labels == label).flatten()
        if per_class > 0:
            indices = indices[torch.randperm(len(indices), generator=generator)[:per_class]]
        chosen.append(indices)
    return torch.sort(torch.cat(chosen)).values


@torch.no_grad()
def encode_images(model, images, batch_size=500):
    features = torch.cat([model.encode_image(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])
    return F.normalize(features, dim=-1)


@torch.no_grad()
def zero_shot_weights(model, classnames=fm.CLASSNAMES, template=ZERO_SHOT_TEMPLATE):
    import clip

    prompts = [template.format(name) for name in classnames]
    return F.normalize(model.encode_text(clip.tokenize(prompts)), dim=-1)


@dataclasses.dataclass
class DownstreamTask:
    """What evaluation needs of a benchmark's downstream split (the one its Dassl dataset uses)."""

    classnames: list
    base_labels: list
    new_labels: list
    labels: object  # numpy int64 [N], class label per downstream image
    split: dict  # {"train": idx, "val": idx, "test": idx}
    images: object  # indices -> uint8 images as exported ([N, H, W] or [N, H, W, 3])


def downstream_task(benchmark, data_root):
    if benchmark == "fashion10":
        images, labels = fm.load_split(data_root, "test")
        return DownstreamTask(fm.CLASSNAMES, fm.BASE_LABELS, fm.NEW_LABELS, labels,
                              fm.downstream_split(labels, seed=0), lambda idx: images[idx])
    downstream = fc.load_downstream(data_root, seed=0)
    return DownstreamTask(fc.CLASSNAMES, fc.BASE_LABELS, fc.NEW_LABELS, downstream.labels, downstream.split,
                          downstream.images)


@torch.no_grad()
def evaluate(model, data_root, recipe, seed):
    """Zero-shot and 16-shot class-mean accuracy (%) per half on the downstream split."""
    model.eval()
    task = downstream_task(recipe.benchmark, data_root)
    labels, split, num_classes = task.labels, task.split, len(task.classnames)
    generator = torch.Generator().manual_seed(seed)
    test_idx = split["test"][pick_per_class(labels[split["test"]], recipe.eval_images_per_class, generator,
                                            num_classes).numpy()]
    pool_idx = split["train"]
    shot_idx = pool_idx[pick_per_class(labels[pool_idx], 16, generator, num_classes).numpy()]

    size = recipe.image_resolution
    test_features = encode_images(model, fm.preprocess_images(task.images(test_idx), size))
    shot_features = encode_images(model, fm.preprocess_images(task.images(shot_idx), size))
    test_labels = torch.from_numpy(labels[test_idx])
    shot_labels = torch.from_numpy(labels[shot_idx])
    text_features = zero_shot_weights(model, task.classnames)
    prototypes = F.normalize(torch.stack([shot_features[shot_labels == c].mean(0) for c in range(num_classes)]), dim=-1)

    def accuracy(class_weights, classes):
        classes = torch.tensor(classes)
        keep = torch.isin(test_labels, classes)
        scores = test_features[keep] @ class_weights[classes].t()
        return round(100.0 * (classes[scores.argmax(-1)] == test_labels[keep]).double().mean().item(), 2)

    halves = {"base": task.base_labels, "new": task.new_labels, "all": list(range(num_classes))}
    return {
        "zero_shot": {name: accuracy(text_features, classes) for name, classes in halves.items()},
        "16_shot_class_mean": {name: accuracy(prototypes, classes) for name, classes in halves.items()},
        "num_test_images": int(len(test_idx)),
        "num_classes": {name: len(classes) for name, classes in halves.items()},
    }


def pretrain(recipe, data_root, seed=0, progress=True):
    """Train a mini CLIP on the official train split found in ``data_root`` (a folder or a
    list of folders, see ``benchmarks.fashion_mnist.find_idx_files``); returns the model
    (float32, eval mode)."""
    if recipe.benchmark not in BENCHMARKS:
        raise UserError(f"--benchmark {recipe.benchmark!r}: choose one of {', '.join(BENCHMARKS)}")
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        return _pretrain(recipe, data_root, seed, progress)
    finally:
        torch.use_deterministic_algorithms(was_deterministic)  # do not leak into the caller


class GrayBatches:
    """fashion10: the preprocessed gray images and noisy item captions."""

    def __init__(self, images, labels, recipe):
        self.pixels = fm.preprocess_images(images, recipe.image_resolution)
        self.labels = torch.from_numpy(labels)
        self.captions = CaptionSampler(recipe)

    def batch(self, indices, generator):
        return self.pixels[indices], lambda: self.captions.sample(self.labels[indices], generator)


class ColourBatches:
    """fashion_colours: each drawn image gets a random palette colour (hue and saturation varied
    as downstream), and its caption names the item and the colour, both noisily.

    The gray image is resized once (as the exported PNG would be) and coloured after resizing:
    colouring is per pixel and linear, so this equals resizing the coloured image up to the
    rounding of 8-bit pixels.
    """

    def __init__(self, images, labels, recipe):
        self.gray = torch.from_numpy(fm.resize_images(images, recipe.image_resolution)).float().div_(255.0)
        self.labels = torch.from_numpy(labels)
        self.captions = ColourCaptionSampler(recipe)

    def batch(self, indices, generator):
        n = len(indices)
        colours = torch.randint(len(fc.PALETTE), (n,), generator=generator)
        hue_offsets = (torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1) * fc.HUE_JITTER
        low, high = fc.SATURATION_RANGE
        saturations = low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)
        rgb = torch.from_numpy(fc.colour_rgb(colours.numpy(), hue_offsets.numpy(), saturations.numpy()))
        pixels = fm.normalize_pixels(self.gray[indices].unsqueeze(1) * rgb.view(n, 3, 1, 1))
        return pixels, lambda: self.captions.sample(self.labels[indices], generator, colours)


def _pretrain(recipe, data_root, seed, progress):
    from tqdm import tqdm

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)

    images, labels = fm.load_split(data_root, "train")
    subset = pick_per_class(labels, recipe.images_per_class, generator).numpy()
    data = (GrayBatches if recipe.benchmark == "fashion10" else ColourBatches)(images[subset], labels[subset], recipe)
    if not 2 <= recipe.batch_size <= len(subset):
        raise UserError(f"--batch-size must be between 2 and the {len(subset)} pretraining images "
                        f"(got {recipe.batch_size})")

    model = build_clip(recipe)
    model.train()
    table = model.token_embedding
    model.token_embedding = CaptionTokenRows(table, data.captions.tokens)
    optimizer = make_optimizer(model, recipe)

    order, cursor = torch.randperm(len(subset), generator=generator), 0
    bar = tqdm(range(recipe.steps), desc="pretrain mini CLIP", disable=not progress, dynamic_ncols=True)
    for step in bar:
        if cursor + recipe.batch_size > len(order):  # new epoch; drop the ragged tail
            order, cursor = torch.randperm(len(subset), generator=generator), 0
        batch = order[cursor : cursor + recipe.batch_size]
        cursor += recipe.batch_size

        batch_pixels, draw_captions = data.batch(batch, generator)
        flip = torch.rand(len(batch), generator=generator) < recipe.flip_prob
        batch_pixels = torch.where(flip.view(-1, 1, 1, 1), batch_pixels.flip(-1), batch_pixels)
        tokens = draw_captions()  # after the flips: fashion10's draw order, hence its results, unchanged

        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, recipe)
        loss = clip_loss(model, batch_pixels, tokens)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        bar.set_postfix(loss=f"{loss.item():.3f}", scale=f"{model.logit_scale.exp().item():.1f}")
    model.token_embedding.put_back(table)
    model.token_embedding = table
    return model.eval()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="checkpoint path (state dict in OpenAI's layout)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--data-root", default=None,
                        help="data root (DATASET.ROOT): the IDX files are looked for in <root>/fashion_mnist, "
                             f"<root> and then {fm.SYSTEM_IDX_DIR} (the default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--quick", action="store_true", help="tiny model, a few steps: for tests (seconds)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--check-existing", action="store_true",
                        help="train nothing: check that the recipe saved beside an existing --out is the one these "
                             "arguments give (exit status 2 and the differing keys if not)")
    for field in dataclasses.fields(Recipe):
        parser.add_argument("--" + field.name.replace("_", "-"), type=type(field.default), default=None,
                            help=f"recipe (default {field.default})")
    return parser.parse_args(argv)


def recipe_from_args(args):
    values = dataclasses.asdict(Recipe())
    benchmark = args.benchmark or values["benchmark"]
    if benchmark not in BENCHMARK_RECIPES:
        raise UserError(f"--benchmark {benchmark!r}: choose one of {', '.join(BENCHMARKS)}")
    values.update(BENCHMARK_RECIPES[benchmark])
    if args.quick:
        values.update(QUICK_OVERRIDES)
    for name in values:
        given = getattr(args, name)
        if given is not None:
            values[name] = given
    return Recipe(**values)


def metrics_path_for(out):
    return os.path.splitext(out)[0] + ".json"


def check_existing(out, recipe):
    """Refuse to reuse a checkpoint made with another recipe (e.g. another benchmark's, or a --quick one).

    Keys that the saved recipe lacks (added to ``Recipe`` after it was made) are not compared; a
    checkpoint without its JSON cannot be checked and is reused with a warning.
    """
    sidecar = metrics_path_for(out)
    if not os.path.isfile(out):
        raise UserError(f"{out}: no such checkpoint to check")
    if not os.path.isfile(sidecar):
        print(f"warning: {sidecar} is missing, so the recipe of {out} cannot be checked; reusing it as it is",
              file=sys.stderr)
        return
    try:
        with open(sidecar, encoding="utf-8") as f:
            saved = json.load(f)["recipe"]
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{sidecar}: not a pretraining report with a 'recipe' ({exc}); delete it or the checkpoint") from None
    wanted = dataclasses.asdict(recipe)
    differing = [f"{key} {saved[key]!r} (wanted {wanted[key]!r})" for key in wanted if key in saved and saved[key] != wanted[key]]
    if differing:
        raise UserError(f"{out} was made with another recipe: {', '.join(differing)}; "
                        "delete it (and its .json) to pretrain again, or point CLIP_CKPT / --out elsewhere")


def main(argv=None):
    args = parse_args(argv)
    recipe = recipe_from_args(args)
    if args.out.endswith(".json"):
        raise UserError(f"--out {args.out}: use a .pt name; the .json name next to it is for the report")
    if args.check_existing:
        return check_existing(args.out, recipe)
    sidecar = metrics_path_for(args.out)
    for path in (args.out, sidecar):
        if os.path.exists(path) and not args.overwrite:
            raise UserError(f"{path} already exists; pass --overwrite to replace it or choose another --out")
    if args.threads:
        torch.set_num_threads(args.threads)
    data_root = fm.idx_search_roots(args.data_root)

    start = time.time()
    model = pretrain(recipe, data_root, seed=args.seed, progress=not args.no_progress)
    train_seconds = time.time() - start
    metrics = evaluate(model, data_root, recipe, seed=args.seed)
    wall_seconds = time.time() - start

    torch_save_atomic({k: v.float() for k, v in model.state_dict().items()}, args.out)
    report = {
        "checkpoint": os.path.abspath(args.out),
        "idx_dir": os.path.dirname(fm.find_idx_files(data_root)["train"]["images"]),
        "seed": args.seed,
        "threads": torch.get_num_threads(),
        "train_seconds": round(train_seconds, 1),
        "wall_seconds": round(wall_seconds, 1),
        "recipe": dataclasses.asdict(recipe),
        **metrics,
    }
    write_text_atomic(sidecar, json.dumps(report, indent=1) + "\n")

    print(f"saved {args.out} ({train_seconds / 60:.1f} min of training, {wall_seconds / 60:.1f} min in all, "
          f"{report['threads']} threads)")
    counts = metrics["num_classes"]
    print(f"accuracy (%) on the downstream test split ({metrics['num_test_images']} images), "
          f"each half among its own {counts['base']} classes:")
    print(f"{'':28s}{'base':>8s}{'new':>8s}{'all ' + str(counts['all']):>8s}")
    for name, title in (("zero_shot", f'zero-shot "{ZERO_SHOT_TEMPLATE}"'),
                        ("16_shot_class_mean", "16-shot class-mean probe")):
        row = metrics[name]
        print(f"{title:28s}{row['base']:8.1f}{row['new']:8.1f}{row['all']:8.1f}")
    return report


if __name__ == "__main__":
    sys.exit(exit_status(main))
