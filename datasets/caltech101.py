from dassl.data.datasets import DATASET_REGISTRY

from .base import CoOpDataset


@DATASET_REGISTRY.register()
class Caltech101(CoOpDataset):
    """Caltech101; CoOp's fixed split file."""

    dataset_dir = "caltech-101"
    image_dir = "101_ObjectCategories"
    split_file = "split_zhou_Caltech101.json"
