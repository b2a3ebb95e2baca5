"""The parts of tools/ablation.py (the command line lives there).

- ``plan``: plans (files under configs/ablation/), variants, the run settings, config checks and
  the fingerprint of each variant's effective config.
- ``stages``: the splits a plan runs on (the real base/new split, the pseudo split of the base
  classes) and each (variant, seed) as a ``tools.gridlib.Job``, with run folders from the scripts.
- ``runs``: the manifest under --out, the lock, and running a stage through ``tools.gridlib.run_jobs``.
- ``aggregate``: per-seed values, means and paired differences against the reference; the choice.
- ``report``: the tables as Markdown, CSV and JSON.
"""
