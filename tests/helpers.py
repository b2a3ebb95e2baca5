"""Helpers shared by the test modules: train.py's command line for the tiny runs, and checks of a
finished command and of a run folder. Test modules import them from here, never from each other."""

import json
import os

import torch

# Options that keep a run of train.py tiny: 32x32 inputs, no loader workers, small batches, 2 epochs.
TINY = ["INPUT.SIZE", "(32, 32)", "DATALOADER.NUM_WORKERS", "0", "DATALOADER.TRAIN_X.BATCH_SIZE", "4",
        "DATALOADER.TEST.BATCH_SIZE", "16", "OPTIM.MAX_EPOCH", "2", "TRAIN.PRINT_FREQ", "100"]


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
