"""Install the DualPromptMI toolkit.

Only the Dassl-free library ``clipprompt`` is installed as a package. The
CoOp-style root folders (``trainers/``, ``datasets/``) are imported from the
repository root by ``train.py`` and the tests, so nothing named ``datasets``
lands in site-packages (it would hide HuggingFace's ``datasets``).
Dassl is not on PyPI: install it with ``bash scripts/install_dassl.sh``.
"""

import runpy
from pathlib import Path

from setuptools import find_packages, setup

# The trainers' one list (it imports nothing, so setup.py reads it before anything is installed).
TRAINER_NAMES = runpy.run_path(str(Path(__file__).parent / "clipprompt" / "catalog.py"))["TRAINER_NAMES"]

# What ``import dassl`` (v0.6.3) needs at run time, besides torch.
DASSL_RUNTIME = [
    "yacs",
    "gdown",
    "tensorboard",
    "scipy",
    "scikit-learn",
    "tqdm",
    "tabulate",
    "wilds",
]

# clipprompt/clip/backbone.py reads open_clip's text tower internals: the release range it is tested on.
OPEN_CLIP = "open_clip_torch>=3.3.0,<3.4"

setup(
    name="clipprompt",
    version="0.1.0",
    description=f"Prompt learning on CLIP ({', '.join(TRAINER_NAMES)}) as a Dassl plug-in",
    python_requires=">=3.10",
    packages=find_packages(include=["clipprompt", "clipprompt.*"]),
    install_requires=[
        "torch>=2.0",
        "torchvision>=0.15",
        "clip-anytorch>=2.5",
        # clip-anytorch imports pkg_resources, removed from setuptools 81.
        "setuptools<81",
        "ftfy",
        "regex",
        "numpy",
        "Pillow",
        "matplotlib",
        *DASSL_RUNTIME,
    ],
    # slurm: python -m tools.grid --slurm submits the grid's runs through submitit (imported only then).
    # open_clip: backbones named open_clip:<arch> (LAION, DataComp, MetaCLIP, EVA weights; clipprompt/clip/backbone.py).
    extras_require={"test": ["pytest>=7", OPEN_CLIP], "slurm": ["submitit"],
                    "open_clip": [OPEN_CLIP]},
)
