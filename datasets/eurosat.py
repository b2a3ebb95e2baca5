from dassl.data.datasets import DATASET_REGISTRY

from .base import CoOpDataset


@DATASET_REGISTRY.register()
class EuroSAT(CoOpDataset):
    """EuroSAT (RGB); CoOp's fixed split file."""

    dataset_dir = "eurosat"
    image_dir = "2750"
    split_file = "split_zhou_EuroSAT.json"
