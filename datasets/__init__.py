"""Dassl datasets; importing this package registers them in DATASET_REGISTRY.

Registry names follow CoOp (``DATASET.NAME`` in ``configs/datasets/*.yaml``).
"""

from . import (  # noqa: F401
    caltech101,
    custom,
    dtd,
    eurosat,
    fashion_colours,
    fashion_mnist,
    fgvc_aircraft,
    food101,
    imagenet,
    imagenet_a,
    imagenet_r,
    imagenet_sketch,
    imagenetv2,
    oxford_flowers,
    oxford_pets,
    stanford_cars,
    sun397,
    ucf101,
)
from .base import CoOpDataset  # noqa: F401
