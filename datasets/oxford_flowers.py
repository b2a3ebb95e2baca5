from dassl.data.datasets import DATASET_REGISTRY

from .base import CoOpDataset


@DATASET_REGISTRY.register()
class OxfordFlowers(CoOpDataset):
    """Oxford Flowers-102; CoOp's fixed split file."""

    dataset_dir = "oxford_flowers"
    image_dir = "jpg"
    split_file = "split_zhou_OxfordFlowers.json"
