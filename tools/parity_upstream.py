"""Parity with the official code: trained on the samples ours draw; one step of every peer's official code, its values and time.

The official code never enters this repository: this tool takes the paths of the official checkouts and
of their Dassl trees, and works in a folder outside the repository (``--work``). Subcommands:

``setup --dassl DIR [--dassl-prograd DIR] --clip FILE --data ROOT --work WORK --benchmark B --trainers T ...``
    * ``WORK/Dassl`` (and ``WORK/Dassl.ProGrad``: the ``Dassl.ProGrad.pytorch`` fork that KgCoOp's and
      ProGrad's repositories ship): a copy of the Dassl tree with the two edits the official code needs on
      torch >= 2.4 (the warm-up scheduler passes ``verbose`` to ``LRScheduler``; ``torch.load`` defaults to
      ``weights_only=True``, which refuses Dassl's pickled scheduler state). Nothing else changes.
    * ``WORK/clip.pt``: the CLIP checkpoint with its weights rounded through fp16. The official loaders
      build CLIP with ``clip.build_model`` (fp16) and then cast to fp32, which rounds an fp32 file; ours
      reloads the fp32 weights. Rounded once here, both sides load identical weights.
    * ``WORK/data_upstream/<T>/oxford_pets/``: per trainer, symbolic links to the benchmark's images and
      split file (``ROOT/fashion_mnist`` for ``fashion10``, ``ROOT/fashion_colours``), so each official
      repository reads the benchmark with its own, unmodified ``OxfordPets`` dataset class (its split
      reader, its few-shot sampler and cache, its ``subsample_classes``); the class only reads a CoOp split
      file. One folder per trainer: each repository writes and reads its own few-shot cache.
    * ``WORK/benchmark.json``: the benchmark, its dataset's name, folder and template, and the CLIP's widths.
``upstream --trainer T --code DIR --work WORK -- <train.py args>``
    The official ``train.py`` of the checkout ``DIR`` (its code folder: KgCoOp's and ProGrad's repositories
    keep it in a subfolder), unmodified, in place of this process: ``PYTHONPATH`` = its code folder, the
    patched Dassl of ``setup`` (the fork for KgCoOp and ProGrad), and ``tools/`` for
    ``parity_forward_worker.py``, which installs run-time shims and then runs ``train.py`` as ``__main__``
    (the shims, listed in that module: ``.half()``/``.cuda()`` as identities, ``clip._download`` -> ``WORK/
    clip.pt``, KgCoOp's and ProGrad's ``OxfordPets`` template -> the benchmark's, MaPLe's hard-coded
    widths 768/512 -> the CLIP's; each is counted and printed at the end of the run's log).
    ``--config-file`` names our config: it is replaced by the official trainer's translation of it
    (:func:`official_config`), written to ``WORK/official_configs/<T>/``.
``table --ours OUT --upstream OUT --ours-data ROOT --work WORK --trainers T ...``
    Checks that both sides cached the same few-shot files per seed and prints Base/New accuracy per
    trainer and seed, side by side, with the means and the paired differences (Markdown).

``forward --trainer {KgCoOp,ProGrad,MaPLe,PromptSRC,IVLP,CoOp,CoCoOp} --upstream DIR --dassl DIR [--clip FILE]``
    One step of the official trainer against ours, fp32, on one CLIP (``--clip``, rounded through fp16;
    without it a small random ViT CLIP with a 768-wide image tower, which MaPLe's coupling needs) with
    our learnable parameters copied into the official model: logits on a base and a new class set, the
    loss and each term (KgCoOp's; ProGrad's KL and projected gradient; PromptSRC's two L1 terms, its KL,
    frozen features), every learnable gradient, and PromptSRC's Gaussian-aggregated prompts after a
    short schedule. One line per quantity (max abs difference, ``ok`` within 1e-5) after the official
    commit; exit 0 when all are within, 1 when one is not, 2 on bad input (one ``error:`` line). The
    official code runs unmodified in its own process (``tools/parity_forward_worker.py``: its shims,
    ``.half()``/``.cuda()`` as identities on the CPU, are listed there and printed per call site).
    ``--dassl``: KgCoOp and ProGrad take the ``Dassl.ProGrad.pytorch`` of their repository, the others
    KaiyangZhou's Dassl. docs/cpu_benchmarks.md ("Parity with upstream CoOp") has the table.

``train --trainer T --upstream DIR --dassl DIR --clip FILE -- <official train.py args>``
    The official ``train.py`` of any trainer above, unmodified, in its own process under the shims of
    ``forward`` (``tools/parity_forward_worker.py``; ``--clip`` stands for ``MODEL.BACKBONE.NAME``'s
    download): it trains, writes its checkpoints and evaluates as it does on a GPU. The official-checkpoint
    test (tests/test_import_checkpoint_official.py) evaluates what it writes with ours.
``speed --trainer {MaPLe,PromptSRC} --upstream DIR --dassl DIR [--steps N] [--warmup N] [--repeats R] [--full-text]``
    The time of one training step (forward, loss, backward, SGD step) of the official trainer and of ours,
    same CLIP shapes (``--clip-shapes vit_b16``: ViT-B/16's, random weights; ``small``: forward's CLIP),
    same class names (``--classes``, default 50, ``class <i>``), batch, images and prompt settings as
    ``forward`` (MaPLe 2 tokens, PromptSRC 4+4 tokens and its three terms with the 60-template teacher;
    depth 9), fp32, one thread. Each side runs in a fresh process (the official one through
    ``tools/parity_forward_worker.py``'s timing mode, with forward's shims), ``--repeats`` times, ours
    first then official; each process runs ``--warmup`` untimed steps, then ``--steps`` timed ones. Prints
    per side the median process CPU time of the timed steps, with a breakdown (the forward time of each
    tower, the rest), and the ratio ours/official. ``--full-text`` adds a side ``ours-77``: ours with the
    text pass over all 77 positions, as the official code runs it. Exit 0 when both sides were timed (a measurement, not a
    verdict), 1 when a side's process failed, 2 on bad input. docs/performance.md has the numbers.

``tools/parity_upstream.sh`` runs the whole sample-for-sample comparison (``python -m tools.parity_upstream
...`` from the repository root).
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
# The trainers of the sample-for-sample runs, and those whose official code runs on the Dassl.ProGrad fork.
SAMPLE_TRAINERS = ("CoOp", "CoCoOp", "KgCoOp", "ProGrad", "MaPLe", "PromptSRC")
ON_DASSL_FORK = ("KgCoOp", "ProGrad")
BENCHMARK_DATASETS = {"fashion10": "FashionMNIST", "fashion_colours": "FashionColours"}

# Our config keys -> the official trainer's, per trainer: (our section under TRAINER, {our key: official key}).
# Keys of ours outside the map must hold the value in OFFICIAL_FIXED (what the official code does without a
# key), else official_config refuses: nothing of our config is dropped silently.
OFFICIAL_KEYS = {
    "KgCoOp": ("KGCOOP", {"N_CTX": "TRAINER.COOP.N_CTX", "CSC": "TRAINER.COOP.CSC", "W": "TRAINER.COOP.W",
                          "CLASS_TOKEN_POSITION": "TRAINER.COOP.CLASS_TOKEN_POSITION",
                          "PREC": "TRAINER.COOP.PREC"}),
    "ProGrad": ("PROGRAD", {"N_CTX": "TRAINER.COOP.N_CTX", "CSC": "TRAINER.COOP.CSC",
                            "CLASS_TOKEN_POSITION": "TRAINER.COOP.CLASS_TOKEN_POSITION",
                            "PREC": "TRAINER.COOP.PREC", "LAMBDA": "LOSS.LAMBDA", "T": "LOSS.T"}),
    "MaPLe": ("MAPLE", {k: "TRAINER.MAPLE." + k for k in ("N_CTX", "CTX_INIT", "PROMPT_DEPTH", "PREC")}),
    "PromptSRC": ("PROMPTSRC", {k: "TRAINER.PROMPTSRC." + k for k in (
        "N_CTX_TEXT", "N_CTX_VISION", "CTX_INIT", "PROMPT_DEPTH_TEXT", "PROMPT_DEPTH_VISION", "TEXT_LOSS_WEIGHT",
        "IMAGE_LOSS_WEIGHT", "GPA_MEAN", "GPA_STD", "PREC")}),
}
OFFICIAL_FIXED = {
    # KgCoOp's CTX_INIT True hard-codes "a photo of a"; ProGrad's takes the words of the dataset's template
    # before "{}" (the benchmark's "a photo of a {}." through the worker's template shim).
    "KgCoOp": {"CTX_INIT": "a photo of a", "HAND_TEMPLATES": ["dataset"]},
    "ProGrad": {"CTX_INIT": "a photo of a", "HAND_TEMPLATES": ["dataset"]},
    "MaPLe": {},
    "PromptSRC": {"GPA": True, "HAND_TEMPLATES": ["promptsrc_ensemble"], "KL_LOSS_WEIGHT": 1.0},
}
OFFICIAL_EXTRA = {  # set on the official side whatever ours says
    "KgCoOp": {"TRAINER.COOP.CTX_INIT": True},
    "ProGrad": {"TRAINER.COOP.CTX_INIT": True, "LOSS.NAME": "prograd"},
}
# The official train.py declares these as int (yacs refuses a float for an int key).
OFFICIAL_INTS = {"TRAINER.PROMPTSRC.TEXT_LOSS_WEIGHT", "TRAINER.PROMPTSRC.IMAGE_LOSS_WEIGHT",
                 "TRAINER.PROMPTSRC.GPA_MEAN", "TRAINER.PROMPTSRC.GPA_STD"}


def official_config(trainer, ours):
    """The official trainer's config (nested dict) for our config ``ours`` (nested dict, as read from YAML):
    every section but TRAINER as it is; our trainer's keys under the official names (OFFICIAL_KEYS).
    Raises ValueError naming the key that the official code cannot express."""
    if trainer in ("CoOp", "CoCoOp"):  # our CoOp and CoCoOp keys are CoOp's own
        return json.loads(json.dumps(ours))
    section, keys = OFFICIAL_KEYS[trainer]
    out = {k: json.loads(json.dumps(v)) for k, v in ours.items() if k != "TRAINER"}
    trainer_cfg = dict((ours.get("TRAINER") or {}).get(section) or {})
    others = set((ours.get("TRAINER") or {})) - {section}
    if others:
        raise ValueError(f"TRAINER.{sorted(others)[0]}: a section the official {trainer} config has no use for")
    flat = dict(OFFICIAL_EXTRA.get(trainer, {}))
    for key, value in trainer_cfg.items():
        if key in keys:
            official = keys[key]
            if official in OFFICIAL_INTS:
                if float(value) != int(value):
                    raise ValueError(f"TRAINER.{section}.{key} {value}: the official {official} is an integer")
                value = int(value)
            flat[official] = value
        elif key in OFFICIAL_FIXED[trainer]:
            if value != OFFICIAL_FIXED[trainer][key]:
                raise ValueError(f"TRAINER.{section}.{key} {value!r}: the official {trainer} can only do "
                                 f"{OFFICIAL_FIXED[trainer][key]!r}")
        else:
            raise ValueError(f"TRAINER.{section}.{key}: no official {trainer} key for it")
    if trainer == "KgCoOp":  # its meta-net cast reads CoCoOp's precision key
        flat["TRAINER.COCOOP.PREC"] = flat.get("TRAINER.COOP.PREC", "fp16")
    for key, value in flat.items():
        *path, leaf = key.split(".")
        node = out
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def replace_once(path, old, new):
    """Replace the one occurrence of ``old`` in the file ``path``; exit if it is not there exactly once."""
    with open(path) as f:
        text = f.read()
    if text.count(old) != 1:
        sys.exit(f"error: {path} does not contain {old!r} exactly once; another version?")
    with open(path, "w") as f:
        f.write(text.replace(old, new))


def patched_dassl(source, target):
    """``target``: a copy of the Dassl tree ``source`` with DASSL_EDITS (made once)."""
    if not os.path.isfile(os.path.join(source, "dassl", "engine", "trainer.py")):
        fail_input(f"{source} is not a Dassl source tree (no dassl/engine/trainer.py)")
    if not os.path.isdir(target):
        shutil.copytree(os.path.join(source, "dassl"), os.path.join(target, "dassl"))
        for relpath, old, new in DASSL_EDITS:
            replace_once(os.path.join(target, relpath), old, new)


def benchmark_dataset(benchmark):
    """(Dassl dataset name, its folder under the data root, image folder, split file, template)."""
    import datasets  # noqa: F401  (registers our dataset classes)
    from dassl.data.datasets import DATASET_REGISTRY

    from clipprompt.prompts.templates import DATASET_TEMPLATES, DEFAULT_TEMPLATE

    name = BENCHMARK_DATASETS[benchmark]
    cls = DATASET_REGISTRY.get(name)
    return name, cls.dataset_dir, cls.image_dir, cls.split_file, DATASET_TEMPLATES.get(name, DEFAULT_TEMPLATE)


def setup(args):
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    patched_dassl(args.dassl, os.path.join(work, "Dassl"))
    if set(args.trainers) & set(ON_DASSL_FORK):
        if not args.dassl_prograd:
            fail_input(f"--dassl-prograd: {' and '.join(ON_DASSL_FORK)} need the Dassl.ProGrad.pytorch of their "
                       "repository")
        patched_dassl(args.dassl_prograd, os.path.join(work, "Dassl.ProGrad"))
    import torch

    from clipprompt.runtime.files import torch_save_atomic, write_text_atomic

    state_dict = torch.load(args.clip, map_location="cpu", weights_only=True)
    # atomic: runs of another setup may be reading it
    torch_save_atomic({k: v.half().float() if v.is_floating_point() else v for k, v in state_dict.items()},
                      os.path.join(work, "clip.pt"))

    name, folder, image_dir, split_file, template = benchmark_dataset(args.benchmark)
    source = os.path.join(os.path.abspath(args.data), folder)
    for trainer in args.trainers:
        target = os.path.join(work, "data_upstream", trainer, "oxford_pets")
        os.makedirs(target, exist_ok=True)
        for name_here, link in ((image_dir, "images"), (split_file, "split_zhou_OxfordPets.json")):
            if not os.path.exists(os.path.join(source, name_here)):
                fail_input(f"{os.path.join(source, name_here)} not found; run one {args.benchmark} job of ours first")
            if not os.path.lexists(os.path.join(target, link)):
                os.symlink(os.path.join(source, name_here), os.path.join(target, link))
    with open(os.path.join(work, "fashion_as_oxford_pets.yaml"), "w") as f:
        f.write('DATASET:\n  NAME: "OxfordPets"\n')
    info = {"benchmark": args.benchmark, "dataset": name, "dataset_dir": folder, "template": template,
            "vision_width": int(state_dict["visual.conv1.weight"].shape[0]),
            "text_width": int(state_dict["ln_final.weight"].shape[0])}
    write_text_atomic(os.path.join(work, "benchmark.json"), json.dumps(info, indent=1) + "\n")
    print(f"parity work folder ready: {work}")


def code_root(trainer, checkout, flag="--code"):
    """The folder of the official train.py of ``trainer`` inside ``checkout``; exits 2 if it is not there."""
    folder, trainer_file, marker = OFFICIAL_TRAINERS[trainer]
    root = os.path.join(checkout, folder) if folder else checkout
    try:
        with open(os.path.join(root, trainer_file)) as f:
            found = marker in f.read()
    except OSError:
        found = False
    if not found or not os.path.isfile(os.path.join(root, "clip", "clip.py")) \
            or not os.path.isfile(os.path.join(root, "train.py")):
        fail_input(f"{flag} {checkout} is not a checkout of {EXPECTED_REPOSITORY[trainer]} "
                   f"({os.path.join(folder, trainer_file)} with {marker!r}, clip/ and train.py expected)")
    return os.path.abspath(root)


def translate_config_argument(trainer, rest, work):
    """``rest`` with ``--config-file OURS`` replaced by the official translation, written under WORK."""
    import yaml

    if "--config-file" not in rest:
        return rest
    at = rest.index("--config-file") + 1
    ours = rest[at]
    with open(ours) as f:
        cfg = yaml.safe_load(f) or {}
    try:
        official = official_config(trainer, cfg)
    except ValueError as exc:
        fail_input(f"{ours}: {exc}")
    path = os.path.join(work, "official_configs", trainer, os.path.basename(ours))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    text = f"# The official {trainer}'s translation of {os.path.abspath(ours)} (tools/parity_upstream.py)\n"
    with open(path, "w") as f:
        f.write(text + yaml.safe_dump(official, sort_keys=False))
    return [*rest[:at], path, *rest[at + 1:]]


def upstream(args, rest):
    work = os.path.abspath(args.work)
    info_path = os.path.join(work, "benchmark.json")
    if not os.path.isfile(info_path):
        fail_input(f"{info_path} not found; run setup --work {args.work} ... first")
    with open(info_path) as f:
        info = json.load(f)
    root = code_root(args.trainer, args.code)
    dassl = os.path.join(work, "Dassl.ProGrad" if args.trainer in ON_DASSL_FORK else "Dassl")
    if not os.path.isdir(dassl):
        fail_input(f"{dassl} not found; run setup with --trainers {args.trainer} first")
    spec = {"trainer": args.trainer, "code_root": root, "dassl": dassl, "backbone": "ViT-B/16",
            "clip": os.path.join(work, "clip.pt"), "vision_width": info["vision_width"],
            "text_width": info["text_width"]}
    if args.trainer in ON_DASSL_FORK:
        spec["template"] = info["template"]
    rest = translate_config_argument(args.trainer, rest, work)
    # The name the official load_clip_to_cpu looks up in clip._MODELS: the config's (Dassl's default "" when
    # it names none, as the mini CoOp configs), or the command line's.
    if "--config-file" in rest:
        import yaml

        with open(rest[rest.index("--config-file") + 1]) as f:
            spec["backbone"] = ((yaml.safe_load(f) or {}).get("MODEL") or {}).get("BACKBONE", {}).get("NAME", "")
    else:
        spec["backbone"] = ""
    if "MODEL.BACKBONE.NAME" in rest:
        spec["backbone"] = rest[rest.index("MODEL.BACKBONE.NAME") + 1]
    spec_path = os.path.join(work, "official_configs", f"{args.trainer}.spec.json")
    os.makedirs(os.path.dirname(spec_path), exist_ok=True)
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    here = os.path.dirname(os.path.abspath(__file__))
    # The official code folder first on the import path (its trainers, datasets and clip, not ours), then
    # the patched Dassl, then tools/ for the worker; no bytecode is written into the official checkout.
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1",
               PYTHONPATH=os.pathsep.join(filter(None, [root, dassl, here, os.environ.get("PYTHONPATH")])))
    code = "import sys, parity_forward_worker as worker; worker.train_main(sys.argv[1], sys.argv[2:])"
    sys.stdout.flush()
    os.chdir(root)
    os.execve(sys.executable, [sys.executable, "-c", code, spec_path, *rest], env)


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

    with open(os.path.join(args.work, "benchmark.json")) as f:
        dataset_dir = json.load(f)["dataset_dir"]
    rows = ["| trainer | seed | same few-shot files | Base ours | Base upstream | Δ Base "
            "| New ours | New upstream | Δ New |", "|---|---|---|---|---|---|---|---|---|"]

    def cells(values):
        bo, bu, no, nu = values
        diff = [None if None in (a, b) else a - b for a, b in ((bo, bu), (no, nu))]
        return [bo, bu, diff[0], no, nu, diff[1]]

    def fmt(value, signed=False):
        return "-" if value is None else f"{value:+.2f}" if signed else f"{value:.2f}"

    for trainer in args.trainers:
        per_seed = []
        for seed in args.seeds:
            values = []
            for half, sub in (("base", "train_base"), ("new", "test_new")):
                run = os.path.join(sub, trainer, f"seed{seed}")
                values += [ours_accuracy(os.path.join(args.ours, run)),
                           upstream_accuracy(os.path.join(args.upstream, run))]
            cache = os.path.join("split_fewshot", f"shot_{args.shots}-seed_{seed}.pkl")
            same = same_samples(os.path.join(args.ours_data, dataset_dir, cache),
                                os.path.join(args.work, "data_upstream", trainer, "oxford_pets", cache))
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


# ----- forward: the official trainers' forward and backward against ours -----------------------------

# --trainer: (folder of the training code inside the checkout, or "" for its root; the trainer file; the
# class it must define). KgCoOp's and ProGrad's repositories keep the code in a subfolder next to their
# Dassl fork.
OFFICIAL_TRAINERS = {
    "KgCoOp": ("KgCoOp", "trainers/kgcoop.py", "class KgCoOp(TrainerX)"),
    "ProGrad": ("ProGrad.public", "trainers/prograd.py", "class ProGrad(TrainerX)"),
    "MaPLe": ("", "trainers/maple.py", "class MaPLe(TrainerX)"),
    "PromptSRC": ("", "trainers/promptsrc.py", "class PromptSRC(TrainerX)"),
    "IVLP": ("", "trainers/independentVL.py", "class IVLP(TrainerX)"),
    "CoOp": ("", "trainers/coop.py", "class CoOp(TrainerX)"),
    "CoCoOp": ("", "trainers/cocoop.py", "class CoCoOp(TrainerX)"),
}
EXPECTED_REPOSITORY = {"KgCoOp": "htyao89/KgCoOp", "ProGrad": "BeierZhu/Prompt-align",
                       "MaPLe": "muzairkhattak/multimodal-prompt-learning", "PromptSRC": "muzairkhattak/PromptSRC",
                       "IVLP": "muzairkhattak/PromptSRC", "CoOp": "KaiyangZhou/CoOp", "CoCoOp": "KaiyangZhou/CoOp"}
TOLERANCE = 1e-5  # max abs difference, fp32, for every quantity
DATASET_NAME = "ImageNet"  # upstream's hand-crafted template for it is "a photo of a {}."
DATASET_TEMPLATE = "a photo of a {}."
BASE_CLASSES = ["goldfish", "great white shark", "tree frog", "golden retriever", "airliner"]
NEW_CLASSES = ["sea turtle", "fire truck", "strawberry", "dalmatian"]
RANDOM_CLIP = {"embed_dim": 512, "image_resolution": 32, "vision_layers": 4, "vision_width": 768,
               "vision_patch_size": 16, "context_length": 77, "vocab_size": 49408, "transformer_width": 512,
               "transformer_heads": 8, "transformer_layers": 4}
SCHEDULE = {"epochs": 3, "per_epoch": 2, "lr": 0.0025, "gpa_mean": 2.0, "gpa_std": 1.0}  # PromptSRC's short schedule
BATCH = 4


def fail_input(message):
    """Bad input: one line, exit 2."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def check_forward_inputs(args):
    """(code root of the official trainer, its Dassl tree); exits 2 naming what to fix."""
    repo = EXPECTED_REPOSITORY[args.trainer]
    if not os.path.isdir(args.upstream):
        fail_input(f"--upstream {args.upstream} is not a folder; pass a checkout of {repo}")
    root = code_root(args.trainer, args.upstream, "--upstream")
    trainer_py = os.path.join(args.dassl, "dassl", "engine", "trainer.py")
    if not os.path.isfile(trainer_py):
        fail_input(f"--dassl {args.dassl} is not a Dassl source tree (no dassl/engine/trainer.py)")
    if args.trainer == "ProGrad":
        with open(trainer_py) as f:
            if "def prograd_backward_and_update" not in f.read():
                fail_input(f"--dassl {args.dassl} lacks prograd_backward_and_update; pass the Dassl.ProGrad.pytorch "
                           f"folder of the {repo} checkout")
    if args.clip is not None and not os.path.isfile(args.clip):
        fail_input(f"--clip {args.clip} not found; pass a CLIP state dict file, or leave --clip out for a random CLIP")
    return root, os.path.abspath(args.dassl)


def upstream_commit(path):
    import subprocess

    try:
        return subprocess.run(["git", "-C", path, "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


def random_clip_state_dict(seed=0, shapes=None):
    """A random CLIP (ViT) the official code runs unmodified, by default a small one (``RANDOM_CLIP``): a
    768-wide image tower (MaPLe's coupling maps to 768) and a 512-wide text tower (MaPLe's deep text prompts
    are 512 wide), OpenAI's vocabulary. ``shapes``: ``clip.model.CLIP``'s arguments instead."""
    import torch

    from clipprompt.clip.openai_clip import import_clip

    torch.manual_seed(seed)
    model = import_clip().model.CLIP(**(shapes or RANDOM_CLIP))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def clip_geometry(state_dict):
    """(image size, prompt depth) of a ViT CLIP state dict: the published depth 9, at most the blocks of the
    shallower tower minus one."""
    image_size = state_dict["visual.conv1.weight"].shape[-1] * round(
        (state_dict["visual.positional_embedding"].shape[0] - 1) ** 0.5)
    layers = min(len({k.split(".")[3] for k in state_dict if k.startswith("visual.transformer.resblocks.")}),
                 len({k.split(".")[2] for k in state_dict if k.startswith("transformer.resblocks.")}))
    return image_size, min(9, layers - 1)


def official_options(trainer, depth, image_size):
    """([(config key, value)] for the official trainer, ours' option overrides), the same setting on both sides."""
    common = [("MODEL.BACKBONE.NAME", "ViT-B/16"), ("INPUT.SIZE", (image_size, image_size)),
              ("DATASET.NAME", DATASET_NAME), ("OPTIM.NAME", "sgd"), ("OPTIM.LR", SCHEDULE["lr"]),
              ("OPTIM.MAX_EPOCH", SCHEDULE["epochs"]), ("OPTIM.LR_SCHEDULER", "cosine"),
              ("OPTIM.WARMUP_EPOCH", -1)]
    if trainer in ("CoOp", "KgCoOp", "ProGrad"):
        cfg = [("TRAINER.COOP.N_CTX", 4), ("TRAINER.COOP.CTX_INIT", "a photo of a"), ("TRAINER.COOP.PREC", "fp32"),
               ("TRAINER.COOP.CSC", False), ("TRAINER.COOP.CLASS_TOKEN_POSITION", "end")]
        ours = {"n_ctx": 4, "ctx_init": "a photo of a"}
        if trainer == "KgCoOp":
            cfg += [("TRAINER.COOP.W", 8.0), ("TRAINER.COCOOP.PREC", "fp32")]
            ours.update(w=8.0, hand_templates=["dataset"])
        if trainer == "ProGrad":
            cfg += [("LOSS.NAME", "prograd"), ("LOSS.T", 1.0), ("LOSS.LAMBDA", 1.0)]
            ours.update(lam=1.0, t=1.0, hand_templates=["dataset"])
    elif trainer == "CoCoOp":
        cfg = [("TRAINER.COCOOP.N_CTX", 4), ("TRAINER.COCOOP.CTX_INIT", "a photo of a"),
               ("TRAINER.COCOOP.PREC", "fp32")]
        ours = {"n_ctx": 4, "ctx_init": "a photo of a"}
    elif trainer == "MaPLe":
        cfg = [("TRAINER.MAPLE.N_CTX", 2), ("TRAINER.MAPLE.CTX_INIT", "a photo of a"),
               ("TRAINER.MAPLE.PREC", "fp32"), ("TRAINER.MAPLE.PROMPT_DEPTH", depth)]
        ours = {"n_ctx": 2, "ctx_init": "a photo of a", "prompt_depth": depth}
    else:  # PromptSRC, IVLP
        key = "TRAINER.PROMPTSRC." if trainer == "PromptSRC" else "TRAINER.IVLP."
        cfg = [(key + "N_CTX_TEXT", 4), (key + "N_CTX_VISION", 4), (key + "CTX_INIT", "a photo of a"),
               (key + "PREC", "fp32"), (key + "PROMPT_DEPTH_TEXT", depth), (key + "PROMPT_DEPTH_VISION", depth)]
        ours = {"n_ctx_text": 4, "n_ctx_vision": 4, "ctx_init": "a photo of a", "prompt_depth_text": depth,
                "prompt_depth_vision": depth}
        if trainer == "PromptSRC":
            cfg += [(key + "TEXT_LOSS_WEIGHT", 25.0), (key + "IMAGE_LOSS_WEIGHT", 10.0),
                    (key + "GPA_MEAN", SCHEDULE["gpa_mean"]), (key + "GPA_STD", SCHEDULE["gpa_std"])]
            ours.update(text_loss_weight=25.0, image_loss_weight=10.0, kl_loss_weight=1.0, gpa=True,
                        gpa_mean=SCHEDULE["gpa_mean"], gpa_std=SCHEDULE["gpa_std"])
        else:  # IVLP is PromptSRC without its terms and its aggregation
            ours.update(text_loss_weight=0.0, image_loss_weight=0.0, kl_loss_weight=0.0, gpa=False)
    return common + cfg, ours


def ours_side(args, state_dict_path, depth, image_size, job):
    """Our model on the same CLIP: the job's parameters (official names), and ours' quantities."""
    import types

    import torch
    import torch.nn.functional as F

    from clipprompt.clip.loader import load_clip
    from clipprompt.methods import BuildContext, get_method
    from clipprompt.prompts.templates import PROMPTSRC_TEMPLATES, expand_templates
    from clipprompt.runtime.official import model_parameter_names, pick

    method = get_method("PromptSRC" if args.trainer == "IVLP" else args.trainer)
    _, overrides = official_options(args.trainer, depth, image_size)
    options = method.published_options(**overrides)
    context = BuildContext(templates=lambda entries, what=None: expand_templates(entries, DATASET_TEMPLATE),
                           max_epoch=SCHEDULE["epochs"])

    def build(classnames):
        torch.manual_seed(1)  # the prompts' random parts; they are then copied into the official model
        model = method.build(load_clip("ViT-B/16", path=state_dict_path), classnames, options, context)
        model.freeze_clip()
        return model

    model = build(BASE_CLASSES)
    # Move every learnable tensor off its initialisation (seeded noise, half its spread): at CTX_INIT's
    # words the soft prompt is the hand-crafted one, and KgCoOp's term, ProGrad's KL gradient and
    # PromptSRC's text L1 would be (near) zero.
    generator = torch.Generator().manual_seed(args.seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=generator) * 0.5 * p.float().std())
    names = model_parameter_names(args.trainer, model)  # the one official <-> ours name map
    params = dict(model.named_parameters())
    job["params"] = {theirs: pick(params, where).detach().clone() for theirs, where in names.items()}
    ours = {}
    if args.trainer == "ProGrad":
        # Labels the zero-shot teacher finds least likely: CE and KL then pull apart, and the projection runs.
        with torch.no_grad():
            _, teacher = model.student_and_teacher_logits(job["images"])
        job["labels"] = teacher.argmin(dim=-1)
    model.eval()
    with torch.no_grad():
        ours["logits_base"] = model(job["images"]).float()
    new_model = build(NEW_CLASSES)
    new_model.load_state_dict(model.trainable_state_dict(), strict=False)
    new_model.eval()
    with torch.no_grad():
        ours["logits_new"] = new_model(job["new_images"]).float()

    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    loss, _, terms = model.loss(job["images"], job["labels"])
    ours["loss"], ours["terms"] = loss.item(), {k: v.item() for k, v in terms.items()}
    step = types.SimpleNamespace(scale=lambda x: x, reduce=lambda grads: grads)
    if args.trainer == "ProGrad":
        _, teacher = model.student_and_teacher_logits(job["images"])
        ours["teacher_logits"] = teacher.float()
        p = F.softmax(teacher.float(), dim=-1)
        ours["teacher_entropy"] = float(-(p * F.log_softmax(teacher.float(), dim=-1)).sum(-1).mean())
        kl_grads = torch.autograd.grad(terms["kl"], trainable, retain_graph=True)
        ce_grads = torch.autograd.grad(loss, trainable, retain_graph=True)
        ours["conflict"] = sum(float((g * h).sum()) for g, h in zip(ce_grads, kl_grads)) < 0
    if args.trainer == "PromptSRC":
        with torch.no_grad():
            frozen = model.encode_image_frozen(job["images"])
            ours["frozen_image"] = frozen
            ours["zero_shot_logits"] = model.logits(frozen, model.teacher_text).float()
        ours["teacher_text"] = model.teacher_text
    for p in trainable:
        p.grad = None
    model.backward(loss, terms, trainable, step)
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    ours["grads"] = {theirs: pick(grads, where) for theirs, where in names.items()}

    if args.trainer == "PromptSRC":
        model = build(BASE_CLASSES)
        with torch.no_grad():
            for theirs, where in names.items():
                pick(dict(model.named_parameters()), where).copy_(job["params"][theirs])
        model.train()
        trainable = [p for p in model.parameters() if p.requires_grad]
        optim = torch.optim.SGD(trainable, lr=SCHEDULE["lr"], momentum=0.9, weight_decay=5e-4)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(optim, float(SCHEDULE["epochs"]))
        schedule = job["schedule"]
        for i, (image, label) in enumerate(zip(schedule["images"], schedule["labels"])):
            epoch, batch = divmod(i, schedule["per_epoch"])
            loss, _, terms = model.loss(image, label)
            optim.zero_grad()
            model.backward(loss, terms, trainable, step)
            optim.step()
            if batch + 1 == schedule["per_epoch"]:
                sched.step()
                model.end_epoch(types.SimpleNamespace(epoch=epoch))
        params = dict(model.named_parameters())
        ours["after_schedule"] = {theirs: pick(params, where).detach().clone() for theirs, where in names.items()}
        ours["templates"] = list(PROMPTSRC_TEMPLATES)
    return ours


def forward(args):
    """Exit status: 0 all within tolerance, 1 one is not, 2 bad input."""
    import subprocess
    import tempfile

    root, dassl = check_forward_inputs(args)
    import torch

    from clipprompt.clip.loader import read_clip_state_dict
    from clipprompt.errors import UserError

    commit = upstream_commit(args.upstream)
    try:
        state_dict = read_clip_state_dict(args.clip) if args.clip else random_clip_state_dict()
    except UserError as exc:
        fail_input(str(exc))
    if "visual.proj" not in state_dict or "visual.class_embedding" not in state_dict:
        fail_input(f"--clip {args.clip}: not a ViT CLIP (the official deep prompts need a ViT image tower)")
    state_dict = {k: v.half().float() if v.is_floating_point() else v for k, v in state_dict.items()}
    image_size, depth = clip_geometry(state_dict)
    cfg, _ = official_options(args.trainer, depth, image_size)
    generator = torch.Generator().manual_seed(args.seed)
    images = torch.randn(BATCH, 3, image_size, image_size, generator=generator)
    new_images = torch.randn(BATCH, 3, image_size, image_size, generator=generator)
    labels = torch.randint(len(BASE_CLASSES), (BATCH,), generator=generator)
    job = {"trainer": args.trainer, "code_root": root, "dassl": dassl, "backbone": "ViT-B/16", "cfg": cfg,
           "base": BASE_CLASSES, "new": NEW_CLASSES, "images": images, "new_images": new_images, "labels": labels}
    if args.trainer == "PromptSRC":
        steps = SCHEDULE["epochs"] * SCHEDULE["per_epoch"]
        job["schedule"] = {"per_epoch": SCHEDULE["per_epoch"],
                           "images": [torch.randn(BATCH, 3, image_size, image_size, generator=generator)
                                      for _ in range(steps)],
                           "labels": [torch.randint(len(BASE_CLASSES), (BATCH,), generator=generator)
                                      for _ in range(steps)]}
    with tempfile.TemporaryDirectory(prefix="parity-forward-") as tmp:
        clip_path = os.path.join(tmp, "clip.pt")
        torch.save(state_dict, clip_path)
        job["clip"] = clip_path
        ours = ours_side(args, clip_path, depth, image_size, job)
        job_path, out_path = os.path.join(tmp, "job.pt"), os.path.join(tmp, "out.pt")
        torch.save(job, job_path)
        # The official code root and Dassl first on the import path, then tools/ for the worker module
        # itself (imported by its bare name: neither this repository's root nor clipprompt is on the path).
        here = os.path.dirname(os.path.abspath(__file__))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, dassl, here]))
        code = "import sys, parity_forward_worker as worker; worker.main(sys.argv[1], sys.argv[2])"
        proc = subprocess.run([sys.executable, "-c", code, job_path, out_path], cwd=tmp, env=env,
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not os.path.isfile(out_path):
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
            print("\n".join(tail), file=sys.stderr)
            print(f"error: the official {args.trainer} code failed in its process (exit {proc.returncode}); "
                  "see the lines above", file=sys.stderr)
            return 1
        theirs = torch.load(out_path, weights_only=False)
    return report(args.trainer, commit, ours, theirs, job)


def official_train(args, rest):
    """Run the official train.py (see the module's doc); exit status: the official code's, 2 on bad input."""
    import subprocess

    if not args.clip:
        fail_input("--clip is required: the CLIP file the official load_clip_to_cpu reads instead of a download")
    import tempfile

    root, dassl = check_forward_inputs(args)
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, dassl, here]))
    backbone = rest[rest.index("MODEL.BACKBONE.NAME") + 1] if "MODEL.BACKBONE.NAME" in rest else "ViT-B/16"
    # The worker's one runner of an official train.py (as ``upstream``), without the benchmark's shims.
    spec = {"trainer": args.trainer, "code_root": root, "dassl": dassl, "backbone": backbone,
            "clip": os.path.abspath(args.clip)}
    code = "import sys, parity_forward_worker as worker; worker.train_main(sys.argv[1], sys.argv[2:])"
    sys.stdout.flush()
    with tempfile.TemporaryDirectory(prefix="parity-train-") as work:
        spec_path = os.path.join(work, "spec.json")
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        # Run in the official code root: "python -c" puts the working directory first on the import path,
        # and this repository's trainers/ and datasets/ must not shadow the official ones.
        return subprocess.run([sys.executable, "-c", code, spec_path, *rest], env=env, cwd=root,
                              check=False).returncode


def report(trainer, commit, ours, theirs, job):
    import torch

    rows = []

    def diff(label, a, b):
        if a is None or b is None:
            rows.append((label, None if a is None and b is None else float("inf"), None))
            return
        a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
        rows.append((label, float("inf") if a.shape != b.shape else float((a - b).abs().max()),
                     float(b.abs().max())))

    diff("logits, base classes", ours["logits_base"], theirs["logits_base"])
    diff("logits, new classes", ours["logits_new"], theirs["logits_new"])
    calls = {}
    for name, value in theirs["calls"]:
        calls.setdefault(name, []).append(value)
    summary = theirs["summary"]
    if trainer == "KgCoOp":
        diff("loss (CE + W * KG)", ours["loss"], summary["loss"])
        diff("CE", ours["terms"]["ce"], calls["cross_entropy"][0])
        diff("KG term 1 - mean cos", ours["terms"]["kg"], theirs["model_outputs"][1])
    elif trainer == "ProGrad":
        _, tea, _ = theirs["criterion_inputs"]
        xe, kl = theirs["criterion"]
        diff("zero-shot teacher logits", ours["teacher_logits"], tea)
        diff("CE", ours["loss"], xe)
        diff("KL term (ours + H(teacher) = upstream's cross-entropy form)",
             ours["terms"]["kl"] + ours["teacher_entropy"], kl)
    elif trainer == "PromptSRC":
        outs = theirs["model_outputs"]  # CE, text, teacher text, zero-shot image, image, zero-shot logits, logits
        numel = outs[6].numel()
        diff("loss (CE + 25 L1 text + 10 L1 image + KL)", ours["loss"], summary["loss"])
        diff("CE", ours["terms"]["ce"], calls["cross_entropy"][0])
        diff("L1 text (prompted vs teacher ensemble)", ours["terms"]["l1_text"], calls["l1_loss"][0])
        diff("L1 image (prompted vs frozen image)", ours["terms"]["l1_image"], calls["l1_loss"][1])
        diff("KL(zero-shot || prompted) / (B*C)", ours["terms"]["kl"], calls["kl_div"][0] / numel)
        diff("teacher text features (TEACHER_ENSEMBLE raw)", ours["teacher_text"], outs[2])
        diff("frozen image features", ours["frozen_image"], outs[3])
        diff("zero-shot logits", ours["zero_shot_logits"], outs[5])
        rows.append((f"teacher templates identical ({len(theirs['templates'])})",
                     0.0 if ours["templates"] == theirs["templates"] else float("inf"), None))
    else:
        diff("loss (CE)", ours["loss"], summary["loss"])
    for name in job["params"]:
        diff(f"grad {name}", ours["grads"][name], theirs["grads"][name])
    if "after_schedule" in ours:
        for name in job["params"]:
            diff(f"GPA prompts after {SCHEDULE['epochs']}x{SCHEDULE['per_epoch']} steps {name}",
                 ours["after_schedule"][name], theirs["after_schedule"][name])
    ok = True
    print(f"{trainer}: official code at {commit}; fp32, tolerance {TOLERANCE:g} (max abs difference)")
    for label, value, scale in rows:
        good = value is not None and value <= TOLERANCE
        ok &= good
        size = "" if scale is None else f" (upstream's max |value| {scale:.3g})"
        print(f"{trainer} {label}: {'n/a' if value is None else f'{value:.3g}'}{size} {'ok' if good else 'FAIL'}")
    if trainer == "ProGrad":
        print(f"{trainer} note: CE and KL gradients {'conflict (projection applied)' if ours['conflict'] else 'agree (no projection)'}")
    for site, count in sorted(theirs["shims"].items()):
        print(f"{trainer} neutralised: {site} x{count}")
    return 0 if ok else 1


# ----- speed: one training step of the official code against ours -------------------------------------

SPEED_TRAINERS = ("MaPLe", "PromptSRC")
SPEED_CLIPS = ("vit_b16", "small")  # --clip-shapes: tools/benchlib.py's ViT-B/16 shapes, or forward's small CLIP
FULL_TEXT_SIDE = "ours-77"  # --full-text: ours with the text pass over all 77 positions, as the official code's
SGD = {"momentum": 0.9, "weight_decay": 5e-4}  # Dassl's SGD defaults, which the published configs keep


def speed_clip_shapes(name):
    """``clip.model.CLIP``'s arguments for ``--clip-shapes``."""
    if name == "small":
        return RANDOM_CLIP
    from tools.benchlib import ARCHS

    embed, resolution, vision_layers, vision_width, patch, text_width, text_layers = ARCHS[name]
    return {"embed_dim": embed, "image_resolution": resolution, "vision_layers": vision_layers,
            "vision_width": vision_width, "vision_patch_size": patch, "context_length": 77, "vocab_size": 49408,
            "transformer_width": text_width, "transformer_heads": text_width // 64, "transformer_layers": text_layers}


def time_ours(job_path, out_path):
    """Our side of ``speed``, in its own process (``python -c``, from the repository root): our model of the
    job's trainer on the job's CLIP, class names and batch; our trainer's step (``model.loss``,
    ``model.backward``, SGD), timed as the official one (``time_steps`` of the worker)."""
    import collections
    import types

    import torch

    from clipprompt.clip.loader import load_clip
    from clipprompt.methods import BuildContext, get_method
    from clipprompt.prompts.templates import expand_templates
    from tools.parity_forward_worker import time_steps, timed

    torch.set_num_threads(1)
    job = torch.load(job_path, weights_only=True)
    method = get_method(job["trainer"])
    options = method.published_options(**job["ours_options"])
    context = BuildContext(templates=lambda entries, what=None: expand_templates(entries, DATASET_TEMPLATE),
                           max_epoch=SCHEDULE["epochs"])
    torch.manual_seed(1)
    model = method.build(load_clip("ViT-B/16", path=job["clip"]), job["base"], options, context)
    trainable = model.freeze_clip()
    model.text_encoder.full_context = job["full_context"]  # --full-text: all 77 positions, as the official pass
    model.train()
    optim = torch.optim.SGD(trainable, lr=SCHEDULE["lr"], **SGD)
    hooks = types.SimpleNamespace(scale=lambda x: x, reduce=lambda grads: grads)  # no amp, one process
    totals = collections.defaultdict(float)
    timed(model.text_encoder, "forward", "text tower", totals)
    timed(model, "encode_image", "image tower", totals)
    timed(model, "encode_image_frozen", "frozen image tower", totals)
    images, labels = job["images"], job["labels"]

    def step():
        loss, _, terms = model.loss(images, labels)
        optim.zero_grad()
        model.backward(loss, terms, trainable, hooks)
        optim.step()

    rows = time_steps(step, job["warmup"], job["steps"], totals)
    positions = 77 if job["full_context"] else int(model.prompt_learner.tokenized_prompts.argmax(-1).max()) + 1
    torch.save({"rows": rows, "text_positions": positions}, out_path)


def run_side(side, job, job_path, out_path, root, dassl):
    """One side's timed steps in a fresh process; the worker's output dict, or None (its tail printed)."""
    import subprocess

    import torch

    env = dict(os.environ, OMP_NUM_THREADS="1")
    if side != "official":
        job = dict(job, full_context=side == FULL_TEXT_SIDE)
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        cmd = "import sys; from tools.parity_upstream import time_ours; time_ours(sys.argv[1], sys.argv[2])"
        cwd = repo
    else:  # the official code first on the import path, as in forward
        env["PYTHONPATH"] = os.pathsep.join([root, dassl, os.path.dirname(os.path.abspath(__file__))])
        cmd = "import sys, parity_forward_worker as worker; worker.main(sys.argv[1], sys.argv[2])"
        cwd = os.path.dirname(job_path)
    torch.save(job, job_path)
    if os.path.exists(out_path):
        os.remove(out_path)
    proc = subprocess.run([sys.executable, "-c", cmd, job_path, out_path], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not os.path.isfile(out_path):
        print("\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:]), file=sys.stderr)
        print(f"error: {side} side of {job['trainer']} failed in its process (exit {proc.returncode}); "
              "see the lines above", file=sys.stderr)
        return None
    return torch.load(out_path, weights_only=False)


def speed(args):
    """Exit status: 0 when both sides were timed (a measurement, never a verdict), 1 when one side's process
    failed, 2 on bad input."""
    import statistics
    import tempfile

    root, dassl = check_forward_inputs(args)
    import torch

    commit = upstream_commit(args.upstream)
    state_dict = random_clip_state_dict(shapes=speed_clip_shapes(args.clip_shapes))
    image_size, depth = clip_geometry(state_dict)
    cfg, ours_options = official_options(args.trainer, depth, image_size)
    from tools.benchlib import class_names

    generator = torch.Generator().manual_seed(args.seed)
    job = {"trainer": args.trainer, "code_root": root, "dassl": dassl, "backbone": "ViT-B/16", "cfg": cfg,
           "ours_options": ours_options, "base": class_names(args.classes), "mode": "speed",
           "images": torch.randn(BATCH, 3, image_size, image_size, generator=generator),
           "labels": torch.randint(args.classes, (BATCH,), generator=generator),
           "warmup": args.warmup, "steps": args.steps}
    sides = ("ours", FULL_TEXT_SIDE, "official") if args.full_text else ("ours", "official")
    results = {side: [] for side in sides}
    with tempfile.TemporaryDirectory(prefix="parity-speed-") as tmp:
        job["clip"] = os.path.join(tmp, "clip.pt")
        torch.save(state_dict, job["clip"])
        for _ in range(args.repeats):  # A B A B: both sides see the same stretches of a shared machine
            for side in sides:
                out = run_side(side, job, os.path.join(tmp, "job.pt"), os.path.join(tmp, "out.pt"), root, dassl)
                if out is None:
                    return 1
                results[side].append(out)
                print(f"  measured {args.trainer} {side}: steps "
                      + " ".join(f"{row['cpu']:.3f}" for row in out["rows"]) + " s", file=sys.stderr, flush=True)
    shapes = speed_clip_shapes(args.clip_shapes)
    print(f"{args.trainer} speed: official code at {commit}; random CLIP ({args.clip_shapes}: image "
          f"{image_size} px, patch {shapes['vision_patch_size']}, vision {shapes['vision_width']} x "
          f"{shapes['vision_layers']}, text {shapes['transformer_width']} x {shapes['transformer_layers']}), "
          f"prompt depth {depth}, {args.classes} classes, batch {BATCH}, fp32, 1 thread; median of "
          f"{args.repeats} x {args.steps} steps after {args.warmup} warm-up per process; process CPU time")
    medians = {}
    for side, outs in results.items():
        rows = [row for out in outs for row in out["rows"]]
        cpu = [row["cpu"] for row in rows]
        medians[side] = statistics.median(cpu)
        per_process = [statistics.median(row["cpu"] for row in out["rows"]) for out in outs]
        parts = sorted({name for row in rows for name in row["parts"]})
        split = {name: statistics.median(row["parts"].get(name, 0.0) for row in rows) for name in parts}
        rest = statistics.median(row["cpu"] - sum(row["parts"].values()) for row in rows)
        print(f"{args.trainer} {side}: median step {medians[side]:.3f} s (min {min(cpu):.3f}, max {max(cpu):.3f}, "
              f"per process {' '.join(f'{m:.3f}' for m in per_process)}; wall median "
              f"{statistics.median(row['wall'] for row in rows):.3f} s)")
        print(f"{args.trainer} {side} breakdown: text positions {outs[0]['text_positions']}; forward: "
              + ", ".join(f"{name} {value:.3f} s" for name, value in split.items())
              + f"; the rest (backward, loss, optimizer) {rest:.3f} s")
    print(f"{args.trainer} ratio ours/official: {medians['ours'] / medians['official']:.3f}")
    if args.full_text:
        print(f"{args.trainer} ratio {FULL_TEXT_SIDE}/official: {medians[FULL_TEXT_SIDE] / medians['official']:.3f}")
    for site, count in sorted(results["official"][0]["shims"].items()):
        print(f"{args.trainer} neutralised: {site} x{count}")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("setup")
    for flag in ("--dassl", "--clip", "--data", "--work"):
        p.add_argument(flag, required=True)
    p.add_argument("--dassl-prograd", help="the Dassl.ProGrad.pytorch of KgCoOp's or ProGrad's repository")
    p.add_argument("--benchmark", default="fashion10", choices=sorted(BENCHMARK_DATASETS))
    p.add_argument("--trainers", nargs="+", default=["CoOp", "CoCoOp"], choices=SAMPLE_TRAINERS)
    p = sub.add_parser("upstream")
    p.add_argument("--trainer", required=True, choices=SAMPLE_TRAINERS)
    p.add_argument("--code", required=True, help="checkout of the trainer's official repository")
    p.add_argument("--work", required=True)
    p = sub.add_parser("table")
    for flag in ("--ours", "--upstream", "--ours-data", "--work"):
        p.add_argument(flag, required=True)
    p.add_argument("--trainers", nargs="+", default=["CoOp", "CoCoOp"], choices=SAMPLE_TRAINERS)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--shots", type=int, default=16)

    p = sub.add_parser("forward", help="the official trainer's logits, loss terms and gradients against ours")
    p.add_argument("--trainer", required=True, choices=sorted(OFFICIAL_TRAINERS))
    p.add_argument("--upstream", required=True, help="checkout of the official repository")
    p.add_argument("--dassl", required=True, help="Dassl source tree (ProGrad: its Dassl.ProGrad.pytorch)")
    p.add_argument("--clip", help="CLIP state dict (ViT); default: a small random CLIP")
    p.add_argument("--seed", type=int, default=0, help="images and labels")
    p.error = fail_input
    p = sub.add_parser("train", help="the official train.py, unmodified, under the forward shims")
    p.add_argument("--trainer", required=True, choices=sorted(OFFICIAL_TRAINERS))
    p.add_argument("--upstream", required=True, help="checkout of the official repository")
    p.add_argument("--dassl", required=True, help="Dassl source tree (KgCoOp, ProGrad: their Dassl.ProGrad.pytorch)")
    p.add_argument("--clip", help="CLIP state dict read in place of the download")
    p.error = fail_input  # bad input: one error line, exit 2

    p = sub.add_parser("speed", help="one training step of the official trainer against ours: step times")
    p.add_argument("--trainer", required=True, choices=SPEED_TRAINERS)
    p.add_argument("--upstream", required=True, help="checkout of the official repository")
    p.add_argument("--dassl", required=True, help="Dassl source tree (KaiyangZhou's)")
    p.add_argument("--steps", type=int, default=3, help="timed steps per process (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first, per process")
    p.add_argument("--repeats", type=int, default=1, help="processes per side, run ours, official, ours, ...")
    p.add_argument("--classes", type=int, default=50)
    p.add_argument("--full-text", action="store_true",
                   help=f"also time ours with the 77-position text pass (side {FULL_TEXT_SIDE})")
    p.add_argument("--clip-shapes", choices=SPEED_CLIPS, default="vit_b16",
                   help="vit_b16: ViT-B/16's shapes; small: the forward check's small CLIP")
    p.add_argument("--seed", type=int, default=0, help="images and labels")
    p.set_defaults(clip=None)
    p.error = fail_input

    argv = sys.argv[1:]
    rest = []
    if "--" in argv:
        argv, rest = argv[: argv.index("--")], argv[argv.index("--") + 1:]
    args = parser.parse_args(argv)
    if args.command == "setup":
        setup(args)
    elif args.command == "upstream":
        upstream(args, rest)
    elif args.command == "forward":
        sys.exit(forward(args))
    elif args.command == "train":
        sys.exit(official_train(args, rest))
    elif args.command == "speed":
        for flag in ("steps", "repeats", "classes"):
            if getattr(args, flag) < 1:
                fail_input(f"--{flag} must be at least 1, got {getattr(args, flag)}")
        if args.warmup < 0:
            fail_input(f"--warmup must be at least 0, got {args.warmup}")
        sys.exit(speed(args))
    else:
        table(args)


if __name__ == "__main__":
    main()
