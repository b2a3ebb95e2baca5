"""Helpers shared by the test modules: train.py's command line for the tiny runs, and checks of a
finished command and of a run folder. Test modules import them from here, never from each other."""

import gzip
import json
import os

import numpy as np
import torch

from benchmarks import fashion_mnist as fm

# Options that keep a run of train.py tiny: 32x32 inputs, no loader workers, small batches, 2 epochs.
TINY = ["INPUT.SIZE", "(32, 32)", "DATALOADER.NUM_WORKERS", "0", "DATALOADER.TRAIN_X.BATCH_SIZE", "4",
        "DATALOADER.TEST.BATCH_SIZE", "16", "OPTIM.MAX_EPOCH", "2", "TRAIN.PRINT_FREQ", "100"]


def image_batch(n, classes, seed=0, resolution=32):
    """``n`` seeded random images of the tiny CLIP's size (conftest.TINY_RESOLUTION) and labels cycling
    over ``classes`` classes."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, resolution, resolution, generator=g), torch.arange(n) % classes


def train_args(root, out, clip_path, cfg_file, trainer="DualPromptMI", seed=1, subsample="base", extra=()):
    """train.py's command line; ``extra`` mixes flags (--x [value]) and KEY VALUE options."""
    flags, opts, i = [], [], 0
    while i < len(extra):
        if extra[i].startswith("--"):
            takes_value = i + 1 < len(extra) and not extra[i + 1].startswith("--") and extra[i] not in ("--eval-only", "--no-train", "--overwrite")
            flags += extra[i:i + 1 + takes_value]
            i += 1 + takes_value
        else:
            opts += extra[i:i + 2]
            i += 2
    return ["train.py", "--root", root, "--seed", str(seed), "--trainer", trainer,
            "--dataset-config-file", "configs/datasets/oxford_pets.yaml", "--config-file", cfg_file,
            "--output-dir", out, *flags, "MODEL.BACKBONE.PATH", clip_path, "DATASET.NUM_SHOTS", "2",
            "DATASET.SUBSAMPLE_CLASSES", subsample, *opts]


def ok(proc):
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def user_error(proc, *fragments):
    """A bad input ends with exit status 2 and one line naming the problem, no traceback."""
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ")
    for fragment in fragments:
        assert fragment in last, last
    return last


def results(folder, name="results.json"):
    with open(os.path.join(folder, name)) as f:
        return json.load(f)


def ctx_of(folder, epoch):
    path = os.path.join(folder, "prompt_learner", f"model.pth.tar-{epoch}")
    return torch.load(path, weights_only=True)["state_dict"]


# ----- deep vision-language prompts: MaPLe and PromptSRC ------------------------------------
# On the 3-block tiny CLIP (conftest.tiny_clip3_path): prompts in every block but the first one's
# input for MaPLe (depth 3, both towers); PromptSRC with 4 + 2 tokens, depths 3 + 2 and an
# aggregate that weighs both epochs. Sequential batches without a random transform, so that the
# same run also serves as the one-process reference of tests/test_distributed.py.
DEEP_TRAINER_OPTS = {
    "MaPLe": ["TRAINER.MAPLE.PROMPT_DEPTH", "3"],
    "PromptSRC": ["TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT", "3", "TRAINER.PROMPTSRC.N_CTX_VISION", "2",
                  "TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION", "2", "TRAINER.PROMPTSRC.GPA_MEAN", "1.5",
                  "TRAINER.PROMPTSRC.GPA_STD", "1.0"],
}


def deep_args(trainer, root, out, clip_path, cfg_file, batch=4, subsample="base", extra=()):
    opts = [*TINY, "INPUT.TRANSFORMS", "['normalize']", "DATALOADER.TRAIN_X.SAMPLER", "SequentialSampler",
            "DATALOADER.TRAIN_X.BATCH_SIZE", str(batch), "TRAIN.CHECKPOINT_FREQ", "1", *DEEP_TRAINER_OPTS[trainer]]
    return train_args(root, out, clip_path, cfg_file, trainer=trainer, subsample=subsample, extra=[*extra, *opts])


# ----- FashionMNIST's files, made up --------------------------------------------------------


def write_idx(path, array):
    """Write a uint8 array as an IDX file (gzipped if ``path`` ends in .gz); the inverse of ``fm.read_idx``."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = (0x00000800 | array.ndim).to_bytes(4, "big")
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


def write_synthetic_idx_root(folder, train_per_class, test_per_class, seed=0, gzipped=True):
    """Write four small IDX files in FashionMNIST's naming.

    Each class gets a distinct brightness band plus noise, so a model can
    learn something from them; labels are interleaved like the real files.
    Returns ``folder``.
    """
    rng = np.random.RandomState(seed)
    os.makedirs(folder, exist_ok=True)
    for split, per_class in (("train", train_per_class), ("test", test_per_class)):
        labels = np.tile(np.arange(fm.NUM_CLASSES), per_class)
        base = (labels * 25).reshape(-1, 1, 1)
        images = np.clip(base + rng.randint(0, 30, size=(len(labels), 28, 28)), 0, 255)
        image_stem, label_stem = fm.IDX_STEMS[split]
        suffix = ".gz" if gzipped else ""
        write_idx(os.path.join(folder, image_stem + suffix), images)
        write_idx(os.path.join(folder, label_stem + suffix), labels)
    return folder


# DualPromptMI's prompt learners at the 3-block tiny CLIP: ivlp's vision prompts make the image
# features train (its class prototypes are then recomputed each epoch); coop's context does not;
# promptsrc is ivlp's prompts with PromptSRC's terms and an aggregate that weighs both epochs.
DUAL_DEEP = ["TRAINER.DUALPROMPTMI.DEEP.TEXT_DEPTH", "3", "TRAINER.DUALPROMPTMI.DEEP.VISION_N_CTX", "2",
             "TRAINER.DUALPROMPTMI.DEEP.VISION_DEPTH", "2"]
DUAL_LEARNERS = {
    "coop": [],
    "ivlp": ["TRAINER.DUALPROMPTMI.PROMPT_LEARNER", "ivlp", *DUAL_DEEP],
    "promptsrc": ["TRAINER.DUALPROMPTMI.PROMPT_LEARNER", "promptsrc", *DUAL_DEEP, "TRAINER.DUALPROMPTMI.PROMPTSRC.GPA_MEAN",
                  "1.5", "TRAINER.DUALPROMPTMI.PROMPTSRC.GPA_STD", "1.0"],
}
MOVING = ["OPTIM.LR", "0.5", "OPTIM.WARMUP_EPOCH", "0"]  # epoch 1 moves the prompts visibly
