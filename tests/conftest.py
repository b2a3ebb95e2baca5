"""Shared fixtures: a tiny random CLIP saved like a user's local checkpoint,
and a synthetic dataset in CoOp's OxfordPets layout."""

import json
import os
import subprocess
import sys

import pytest
import torch

# wilds (imported by Dassl) would otherwise ask PyPI for its latest version on import.
os.environ.setdefault("OUTDATED_IGNORE", "1")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

try:
    import dassl  # noqa: F401
    HAVE_DASSL, DASSL_REASON = True, ""
except Exception as exc:  # report why, never fail collection
    HAVE_DASSL, DASSL_REASON = False, f"Dassl cannot be imported ({exc.__class__.__name__}: {exc}); run scripts/install_dassl.sh"

requires_dassl = pytest.mark.skipif(not HAVE_DASSL, reason=DASSL_REASON or "Dassl available")

TINY_RESOLUTION = 32


def write_fake_python(tmp_path, script_source):
    """An executable that runs ``script_source`` with this interpreter whatever its arguments:
    stands in for the PYTHON the protocol scripts call, so runners can be tested without training."""
    import stat

    script = tmp_path / "fake_train.py"
    script.write_text(script_source)
    wrapper = tmp_path / "fake_python"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} {script} \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    return wrapper


def build_tiny_clip(seed=0, embed_dim=64, width=64, layers=1, patch=16):
    """OpenAI's architecture at toy size (widths multiples of 64: heads = width / 64 on load)."""
    from clip.model import CLIP

    torch.manual_seed(seed)
    model = CLIP(embed_dim=embed_dim, image_resolution=TINY_RESOLUTION, vision_layers=layers,
                 vision_width=width, vision_patch_size=patch, context_length=77, vocab_size=49408,
                 transformer_width=width, transformer_heads=width // 64, transformer_layers=layers)
    return model.float().eval()


@pytest.fixture(scope="session")
def tiny_clip_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "tiny_clip.pt"
    torch.save(build_tiny_clip().state_dict(), path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_clip3_path(tmp_path_factory):
    """Three blocks per tower, saved like a user's checkpoint: room for deep prompts (MaPLe, PromptSRC)."""
    path = tmp_path_factory.mktemp("clip3") / "tiny_clip3.pt"
    torch.save(build_tiny_clip(layers=3).state_dict(), path)
    return str(path)


@pytest.fixture(scope="session")
def deep_trainer_run(tmp_path_factory, pets_root, tiny_clip3_path, tiny_cfg_file):
    """``run(trainer)``: the folder of one 2-epoch base run of a deep-prompt trainer (MaPLe, PromptSRC;
    see helpers.deep_args), trained once per session and shared by the round-trip,
    resume and torchrun tests."""
    from helpers import deep_args, ok

    runs = {}

    def run(trainer):
        if trainer not in runs:
            out = str(tmp_path_factory.mktemp(f"deep_{trainer}") / "run")
            ok(run_cli(deep_args(trainer, pets_root, out, tiny_clip3_path, tiny_cfg_file)))
            runs[trainer] = out
        return runs[trainer]

    return run


@pytest.fixture()
def tiny_clip(tiny_clip_path):
    from clipprompt.clip.loader import load_clip

    return load_clip("ViT-B/16", tiny_clip_path)


PET_CLASSES = ["abyssinian", "beagle", "boxer", "chihuahua", "persian", "pug", "samoyed"]


def write_pets_dataset(root, classes=PET_CLASSES, n_train=4, n_val=2, n_test=3):
    """Colour-coded images so that a prompt can actually learn something."""
    from PIL import Image

    folder = os.path.join(root, "oxford_pets")
    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    split = {"train": [], "val": [], "test": []}
    g = torch.Generator().manual_seed(0)
    for label, name in enumerate(classes):
        colour = torch.rand(3, generator=g)
        for part, count in (("train", n_train), ("val", n_val), ("test", n_test)):
            for i in range(count):
                pixels = (colour * 200 + torch.rand(TINY_RESOLUTION, TINY_RESOLUTION, 3, generator=g) * 55).byte().numpy()
                rel = f"{name}_{part}_{i}.jpg"
                Image.fromarray(pixels).save(os.path.join(folder, "images", rel))
                split[part].append([rel, label, name])
    with open(os.path.join(folder, "split_zhou_OxfordPets.json"), "w") as f:
        json.dump(split, f)
    return root


@pytest.fixture(scope="session")
def pets_root(tmp_path_factory):
    return write_pets_dataset(str(tmp_path_factory.mktemp("data")))


TINY_TRAINER_CFG = """
DATALOADER:
  TRAIN_X:
    BATCH_SIZE: 4
  TEST:
    BATCH_SIZE: 16
  NUM_WORKERS: 0
INPUT:
  SIZE: (32, 32)
  INTERPOLATION: "bicubic"
  PIXEL_MEAN: [0.48145466, 0.4578275, 0.40821073]
  PIXEL_STD: [0.26862954, 0.26130258, 0.27577711]
  TRANSFORMS: ["random_flip", "normalize"]
OPTIM:
  NAME: "sgd"
  LR: 0.002
  MAX_EPOCH: 2
  LR_SCHEDULER: "cosine"
  WARMUP_EPOCH: 1
  WARMUP_TYPE: "constant"
  WARMUP_CONS_LR: 1e-5
TRAIN:
  PRINT_FREQ: 100
"""


@pytest.fixture(scope="session")
def tiny_cfg_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    path.write_text(TINY_TRAINER_CFG)
    return str(path)


def run_cli(args, cwd=REPO, env_extra=None, timeout=300):
    """Run a repository command as a user would (``args``: a ``.py`` file or ``-m module`` and its
    arguments for this interpreter, else a whole command line); returns the CompletedProcess."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.update(env_extra or {})
    cmd = [sys.executable, *args] if args[0].endswith(".py") or args[0] == "-m" else list(args)
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
