from dassl.data.datasets import DATASET_REGISTRY

from .base import CoOpDataset


@DATASET_REGISTRY.register()
class Food101(CoOpDataset):
    """Food-101; CoOp's fixed split file."""

    dataset_dir = "food-101"
    image_dir = "images"
    split_file = "split_zhou_Food101.json"
