"""Pretrain a mini CLIP on FashionMNIST's official TRAIN split, on a CPU, for one of the CPU benchmarks.

``--benchmark`` picks the downstream task: ``fashion10`` (the default) or ``fashion_colours``.
The checkpoint (a float32 state dict in OpenAI's layout, ``clip.model.build_model`` rebuilds it)
goes to ``--out``, and a report beside it (``<out>.json``: recipe, wall time, zero-shot and probe
accuracies); neither is replaced without ``--overwrite``. The code is in ``benchmarks/mini_clip/``;
docs/mini_clip.md says how the mini CLIPs are built and why.

Usage::

    python -m benchmarks.pretrain_mini_clip --out /data/mini_clip/fashion_vit32.pt
    python -m benchmarks.pretrain_mini_clip --benchmark fashion_colours --out /data/mini_clip/colours.pt
    python -m benchmarks.pretrain_mini_clip --out /tmp/tiny.pt --quick   # seconds
"""

import argparse
import dataclasses
import json
import os
import sys
import time

import torch

from benchmarks import fashion_mnist as fm
from benchmarks.mini_clip.evaluation import accuracy_table, evaluate
from benchmarks.mini_clip.recipe import Recipe, check_existing, make_recipe, report_path
from benchmarks.mini_clip.training import pretrain
from clipprompt.errors import UserError, exit_status
from clipprompt.runtime.files import torch_save_atomic, write_text_atomic


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
    parser.add_argument("--no-progress", action="store_true",
                        help="print no progress (else a bar on a terminal, or a line with an ETA at each tenth of the steps)")
    parser.add_argument("--check-existing", action="store_true",
                        help="train nothing: check that the recipe saved beside an existing --out is the one these "
                             "arguments give (exit status 2 and the differing keys if not)")
    for field in dataclasses.fields(Recipe):
        parser.add_argument("--" + field.name.replace("_", "-"), type=type(field.default), default=None,
                            help=f"recipe (default {field.default})")
    return parser.parse_args(argv)


def recipe_from_args(args):
    given = {field.name: getattr(args, field.name) for field in dataclasses.fields(Recipe)}
    return make_recipe(given.pop("benchmark"), args.quick, **given)


def main(argv=None):
    args = parse_args(argv)
    recipe = recipe_from_args(args)
    if args.out.endswith(".json"):
        raise UserError(f"--out {args.out}: use a .pt name; the .json name next to it is for the report")
    if args.check_existing:
        return check_existing(args.out, recipe)
    sidecar = report_path(args.out)
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
    print("\n".join(accuracy_table(metrics)))
    return report


if __name__ == "__main__":
    sys.exit(exit_status(main))
