"""Parity with upstream CoOp: run its CoOp/CoCoOp trainers on the samples ours draw, compare.

Upstream's code never enters this repository: this tool takes the path of a CoOp
checkout (``git clone https://github.com/KaiyangZhou/CoOp``) and of a Dassl source
tree, and works in a folder outside the repository (``--work``). Subcommands:

``setup --coop DIR --dassl DIR --clip FILE --data ROOT --work WORK``
    * ``WORK/Dassl``: a copy of the Dassl tree with the two edits upstream needs on
      torch >= 2.4 (the warm-up scheduler passes ``verbose`` to ``LRScheduler``;
      ``torch.load`` defaults to ``weights_only=True``, which refuses Dassl's
      pickled scheduler state). Nothing else changes.
    * ``WORK/CoOp``: a copy of the CoOp checkout whose ``load_clip_to_cpu`` (CoOp's and
      CoCoOp's) reads ``WORK/clip.pt`` instead of downloading OpenAI's weights (it can only
      download). Nothing else changes.
    * ``WORK/clip.pt``: the CLIP checkpoint with its weights rounded through fp16.
      Upstream's loader builds CLIP with ``clip.build_model`` (fp16) and then casts
      to fp32, which rounds an fp32 file; ours reloads the fp32 weights. Rounded
      once here, both sides load identical weights.
    * ``WORK/data_upstream/oxford_pets/``: symbolic links to ``ROOT/fashion_mnist``'s
      images and split file, so upstream reads the benchmark with its own, unmodified
      ``OxfordPets`` dataset class (its split reader, its few-shot sampler, its
      ``subsample_classes``); the dataset class only reads a CoOp split file.
``upstream --coop DIR --work WORK -- <train.py args>``
    Upstream's ``train.py`` (of ``WORK/CoOp``), run in place of this process by the same
    interpreter with ``PYTHONPATH`` = the patched Dassl: its own folder comes first on its
    import path, so ``trainers``, ``datasets`` and ``clip`` are upstream's.
``table --ours OUT --upstream OUT --ours-data ROOT --work WORK``
    Checks that both sides cached the same few-shot files per seed and prints
    Base/New accuracy per trainer and seed, side by side (Markdown).

``tools/parity_upstream.sh`` runs the whole comparison (``python -m tools.parity_upstream ...``
from the repository root).
"""

import argparse
import glob
import json
import os
import re
import shutil
import sys

DASSL_EDITS = (
    # (file, old, new): each must match exactly once, else the Dassl tree is not the expected one.
    ("dassl/optim/lr_scheduler.py", "super().__init__(optimizer, last_epoch, verbose)",
     "super().__init__(optimizer, last_epoch)"),
    ("dassl/utils/torchtools.py", "checkpoint = torch.load(fpath, map_location=map_location)",
     "checkpoint = torch.load(fpath, map_location=map_location, weights_only=False)"),
)
# Upstream's load_clip_to_cpu (trainers/coop.py and trainers/cocoop.py) downloads OpenAI's weights named by
# MODEL.BACKBONE.NAME; the copy reads the file {clip} (WORK/clip.pt) instead. Its fallback then
# loads it as a state dict and builds the model with clip.build_model, as upstream does.
COOP_DOWNLOAD = "    url = clip._MODELS[backbone_name]\n    model_path = clip._download(url)\n"
COOP_LOCAL = "    model_path = {clip!r}  # tools/parity_upstream.py setup: the rounded CLIP, not a download\n"
COOP_EDITS = ("trainers/coop.py", "trainers/cocoop.py")
TRAINERS = ("CoOp", "CoCoOp")


def replace_once(path, old, new):
    """Replace the one occurrence of ``old`` in the file ``path``; exit if it is not there exactly once."""
    with open(path) as f:
        text = f.read()
    if text.count(old) != 1:
        sys.exit(f"error: {path} does not contain {old!r} exactly once; another version?")
    with open(path, "w") as f:
        f.write(text.replace(old, new))


def setup(args):
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    dassl_copy = os.path.join(work, "Dassl")
    if not os.path.isdir(dassl_copy):
        shutil.copytree(os.path.join(args.dassl, "dassl"), os.path.join(dassl_copy, "dassl"))
        for relpath, old, new in DASSL_EDITS:
            replace_once(os.path.join(dassl_copy, relpath), old, new)
    coop_copy = os.path.join(work, "CoOp")
    if not os.path.isdir(coop_copy):
        shutil.copytree(args.coop, coop_copy, ignore=shutil.ignore_patterns(".git", "output", "data"))
        for relpath in COOP_EDITS:
            replace_once(os.path.join(coop_copy, relpath), COOP_DOWNLOAD, COOP_LOCAL.format(clip=os.path.join(work, "clip.pt")))
    import torch

    from clipprompt.runtime.files import torch_save_atomic

    state_dict = torch.load(args.clip, map_location="cpu", weights_only=True)
    # atomic: runs of another setup may be reading it
    torch_save_atomic({k: v.half().float() if v.is_floating_point() else v for k, v in state_dict.items()},
                      os.path.join(work, "clip.pt"))

    source = os.path.join(os.path.abspath(args.data), "fashion_mnist")
    target = os.path.join(work, "data_upstream", "oxford_pets")
    os.makedirs(target, exist_ok=True)
    for name, link in (("images", "images"), ("split_fashion_mnist.json", "split_zhou_OxfordPets.json")):
        if not os.path.exists(os.path.join(source, name)):
            sys.exit(f"error: {os.path.join(source, name)} not found; run one FashionMNIST job of ours first")
        if not os.path.lexists(os.path.join(target, link)):
            os.symlink(os.path.join(source, name), os.path.join(target, link))
    with open(os.path.join(work, "fashion_as_oxford_pets.yaml"), "w") as f:
        f.write('DATASET:\n  NAME: "OxfordPets"\n')
    print(f"parity work folder ready: {work}")


def upstream(args, rest):
    work = os.path.abspath(args.work)
    train = os.path.join(work, "CoOp", "train.py")
    if not os.path.isfile(train):
        sys.exit(f"error: {train} not found; run setup --coop {args.coop} --work {args.work} ... first")
    # Run as a script, upstream's folder is first on its import path (its trainers, datasets and clip,
    # not ours); PYTHONPATH puts the patched Dassl before the installed one.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [os.path.join(work, "Dassl"),
                                                                      os.environ.get("PYTHONPATH")])))
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, train, *rest], env)


def upstream_accuracy(run_dir):
    """Accuracy (%) from the last Dassl evaluation in ``run_dir/log.txt*``."""
    logs = sorted(glob.glob(os.path.join(run_dir, "log.txt*")), key=os.path.getmtime)
    if not logs:
        return None
    with open(logs[-1]) as f:
        text = f.read()
    found = re.findall(r"\* total: ([\d,]+)\n\* correct: ([\d,]+)", text)
    if not found:
        return None
    total, correct = (int(x.replace(",", "")) for x in found[-1])
    return 100.0 * correct / total


def ours_accuracy(run_dir):
    path = os.path.join(run_dir, "results.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)["accuracy"]


def same_samples(ours_cache, upstream_cache):
    """True when both pickles hold the same files (relative to their image folders), in the same order."""
    from clipprompt.data.fewshot import read_coop_cache

    def relpaths(path):
        cache = read_coop_cache(path)
        return {split: [p.split("/images/", 1)[1] for p, _, _ in cache[split] or []] for split in ("train", "val")}

    if not (os.path.isfile(ours_cache) and os.path.isfile(upstream_cache)):
        return None
    return relpaths(ours_cache) == relpaths(upstream_cache)


def table(args):
    """Markdown: per trainer and seed, Base and New of both sides and ours - upstream; then the means,
    with the 95% t-interval of the mean paired difference."""
    from clipprompt.results.paired import paired_difference

    rows = ["| trainer | seed | same few-shot files | Base ours | Base upstream | Δ Base "
            "| New ours | New upstream | Δ New |", "|---|---|---|---|---|---|---|---|---|"]

    def cells(values):
        bo, bu, no, nu = values
        diff = [None if None in (a, b) else a - b for a, b in ((bo, bu), (no, nu))]
        return [bo, bu, diff[0], no, nu, diff[1]]

    def fmt(value, signed=False):
        return "-" if value is None else f"{value:+.2f}" if signed else f"{value:.2f}"

    for trainer in TRAINERS:
        per_seed = []
        for seed in args.seeds:
            values = []
            for half, sub in (("base", "train_base"), ("new", "test_new")):
                run = os.path.join(sub, trainer, f"seed{seed}")
                values += [ours_accuracy(os.path.join(args.ours, run)),
                           upstream_accuracy(os.path.join(args.upstream, run))]
            same = same_samples(
                os.path.join(args.ours_data, "fashion_mnist", "split_fewshot", f"shot_{args.shots}-seed_{seed}.pkl"),
                os.path.join(args.work, "data_upstream", "oxford_pets", "split_fewshot",
                             f"shot_{args.shots}-seed_{seed}.pkl"),
            )
            row = cells(values)
            per_seed.append(values)
            rows.append(f"| {trainer} | {seed} | {'-' if same is None else 'yes' if same else 'NO'} | "
                        + " | ".join(fmt(v, signed=i in (2, 5)) for i, v in enumerate(row)) + " |")
        complete = [v for v in per_seed if None not in v]
        if complete:
            means = [fmt(v, signed=i in (2, 5)) for i, v in enumerate(cells([sum(c) / len(c) for c in zip(*complete)]))]
            for column, (ours_at, upstream_at) in ((2, (0, 1)), (5, (2, 3))):
                diff = paired_difference(dict(enumerate(v[upstream_at] for v in complete)),
                                         dict(enumerate(v[ours_at] for v in complete)))
                if diff.ci_low is not None:
                    means[column] += f" [{diff.ci_low:+.2f}, {diff.ci_high:+.2f}]"
            rows.append(f"| {trainer} | mean of {len(complete)} | | " + " | ".join(means) + " |")
    print("\n".join(rows))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("setup")
    for flag in ("--coop", "--dassl", "--clip", "--data", "--work"):
        p.add_argument(flag, required=True)
    p = sub.add_parser("upstream")
    p.add_argument("--coop", required=True)
    p.add_argument("--work", required=True)
    p = sub.add_parser("table")
    for flag in ("--ours", "--upstream", "--ours-data", "--work"):
        p.add_argument(flag, required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--shots", type=int, default=16)

    argv = sys.argv[1:]
    rest = []
    if "--" in argv:
        argv, rest = argv[: argv.index("--")], argv[argv.index("--") + 1:]
    args = parser.parse_args(argv)
    if args.command == "setup":
        setup(args)
    elif args.command == "upstream":
        upstream(args, rest)
    else:
        table(args)


if __name__ == "__main__":
    main()
