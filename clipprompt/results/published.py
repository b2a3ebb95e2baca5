"""Published base-to-new numbers of the bundled trainers, for ``parse_test_res.py --published``.

Plain data, no torch. Every number is CLIP ViT-B/16, 16 shots per base class, accuracy in %, copied
from the source named in the comment beside it. Only the averages over the 11
datasets of CoCoOp's protocol (:data:`BASE_TO_NEW_DATASETS`) are here: they are what the official
upstream repositories print. No per-dataset number, and no cross-dataset or domain-generalisation
average, is bundled: none of them could be read from a paper or an official repository when this
table was written (docs/running.md#published-numbers---published lists what is
missing). ``HM`` is as published; tests/test_results.py checks that it is the harmonic mean of the
published Base and New to within 0.01.

:data:`PUBLISHED_BASE_TO_NEW` maps a Dassl trainer name to its published rows. A row names its
``dataset`` (a Dassl dataset name, or ``"Average"`` for the 11-dataset average) and the documents
that report it (``reported_in``, keys of :data:`SOURCES`). The first row of a trainer and dataset is
the one compared with ours; a later one is another report of the same method, shown on a line of its
own that names where it was published. A trainer or dataset without a row (DualPromptMI,
ZeroshotCLIP2's prompt ensemble, the CPU benchmarks' datasets) shows ``-``.
"""

from __future__ import annotations

from clipprompt.results.order import AVERAGE_LABEL, PAPER_DATASET_ORDER

BACKBONE = "ViT-B/16"  # the backbone every published number uses (as results.json's "backbone" names it)
SHOTS = 16  # shots per base class of every published number
# The 11 datasets of the base-to-new protocol (CoOp/CoCoOp), over which the published Average is taken.
BASE_TO_NEW_DATASETS = PAPER_DATASET_ORDER[:11]

# Where the numbers come from: the official repositories' front pages, at the commit read.
SOURCES = {
    "MaPLe": "muzairkhattak/multimodal-prompt-learning @69bce21, README.md: table "
    "'MaPLe in comparison with existing methods' (11-dataset averages over 3 seeds)",
    "PromptSRC": "muzairkhattak/PromptSRC @bb95c77, README.md: table "
    "'PromptSRC in comparison with existing state-of-the-art' (11-dataset averages over 3 seeds)",
    "KgCoOp": "htyao89/KgCoOp @c43ccc3, readme.md: the table under 'Highlights' (Base, New, H)",
}

PUBLISHED_BASE_TO_NEW = {
    "ZeroshotCLIP": [
        {
            "dataset": AVERAGE_LABEL,
            "base": 69.34,  # MaPLe @69bce21 README.md row CLIP; PromptSRC @bb95c77 README.md row CLIP; KgCoOp readme.md
            "new": 74.22,  # same three rows
            "hm": 71.70,  # same three rows
            "reported_in": ("MaPLe", "PromptSRC", "KgCoOp"),
        },
    ],
    "CoOp": [
        {
            "dataset": AVERAGE_LABEL,
            "base": 82.69,  # MaPLe @69bce21 README.md row CoOp (200 epochs); PromptSRC @bb95c77 README.md row CoOp
            "new": 63.22,  # same two rows
            "hm": 71.66,  # same two rows
            "reported_in": ("MaPLe", "PromptSRC"),
        },
        {
            # KgCoOp's own run of CoOp differs from the one MaPLe and PromptSRC quote: named apart.
            "dataset": AVERAGE_LABEL,
            "base": 82.63,  # KgCoOp @c43ccc3 readme.md row CoOp
            "new": 67.99,  # same row
            "hm": 74.60,  # same row
            "reported_in": ("KgCoOp",),
        },
    ],
    "CoCoOp": [
        {
            "dataset": AVERAGE_LABEL,
            "base": 80.47,  # MaPLe @69bce21 README.md row CoCoOp; PromptSRC @bb95c77 README.md; KgCoOp readme.md
            "new": 71.69,  # same three rows
            "hm": 75.83,  # same three rows
            "reported_in": ("MaPLe", "PromptSRC", "KgCoOp"),
        },
    ],
    "KgCoOp": [
        {
            "dataset": AVERAGE_LABEL,
            "base": 80.73,  # KgCoOp @c43ccc3 readme.md row KgCoOp
            "new": 73.60,  # same row, printed 73.6
            "hm": 77.00,  # same row, printed 77.0
            "reported_in": ("KgCoOp",),
        },
    ],
    "ProGrad": [
        {
            # As KgCoOp reports it: ProGrad's own base-to-new table could not be read here.
            "dataset": AVERAGE_LABEL,
            "base": 82.48,  # KgCoOp @c43ccc3 readme.md row ProGrad
            "new": 70.75,  # same row
            "hm": 76.16,  # same row (the HM of 82.48 and 70.75 is 76.166: rounded from unrounded means)
            "reported_in": ("KgCoOp",),
        },
    ],
    "MaPLe": [
        {
            "dataset": AVERAGE_LABEL,
            "base": 82.28,  # MaPLe @69bce21 README.md row MaPLe (ours); PromptSRC @bb95c77 README.md row MaPLe
            "new": 75.14,  # same two rows
            "hm": 78.55,  # same two rows
            "reported_in": ("MaPLe", "PromptSRC"),
        },
    ],
    "PromptSRC": [
        {
            "dataset": AVERAGE_LABEL,
            "base": 84.26,  # PromptSRC @bb95c77 README.md row PromptSRC (ours)
            "new": 76.10,  # same row
            "hm": 79.97,  # same row
            "reported_in": ("PromptSRC",),
        },
    ],
}
