"""Pretraining a mini CLIP: the model, the batches of images and captions, the loop.

Deterministic: ``torch.manual_seed(seed)``, one seeded ``torch.Generator`` for subset choice,
shuffling, flips, colours and captions, and ``torch.use_deterministic_algorithms(True)``; two runs
with the same seed and the same number of threads give identical weights.
"""

import math
import sys
import time

import torch
import torch.nn.functional as F

from clipprompt.clip.openai_clip import import_clip
from clipprompt.errors import UserError

from .. import fashion_colours as fc
from .. import fashion_mnist as fm
from .captions import CaptionSampler, ColourCaptionSampler
from .preprocess import normalize_pixels, preprocess_images, resize_images
from .recipe import BENCHMARKS


def build_clip(recipe):
    """A freshly initialised ``clip.model.CLIP`` (float32) for the recipe."""
    CLIP = import_clip().model.CLIP

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
    """Symmetric InfoNCE over a batch of (image, caption) pairs."""
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
    """Linear warm-up, then cosine decay to zero."""
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


class GrayBatches:
    """fashion10: the preprocessed gray images and noisy item captions."""

    def __init__(self, images, labels, recipe):
        self.pixels = preprocess_images(images, recipe.image_resolution)
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
        self.gray = torch.from_numpy(resize_images(images, recipe.image_resolution)).float().div_(255.0)
        self.labels = torch.from_numpy(labels)
        self.captions = ColourCaptionSampler(recipe)

    def batch(self, indices, generator):
        n = len(indices)
        colours = torch.randint(len(fc.PALETTE), (n,), generator=generator)
        hue_offsets = (torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1) * fc.HUE_JITTER
        low, high = fc.SATURATION_RANGE
        saturations = low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)
        rgb = torch.from_numpy(fc.colour_rgb(colours.numpy(), hue_offsets.numpy(), saturations.numpy()))
        pixels = normalize_pixels(self.gray[indices].unsqueeze(1) * rgb.view(n, 3, 1, 1))
        return pixels, lambda: self.captions.sample(self.labels[indices], generator, colours)


BATCHES = {"fashion10": GrayBatches, "fashion_colours": ColourBatches}

PROGRESS_LINES = 10  # lines a pretraining prints when its output is not a terminal


class ProgressLines:
    """A line with an ETA to stdout at each tenth of the steps, for logs and pipes (scripts/mini_benchmark.sh),
    where a tqdm bar would be one long line of carriage returns. Reads only the clock and the loss:
    no random draws, so the weights are those of a silent run."""

    def __init__(self, steps, steps_per_epoch, file=None):
        self.steps, self.steps_per_epoch = steps, steps_per_epoch
        self.epochs = math.ceil(steps / steps_per_epoch)
        self.marks = {math.ceil(steps * k / PROGRESS_LINES) for k in range(1, PROGRESS_LINES + 1)}
        self.file = file or sys.stdout
        self.start = time.monotonic()

    def __call__(self, step, loss):
        done = step + 1
        if done not in self.marks:
            return
        elapsed = time.monotonic() - self.start
        eta = elapsed / done * (self.steps - done)
        print(f"pretraining: epoch {step // self.steps_per_epoch + 1}/{self.epochs}, step {done}/{self.steps} "
              f"({100 * done // self.steps}%), {elapsed:.0f} s elapsed, ETA {eta:.0f} s, loss {loss():.3f}",
              file=self.file, flush=True)


def pretrain(recipe, data_root, seed=0, progress=True):
    """Train a mini CLIP on the official train split found in ``data_root`` (a folder or a
    list of folders, see ``benchmarks.fashion_mnist.find_idx_files``); returns the model
    (float32, eval mode). ``progress``: a tqdm bar on a terminal, else ``ProgressLines``;
    ``False``: nothing."""
    if recipe.benchmark not in BENCHMARKS:
        raise UserError(f"--benchmark {recipe.benchmark!r}: choose one of {', '.join(BENCHMARKS)}")
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        return _pretrain(recipe, data_root, seed, progress)
    finally:
        torch.use_deterministic_algorithms(was_deterministic)  # do not leak into the caller


def _pretrain(recipe, data_root, seed, progress):
    from tqdm import tqdm

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)

    images, labels = fm.load_split(data_root, "train")
    subset = pick_per_class(labels, recipe.images_per_class, generator).numpy()
    data = BATCHES[recipe.benchmark](images[subset], labels[subset], recipe)
    if not 2 <= recipe.batch_size <= len(subset):
        raise UserError(f"--batch-size must be between 2 and the {len(subset)} pretraining images "
                        f"(got {recipe.batch_size})")

    model = build_clip(recipe)
    model.train()
    table = model.token_embedding
    model.token_embedding = CaptionTokenRows(table, data.captions.tokens)
    optimizer = make_optimizer(model, recipe)

    order, cursor = torch.randperm(len(subset), generator=generator), 0
    on_terminal = progress and sys.stderr.isatty()  # where tqdm draws its bar
    bar = tqdm(range(recipe.steps), desc="pretrain mini CLIP", disable=not on_terminal, dynamic_ncols=True)
    lines = ProgressLines(recipe.steps, len(subset) // recipe.batch_size) if progress and not on_terminal else None
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
        if lines:
            lines(step, loss.item)
    model.token_embedding.put_back(table)
    model.token_embedding = table
    return model.eval()
