"""The CPU benchmarks: data builders, mini-CLIP pretraining, their trainer configs (no Dassl).

Imported from the repository root like ``trainers`` and ``datasets``, and not
installed (``setup.py`` packages ``clipprompt`` only): the method's library
does not depend on them. The command lines (``pretrain_mini_clip``, ``targets``,
``ordering``) run from the repository root as ``python -m benchmarks.<name>``.

* ``fashion_mnist/``: FashionMNIST's classes (``classes``), IDX files (``idx``),
  the fixed downstream split of the official TEST split (``split``), PNG export
  (``export``; 10 gray classes);
* ``fashion_colours``: 60 classes such as "red sneaker" rendered from the
  same images, base and new sharing no word;
* ``pretrain_mini_clip`` (the command line) over ``mini_clip/`` (recipe, preprocess,
  captions, training, evaluation): the mini CLIP of either benchmark, from
  the official TRAIN split;
* ``targets``: whether DualPromptMI beats each baseline, and whether its soft
  view collapses;
* ``ordering``: whether a run ranks the trainers as the field does (the
  trainers and pairs compared are ``ordering.CHECKS``);
* ``names``: which benchmark a results folder holds (from its dataset), so that
  ``targets`` and ``ordering`` judge by that benchmark's own claims;
* ``paired_table``: the table of paired per-seed comparisons both print;
* ``configs/trainers/<Trainer>/mini*.yaml``: the trainers' settings on the
  mini CLIPs (the scripts' ``CONFIG_ROOT``).
"""
