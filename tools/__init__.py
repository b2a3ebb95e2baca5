"""Command lines around train.py and the protocol scripts, run from the repository root as
``python -m tools.<name>`` (which puts the root on the import path, so ``clipprompt``, ``trainers``,
``datasets`` and ``parse_test_res`` import from this checkout).

Commands: ``grid`` (grids of runs), ``ablation`` (ablation plans, paired per-seed statistics),
``bench`` (speed and memory per trainer), ``plot_base_new`` (Base against New), ``export_open_clip``
(an OpenAI-layout CLIP as an open_clip model), ``parity_upstream`` (with ``parity_upstream.sh``: our
trainers against the official code's, trained on the same samples, and one step of each;
``parity_forward_worker`` is the official code's side, run in a process of its own).

Their libraries: ``gridlib`` (planning and running the jobs of a grid), ``ablationlib/`` (plans,
stages, runs, aggregation, report), ``benchlib`` (the models and the measurement of one step).
"""
