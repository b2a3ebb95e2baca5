"""The recipe of a mini CLIP: every setting that shapes the checkpoint, per benchmark, saved in the
report next to it and compared by ``--check-existing``."""

import dataclasses
import json
import os
import sys

from clipprompt.errors import UserError

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

# --quick: a tiny model and a few steps, for tests (seconds).
QUICK_OVERRIDES = dict(
    embed_dim=64, vision_width=64, vision_layers=1, text_width=64, text_layers=1,
    images_per_class=16, steps=3, batch_size=32, warmup_steps=1, eval_images_per_class=8,
)


def make_recipe(benchmark=None, quick=False, **given):
    """The benchmark's recipe (fashion10's without one), shrunk by ``QUICK_OVERRIDES`` if ``quick``;
    ``given`` recipe values that are not None win over both."""
    values = dataclasses.asdict(Recipe())
    benchmark = benchmark or values["benchmark"]
    if benchmark not in BENCHMARK_RECIPES:
        raise UserError(f"--benchmark {benchmark!r}: choose one of {', '.join(BENCHMARKS)}")
    values.update(BENCHMARK_RECIPES[benchmark])
    if quick:
        values.update(QUICK_OVERRIDES)
    values.update(benchmark=benchmark, **{name: value for name, value in given.items() if value is not None})
    return Recipe(**values)


def report_path(checkpoint):
    """The JSON report beside a checkpoint (recipe, wall time, accuracies)."""
    return os.path.splitext(checkpoint)[0] + ".json"


def check_existing(out, recipe):
    """Refuse to reuse a checkpoint made with another recipe (e.g. another benchmark's, or a --quick one).

    Keys that the saved recipe lacks (added to ``Recipe`` after it was made) are not compared; a
    checkpoint without its JSON cannot be checked and is reused with a warning.
    """
    sidecar = report_path(out)
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
